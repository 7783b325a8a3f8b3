"""ONNX export: fp32/fp16/int8 Q/DQ against the Keras model on real photos (calibration_data/)."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from edgekit.config import Format, Precision
from edgekit.errors import EdgekitError
from edgekit.export.base import ExportRequest, get_exporter, manifest_path
from edgekit.metrics import psnr
from edgekit.models.info import LoadedModel, ModelInfo
from edgekit.runtimes.base import runner_for

TILE = (32, 32)

# ------------------------------------------------------------------ helpers shared by the ONNX,
# TensorRT, ONNX Runtime and compare tests (imported from this module).


@functools.cache
def photos():
    """(train, held-out) calibration photos, the real images shipped in calibration_data/."""
    from edgekit.data.images import load_folder, split_holdout
    from edgekit.paths import calibration_dir

    return split_holdout(load_folder(calibration_dir()))


def real_tiles(spec: str, tile=TILE, split: str = "train", per_image: int = 1, seed: int = 0):
    """(degraded inputs, clean targets) cut from the real photos."""
    from edgekit.data.degradations import parse
    from edgekit.data.patches import degraded_tiles

    train, held = photos()
    return degraded_tiles(train if split == "train" else held, parse(spec), tile, per_image, seed)


@functools.cache
def trained_denoiser() -> LoadedModel:
    """A small residual denoiser (conv, PReLU, concat, Subtract, clip) fitted on real photo patches."""
    from edgekit.data.degradations import parse
    from edgekit.data.patches import make_pairs
    from edgekit.tfcompat import import_tf

    tf, keras = import_tf()
    keras.utils.set_random_seed(0)
    L = keras.layers
    inp = keras.Input((None, None, 3), name="noisy")
    a = L.Conv2D(24, 3, padding="same")(inp)
    a = L.PReLU(shared_axes=[1, 2])(a)
    b = L.Conv2D(24, 3, padding="same", activation="relu")(a)
    x = L.Concatenate()([a, b])
    x = L.Conv2D(24, 3, padding="same", activation="relu")(x)
    noise = L.Conv2D(3, 3, padding="same")(x)
    out = L.ReLU(max_value=1.0)(L.Subtract()([inp, noise]))
    model = keras.Model(inp, out, name="tiny_denoiser")
    xs, ys = make_pairs(photos()[0], parse("noise:sigma=25"), patch=24, count=256, seed=0)
    model.compile(keras.optimizers.Adam(2e-3), "mse")
    model.fit(xs, ys, batch_size=16, epochs=12, verbose=0, shuffle=False)
    info = ModelInfo(
        name="tiny_denoiser", task="denoise", degradation="noise:sigma=25", source="test"
    )
    return LoadedModel(model, info)


def sr_block_model() -> LoadedModel:
    """Untrained net with the SR/U-Net layer types: depth_to_space, strided conv, Conv2DTranspose."""
    from edgekit.tfcompat import import_tf

    tf, keras = import_tf()
    keras.utils.set_random_seed(1)
    L = keras.layers
    inp = keras.Input((None, None, 3))
    x = L.Conv2D(16, 3, padding="same", activation="relu")(inp)
    d = L.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    u = L.Conv2DTranspose(16, 2, strides=2, padding="same")(d)
    x = L.Concatenate()([x, u])
    x = L.Conv2D(12, 3, padding="same")(x)
    x = L.Lambda(lambda t: tf.nn.depth_to_space(t, 2), name="pixel_shuffle")(x)
    model = keras.Model(inp, L.ReLU(max_value=1.0)(x), name="sr_blocks")
    info = ModelInfo(
        name="sr_blocks", task="super-resolution", degradation="downscale:factor=2", scale=2
    )
    return LoadedModel(model, info)


def zoo_model(name: str) -> LoadedModel:
    """A zoo model with its shipped weights, or (not trained yet) its architecture, seeded."""
    from edgekit.models import zoo
    from edgekit.models.loading import load_model

    entry = zoo.get(name)
    if entry.trained:
        return load_model(f"zoo:{name}")
    from edgekit.tfcompat import import_tf

    import_tf()[1].utils.set_random_seed(0)
    info = ModelInfo(
        name=name,
        task=entry.task,
        degradation=entry.degradation,
        scale=entry.scale,
        source=f"zoo:{name} (untrained)",
        input_multiple=entry.input_multiple,
    )
    return LoadedModel(zoo.build(name), info)


def tile_for(loaded) -> tuple[int, int]:
    """TILE, or the smallest square tile the model takes if TILE is not a multiple of its input
    multiple (the gain U-Net pools by 4 before four downsamplings: multiples of 64)."""
    m = max(1, int(loaded.info.input_multiple))
    return TILE if TILE[0] % m == 0 and TILE[1] % m == 0 else (m, m)


def zoo_names() -> list[str]:
    """The zoo's model names for parametrizing; an import failure is an error, not an empty
    list (which would make every parametrized zoo test silently vanish)."""
    from edgekit.models import zoo

    names = zoo.names()
    assert names, "edgekit.models.zoo lists no models"
    return names


def export_onnx(loaded, precision, out, calib=None, val=None, shape=TILE, **options):
    if calib is None:
        calib, _ = real_tiles(loaded.info.degradation, shape)
    request = ExportRequest(
        format=Format.onnx,
        precision=Precision(precision),
        shape=shape,
        calib_inputs=calib,
        val_inputs=calib if val is None else val,
        options=options,
    )
    return get_exporter("onnx").export(loaded, request, out)


def keras_out(loaded, xs):
    return np.asarray(loaded.model(xs, training=False), np.float32)


# ------------------------------------------------------------------ fp32 parity on real photos


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo_names())
def test_zoo_model_fp32_onnx_matches_keras_on_real_photos(name, tmp_path):
    loaded = zoo_model(name)
    tile = tile_for(loaded)
    calib, _ = real_tiles(loaded.info.degradation, tile)
    val, _ = real_tiles(loaded.info.degradation, tile, split="held")
    art = export_onnx(
        loaded, "fp32", tmp_path / f"{name}.onnx", calib=calib[:4], val=val, shape=tile
    )
    got = runner_for(str(art.path), threads=2).run(val)
    ref = keras_out(loaded, val)
    assert (
        got.shape
        == ref.shape
        == (len(val), tile[0] * loaded.info.scale, tile[1] * loaded.info.scale, 3)
    )
    assert psnr(got, ref) >= 60.0
    assert art.manifest["validation"]["psnr_vs_keras_db"] >= 60.0


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_sr_layer_types_fp32_onnx_matches_keras(layout, tmp_path):
    """depth_to_space, Conv2DTranspose, strided conv and concat convert exactly, in both layouts."""
    loaded = sr_block_model()
    xs, _ = real_tiles("downscale:factor=2", TILE, split="held")
    art = export_onnx(loaded, "fp32", tmp_path / "sr.onnx", calib=xs, layout=layout)
    assert art.manifest["layout"] == layout
    assert (
        art.manifest["ops"].get("DepthToSpace") == 1
        and art.manifest["ops"].get("ConvTranspose") == 1
    )
    got = runner_for(str(art.path), threads=2).run(xs)
    assert got.shape == (len(xs), 64, 64, 3)
    assert psnr(got, keras_out(loaded, xs)) >= 60.0


def test_manifest_records_opset_layout_and_validation(tmp_path):
    loaded = trained_denoiser()
    art = export_onnx(loaded, "fp32", tmp_path / "d.onnx", opset=15)
    m = json.loads(manifest_path(art.path).read_text())
    assert m["format"] == "onnx" and m["precision"] == "fp32"
    assert m["converter"] == {
        "name": "tf2onnx",
        "opset": 15,
        "layout": "NHWC",
        "rewrites": {"enabled": False},  # rewrites are for integer precisions
    }
    import onnx

    proto = onnx.load(str(art.path))
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [15]
    assert m["input"]["name"] == "input" and m["output"]["name"] == "output"
    assert m["input"]["shape"] == m["input_shape"] == [1, 32, 32, 3] and m["dynamic_shape"] is False
    assert m["validation"]["floor_db"] == 60.0


# ------------------------------------------------------------------ NCHW: transposes folded


def test_nchw_denoiser_has_no_transpose_between_convolutions(tmp_path):
    import onnx

    from edgekit.export.onnx import count_ops, transposes_between_convs

    names = zoo_names()
    loaded = zoo_model("dncnn") if "dncnn" in names else trained_denoiser()
    nchw = export_onnx(loaded, "fp32", tmp_path / "nchw.onnx", layout="NCHW")
    nhwc = export_onnx(loaded, "fp32", tmp_path / "nhwc.onnx", layout="NHWC")
    proto = onnx.load(str(nchw.path))
    assert transposes_between_convs(proto) == []
    assert count_ops(proto, "Transpose") == 0 and nchw.manifest["transposes"] == 0
    assert nchw.manifest["input"]["shape"] == [1, 3, 32, 32]
    assert nchw.manifest["input_shape"] == [1, 32, 32, 3]  # NHWC, like the runner's input_shape
    # The NHWC export keeps its two edge transposes: the counter sees Transposes when they exist.
    assert nhwc.manifest["transposes"] == 2 and nhwc.manifest["transposes_between_convs"] == 0
    xs, _ = real_tiles(loaded.info.degradation, TILE, split="held")
    a = runner_for(str(nchw.path), threads=2).run(xs)
    b = runner_for(str(nhwc.path), threads=2).run(xs)
    assert psnr(a, b) >= 60.0


def test_transpose_detector_finds_a_transpose_between_convs():
    from onnx import TensorProto, helper

    from edgekit.export.onnx import transposes_between_convs

    w = helper.make_tensor("w", TensorProto.FLOAT, [3, 3, 1, 1], [1.0] * 9)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c1"], name="conv1"),
        helper.make_node("Transpose", ["c1"], ["t1"], name="to_nhwc", perm=[0, 2, 3, 1]),
        helper.make_node("Relu", ["t1"], ["r"], name="relu"),
        helper.make_node("Transpose", ["r"], ["t2"], name="to_nchw", perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["t2", "w"], ["y"], name="conv2"),
        helper.make_node("Transpose", ["y"], ["out"], name="edge", perm=[0, 2, 3, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 8, 8, 3])],
        [w],
    )
    assert transposes_between_convs(helper.make_model(graph)) == ["to_nhwc", "to_nchw"]


# ------------------------------------------------------------------ fp16


def test_fp16_keeps_float32_io_by_default_and_matches_keras(tmp_path):
    import onnx

    loaded = trained_denoiser()
    art = export_onnx(loaded, "fp16", tmp_path / "h.onnx")
    proto = onnx.load(str(art.path))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    weights = [t for t in proto.graph.initializer if len(t.dims) == 4]
    assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)
    xs, _ = real_tiles("noise:sigma=25", TILE, split="held")
    value = psnr(runner_for(str(art.path), threads=2).run(xs), keras_out(loaded, xs))
    assert 45.0 <= value < 120.0  # float16 rounding is visible, but small


def test_fp16_with_float16_io(tmp_path):
    loaded = trained_denoiser()
    art = export_onnx(loaded, "fp16", tmp_path / "h16.onnx", keep_io_types=False, layout="NCHW")
    assert (
        art.manifest["input"]["dtype"] == "float16" and art.manifest["output"]["dtype"] == "float16"
    )
    runner = runner_for(str(art.path), threads=2)
    assert runner.input_dtype == "float16"
    xs, _ = real_tiles("noise:sigma=25", TILE, split="held")
    out = runner.run(xs)
    assert out.dtype == np.float32 and psnr(out, keras_out(loaded, xs)) >= 45.0


# ------------------------------------------------------------------ int8 Q/DQ


@pytest.fixture(scope="module")
def int8_artifacts(tmp_path_factory):
    loaded = trained_denoiser()
    calib, _ = real_tiles("noise:sigma=25", TILE, per_image=2)
    folder = tmp_path_factory.mktemp("int8")
    fp32 = export_onnx(loaded, "fp32", folder / "d-fp32.onnx", calib=calib)
    # the TensorRT recipe (what the TensorRT exporter asks for): symmetric, no rewrites
    int8 = export_onnx(
        loaded,
        "int8",
        folder / "d-int8.onnx",
        calib=calib,
        layout="NCHW",
        activations="symmetric",
        rewrite=False,
    )
    return loaded, fp32, int8


@pytest.mark.slow
def test_int8_qdq_within_half_a_db_of_float_against_clean(int8_artifacts):
    loaded, fp32, int8 = int8_artifacts
    xs, clean = real_tiles("noise:sigma=25", TILE, split="held", per_image=4, seed=5)
    f = psnr(keras_out(loaded, xs), clean)
    q = psnr(runner_for(str(int8.path), threads=2).run(xs), clean)
    noisy = psnr(xs, clean)
    assert f > noisy + 3.0  # the float model really denoises
    assert q >= f - 0.5, f"int8 {q:.2f} dB vs float {f:.2f} dB"
    assert int8.manifest["validation"]["psnr_vs_keras_db"] >= 30.0


def test_int8_is_symmetric_per_channel_qdq(int8_artifacts):
    """What TensorRT explicit quantization needs: Q/DQ pairs, zero points 0, per-channel weights."""
    import onnx
    from onnx import numpy_helper

    _, _, int8 = int8_artifacts
    proto = onnx.load(str(int8.path))
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    dq = {n.output[0]: n for n in proto.graph.node if n.op_type == "DequantizeLinear"}
    q_nodes = [n for n in proto.graph.node if n.op_type == "QuantizeLinear"]
    assert len(convs) == 4 and q_nodes
    for conv in convs:
        act, weight = dq[conv.input[0]], dq[conv.input[1]]
        w_q, w_scale = inits[weight.input[0]], inits[weight.input[1]]
        assert w_q.dtype == np.int8 and w_scale.shape == (
            w_q.shape[0],
        )  # one scale per out channel
        assert act.input[0] not in inits  # activations quantized at run time
        assert inits[act.input[1]].shape == ()  # per-tensor activation scale
    for node in [*q_nodes, *dq.values()]:
        if len(node.input) > 2:
            zp = inits[node.input[2]]
            # int8 for weights/activations, int32 for the biases (scale = input x weight scale)
            assert zp.dtype in (np.int8, np.int32) and not np.any(zp), node.name
    assert int8.manifest["int8_report"]["weights"] == "int8 symmetric per-channel"
    assert int8.manifest["int8_report"]["quantized_nodes"]["Conv"] == 4


def test_int8_needs_calibration_tiles(tmp_path):
    request = ExportRequest(format=Format.onnx, precision=Precision.int8, shape=TILE, options={})
    with pytest.raises(EdgekitError, match="calibration"):
        get_exporter("onnx").export(trained_denoiser(), request, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


# ------------------------------------------------------------------ bad input


def test_unconvertible_op_names_the_layer_and_op_and_writes_nothing(tmp_path):
    from edgekit.tfcompat import import_tf

    tf, keras = import_tf()
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(3, 3, padding="same")(inp)
    x = keras.layers.Lambda(lambda t: tf.math.bessel_i1e(t), name="odd_activation")(x)
    loaded = LoadedModel(
        keras.Model(inp, x), ModelInfo("odd", "denoise", "noise:sigma=25", source="odd.h5")
    )
    xs, _ = real_tiles("noise:sigma=25", TILE)
    with pytest.raises(EdgekitError) as err:
        export_onnx(loaded, "fp32", tmp_path / "odd.onnx", calib=xs[:2])
    msg = str(err.value)
    assert "odd.h5" in msg and "odd_activation" in msg and "BesselI1e" in msg and "\n" not in msg
    assert list(tmp_path.iterdir()) == []


def test_below_floor_refuses_and_leaves_no_file(tmp_path):
    from edgekit.export.validate import ValidationFailed

    with pytest.raises(ValidationFailed, match="below|floor") as err:
        export_onnx(trained_denoiser(), "fp16", tmp_path / "h.onnx", min_psnr_db=150.0)
    assert err.value.kind == "below-floor" and err.value.floor_db == 150.0
    assert err.value.psnr_db < 150.0
    assert list(tmp_path.iterdir()) == []


def test_bad_layout_option(tmp_path):
    with pytest.raises(EdgekitError, match="layout='NWHC'"):
        export_onnx(trained_denoiser(), "fp32", tmp_path / "x.onnx", layout="NWHC")


def test_unsupported_precision_is_refused(tmp_path):
    request = ExportRequest(format=Format.onnx, precision=Precision.int16x8, shape=TILE)
    with pytest.raises(EdgekitError, match="supported: fp32, fp16, int8"):
        get_exporter("onnx").export(trained_denoiser(), request, tmp_path / "x.onnx")


def _ort_optimized_ops(path, tmp_path) -> dict:
    """Op histogram of the graph ONNX Runtime's CPU provider actually runs."""
    import collections

    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return collections.Counter(n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node)


def test_asymmetric_activations_let_onnxruntime_fold_relus(int8_artifacts, tmp_path):
    """Symmetric activations (TensorRT's requirement) leave each ReLU in float on ORT's CPU
    provider; the ORT-only asymmetric variant folds them into QLinearConv."""
    loaded, _, symmetric = int8_artifacts
    calib, _ = real_tiles("noise:sigma=25", TILE, per_image=2)
    asym = export_onnx(
        loaded, "int8", tmp_path / "asym.onnx", calib=calib, layout="NCHW", rewrite=False
    )  # asymmetric is the default without a target
    sym_ops = _ort_optimized_ops(symmetric.path, tmp_path)
    asym_ops = _ort_optimized_ops(asym.path, tmp_path)
    # the two Conv+ReLU layers' ReLUs are folded (PReLU's decomposed ReLUs stay in both)
    assert sym_ops["Relu"] - asym_ops["Relu"] >= 2, (sym_ops, asym_ops)
    assert asym_ops["QLinearConv"] >= sym_ops["QLinearConv"], (sym_ops, asym_ops)
    report = asym.manifest["int8_report"]
    assert (
        report["activations"] == "uint8 asymmetric per-tensor" and not report["tensorrt_compatible"]
    )
    assert asym.manifest["validation"]["psnr_vs_keras_db"] >= 30.0


@pytest.mark.slow
def test_zoo_denoiser_int8_qdq_within_half_a_db_of_float(tmp_path):
    """The shipped DnCNN: TensorRT-ready Q/DQ int8 (symmetric) loses < 0.5 dB vs clean."""
    from edgekit.models import zoo

    if "dncnn" not in zoo_names() or not zoo.get("dncnn").trained:
        pytest.skip("zoo:dncnn has no shipped weights in this checkout")
    loaded = zoo_model("dncnn")
    tile = (64, 64)
    calib, _ = real_tiles("noise:sigma=25", tile, per_image=2)
    int8 = export_onnx(loaded, "int8", tmp_path / "dncnn-int8.onnx", calib=calib, shape=tile)
    xs, clean = real_tiles("noise:sigma=25", tile, split="held", per_image=3, seed=9)
    f = psnr(keras_out(loaded, xs), clean)
    q = psnr(runner_for(str(int8.path), threads=2).run(xs), clean)
    assert f > psnr(xs, clean) + 5.0  # the trained model denoises
    assert q >= f - 0.5, f"int8 {q:.2f} dB vs float {f:.2f} dB"


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_tile_that_is_not_a_multiple_of_the_model_fails_in_one_line(fmt, tmp_path):
    loaded = zoo_model("unet_deshadow")
    xs = np.zeros((1, 32, 32, 3), np.float32)
    request = ExportRequest(
        format=Format(fmt),
        precision=Precision.fp32,
        shape=(32, 32),
        calib_inputs=xs,
        val_inputs=xs,
    )
    out = tmp_path / f"m.{fmt}"
    with pytest.raises(EdgekitError, match=r"multiples of 64, got 32x32; use e\.g\. --shape 64x64"):
        get_exporter(fmt).export(loaded, request, out)
    assert not list(tmp_path.iterdir())
