"""edgekit bundle: fixed-shape model, bundle.json contract, a runner that equals `edgekit run`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgekit.bundle import make_bundle, runner_source
from edgekit.cli import main
from edgekit.config import Precision
from edgekit.errors import EdgekitError
from edgekit.paths import calibration_dir

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from edgekit.api import export

    d = tmp_path_factory.mktemp("bundle")
    int8 = export(
        "zoo:dncnn", format="tflite", precision=Precision.int8, shape=(64, 64), io="int8",
        out=d / "dncnn-int8.tflite",
    ).path  # fmt: skip
    fp32 = export("zoo:dncnn", format="tflite", precision=Precision.fp32, out=d / "dyn.tflite").path
    im = np.asarray(Image.open(calibration_dir() / "08_grace_hopper_portrait.png").convert("RGB"))
    noisy = np.clip(im[:141, :187] + np.random.default_rng(0).normal(0, 25, (141, 187, 3)), 0, 255)
    photo = d / "noisy photo.png"
    Image.fromarray(noisy.astype(np.uint8)).save(photo)
    return {"dir": d, "int8": int8, "fp32": fp32, "photo": photo}


def _no_tf_env(tmp: Path) -> dict:
    """PYTHONPATH with a `tensorflow` that cannot be imported (and no edgekit on the path)."""
    fake = tmp / "no_tf"
    (fake / "tensorflow").mkdir(parents=True, exist_ok=True)
    (fake / "tensorflow" / "__init__.py").write_text("raise ImportError('no TensorFlow here')\n")
    return {**os.environ, "PYTHONPATH": str(fake)}


def _run_runner(python: str, bundle: Path, photo: Path, out: Path, env: dict) -> np.ndarray:
    r = subprocess.run(
        [python, str(bundle / "restore.py"), str(photo), "--out", str(out), "--threads", "2"],
        capture_output=True, text=True, env=env, cwd=out.parent, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    return np.asarray(Image.open(out / (photo.stem + ".png")))


def _edgekit_run(model: Path, photo: Path, out: Path, *extra) -> np.ndarray:
    assert main(["run", str(model), str(photo), "--out", str(out), *extra]) == 0
    return np.asarray(Image.open(out / (photo.stem + ".png")))


@pytest.mark.slow
def test_int8_io_bundle_contract_and_bit_identical_runner(exported, tmp_path):
    b = make_bundle(exported["int8"], tmp_path / "b")
    spec = json.loads((b / "bundle.json").read_text())
    assert spec["input"]["shape"] == [1, 64, 64, 3] and spec["input"]["dtype"] == "int8"
    q = spec["input"]["quantization"]
    assert q["scale"] > 0 and -128 <= q["zero_point"] <= 127
    assert spec["tiling"] == {**spec["tiling"], "tile": [64, 64], "overlap": 16, "margin": 4}
    assert spec["task"] == "denoise" and spec["degradation"].startswith("noise:")
    assert (
        spec["measured"]["latency"]["p50_ms"] > 0
        and "host" in spec["measured"]["latency"]["measured_on"]
    )
    assert spec["measured"]["psnr_vs_float_db"] > 30
    ours = _edgekit_run(exported["int8"], exported["photo"], tmp_path / "ek")
    theirs = _run_runner(
        sys.executable, b, exported["photo"], tmp_path / "rr", _no_tf_env(tmp_path)
    )
    assert ours.shape == (141, 187, 3)
    np.testing.assert_array_equal(theirs, ours)  # bit for bit, without TensorFlow or edgekit


@pytest.mark.slow
def test_dynamic_fp32_gets_a_fixed_input_that_tools_allocate(exported, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    b = make_bundle(exported["fp32"], tmp_path / "b", tile=(48, 48))
    spec = json.loads((b / "bundle.json").read_text())
    assert spec["model"]["fixed_shape"] and spec["input"]["shape"] == [1, 48, 48, 3]
    it = Interpreter(model_path=str(b / "model.tflite"))
    assert list(it.get_input_details()[0]["shape_signature"]) == [1, 48, 48, 3]
    # the fixed model, the original at --tile 48x48 and the runner: one output
    fixed = _edgekit_run(b / "model.tflite", exported["photo"], tmp_path / "f")
    orig = _edgekit_run(exported["fp32"], exported["photo"], tmp_path / "o", "--tile", "48x48")
    runner = _run_runner(sys.executable, b, exported["photo"], tmp_path / "r", _no_tf_env(tmp_path))
    np.testing.assert_array_equal(fixed, orig)
    np.testing.assert_array_equal(runner, fixed)
    # Google's benchmark tool now runs the real tile (it ran 1x1x1x3 on the dynamic export)
    r = subprocess.run(
        [sys.executable, "-m", "ai_edge_litert.tools.benchmark_litert_model",
         "--model", str(b / "model.tflite"), "--num_runs", "3", "--warmup_runs", "1",
         "--num_threads", "2", "--verbose", "--result_json", str(tmp_path / "bm.json")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert re.search(r"input: dtype=float32, shape=\[1, 48, 48, 3\]", r.stdout + r.stderr)
    assert json.loads((tmp_path / "bm.json").read_text())["latency"]["median_ms"] > 1.0


def test_the_runner_inlines_the_tiling_of_edgekit_run_verbatim(tmp_path):
    src = runner_source()
    tiled = (ROOT / "edgekit" / "runtimes" / "tiled.py").read_text()
    assert tiled.split("from __future__ import annotations\n", 1)[1].strip("\n") in src
    assert "import edgekit" not in src and "from edgekit" not in src
    assert "tensorflow" not in src
    compile(src, "restore.py", "exec")


def test_bad_artifacts_are_refused(tmp_path):
    with pytest.raises(EdgekitError, match="artifact not found"):
        make_bundle(tmp_path / "missing.tflite", tmp_path / "b")
    (tmp_path / "m.engine").write_bytes(b"x")
    with pytest.raises(EdgekitError, match="bundle its ONNX"):
        make_bundle(tmp_path / "m.engine", tmp_path / "b")
    (tmp_path / "bare.tflite").write_bytes(b"x")
    with pytest.raises(EdgekitError, match="no manifest"):
        make_bundle(tmp_path / "bare.tflite", tmp_path / "b")
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_runner_in_a_fresh_venv_with_only_numpy_litert_pillow(exported, tmp_path):
    venv = tmp_path / "venv"
    made = subprocess.run(
        [sys.executable, "-m", "venv", str(venv)], capture_output=True, timeout=300
    )
    if made.returncode != 0:
        pytest.skip(f"cannot create a venv: {made.stderr.decode()[-300:]}")
    py = str(venv / "bin" / "python")
    pip = subprocess.run(
        [py, "-m", "pip", "install", "--quiet", "numpy", "ai-edge-litert", "pillow"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if pip.returncode != 0:
        pytest.skip(f"pip could not install numpy ai-edge-litert pillow: {pip.stderr[-300:]}")
    b = make_bundle(exported["int8"], tmp_path / "b")
    ours = _edgekit_run(exported["int8"], exported["photo"], tmp_path / "ek")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    theirs = _run_runner(py, b, exported["photo"], tmp_path / "rr", env)
    np.testing.assert_array_equal(theirs, ours)
