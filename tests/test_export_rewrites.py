"""Exact rewrites onto the int8 fast path (edgekit.export.rewrites) and `edgekit inspect`'s
predictions (edgekit.export.inspect), checked against the converted models' op reports."""

from __future__ import annotations

import numpy as np
import pytest
from user_unet import build_user_unet

from edgekit.config import Format, Precision
from edgekit.export import rewrites
from edgekit.export.base import ExportRequest, get_exporter
from edgekit.export.inspect import inspect_model
from edgekit.metrics import psnr
from edgekit.models.info import LoadedModel, ModelInfo

TILE = (32, 32)


def _keras():
    from edgekit.tfcompat import import_tf

    return import_tf()[1]


@pytest.fixture(scope="module")
def photos():
    """Real 64x64 crops of the calibration photos (what the exactness bar is measured on)."""
    from edgekit.data.images import load_folder
    from edgekit.paths import calibration_dir

    ims = load_folder(calibration_dir())
    return np.stack([im.pixels[100:164, 100:164] for im in ims[:6]]).astype(np.float32)


def _one_layer(layer, channels=16, before_conv=True):
    """conv(channels) -> layer -> conv(3) on a 3-channel image: the layer sees real activations."""
    keras = _keras()
    keras.utils.set_random_seed(3)
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(channels, 3, padding="same")(inp) if before_conv else inp
    x = layer(x)
    out = keras.layers.Conv2D(3, 3, padding="same")(x)
    return keras.Model(inp, out)


def _prelu(alpha):
    keras = _keras()
    return keras.layers.PReLU(
        shared_axes=[1, 2], alpha_initializer=keras.initializers.Constant(alpha)
    )


def _cases():
    keras = _keras()
    rng = np.random.default_rng(0)
    mixed = rng.uniform(0.05, 0.4, 16).astype(np.float32)
    mixed[::3] = 1.7
    return {
        "prelu_shared": (_one_layer(_prelu(0.2)), "prelu", "LeakyReLU"),
        "prelu_per_channel": (_one_layer(_prelu(rng.uniform(-0.3, 1.0, 16))), "prelu", None),
        "prelu_above_one": (_one_layer(_prelu(rng.uniform(1.1, 2.0, 16))), "prelu", None),
        "prelu_mixed": (_one_layer(_prelu(mixed)), "prelu", None),
        "clamp": (_one_layer(keras.layers.ReLU(max_value=1.0), 3, False), "clamp", None),
        "transpose_k2": (
            _one_layer(keras.layers.Conv2DTranspose(8, 2, strides=2, padding="same")),
            "transpose_conv",
            None,
        ),
        "transpose_k3": (
            _one_layer(
                keras.layers.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu")
            ),
            "transpose_conv",
            None,
        ),
        "transpose_k4": (
            _one_layer(keras.layers.Conv2DTranspose(8, 4, strides=2, padding="same")),
            "transpose_conv",
            None,
        ),
        "transpose_k5_s3": (
            _one_layer(keras.layers.Conv2DTranspose(8, 5, strides=3, padding="same")),
            "transpose_conv",
            None,
        ),
        "transpose_valid_k2": (
            _one_layer(keras.layers.Conv2DTranspose(8, 2, strides=2, padding="valid")),
            "transpose_conv",
            None,
        ),
        "avg_pool": (_one_layer(keras.layers.AveragePooling2D(4)), "avg_pool", None),
    }


CASES = list(_cases())


@pytest.fixture(scope="module")
def cases():
    return _cases()


@pytest.mark.parametrize("name", CASES)
def test_rewrite_is_exact_in_float_on_real_photos(name, cases, photos):
    model, rewrite, cls = cases[name]
    new, record = rewrites.apply(model, "litert")
    assert new is not model  # a copy: the caller's model is untouched
    applied = {a["rewrite"]: a["layers"] for a in record["applied"]}
    assert rewrite in applied, record
    if cls:
        layer = applied[rewrite][0]
        assert type(new.get_layer(layer)).__name__ == cls
    y0 = np.asarray(model(photos), np.float32)
    y1 = np.asarray(new(photos), np.float32)
    assert y1.shape == y0.shape
    span = max(float(y0.max() - y0.min()), 1e-6)
    assert psnr(y1, y0, data_range=span) >= 60.0


@pytest.mark.parametrize(
    ("name", "mode"),
    [("prelu_per_channel", "split"), ("prelu_mixed", "mixed"), ("prelu_above_one", "gt1")],
)
def test_onnxruntime_prelu_forms_are_exact(name, mode, cases, photos):
    """ONNX Runtime's PReLU: alpha*x + relu((1-alpha)*x) when every alpha <= 1 (negative ones
    too), the litert forms otherwise; its clamp is left to the ONNX int8 export (onnx_clamp)."""
    model, _, _ = cases[name]
    new, record = rewrites.apply(model, "onnxruntime")
    applied = {a["rewrite"]: a["layers"] for a in record["applied"]}
    assert list(applied) == ["prelu_split"], record
    assert new.get_layer(applied["prelu_split"][0]).mode == mode
    y0, y1 = np.asarray(model(photos), np.float32), np.asarray(new(photos), np.float32)
    assert psnr(y1, y0, data_range=max(float(y0.max() - y0.min()), 1e-6)) >= 60.0
    clamp, _, _ = cases["clamp"]
    assert rewrites.apply(clamp, "onnxruntime")[1]["applied"] == []


def test_concat_tree_is_exact(photos):
    keras = _keras()
    inp = keras.Input((None, None, 3))
    x = keras.layers.Concatenate()([inp] * 9)
    model = keras.Model(inp, keras.layers.Conv2D(3, 1)(x))
    new, record = rewrites.apply(model, "litert")
    assert record["applied"][0]["rewrite"] == "concat_tree"
    assert psnr(np.asarray(new(photos)), np.asarray(model(photos))) >= 60.0


def test_original_model_is_not_changed(cases, photos):
    model, _, _ = cases["prelu_mixed"]
    before = [w.copy() for w in model.get_weights()]
    names = [layer.name for layer in model.layers]
    rewrites.apply(model, "litert")
    assert [layer.name for layer in model.layers] == names
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


def test_rewrites_skip_what_they_cannot_do_exactly():
    keras = _keras()
    model = _one_layer(keras.layers.AveragePooling2D(2, padding="same"))
    new, record = rewrites.apply(model, "litert")
    assert new is model and not record["applied"]
    assert record["skipped"][0]["rewrite"] == "avg_pool"
    assert "same" in record["skipped"][0]["reason"]


def _export_int8(model, tmp_path, name, rewrite=True, fmt="tflite", tile=TILE, **options):
    rng = np.random.default_rng(1)
    calib = rng.uniform(0, 1, (6, *tile, 3)).astype(np.float32)
    loaded = LoadedModel(model, ModelInfo(name=name, task="restore", degradation=None))
    request = ExportRequest(
        format=Format(fmt),
        precision=Precision.int8,
        shape=tile,
        calib_inputs=calib,
        val_inputs=calib[:2],
        options={"min_psnr_db": 0, "rewrite": rewrite, **options},
    )
    suffix = ".tflite" if fmt == "tflite" else ".onnx"
    return get_exporter(fmt).export(loaded, request, tmp_path / f"{name}{suffix}")


def _off_ops(manifest) -> set[str]:
    return {e["op"] for e in manifest["int8_report"]["ops"]}


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["prelu_per_channel", "prelu_mixed", "clamp", "transpose_k4", "avg_pool"]
)
def test_int8_artifact_keeps_the_rewritten_op_on_xnnpack(name, cases, tmp_path):
    model, rewrite, _ = cases[name]
    art = _export_int8(model, tmp_path, name)
    m = art.manifest
    assert rewrite in {a["rewrite"] for a in m["converter"]["rewrites"]["applied"]}
    assert _off_ops(m) == set(), m["int8_report"]["ops"]
    assert not {"PRELU", "MINIMUM", "TRANSPOSE_CONV", "AVERAGE_POOL_2D"} & set(
        m["ops"]["histogram"]
    )
    # without the rewrite the same model leaves the fast path (why the rewrite exists)
    off = _export_int8(model, tmp_path, name + "_raw", rewrite=False)
    assert off.manifest["converter"]["rewrites"] == {"enabled": False}
    assert _off_ops(off.manifest), off.manifest["ops"]["histogram"]


def _zoo(name):
    from edgekit.models import zoo

    return zoo.build(name)


PREDICTED_MODELS = [
    "dncnn",
    "espcn_x2",
    "espcn_x3",
    "unet_deblur",
    "unet_deshadow",
    "unet_demoire",
    "user_unet",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", PREDICTED_MODELS)
@pytest.mark.parametrize("rewrite", [True, False])
def test_inspect_prediction_matches_the_converted_op_report(name, rewrite, tmp_path):
    """`edgekit inspect` before conversion names exactly the ops the op report flags after it."""
    model = build_user_unet() if name == "user_unet" else _zoo(name)
    tile = (64, 64)
    predicted = inspect_model(model, fmt="tflite", precision="int8", rewrite=rewrite, tile=tile)
    art = _export_int8(model, tmp_path, name, rewrite=rewrite, tile=tile, clip_output=False)
    assert set(predicted["off_ops"]) == _off_ops(art.manifest), (
        predicted["verdict"],
        art.manifest["int8_report"]["ops"],
    )
    if rewrite:
        assert predicted["off_ops"] == [] and "all" in predicted["verdict"]


def test_inspect_verdict_names_the_layers_and_mac_share():
    model = build_user_unet()
    raw = inspect_model(model, fmt="tflite", precision="int8", rewrite=False, tile=(64, 64))
    assert set(raw["off_ops"]) == {"PRELU", "TRANSPOSE_CONV"}
    assert raw["verdict"].startswith("10 layer(s) (")
    assert "PReLU x8" in raw["verdict"] and "Conv2DTranspose x2" in raw["verdict"]
    share = sum(r["mac_share"] for r in raw["rows"] if r["class"] == "Conv2DTranspose")
    assert 0.0 < share < 0.5 and abs(sum(r["mac_share"] for r in raw["rows"]) - 1.0) < 1e-6
    fp32 = inspect_model(model, fmt="tflite", precision="fp32", tile=(64, 64))
    assert fp32["off_ops"] == []  # float XNNPACK takes PRELU and TRANSPOSE_CONV
    ort = inspect_model(model, fmt="onnx", precision="int8", rewrite=False, tile=(64, 64))
    assert set(ort["off_ops"]) == {"Neg", "ConvTranspose"}


def _ort_graph_ops(path, tmp_path) -> dict:
    import collections

    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return collections.Counter(n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node)


@pytest.mark.slow
def test_onnx_int8_user_unet_runs_every_conv_in_int8_on_onnxruntime(tmp_path):
    """Without a target: rewrites + uint8 asymmetric activations -> ORT fuses every conv into
    QLinearConv (PReLU's Neg/Mul and ConvTranspose would stay float between Q/DQ pairs)."""
    art = _export_int8(build_user_unet(), tmp_path, "unet", fmt="onnx", layout="NCHW")
    assert art.manifest["int8_report"]["activations"] == "uint8 asymmetric per-tensor"
    ops = _ort_graph_ops(art.path, tmp_path)
    assert ops["Conv"] == 0 and ops["ConvTranspose"] == 0 and ops["Neg"] == 0, ops
    assert ops["QLinearConv"] >= 11, ops
    assert art.manifest["validation"]["psnr_vs_keras_db"] >= 35.0


def test_cli_no_rewrite_flag():
    from edgekit.cli import build_parser

    args = build_parser().parse_args(
        ["export", "zoo:dncnn", "--format", "tflite", "--precision", "int8", "--out", "x.tflite"]
    )
    assert args.no_rewrite is False
    args = build_parser().parse_args(
        ["inspect", "zoo:dncnn", "--target", "host-cpu", "--no-rewrite"]
    )
    assert args.no_rewrite is True and args.precision == "int8"


def test_bad_rewrite_option():
    from edgekit.config import exporter_options
    from edgekit.errors import EdgekitError

    with pytest.raises(EdgekitError, match="rewrite"):
        exporter_options("tflite", {"rewrite": "maybe"}, "the command line")
    assert exporter_options("onnx", {"rewrite": False}, "x").rewrite is False
    assert exporter_options("onnx", {}, "x").activations == "asymmetric"


@pytest.mark.slow
def test_user_unet_int8_clip_and_concat_stay_on_the_fast_path(tmp_path):
    """The exporter's own output clip (the U-Net has none and overshoots) is the MUL + RELU6 form,
    and the converter gives every CONCATENATION input the output's scale and zero point (no
    requantization inside the concat: XNNPACK takes it)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    art = _export_int8(build_user_unet(), tmp_path, "unet", tile=(64, 64))
    m = art.manifest
    assert m["converter"]["clip_output"] is True
    assert "MINIMUM" not in m["ops"]["histogram"] and _off_ops(m) == set()
    interp = Interpreter(
        model_path=str(art.path),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interp.allocate_tensors()
    qparams = {d["index"]: d["quantization"] for d in interp.get_tensor_details()}
    concats = [op for op in interp._get_ops_details() if op["op_name"] == "CONCATENATION"]
    assert len(concats) == 2
    for op in concats:
        out = qparams[op["outputs"][0]]
        assert all(qparams[i] == out for i in op["inputs"]), op


def test_cli_inspect_prints_the_table_and_verdict(capsys):
    from edgekit.cli import main

    assert main(["inspect", "zoo:espcn_x2", "--target", "host-cpu", "--no-rewrite"]) == 0
    out = capsys.readouterr().out
    assert "3 layer(s) (0 % of MACs) leave the xnnpack int8 fast path: PReLU x2, ReLU" in out
    assert main(["inspect", "zoo:espcn_x2", "--target", "host-cpu"]) == 0
    assert "all 10 layers stay on the xnnpack int8 fast path" in capsys.readouterr().out
    assert main(["inspect", "zoo:espcn_x2", "--target", "host-cpu", "--format", "coreml"]) == 2


# --- narrow_input and block_conv (the convs whose int8 kernels waste the most) ---------------


def _conv_model(cin, cout, k, strides=1, activation=None, padding="same"):
    keras = _keras()
    keras.utils.set_random_seed(5)
    inp = keras.Input((None, None, 3))
    x = inp if cin == 3 else keras.layers.Conv2D(cin, 3, padding="same", activation="relu")(inp)
    x = keras.layers.Conv2D(
        cout, k, strides=strides, padding=padding, activation=activation, name="target"
    )(x)
    return keras.Model(inp, keras.layers.Conv2D(3, 1, name="head")(x))


def _layers_of(record, rewrite):
    return [n for a in record["applied"] if a["rewrite"] == rewrite for n in a["layers"]]


def _exact(model, new, photos):
    y0, y1 = np.asarray(model(photos), np.float32), np.asarray(new(photos), np.float32)
    assert y1.shape == y0.shape
    return psnr(y1, y0, data_range=max(float(y0.max() - y0.min()), 1e-6))


@pytest.mark.parametrize("k,strides,padding", [(5, 1, "same"), (7, 2, "same"), (5, 1, "valid")])
def test_narrow_input_conv_is_exact(k, strides, padding, photos):
    model = _conv_model(3, 16, k, strides, "relu", padding)
    new, record = rewrites.apply(model, "litert")
    assert {"rewrite": "narrow_input", "layers": ["target"]} in record["applied"]
    assert type(new.get_layer("target")).__name__ == "NarrowInputConv"
    assert _exact(model, new, photos) >= 60.0


def test_narrow_input_leaves_3x3_and_wide_convs_alone():
    for model in (_conv_model(3, 16, 3), _conv_model(8, 16, 5)):
        _, record = rewrites.apply(model, "litert")
        assert "narrow_input" not in {a["rewrite"] for a in record["applied"]}


@pytest.mark.parametrize(
    "cin,cout,k",
    [(3, 16, 3), (16, 16, 3), (16, 3, 5), (8, 4, 1), (4, 8, 4), (32, 12, 3), (3, 64, 5)],
)
def test_block_conv_is_exact(cin, cout, k, photos):
    model = _conv_model(cin, cout, k, activation="relu")
    plain, rec0 = rewrites.apply(model, "litert")  # opt-in: not applied unless enabled
    assert "block_conv" not in {a["rewrite"] for a in rec0["applied"]}
    new, record = rewrites.apply(model, "litert", enable=("block_conv",))
    assert "target" in _layers_of(record, "block_conv")
    assert _exact(model, new, photos) >= 60.0  # 64x64 photos: even, so the 2x2 blocks are used
    assert new.get_layer("target").blocked


def test_block_conv_skips_wide_strided_and_valid_convs():
    for model in (
        _conv_model(16, 32, 3),
        _conv_model(3, 64, 3),
        _conv_model(16, 16, 3, strides=2),
        _conv_model(16, 16, 3, padding="valid"),
    ):
        _, record = rewrites.apply(model, "litert", enable=("block_conv",))
        assert "target" not in _layers_of(record, "block_conv")


def test_block_conv_falls_back_on_odd_sizes_and_says_so(photos):
    model = _conv_model(16, 16, 3)
    new, record = rewrites.apply(model, "litert", enable=("block_conv",))
    odd = photos[:, :63, :61]
    assert _exact(model, new, odd) >= 60.0
    settled = rewrites.settle(new, record)
    assert _layers_of(settled, "block_conv") == []
    skip = {s["layer"]: s["reason"] for s in settled["skipped"] if s["rewrite"] == "block_conv"}
    assert "target" in skip and "even" in skip["target"]


def test_block_weights_match_a_direct_convolution():
    rng = np.random.default_rng(2)
    for k in (1, 2, 3, 4, 5):
        kernel = rng.normal(size=(k, k, 2, 3)).astype(np.float32)
        x = rng.normal(size=(8, 6, 2)).astype(np.float32)
        p = (k - 1) // 2
        xp = np.pad(x, ((p, k - 1 - p), (p, k - 1 - p), (0, 0)))
        ref = np.zeros((8, 6, 3), np.float32)
        for i in range(k):
            for j in range(k):
                ref += xp[i : i + 8, j : j + 6] @ kernel[i, j]
        blocks, (before, after) = rewrites.block_weights(kernel)
        xb = x.reshape(4, 2, 3, 2, 2).transpose(0, 2, 1, 3, 4).reshape(4, 3, 8)  # space_to_depth
        kb = blocks.shape[0]
        xbp = np.pad(xb, ((before, after), (before, after), (0, 0)))
        yb = np.zeros((4, 3, 12), np.float32)
        for i in range(kb):
            for j in range(kb):
                yb += xbp[i : i + 4, j : j + 3] @ blocks[i, j]
        y = yb.reshape(4, 3, 2, 2, 3).transpose(0, 2, 1, 3, 4).reshape(8, 6, 3)  # depth_to_space
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_block_convs_option_resolves():
    from edgekit.export.fastpath import block_convs_on, host_int8_tiles

    assert block_convs_on("on")[0] and not block_convs_on("off")[0]
    on, why = block_convs_on("auto")
    assert on == host_int8_tiles() and "AMX" in why


@pytest.mark.slow
def test_int8_block_convs_stay_on_xnnpack_and_are_recorded(tmp_path):
    model = build_user_unet()
    art = _export_int8(model, tmp_path, "unet_blocks", tile=(64, 64), block_convs="on")
    m = art.manifest
    rw = m["converter"]["rewrites"]
    applied = {a["rewrite"]: a["layers"] for a in rw["applied"]}
    assert {"e1a", "e1b", "d1", "out"} <= set(applied["block_conv"]), applied
    assert rw["block_convs"] == "block_convs: on"
    assert _off_ops(m) == set(), m["int8_report"]["ops"]
    assert m["ops"]["histogram"].get("SPACE_TO_DEPTH") == len(applied["block_conv"])
    # the prediction names the same ops
    pred = inspect_model(model, fmt="tflite", precision="int8", tile=(64, 64), block_convs="on")
    rows = {r["layer"]: r for r in pred["rows"]}
    assert rows["e1a"]["ops"] == ["SPACE_TO_DEPTH", "CONV_2D", "DEPTH_TO_SPACE"]
    assert rows["e1a"]["rewrite"] == "block_conv" and rows["e1a"]["fast"]
    off = _export_int8(model, tmp_path, "unet_noblocks", tile=(64, 64))
    assert "block_conv" not in {
        a["rewrite"] for a in off.manifest["converter"]["rewrites"]["applied"]
    }


@pytest.mark.parametrize("cin,cout", [(3, 48), (48, 3), (3, 3), (6, 20)])
def test_pad_channels_is_exact_and_opt_in(cin, cout, photos):
    model = _conv_model(cin, cout, 3, activation="relu")
    _, rec0 = rewrites.apply(model, "onnxruntime")
    assert "target" not in _layers_of(rec0, "pad_channels")
    new, record = rewrites.apply(model, "onnxruntime", enable=("pad_channels",))
    assert "target" in _layers_of(record, "pad_channels")
    layer = new.get_layer("target")
    assert layer.kernel_np.shape[2] % 4 == 0 and layer.kernel_np.shape[3] >= 16
    assert _exact(model, new, photos) >= 60.0


@pytest.mark.slow
def test_onnx_int8_dncnn_convs_are_padded_for_mlas_and_stay_int8(tmp_path):
    model = _zoo("dncnn")
    art = _export_int8(model, tmp_path, "dncnn_ort", fmt="onnx", tile=(64, 64), layout="NCHW")
    applied = {a["rewrite"]: a["layers"] for a in art.manifest["converter"]["rewrites"]["applied"]}
    assert set(applied["pad_channels"]) == {"conv1", "conv12"}, applied
    ops = _ort_graph_ops(art.path, tmp_path)
    assert ops.get("Conv", 0) == 0 and ops.get("QLinearConv", 0) == 12, ops
    # TensorRT's symmetric recipe is not padded
    sym = _export_int8(
        model,
        tmp_path,
        "dncnn_trt",
        fmt="onnx",
        tile=(64, 64),
        layout="NCHW",
        activations="symmetric",
    )
    done = {a["rewrite"] for a in sym.manifest["converter"]["rewrites"]["applied"]}
    assert "pad_channels" not in done
