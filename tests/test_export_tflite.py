"""TFLite export: every precision on a small trained residual denoiser, validated against Keras."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

from edgekit.config import Format, Precision, parse_precision
from edgekit.errors import EdgekitError
from edgekit.export.base import ExportRequest, get_exporter, manifest_path
from edgekit.export.manifest import sha256_file
from edgekit.export.tflite import layers_in_message, ops_in_message
from edgekit.export.validate import PSNR_FLOORS_DB, ValidationFailed
from edgekit.metrics import psnr
from edgekit.models.info import LoadedModel, ModelInfo

TILE = (32, 32)


def _smooth_images(rng, n, size):
    """Smooth random colour fields (bilinear-upsampled 6x6 noise): photo-like low frequencies."""
    from PIL import Image

    out = np.empty((n, size, size, 3), np.float32)
    for i in range(n):
        small = (rng.random((6, 6, 3)) * 255).astype(np.uint8)
        out[i] = (
            np.asarray(Image.fromarray(small).resize((size, size), Image.BILINEAR), np.float32)
            / 255.0
        )
    return out


def _noisy(rng, clean, sigma=25.0):
    return np.clip(clean + rng.normal(0, sigma / 255.0, clean.shape), 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def denoiser():
    """x - convstack(x), clipped to [0, 1] by ReLU(max_value=1), fitted for a few hundred steps."""
    from edgekit.tfcompat import import_tf

    tf, keras = import_tf()
    tf.random.set_seed(0)
    rng = np.random.default_rng(0)
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(inp)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    noise = keras.layers.Conv2D(3, 3, padding="same")(x)
    out = keras.layers.ReLU(max_value=1.0)(keras.layers.Subtract()([inp, noise]))
    model = keras.Model(inp, out, name="tiny_dncnn")
    clean = _smooth_images(rng, 128, 24)
    noisy = _noisy(rng, clean)
    model.compile(keras.optimizers.Adam(2e-3), "mse")
    model.fit(noisy, clean, batch_size=16, epochs=25, verbose=0, shuffle=True)
    vclean = _smooth_images(rng, 12, TILE[0])
    calib = _noisy(rng, vclean[:8])
    val = _noisy(rng, vclean[8:])
    info = ModelInfo(name="tiny_dncnn", task="denoise", degradation="noise:sigma=25", source="test")
    return LoadedModel(model, info), calib, val, vclean[8:]


def _request(precision, calib, val, shape=TILE, **kw):
    return ExportRequest(
        format=Format.tflite,
        precision=Precision(precision),
        shape=shape,
        calib_inputs=calib,
        val_inputs=val,
        **kw,
    )


@pytest.fixture(scope="module")
def exported(denoiser, tmp_path_factory):
    loaded, calib, val, _ = denoiser
    out = tmp_path_factory.mktemp("tflite")
    exporter = get_exporter("tflite")
    arts = {}
    for p in ("fp32", "fp16", "dynamic", "int8", "int16x8"):
        arts[p] = exporter.export(loaded, _request(p, calib, val), out / f"m_{p}.tflite")
    arts["int8io"] = exporter.export(
        loaded, _request("int8", calib, val, io="int8"), out / "m_int8io.tflite"
    )
    return arts


def _keras(loaded, x):
    return np.asarray(loaded.model(x, training=False), np.float32)


def test_denoiser_actually_denoises(denoiser):
    loaded, _, val, clean = denoiser
    assert psnr(_keras(loaded, val), clean) > psnr(val, clean) + 3.0


@pytest.mark.slow
def test_quality_vs_keras_per_precision(denoiser, exported):
    from edgekit.runtimes.litert import LiteRTRunner

    loaded, _, val, _ = denoiser
    ref = _keras(loaded, val)
    got = {p: psnr(LiteRTRunner(str(a.path)).run(val), ref) for p, a in exported.items()}
    assert got["fp32"] >= 60.0
    assert got["fp16"] >= 45.0
    assert got["dynamic"] >= 35.0
    assert got["int16x8"] >= 38.0
    assert got["int8"] >= 30.0
    assert got["int8io"] >= 30.0
    # int16 activations must beat int8 ones on the same model
    assert got["int16x8"] > got["int8"]
    # the manifest records what validation measured, with the documented floor
    for p in ("fp32", "fp16", "dynamic", "int8", "int16x8"):
        v = exported[p].manifest["validation"]
        assert v["floor_db"] == PSNR_FLOORS_DB[p]
        assert v["n_images"] == len(val)
        assert v["psnr_vs_keras_db"] == pytest.approx(min(got[p], 200.0), abs=0.05)


def test_sizes(exported):
    size = {p: a.path.stat().st_size for p, a in exported.items()}
    assert 0.4 <= size["fp16"] / size["fp32"] <= 0.6
    # dynamic-range quantizes only weight tensors of >= 1024 elements: the 3->32 and 32->3 convs
    # of this tiny model stay float, so it lands a little above a quarter.
    assert size["dynamic"] / size["fp32"] <= 0.4
    assert size["int8"] / size["fp32"] <= 0.35


def test_int8_io_is_integer_and_close_to_float_io(denoiser, exported):
    from edgekit.runtimes.litert import LiteRTRunner

    _, _, val, _ = denoiser
    io8 = LiteRTRunner(str(exported["int8io"].path))
    f_io = LiteRTRunner(str(exported["int8"].path))
    assert io8.input_dtype == "int8" and io8.output_dtype == "int8"
    assert f_io.input_dtype == "float32"
    y = io8.run(val)
    assert y.dtype == np.float32 and y.shape == val.shape
    # Same integer graph; only the I/O (de)quantization moves into the runner.
    assert psnr(y, f_io.run(val)) >= 40.0
    assert exported["int8io"].manifest["io"] == "int8"


def test_manifest_contents(exported):
    art = exported["int8"]
    on_disk = json.loads(manifest_path(art.path).read_text())
    assert on_disk == art.manifest
    m = art.manifest
    assert m["format"] == "tflite" and m["precision"] == "int8" and m["io"] == "float"
    assert m["input_shape"] == [1, 32, 32, 3] and m["output_shape"] == [1, 32, 32, 3]
    assert m["sha256"] == sha256_file(art.path)
    assert m["size_bytes"] == art.path.stat().st_size
    assert m["model"]["name"] == "tiny_dncnn" and m["model"]["degradation"] == "noise:sigma=25"
    assert m["versions"]["tensorflow"] and m["versions"]["litert"] and m["versions"]["edgekit"]
    assert m["converter"]["supported_ops"] == ["TFLITE_BUILTINS_INT8"]
    assert m["converter"]["calibration_samples"] == 8
    # the model clips itself (ReLU(max_value=1)): no second clip is added
    assert m["converter"]["clip_output"] is False
    assert m["ops"]["histogram"]["CONV_2D"] == 4
    # plain convs, ReLU and a residual subtract stay on the integer path
    assert m["int8_report"]["on_integer_path"] is True
    assert not [
        e for e in m["int8_report"]["ops"] if e["kind"] in ("float", "hybrid", "float_island")
    ]
    assert m["created"].endswith("Z")
    assert exported["fp32"].manifest["int8_report"] is None
    assert exported["fp32"].manifest["ops"]["xnnpack_delegated"] is True
    assert exported["fp32"].manifest["ops"]["not_delegated"] == []  # float graph: all on XNNPACK
    # durations are recorded (rounded to 10 ms, so a tiny model's validation can read 0.0)
    assert m["converter"]["seconds"] >= 0 and m["validation"]["seconds"] >= 0


def test_int16x8_reports_that_xnnpack_cannot_run_it(exported):
    m = exported["int16x8"].manifest
    assert m["converter"]["supported_ops"] == [
        "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8"
    ]
    convs = [e for e in m["ops"]["not_delegated"] if e["op"] == "CONV_2D"]
    assert len(convs) == 4
    assert all("no int16-activation kernels" in e["reason"] for e in convs)
    assert m["int8_report"]["on_integer_path"] is True


def test_dynamic_shape_fp32_runs_at_two_sizes(denoiser, tmp_path):
    from edgekit.runtimes.litert import LiteRTRunner

    loaded, _, val, _ = denoiser
    art = get_exporter("tflite").export(
        loaded, _request("fp32", None, val, shape=None), tmp_path / "dyn.tflite"
    )
    assert art.manifest["dynamic_shape"] is True
    runner = LiteRTRunner(str(art.path))
    assert runner.input_shape == (1, None, None, 3)
    for h, w in ((24, 24), (40, 32)):
        x = np.ascontiguousarray(np.resize(val, (2, h, w, 3)))
        y = runner.run(x)
        assert y.shape == (2, h, w, 3)
        assert psnr(y, _keras(loaded, x)) >= 60.0


def test_int8_without_calibration_is_refused(denoiser, tmp_path):
    loaded, _, val, _ = denoiser
    with pytest.raises(EdgekitError, match=r"int8 needs calibration images.*--calib"):
        get_exporter("tflite").export(loaded, _request("int8", None, val), tmp_path / "a.tflite")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("precision", ["int8", "int16x8"])
def test_integer_precision_with_dynamic_shape_is_refused(denoiser, tmp_path, precision):
    loaded, calib, val, _ = denoiser
    with pytest.raises(
        EdgekitError, match=rf"{precision} TFLite needs a fixed input tile.*--shape HxW"
    ):
        get_exporter("tflite").export(
            loaded, _request(precision, calib, val, shape=None), tmp_path / "a.tflite"
        )
    assert list(tmp_path.iterdir()) == []


def test_unknown_precision(denoiser, tmp_path):
    loaded, calib, val, _ = denoiser
    with pytest.raises(EdgekitError, match="unknown precision 'int4'"):
        parse_precision("int4")
    req = _request("fp32", calib, val)
    req.precision = types.SimpleNamespace(value="int4")
    with pytest.raises(EdgekitError, match="format 'tflite' cannot export precision 'int4'"):
        get_exporter("tflite").export(loaded, req, tmp_path / "a.tflite")


def test_calibration_tiles_must_match_the_tile(denoiser, tmp_path):
    loaded, calib, val, _ = denoiser
    with pytest.raises(
        EdgekitError,
        match=r"calibration tiles have shape \(8, 16, 16, 3\); expected \(N, 32, 32, 3\)",
    ):
        get_exporter("tflite").export(
            loaded, _request("int8", calib[:, :16, :16], val), tmp_path / "a.tflite"
        )


def test_int8_io_needs_int8_precision(denoiser, tmp_path):
    loaded, calib, val, _ = denoiser
    with pytest.raises(EdgekitError, match="int8 input/output needs precision int8, got fp16"):
        get_exporter("tflite").export(
            loaded, _request("fp16", calib, val, io="int8"), tmp_path / "a.tflite"
        )


def test_failed_validation_leaves_nothing_behind(denoiser, tmp_path):
    loaded, calib, val, _ = denoiser
    out = tmp_path / "sub" / "m_int8.tflite"
    req = _request("int8", calib, val, options={"min_psnr_db": 200})
    with pytest.raises(EdgekitError) as err:
        get_exporter("tflite").export(loaded, req, out)
    msg = str(err.value)
    assert isinstance(err.value, ValidationFailed) and err.value.kind == "below-floor"
    assert err.value.floor_db == 200 and err.value.psnr_db < 200 and err.value.precision == "int8"
    assert msg.startswith(f"{out}: int8 output is broken: ")
    assert "dB vs the Keras model, floor 200 dB; try int16x8" in msg
    assert "\n" not in msg
    assert not out.exists() and not manifest_path(out).exists()
    assert list(out.parent.iterdir()) == []  # no temporary file either


def test_missing_validation_images_is_refused(denoiser, tmp_path):
    loaded, _, _, _ = denoiser
    with pytest.raises(EdgekitError, match="no validation images"):
        get_exporter("tflite").export(loaded, _request("fp32", None, None), tmp_path / "a.tflite")


def test_unsupported_op_is_named_with_its_layer(tmp_path):
    from edgekit.tfcompat import import_tf

    tf, keras = import_tf()
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inp)
    x = keras.layers.Lambda(lambda t: tf.math.bessel_i0e(t), name="weird_bessel")(x)
    out = keras.layers.Conv2D(3, 3, padding="same")(x)
    loaded = LoadedModel(
        keras.Model(inp, out), ModelInfo(name="bad", task="denoise", degradation=None)
    )
    x = np.random.default_rng(0).random((2, 16, 16, 3), dtype=np.float32)
    with pytest.raises(EdgekitError) as err:
        get_exporter("tflite").export(
            loaded, _request("fp32", x, x, shape=(16, 16)), tmp_path / "bad.tflite"
        )
    assert "cannot convert op(s) BesselI0e (layer 'weird_bessel') at fp32" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_prelu_int8_is_reported_off_the_integer_path(tmp_path):
    from edgekit.tfcompat import import_tf

    tf, keras = import_tf()
    tf.random.set_seed(1)
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inp)
    x = keras.layers.PReLU(shared_axes=[1, 2], alpha_initializer=keras.initializers.Constant(0.2))(
        x
    )
    out = keras.layers.Conv2D(3, 3, padding="same")(x)
    loaded = LoadedModel(
        keras.Model(inp, out), ModelInfo(name="prelu", task="denoise", degradation=None)
    )
    x = _smooth_images(np.random.default_rng(1), 6, 16)
    art = get_exporter("tflite").export(
        loaded,
        _request("int8", x, x[:2], shape=(16, 16), options={"min_psnr_db": 20, "rewrite": False}),
        tmp_path / "p.tflite",
    )
    # this model does not clip its output: the exporter adds the clip for the int8 graph
    assert art.manifest["converter"]["clip_output"] is True
    from edgekit.runtimes.litert import LiteRTRunner

    y = LiteRTRunner(str(art.path)).run(x)
    assert y.min() >= 0.0 and y.max() <= 1.0
    report = art.manifest["int8_report"]
    # PRELU stays integer but XNNPACK does not take it (nor the added clip's MINIMUM and RELU)
    assert report["on_integer_path"] is True
    assert [(e["op"], e["kind"]) for e in report["ops"]] == [
        ("PRELU", "not_delegated"),
        ("MINIMUM", "not_delegated"),
        ("RELU", "not_delegated"),
    ]


def test_op_names_are_parsed_from_converter_messages():
    msg = (
        'loc(callsite("model/my_layer/Erfinv@__inference_serve_12"("x.py":1:1))): '
        "error: 'tf.Erfinv' op is neither a custom op nor a flex op\n"
        "Custom ops: Erfinv\nDetails:\n\ttf.Erfinv(tensor<1x4xf32>) -> (tensor<1x4xf32>)\n"
        "Quantization not yet supported for op: 'DEPTH_TO_SPACE'"
    )
    assert ops_in_message(msg) == ["Erfinv", "DEPTH_TO_SPACE"]
    assert layers_in_message(msg) == {"Erfinv": "my_layer"}


def test_calibration_subset_option(denoiser, tmp_path):
    loaded, calib, val, _ = denoiser
    exporter = get_exporter("tflite")
    art = exporter.export(
        loaded, _request("int8", calib, val, options={"calib_samples": 3}), tmp_path / "sub.tflite"
    )
    from edgekit.runtimes.litert import LiteRTRunner

    conv = art.manifest["converter"]
    assert conv["calibration_samples"] == 3 and conv["calibration_samples_given"] == 8
    # the recorded validation number is the artifact's real PSNR vs Keras (recomputed here)
    got = psnr(LiteRTRunner(str(art.path)).run(val), _keras(loaded, val))
    assert art.manifest["validation"]["psnr_vs_keras_db"] == pytest.approx(got, abs=0.01)
    assert 30.0 < got < 60.0
    with pytest.raises(
        EdgekitError, match="option 'calib_samples': expected a positive integer, got 0"
    ):
        exporter.export(
            loaded,
            _request("int8", calib, val, options={"calib_samples": 0}),
            tmp_path / "b.tflite",
        )
    assert not (tmp_path / "b.tflite").exists()


def test_zoo_espcn_prelu_is_reported_off_xnnpack(tmp_path):
    """The zoo's PReLU super-resolution net keeps PRELU ops; XNNPACK does not take them in int8."""
    from edgekit.models import zoo

    model = zoo.build("espcn_x2")
    info = ModelInfo(
        name="espcn_x2", task="super-resolution", degradation="downscale:factor=2", scale=2
    )
    x = _smooth_images(np.random.default_rng(2), 6, 16)
    art = get_exporter("tflite").export(
        LoadedModel(model, info),
        _request(
            "int8", x, x[:2], shape=(16, 16), options={"min_psnr_db": 0, "rewrite": False}
        ),  # untrained weights; the model as it is (rewrites: tests/test_export_rewrites.py)
        tmp_path / "sr.tflite",
    )
    m = art.manifest
    assert m["output_shape"] == [1, 32, 32, 3]
    assert m["ops"]["histogram"].get("PRELU", 0) >= 1
    flagged = [e["kind"] for e in m["int8_report"]["ops"] if e["op"] == "PRELU"]
    assert flagged == ["not_delegated", "not_delegated"]  # both PReLUs, each named


def _half_zeroed(loaded):
    """A copy of the denoiser with the smaller half of every kernel set to zero."""
    from edgekit.tfcompat import import_tf

    _, keras = import_tf()
    model = keras.models.clone_model(loaded.model)
    model.set_weights(loaded.model.get_weights())
    for layer in model.layers:
        if type(layer).__name__ == "Conv2D":
            k, b = layer.get_weights()
            k[np.abs(k) < np.median(np.abs(k))] = 0.0
            layer.set_weights([k, b])
    return LoadedModel(model, loaded.info)


def test_pruned_kernels_are_sparse_encoded(denoiser, exported, tmp_path):
    """A 50 %-zero model exports with TFLite's sparse weights (DENSIFY ops) automatically: a
    smaller file that still matches Keras at the fp32 floor; "off" keeps it dense."""
    from edgekit.runtimes.litert import LiteRTRunner

    loaded, calib, val, _ = denoiser
    pruned = _half_zeroed(loaded)
    exporter = get_exporter("tflite")
    sparse = exporter.export(pruned, _request("fp32", calib, val), tmp_path / "sparse.tflite")
    dense = exporter.export(
        pruned,
        _request("fp32", calib, val, options={"sparse_weights": "off"}),
        tmp_path / "dense.tflite",
    )
    conv = sparse.manifest["converter"]
    assert conv["sparse_weights"] is True and conv["kernel_zero_fraction"] >= 0.49
    assert conv["optimizations"] == ["EXPERIMENTAL_SPARSITY"]
    assert dense.manifest["converter"]["sparse_weights"] is False
    # the unpruned model is left dense by "auto"
    unpruned = exported["fp32"].manifest["converter"]
    assert unpruned["sparse_weights"] is False
    assert dense.path.stat().st_size / sparse.path.stat().st_size > 1.3
    a = LiteRTRunner(str(sparse.path), threads=1).run(val[:1])
    b = LiteRTRunner(str(dense.path), threads=1).run(val[:1])
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert psnr(a, _keras(pruned, val[:1])) >= 60.0  # the sparse file computes the pruned model


def test_pruned_model_sparse_encoding_per_precision(denoiser, tmp_path):
    """fp16 kernels are sparse-encoded too (and pass their floor); integer kernels stay dense,
    because XNNPACK cannot prepare a CONV_2D fed by a DENSIFY of int8 weights; forcing it is
    refused in one line that says what to do."""
    loaded, calib, val, _ = denoiser
    pruned = _half_zeroed(loaded)
    exporter = get_exporter("tflite")
    fp16 = exporter.export(pruned, _request("fp16", calib, val), tmp_path / "h.tflite")
    assert fp16.manifest["converter"]["optimizations"] == ["DEFAULT", "EXPERIMENTAL_SPARSITY"]
    from edgekit.runtimes.litert import LiteRTRunner

    got = psnr(LiteRTRunner(str(fp16.path)).run(val), _keras(pruned, val))
    assert 45.0 <= got < 100.0  # fp16 weights: close to the pruned model, not bit-exact
    assert fp16.manifest["validation"]["psnr_vs_keras_db"] == pytest.approx(got, abs=0.01)
    int8 = exporter.export(pruned, _request("int8", calib, val), tmp_path / "i.tflite")
    assert int8.manifest["converter"]["sparse_weights"] is False
    assert int8.manifest["converter"]["kernel_zero_fraction"] >= 0.49
    req = _request("dynamic", calib, val, options={"sparse_weights": "on"})
    with pytest.raises(EdgekitError, match="on works for fp32, fp16 only, not dynamic") as err:
        exporter.export(pruned, req, tmp_path / "d.tflite")
    assert "\n" not in str(err.value) and not (tmp_path / "d.tflite").exists()


def test_bad_sparse_weights_option(denoiser, tmp_path):
    loaded, calib, val, _ = denoiser
    req = _request("fp32", calib, val, options={"sparse_weights": "maybe"})
    with pytest.raises(EdgekitError, match="sparse_weights: expected auto, on or off, got 'maybe'"):
        get_exporter("tflite").export(loaded, req, tmp_path / "a.tflite")
    assert not (tmp_path / "a.tflite").exists()
