"""ONNX Runtime runner: NHWC float32 in/out whatever the artifact's layout and I/O dtype."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_export_onnx import TILE, export_onnx, keras_out, real_tiles, trained_denoiser

from edgekit.metrics import psnr
from edgekit.runtimes.base import RunnerError, runner_for
from edgekit.runtimes.onnxruntime import OnnxRuntimeRunner


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ort")
    loaded = trained_denoiser()
    return loaded, {
        "nhwc": export_onnx(loaded, "fp32", folder / "nhwc.onnx").path,
        "nchw": export_onnx(loaded, "fp32", folder / "nchw.onnx", layout="NCHW").path,
        "dynamic": export_onnx(loaded, "fp32", folder / "dyn.onnx", dynamic_hw=True).path,
    }


def test_runner_for_picks_onnxruntime_and_reports_versions(artifacts):
    _, paths = artifacts
    runner = runner_for(str(paths["nhwc"]), threads=2)
    assert isinstance(runner, OnnxRuntimeRunner) and runner.runtime == "onnxruntime"
    v = runner.versions()
    import onnxruntime

    assert (
        v["onnxruntime"] == onnxruntime.__version__ and v["providers"][-1] == "CPUExecutionProvider"
    )
    assert runner.delegate_used == runner.providers_used[0]


@pytest.mark.parametrize("threads", [1, 2])
def test_threads_reach_the_session(artifacts, threads):
    _, paths = artifacts
    runner = runner_for(str(paths["nhwc"]), threads=threads)
    assert runner._session.get_session_options().intra_op_num_threads == threads


def test_nchw_artifact_takes_and_returns_nhwc(artifacts):
    loaded, paths = artifacts
    xs, _ = real_tiles("noise:sigma=25", TILE, split="held")
    a = runner_for(str(paths["nhwc"]), threads=2)
    b = runner_for(str(paths["nchw"]), threads=2)
    assert a.layout == "NHWC" and b.layout == "NCHW"
    assert a.input_shape == b.input_shape == (1, *TILE, 3)
    ya, yb = a.run(xs), b.run(xs)
    assert ya.shape == yb.shape == xs.shape and yb.dtype == np.float32
    ref = keras_out(loaded, xs)
    assert psnr(ya, ref) >= 60.0 and psnr(yb, ref) >= 60.0


def test_layout_is_read_from_the_input_shape_without_manifest(artifacts, tmp_path):
    _, paths = artifacts
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(paths["nchw"].read_bytes())  # no bare.onnx.json beside it
    runner = runner_for(str(bare), threads=1)
    assert runner.manifest == {} and runner.layout == "NCHW" and runner.input_shape == (1, *TILE, 3)


def test_dynamic_artifact_runs_any_size(artifacts):
    loaded, paths = artifacts
    runner = runner_for(str(paths["dynamic"]), threads=2)
    assert runner.input_shape == (1, None, None, 3)
    xs, _ = real_tiles("noise:sigma=25", (40, 56), split="held")
    assert psnr(runner.run(xs), keras_out(loaded, xs)) >= 60.0


def test_wrong_tile_size_is_a_clear_error(artifacts):
    _, paths = artifacts
    runner = runner_for(str(paths["nchw"]), threads=1)
    with pytest.raises(RunnerError, match=r"takes NHWC input of 32x32x3, got 48x32x3"):
        runner.run(np.zeros((1, 48, 32, 3), np.float32))


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(RunnerError, match="no such .onnx file"):
        runner_for(str(tmp_path / "nope.onnx"))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(RunnerError, match="cannot load this file"):
        runner_for(str(junk))


def test_manifest_layout_wins(artifacts, tmp_path):
    """The manifest's layout is authoritative (an NHWC graph could have 3 pixels of width)."""
    _, paths = artifacts
    copy = tmp_path / "m.onnx"
    copy.write_bytes(paths["nhwc"].read_bytes())
    (tmp_path / "m.onnx.json").write_text(json.dumps({"layout": "NHWC"}))
    assert runner_for(str(copy)).layout == "NHWC"
