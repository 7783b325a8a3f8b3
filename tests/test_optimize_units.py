"""edgekit optimize: the pure parts (search order, Pareto front, ranking, cache) and bad input."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest

from edgekit.cli import main
from edgekit.optimize import mixed, sensitivity
from edgekit.optimize.cache import Cache
from edgekit.optimize.report import pareto
from edgekit.optimize.space import Candidate, ptq_candidates, with_float_nodes


@pytest.mark.parametrize("n,first_pass", [(1, 1), (5, 1), (5, 3), (14, 5), (14, 14), (9, None)])
def test_smallest_k_finds_the_first_passing_k(n, first_pass):
    calls = []

    def passes(k):
        calls.append(k)
        return first_pass is not None and k >= first_pass

    k, tried = mixed.smallest_k(n, passes)
    assert k == first_pass
    assert tried == calls
    assert len(set(tried)) == len(tried)  # nothing built twice
    assert len(tried) <= 2 * max(1, int(np.ceil(np.log2(n)))) + 1


def test_smallest_k_stops_when_time_runs_out():
    k, tried = mixed.smallest_k(8, lambda k: None if k >= 2 else False)
    assert k is None and tried == [1, 2]


def test_pareto_front_keeps_only_undominated_points():
    rows = [
        {"id": "a", "latency_ms": 1.0, "psnr_db": 30.0},
        {"id": "b", "latency_ms": 2.0, "psnr_db": 31.0},
        {"id": "c", "latency_ms": 2.5, "psnr_db": 30.5},  # slower and worse than b
        {"id": "d", "latency_ms": 3.0, "psnr_db": 31.5},
        {"id": "e", "latency_ms": None, "psnr_db": 40.0},  # never timed: not on the front
    ]
    assert [r["id"] for r in pareto(rows)] == ["a", "b", "d"]


def test_sensitivity_ranks_by_the_error_a_node_brings_alone():
    base = {
        "mixed_precision": {
            "nodes": [
                {"node": "m/a/Conv2D", "op": "CONV_2D", "layer": "a", "rmse_over_scale": 0.3},
                {"node": "m/b/Conv2D", "op": "CONV_2D", "layer": "b", "rmse_over_scale": 0.9},
                {"node": "m/c/concat", "op": "CONCATENATION", "layer": "c", "rmse_over_scale": 0},
                {"node": "q", "op": "QUANTIZE", "layer": None, "rmse_over_scale": 0},
            ]
        }
    }
    probes = {
        "m/a/Conv2D": {"validation": {"psnr_vs_keras_db": 40.0}},  # worst alone
        "m/b/Conv2D": {"validation": {"psnr_vs_keras_db": 50.0}},
        "m/c/concat": {"validation": {"psnr_vs_keras_db": 200.0}},  # exact
    }
    ranked = sensitivity.rank(base, probes)
    assert [r["layer"] for r in ranked] == ["a", "b", "c"]  # the QUANTIZE op is not a probe
    assert ranked[0]["share"] == pytest.approx(1e-4 / (1e-4 + 1e-5 + 1e-20), rel=1e-3)


def test_candidate_ids_depend_on_the_recipe_only():
    a = Candidate("tflite", "int8", options=(("x", 1),))
    assert a.id == Candidate("tflite", "int8", options=(("x", 1),), note="other").id
    m = with_float_nodes(a, ["n1"])
    assert m.id != a.id and m.kind == "mixed" and m.label == "tflite-int8-mixed1"
    assert m.exporter_options() == {"x": 1, "float_nodes": ["n1"]}


def test_ptq_candidates_skip_engines_and_put_slow_precisions_last():
    from edgekit.config import load_target

    cands, _ = ptq_candidates(load_target("android-cpu-int8"))
    assert [c.label for c in cands] == [
        "tflite-int8",
        "tflite-int8+no-rewrite",
        "tflite-int8-int8io",
        "tflite-int8-int8io+no-rewrite",
        "tflite-int16x8",
        "tflite-int16x8+no-rewrite",
    ]
    cands, notes = ptq_candidates(load_target("rtx-desktop"))
    assert cands == [] and notes


def test_cache_counts_only_complete_entries(tmp_path):
    cache = Cache(tmp_path / "cache", "model", "data")
    c = Candidate("tflite", "int8")
    assert cache.get(c) is None
    got = cache.put(c, {"ok": True, "psnr_db": 30.0, "artifact_bytes": b"abc", "manifest": {}})
    assert got["psnr_db"] == 30.0 and open(got["artifact"], "rb").read() == b"abc"
    # a build interrupted while it was being written leaves a temporary folder: it never counts
    d = cache.folder(Candidate("tflite", "fp32"))
    tmp = d.parent / f".{d.name}.tmp-x"
    tmp.mkdir()
    (tmp / "result.json").write_text(json.dumps({"ok": True}))
    assert cache.get(Candidate("tflite", "fp32")) is None
    # an entry whose artifact went missing does not count either
    (cache.folder(c) / "artifact.tflite").unlink()
    assert cache.get(c) is None
    # another model, or other photos, never share entries
    assert Cache(tmp_path / "cache", "model2", "data").key(c) != cache.key(c)
    assert Cache(tmp_path / "cache", "model", "data2").key(c) != cache.key(c)


def test_cache_key_changes_with_edgekit_code(tmp_path, monkeypatch):
    from edgekit.optimize import cache as cache_mod

    c = Candidate("tflite", "int8")
    before = Cache(tmp_path, "model", "data").key(c)
    assert Cache(tmp_path, "model", "data").key(c) == before  # stable within one checkout
    monkeypatch.setattr(cache_mod, "code_fingerprint", lambda: "an exporter that changed")
    assert Cache(tmp_path, "model", "data").key(c) != before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--max-drop", "-1"], "--max-drop -1"),
        (["--max-drop", "0.3", "--metric", "lpips"], "--metric 'lpips'"),
        (["--max-drop", "0.3", "--executor", "dask"], "--executor 'dask'"),
        (["--max-drop", "nan"], "--max-drop nan"),
        (
            ["--max-drop", "0.3", "--executor", "ray", "--ray-address", "127.0.0.1:PORT"],
            "no Ray head answers there",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, extra, needle):
    extra = [e.replace("PORT", str(_free_port())) for e in extra]
    rc = main(["optimize", "zoo:dncnn", "--target", "host-cpu", "--out", str(tmp_path), *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and needle in err
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize(
    "exports,needle",
    [
        ("[]", "exports"),
        ("[{format: tensorrt, precision: fp16}]", "none of its exports"),
    ],
)
def test_a_target_without_searchable_exports_is_exit_2(tmp_path, capsys, exports, needle):
    t = tmp_path / "t.yaml"
    t.write_text(
        "name: t\ndescription: d\ndevice: host\nruntime: tensorrt\n"
        f"exports: {exports}\ntile: [32, 32]\n"
    )
    rc = main(
        [
            "optimize",
            "zoo:dncnn",
            "--target",
            str(t),
            "--max-drop",
            "0.3",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and needle in err
    assert not (tmp_path / "o").exists()


def test_training_candidates_only_for_int8_targets_and_keep_a_mixed_base():
    from edgekit.config import load_target
    from edgekit.optimize.space import training_allowed, training_candidates

    assert training_allowed(load_target("android-cpu-int8")) is True  # int8, int8 I/O, int16x8
    assert training_allowed(load_target("host-cpu")) is False
    base = with_float_nodes(Candidate("tflite", "int8"), ["m/head/Conv2D"])
    cands = training_candidates(load_target("host-cpu"), base)
    kinds = [[json.loads(s)["kind"] for s in c.plan] for c in cands]
    assert kinds == [["prune_channels", "distill"], ["prune_channels", "distill"], ["qat"]]
    assert all(c.float_nodes == base.float_nodes and c.kind == "train" for c in cands)
    assert len({c.id for c in cands}) == 3 and cands[0].label.endswith("tflite-int8-mixed1")
