"""Parity check: Keras vs ONNX (fp32, int8), TFLite and TensorRT on the same real tiles."""

from __future__ import annotations

import json

import pytest
from test_export_onnx import TILE, export_onnx, real_tiles, trained_denoiser

from edgekit.bench.compare import compare, markdown, pair_threshold, write_compare
from edgekit.errors import EdgekitError
from edgekit.models.info import LoadedModel
from edgekit.terminal import print_compare


def _broken_copy(loaded: LoadedModel) -> LoadedModel:
    """The same architecture with the last conv's weights off by 30%: a plausible bad export."""
    from edgekit.tfcompat import import_tf

    _, keras = import_tf()
    model = keras.models.clone_model(loaded.model)
    model.set_weights(loaded.model.get_weights())
    last = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)][-1]
    w, b = last.get_weights()
    last.set_weights([w * 1.3, b])
    return LoadedModel(model, loaded.info)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cmp")
    loaded = trained_denoiser()
    calib, _ = real_tiles("noise:sigma=25", TILE, per_image=2)
    arts = [
        export_onnx(loaded, "fp32", folder / "d-fp32.onnx", calib=calib).path,
        export_onnx(loaded, "int8", folder / "d-int8.onnx", calib=calib, layout="NCHW").path,
        export_onnx(_broken_copy(loaded), "fp32", folder / "broken.onnx", calib=calib).path,
    ]
    return compare(loaded, arts, per_image=2), folder  # default thresholds: 40 dB, int8 30 dB


def test_every_pair_is_scored_and_good_artifacts_agree(result):
    res, _ = result
    names = [o["name"] for o in res["outputs"]]
    assert names == ["keras", "d-fp32.onnx", "d-int8.onnx", "broken.onnx"]
    assert res["tile"] == list(TILE) and res["tiles"] == 2 * len(res["images"])
    assert len(res["pairs"]) == 6  # 4 outputs, every pair once
    pairs = {(p["a"], p["b"]): p for p in res["pairs"]}
    assert pairs[("keras", "d-fp32.onnx")]["psnr_db"] >= 60.0
    int8 = pairs[("keras", "d-int8.onnx")]
    assert (
        int8["threshold_db"] == 30.0 and int8["ok"] and int8["psnr_db"] < 60.0
    )  # int8 is not exact


def test_broken_artifact_is_flagged_against_everything(result):
    res, _ = result
    flagged = res["flagged"]
    assert "keras vs broken.onnx" in flagged and "d-fp32.onnx vs broken.onnx" in flagged
    assert all("broken.onnx" in f for f in flagged)
    bad = next(p for p in res["pairs"] if p["b"] == "broken.onnx" and p["a"] == "keras")
    assert bad["psnr_db"] < 40.0 and bad["ok"] is False


def test_psnr_vs_clean_is_reported_per_output(result):
    res, _ = result
    clean = {o["name"]: o["psnr_vs_clean_db"] for o in res["outputs"]}
    assert abs(clean["keras"] - clean["d-fp32.onnx"]) < 0.01
    assert clean["broken.onnx"] < clean["keras"]


def test_thresholds_per_precision():
    assert pair_threshold("fp32", "fp16") == 40.0  # defaults
    assert pair_threshold("fp32", "int8") == 30.0
    assert pair_threshold("dynamic", "fp16") == 35.0
    assert pair_threshold("fp32", "fp16", 45.0) == 45.0
    # a threshold the user gives holds for quantized pairs too (lower or higher) ...
    assert pair_threshold("int8", "int8", 25.0) == 25.0
    assert pair_threshold("fp32", "int8", 45.0) == 45.0
    # ... unless quantized pairs get their own
    assert pair_threshold("fp32", "int8", 45.0, 28.0) == 28.0
    assert pair_threshold("fp32", "fp16", 45.0, 28.0) == 45.0


def test_renderers(result, tmp_path):
    from rich.console import Console

    res, _ = result
    md = markdown(res)
    assert "| keras | d-fp32.onnx |" in md and "**BELOW**" in md and "broken.onnx" in md
    console = Console(record=True, width=160)
    print_compare(res, console)
    assert "BELOW" in console.export_text()
    jpath, mpath = write_compare(res, tmp_path)
    data = json.loads(jpath.read_text())
    assert data["flagged"] == res["flagged"] and mpath.read_text() == md
    assert "pixels" not in data  # the first tiles go to compare.html only
    page = (tmp_path / "compare.html").read_text(encoding="utf-8")
    n_ok = sum(o["status"] == "ok" for o in res["outputs"])
    assert page.count("<img ") == 1 + 2 + 2 * n_ok  # heatmap, clean + degraded, output + error
    assert "BELOW" in page


def test_tflite_artifact_joins_the_comparison(result, tmp_path):
    from edgekit.config import Format, Precision
    from edgekit.export.base import ExportRequest, get_exporter

    loaded = trained_denoiser()
    calib, _ = real_tiles("noise:sigma=25", TILE, per_image=2)
    request = ExportRequest(
        Format.tflite, Precision.fp32, TILE, calib_inputs=calib, val_inputs=calib
    )
    tfl = get_exporter("tflite").export(loaded, request, tmp_path / "d.tflite").path
    _, folder = result
    res = compare(loaded, [tfl, folder / "d-fp32.onnx"])
    pair = next(p for p in res["pairs"] if p["a"] == "d.tflite" and p["b"] == "d-fp32.onnx")
    assert pair["psnr_db"] >= 60.0 and res["flagged"] == []


def test_engine_is_run_or_skipped_with_the_reason(result, tmp_path):
    """Where a GPU is present the engine joins the comparison; without one (here) it is listed as
    skipped with the reason. Which case applies is decided before the run, not from its result."""
    from rtx import gpu_reason, require_tensorrt_rtx

    from edgekit.export.tensorrt import build_engine

    require_tensorrt_rtx()

    _, folder = result
    nchw = export_onnx(trained_denoiser(), "fp16", tmp_path / "e.onnx", layout="NCHW").path
    engine = tmp_path / "e.engine"
    record = build_engine(nchw, engine, module="tensorrt_rtx", precision="fp16")
    (tmp_path / "e.engine.json").write_text(json.dumps(record))
    res = compare(trained_denoiser(), [folder / "d-fp32.onnx", engine])
    out = next(o for o in res["outputs"] if o["name"] == "e.engine")
    reason = gpu_reason()
    if reason is None:
        assert out["status"] != "skipped"
        assert next(p for p in res["pairs"] if p["b"] == "e.engine")["psnr_db"] >= 40.0
    else:
        assert out["status"] == "skipped" and "GPU" in out["reason"]
        assert all("e.engine" not in (p["a"], p["b"]) for p in res["pairs"])


def test_missing_artifact_and_mixed_tiles(result, tmp_path):
    _, folder = result
    with pytest.raises(EdgekitError, match="artifact not found"):
        compare(trained_denoiser(), [tmp_path / "nope.onnx"])
    other = export_onnx(trained_denoiser(), "fp32", tmp_path / "big.onnx", shape=(48, 48)).path
    with pytest.raises(EdgekitError, match="different fixed input tiles"):
        compare(trained_denoiser(), [folder / "d-fp32.onnx", other])
