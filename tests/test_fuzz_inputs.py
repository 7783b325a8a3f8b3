"""Property-based fuzzing of everything that parses user text: target and plan YAML, degradation
specs, shapes, precisions, value ranges and artifact manifests. Whatever the input, the result
is a value or an EdgekitError (one line) — never another exception."""

from __future__ import annotations

import copy
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edgekit.cli import parse_value_range  # noqa: E402
from edgekit.config import (  # noqa: E402
    load_plan,
    load_target,
    parse_precision,
    parse_shape,
    plan_from_dict,
    target_from_dict,
)
from edgekit.data.degradations import available, parse  # noqa: E402
from edgekit.errors import EdgekitError  # noqa: E402

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
REPO = Path(__file__).resolve().parents[1]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["fp32", "int8", "tflite", "onnx", "NCHW", "qat", "2:4", "noise:sigma=25"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


def one_line_or_value(fn, *args):
    """Call fn; an EdgekitError must be one line naming something. Anything else fails."""
    try:
        return fn(*args)
    except EdgekitError as exc:
        text = str(exc)
        assert text and "\n" not in text, text
        return None


def _write(text: str, suffix: str) -> Path:
    f = tempfile.NamedTemporaryFile("w", suffix=suffix, delete=False, encoding="utf-8")
    with f:
        f.write(text)
    return Path(f.name)


def _paths(d, prefix=()):
    """Every key path in nested dicts/lists (for mutation)."""
    yield prefix
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            yield from _paths(v, (*prefix, i))


def _mutate(base, edits):
    data = copy.deepcopy(base)
    paths = list(_paths(data))[1:]
    for pick, value, new_key in edits:
        value = copy.deepcopy(value)  # never alias (or change) Hypothesis's own objects
        path = paths[pick % len(paths)]
        parent = data
        for p in path[:-1]:
            parent = parent[p]
        if new_key is not None and isinstance(parent, dict):
            parent[new_key] = value
        else:
            parent[path[-1]] = value
        paths = list(_paths(data))[1:] or [()]
        if paths == [()]:
            break
    return data


edits = st.lists(
    st.tuples(st.integers(0, 10_000), values, st.none() | st.text(max_size=8)),
    min_size=1,
    max_size=3,
)
BASE_TARGET = yaml.safe_load((REPO / "targets" / "host-cpu.yaml").read_text())
BASE_PLAN = {
    "name": "p",
    "seed": 3,
    "steps": [
        {"kind": "prune_channels", "ratio": 0.25, "round_to": 8, "steps": 10},
        {"kind": "distill", "student": "pruned", "alpha": 0.5, "steps": 10},
        {"kind": "qat", "steps": 5, "lr": "1e-4"},
    ],
}


@FUZZ
@given(edits)
def test_target_dicts(e):
    one_line_or_value(target_from_dict, _mutate(BASE_TARGET, e), "t.yaml")


@FUZZ
@given(st.one_of(st.text(max_size=200), values.map(lambda v: yaml.safe_dump(v))))
def test_target_and_plan_yaml_text(text):
    path = _write(text, ".yaml")
    try:
        one_line_or_value(load_target, path)
        one_line_or_value(load_plan, path)
    finally:
        path.unlink()


@FUZZ
@given(edits)
def test_plan_dicts(e):
    one_line_or_value(plan_from_dict, _mutate(BASE_PLAN, e), "p.yaml")
    one_line_or_value(plan_from_dict, _mutate(BASE_PLAN["steps"], e), "p.yaml")


names = st.sampled_from(sorted(available()))
keys = st.sampled_from(
    ["sigma", "clip", "factor", "length", "angle", "quality", "subsampling", "strength",
     "softness", "tint", "shapes", "freq", "bogus"]
)  # fmt: skip
param_values = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=6),
)


@st.composite
def specs(draw):
    params = draw(st.lists(st.tuples(keys, param_values), max_size=3))
    sep = draw(st.sampled_from([",", ", ", ",,"]))
    return draw(names) + ":" + sep.join(f"{k}={v}" for k, v in params)


@FUZZ
@given(st.one_of(st.text(max_size=40), specs()))
def test_degradation_specs(spec):
    deg = one_line_or_value(parse, spec)
    if deg is not None:  # a spec that parses must also run on a small image
        clean = np.random.default_rng(0).random((24, 24, 3), dtype=np.float32)
        out = one_line_or_value(deg, clean, 0)
        if out is not None:
            assert np.all(np.isfinite(out[0])), spec


@FUZZ
@given(st.text(max_size=24))
def test_shape_precision_and_value_range_text(text):
    shape = one_line_or_value(parse_shape, text)
    if shape is not None:
        assert all(isinstance(v, int) and 1 <= v <= 4096 for v in shape)
    one_line_or_value(parse_precision, text)
    vr = one_line_or_value(parse_value_range, text)
    if vr is not None:
        assert math.isfinite(vr[0]) and math.isfinite(vr[1]) and vr[0] < vr[1]


@FUZZ
@given(st.integers(0, 10**7).map(str) | st.text(max_size=5), st.integers(-5, 10**7).map(str))
def test_shape_text_hw(h, w):
    one_line_or_value(parse_shape, f"{h}x{w}")


BASE_MANIFEST = {
    "manifest_version": 1,
    "format": "tflite",
    "precision": "fp32",
    "io": "float",
    "label": "tflite-fp32",
    "file": "a.tflite",
    "input_shape": [1, 32, 32, 3],
    "output_shape": [1, 32, 32, 3],
    "dynamic_shape": False,
    "model": {
        "name": "m",
        "task": "restore",
        "degradation": "noise:sigma=25",
        "scale": 1,
        "value_range": [0.0, 1.0],
        "channels": 3,
        "layout": "NHWC",
        "source": "m.h5",
        "extra": {},
        "input_multiple": 1,
    },
    "validation": {"psnr_vs_keras_db": 60.0},
}


@pytest.fixture(scope="module")
def artifact_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzzman")
    (folder / "a.tflite").write_bytes(b"dummy")
    return folder


@FUZZ
@given(st.one_of(edits.map(lambda e: _mutate(BASE_MANIFEST, e)), values))
def test_manifest_readers(artifact_dir, manifest):
    from edgekit.bench import compare
    from edgekit.bench.artifacts import load_artifacts, read_manifest
    from edgekit.config import load_target

    art = artifact_dir / "a.tflite"
    try:
        text = json.dumps(manifest)
    except ValueError:
        return
    (artifact_dir / "a.tflite.json").write_text(text)
    target = load_target("host-cpu")
    arts = one_line_or_value(load_artifacts, [art], target, None)
    if arts:
        a = arts[0]
        assert 1 <= a.tile[0] <= 4096 and 1 <= a.tile[1] <= 4096
        assert isinstance(a.info.scale, int) and a.info.scale >= 1
        if a.info.degradation is not None:
            one_line_or_value(parse, a.info.degradation)
    m = one_line_or_value(read_manifest, art)
    if m is not None:
        tile = one_line_or_value(compare._tile_from, [m], None)
        if tile is not None:
            assert all(isinstance(v, int) and v >= 1 for v in tile)
