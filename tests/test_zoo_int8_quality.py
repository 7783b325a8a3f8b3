"""Post-training int8 quality of every trained zoo model, held to the recorded drops.

Each case exports the shipped model to full-int8 (TFLite PTQ, float I/O; ONNX Q/DQ with the
symmetric activations TensorRT needs) through edgekit's exporter, calibrated on the training
photos, then scores it with the bench harness on the held-out photos (centre-cropped to
CROP px, seed 0) against the float Keras model on the same degraded photos. The drop (float
PSNR minus int8 PSNR, both vs clean) must stay within the recorded drop plus MARGIN_DB.

Recorded drops: TFLite from benchmarks/RESULTS.md, "Zoo x TFLite precisions" (the README's
per-model int8 figures; 512 px crops, 256 px tiles); ONNX from RESULTS.md, "Zoo x ONNX int8
(symmetric)", measured with this test's settings. A negative recorded drop (int8 scored better
than float on those tiles) counts as 0: that is noise of one crop, not a property to hold.
The exporter's own floor (30 dB vs Keras) lets a 1-3 dB loss through; these bounds do not.
"""

from __future__ import annotations

import functools

import pytest

from edgekit.models import zoo

MARGIN_DB = 0.15
CROP = 192

# dB, float Keras PSNR minus int8 PSNR vs clean, held-out photos
RECORDED_DROP_DB = {
    "tflite": {
        "dncnn": 0.13,
        "espcn_x2": 0.06,
        "espcn_x3": 0.04,
        "unet_deblur": 0.17,
        "unet_deshadow": -0.12,
        "unet_demoire": -0.03,
    },
    "onnx": {
        "dncnn": 0.33,
        "espcn_x2": 0.12,
        "espcn_x3": 0.06,
        "unet_deblur": 0.67,
        "unet_deshadow": 0.17,
        "unet_demoire": 0.01,
    },
}
SUFFIX = {"tflite": ".tflite", "onnx": ".onnx"}


@functools.cache
def _loaded(name):
    """One loaded model per name, so both formats share the harness's float-reference cache."""
    from edgekit.models.loading import load_model

    return load_model(f"zoo:{name}")


_REFERENCE_CACHE: dict = {}  # the float model's outputs, computed once per model for both formats


def _tile(loaded) -> int:
    """64 px tiles (32 px low-resolution input for SR), or the model's input multiple."""
    tile = 64 if loaded.info.scale == 1 else 32
    return max(tile, int(loaded.info.input_multiple or 1))


def test_the_zoo_parametrization_is_not_empty():
    """The cases below are generated from zoo.names(): an empty zoo would make them vanish."""
    assert len(zoo.names()) == 6
    assert set(zoo.names()) == set(RECORDED_DROP_DB["tflite"]) == set(RECORDED_DROP_DB["onnx"])


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
@pytest.mark.parametrize("name", zoo.names())
def test_int8_drop_within_the_recorded_drop(name, fmt, tmp_path):
    from edgekit.bench.harness import bench
    from edgekit.config import Precision, load_target
    from edgekit.pipeline import export_loaded

    if not zoo.get(name).trained:
        pytest.fail(f"zoo model {name} has no shipped weights")
    loaded = _loaded(name)
    tile = _tile(loaded)
    path = tmp_path / f"{name}-int8{SUFFIX[fmt]}"
    export_loaded(
        loaded, fmt, Precision.int8, target=None, shape=(tile, tile), io="float", out=path
    )
    target = load_target("host-cpu").model_copy(update={"warmup": 0, "repeats": 1})
    report = bench(
        [path], target=target, reference=loaded, out_dir=tmp_path, progress=False,
        memory=False, max_side=CROP, reference_cache=_REFERENCE_CACHE,
    )  # fmt: skip
    assert report["eval_set"]["count"] == 4  # the held-out photos
    float_db = report["reference"]["psnr_db"]
    int8_db = report["artifacts"][0]["psnr_db"]
    assert float_db > report["degraded_input"]["psnr_db"]  # the float model restores
    bound = max(RECORDED_DROP_DB[fmt][name], 0.0) + MARGIN_DB
    drop = float_db - int8_db
    assert drop <= bound, (
        f"{name} {fmt} int8 loses {drop:.3f} dB (float {float_db:.2f}, int8 {int8_db:.2f} dB); "
        f"recorded {RECORDED_DROP_DB[fmt][name]:+.2f} dB, bound {bound:.2f} dB"
    )
