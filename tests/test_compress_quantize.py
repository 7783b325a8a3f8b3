"""QAT through run_plan on tiny models with every restoration layer tfmot refuses by default;
the full-int8 TFLite export of the QAT model must stay within 0.1 dB of the float model."""

from __future__ import annotations

import numpy as np
import pytest
from test_compress_helpers import dncnn, espcn, images, keras, unet

from edgekit.compress.finetune import fit_pairs
from edgekit.compress.plan import run_plan
from edgekit.compress.quantize import calibrate_ranges, freeze_ranges, quantize_model
from edgekit.config import Format, Precision, plan_from_dict
from edgekit.data.degradations import parse
from edgekit.data.patches import degraded_tiles, make_pairs
from edgekit.errors import EdgekitError
from edgekit.metrics import mean_psnr
from edgekit.models.info import LoadedModel, ModelInfo


def _subtract_model():
    """x - f(x) with a Subtract, BatchNorm and a PReLU: three layers tfmot's registry refuses."""
    k = keras()
    k.utils.set_random_seed(0)
    L = k.layers
    inp = k.Input((None, None, 3), name="image")
    x = L.Conv2D(16, 3, padding="same", name="c1")(inp)
    x = L.BatchNormalization(name="bn")(x)
    x = L.PReLU(shared_axes=[1, 2], name="act")(x)
    x = L.Conv2D(3, 3, padding="same", name="c2")(x)
    out = L.ReLU(max_value=1.0, name="clip01")(L.Subtract(name="residual")([inp, x]))
    return k.Model(inp, out, name="subnet")


def _int8_psnr(loaded, calib, vx, vy, path) -> float:
    from edgekit.export.base import ExportRequest, get_exporter
    from edgekit.runtimes.litert import LiteRTRunner

    req = ExportRequest(
        Format.tflite, Precision.int8, tuple(vx.shape[1:3]), calib_inputs=calib, val_inputs=vx
    )
    art = get_exporter("tflite").export(loaded, req, path)
    runner = LiteRTRunner(str(art.path), threads=1)
    out = np.concatenate([runner.run(v[None]) for v in vx])
    return mean_psnr(out, vy)


@pytest.mark.slow
@pytest.mark.parametrize(
    "builder,spec",
    [
        (dncnn, "noise:sigma=25"),
        (espcn, "downscale:factor=2"),
        (unet, "noise:sigma=25"),
        (_subtract_model, "noise:sigma=25"),
    ],
    ids=["dncnn-add", "espcn-prelu-d2s", "unet-transpose-concat", "subtract-bn-prelu"],
)
def test_qat_int8_within_0p1_db(builder, spec, tmp_path):
    ims = images(6)
    deg = parse(spec)
    model = builder()
    xs, ys = make_pairs(ims[:4], deg, 32, 256, seed=0)
    fit_pairs(model, xs, ys, steps=120, lr=2e-3, batch=16, progress=False)
    loaded = LoadedModel(model, ModelInfo("tiny", "restore", spec, scale=deg.scale))
    plan = plan_from_dict([{"kind": "qat", "steps": 40, "lr": 1e-4, "patch": 32}])
    out, rows = run_plan(loaded, plan, calib_images=ims, progress=False)
    assert [s["kind"] for s in out.info.extra["plan"]["steps"]] == ["qat"]
    assert rows[0]["psnr_db_after"] > rows[0]["psnr_db_before"] - 0.1  # fake-quant Keras model
    # BatchNorm runs on its moving statistics during QAT (in training mode it cost 0.22 dB here)
    assert rows[0]["batchnorm_frozen"] == (["bn"] if builder is _subtract_model else [])
    vx, vy = degraded_tiles(ims[4:], deg, (32, 32), per_image=2, seed=3)
    calib, _ = degraded_tiles(ims[:4], deg, (32, 32), per_image=2, seed=4)
    float_psnr = mean_psnr(np.asarray(model(vx)), vy)
    qat_psnr = _int8_psnr(out, calib, vx, vy, tmp_path / "qat.tflite")
    assert qat_psnr >= float_psnr - 0.1


def test_configs_cover_restoration_layers():
    m = _subtract_model()
    q = quantize_model(m)
    names = {layer.name for layer in q.layers}
    assert {"quant_residual", "quant_act", "quant_bn"} <= names
    e = espcn()
    qe = quantize_model(e)
    assert "quant_pixel_shuffle" in {layer.name for layer in qe.layers}
    x = np.random.default_rng(0).random((1, 8, 8, 3)).astype(np.float32)
    assert qe(x).shape == (1, 16, 16, 3)


def test_unquantizable_layer_named():
    k = keras()
    inp = k.Input((None, None, 3))
    x = k.layers.Conv2D(4, 3, padding="same")(inp)
    x = k.layers.Lambda(lambda t: t * 2.0, name="double")(x)
    m = k.Model(inp, x)
    with pytest.raises(EdgekitError, match=r"qat: layer 'double' \(Lambda\) cannot be quantized"):
        quantize_model(m)


def test_calibrated_fake_quant_matches_float_before_training():
    """Right after quantize + calibration (no training) the fake-quant model must already be close
    to the float one: tfmot's own initial ranges ([-6, 6] activations, [0, 0] input) are not."""
    ims = images(4)
    deg = parse("noise:sigma=25")
    model = dncnn()
    xs, _ = make_pairs(ims, deg, 32, 16, seed=0)
    q = quantize_model(model)
    raw = mean_psnr(np.asarray(q(xs, training=False)), np.asarray(model(xs)))
    assert len(calibrate_ranges(q, model, xs)) >= 6
    tuned = mean_psnr(np.asarray(q(xs, training=False)), np.asarray(model(xs)))
    assert raw < 10.0 and tuned > 25.0  # measured: 5.2 dB -> 29.5 dB (untrained tiny net)


@pytest.mark.parametrize("frozen", [True, False], ids=["frozen", "ema"])
def test_frozen_ranges_stay_at_calibration_while_weights_train(frozen):
    """With freeze_ranges the activation ranges end where calibration put them while the weights
    (and their per-channel kernel ranges) move; without it tfmot's moving averages drift."""
    ims = images(4)
    deg = parse("noise:sigma=25")
    model = dncnn()
    xs, ys = make_pairs(ims, deg, 32, 64, seed=0)
    q = quantize_model(model)
    ranges = calibrate_ranges(q, model, xs)
    start = [float(v.numpy()) for v in ranges]
    kernels = [w for w in q.weights if "kernel:" in w.name]
    k0 = [w.numpy().copy() for w in kernels]
    callbacks = (freeze_ranges(ranges),) if frozen else ()
    fit_pairs(
        q,
        xs,
        ys,
        steps=20,
        lr=1e-3,
        batch=8,
        progress=False,
        restore_best=False,
        callbacks=callbacks,
    )
    end = [float(v.numpy()) for v in ranges]
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(k0, kernels, strict=True))
    moved = max(abs(a - b) for a, b in zip(start, end, strict=True))
    if frozen:
        assert moved == 0.0
    else:
        assert moved > 1e-4


@pytest.mark.slow
def test_qat_targets_the_float_model_by_default():
    """QAT trains towards the float model's outputs and keeps the checkpoint closest to them:
    the kept fake-quant model is at least as close to the float model as the calibrated start,
    and close in absolute terms."""
    ims = images(6)
    deg = parse("noise:sigma=25")
    model = dncnn()
    xs, ys = make_pairs(ims[:4], deg, 32, 256, seed=0)
    fit_pairs(model, xs, ys, steps=120, lr=2e-3, batch=16, progress=False)
    loaded = LoadedModel(model, ModelInfo("tiny", "denoise", "noise:sigma=25"))
    plan = plan_from_dict([{"kind": "qat", "steps": 20, "lr": 1e-4, "patch": 32}])
    _, rows = run_plan(loaded, plan, calib_images=ims, progress=False)
    row = rows[0]
    assert row["target"] == "float" and row["ranges"] == "ema"
    start = row["train"]["evals"][0][1]
    assert row["train"]["best_psnr_db"] >= start
    assert row["psnr_vs_float_db_after"] == pytest.approx(row["train"]["best_psnr_db"], abs=0.05)
    assert row["psnr_vs_float_db_after"] > 35.0
