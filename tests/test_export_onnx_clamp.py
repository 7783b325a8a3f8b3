"""Clamps fused into one Clip before ONNX int8 quantization (edgekit.export.onnx_clamp), and the
ONNX Runtime int8 recipe held against onnxruntime.quantization.quantize_static's defaults."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgekit.export.onnx_clamp import fuse_clamps  # noqa: E402
from edgekit.export.onnx_quant import quantize_qdq  # noqa: E402


def _const(name, value):
    return numpy_helper.from_array(np.asarray(value, np.float32), name)


def _graph(extra_consumer: bool = False):
    """NCHW (1, 3, 8, 8) -> conv 1x1 (3 -> 8) -> Max(-0.5) -> Min(2) -> Relu -> conv 1x1 (8 -> 12)
    -> DepthToSpace(2) -> Relu -> Min(1) -> Max(0) -> (1, 3, 16, 16): an inner clamp chain and a
    [0, 1] output clamp after a pixel shuffle, as tf2onnx writes them."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.8, (8, 3, 1, 1)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(0, 0.2, (8,)).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.normal(0, 0.4, (12, 8, 1, 1)).astype(np.float32), "w2"),
        numpy_helper.from_array(rng.normal(0.4, 0.1, (12,)).astype(np.float32), "b2"),
        _const("m_lo", -0.5),
        _const("m_hi", [[[[2.0]]]]),  # a (1, 1, 1, 1) bound, as tf2onnx folds them
        _const("one", 1.0),
        _const("zero", 0.0),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], name="conv1"),
        helper.make_node("Max", ["c1", "m_lo"], ["a"], name="inner/Max"),
        helper.make_node("Min", ["a", "m_hi"], ["b"], name="inner/Min"),
        helper.make_node("Relu", ["b"], ["c"], name="inner/Relu"),
        helper.make_node("Conv", ["c", "w2", "b2"], ["c2"], name="conv2"),
        helper.make_node("DepthToSpace", ["c2"], ["d"], name="shuffle", blocksize=2),
        helper.make_node("Relu", ["d"], ["e"], name="clip01/Relu"),
        helper.make_node("Min", ["e", "one"], ["f"], name="clip01/Min"),
        helper.make_node("Max", ["f", "zero"], ["output"], name="clip01/Max"),
    ]
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 16, 16])]
    if extra_consumer:  # the inner chain's middle tensor is also read elsewhere
        outputs.append(helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 8, 8, 8]))
    graph = helper.make_graph(
        nodes,
        "clamps",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        outputs,
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def _run(model, x):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(["output"], {"input": x})[0]


def _ops(model) -> list[str]:
    return [n.op_type for n in model.graph.node]


def test_clamp_chains_become_one_clip_and_the_output_clamp_moves_above_the_shuffle():
    model = _graph()
    fused, record = fuse_clamps(model)
    assert _ops(fused) == ["Conv", "Clip", "Conv", "Clip", "DepthToSpace"]
    assert record["fused"] == [
        {"nodes": ["clip01/Relu", "clip01/Min", "clip01/Max"], "range": [0.0, 1.0]},
        {"nodes": ["inner/Max", "inner/Min", "inner/Relu"], "range": [0.0, 2.0]},
    ]
    assert record["output_clamp"]["range"] == [0.0, 1.0]
    assert record["output_clamp"]["moved_above"] == ["DepthToSpace"]
    assert fused.graph.node[-1].output[0] == "output"
    # the bounds of the removed Min/Max nodes are gone, the input graph is untouched
    names = {t.name for t in fused.graph.initializer}
    assert not names & {"m_lo", "m_hi", "one", "zero"}
    assert _ops(model)[-3:] == ["Relu", "Min", "Max"]
    # exact in float, on inputs that drive values past both bounds
    x = np.random.default_rng(1).normal(0.0, 2.0, (1, 3, 8, 8)).astype(np.float32)
    y0, y1 = _run(model, x), _run(fused, x)
    assert y0.min() == 0.0 and y0.max() == 1.0  # both bounds are hit
    np.testing.assert_array_equal(y0, y1)


def test_a_chain_stops_at_a_tensor_read_twice_and_lone_relus_stay():
    fused, record = fuse_clamps(_graph(extra_consumer=True))
    # Max's output is read twice: Max alone becomes a Clip, Min + Relu another one
    assert [f["nodes"] for f in record["fused"]][1:] == [["inner/Min", "inner/Relu"], ["inner/Max"]]
    assert "Min" not in _ops(fused) and "Max" not in _ops(fused)
    x = np.random.default_rng(2).normal(0.0, 2.0, (1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(_run(_graph(True), x), _run(fused, x))
    lone = _graph()
    del lone.graph.node[7:]  # ends at the shuffle's Relu ...
    lone.graph.node[-1].output[0] = "output"
    fused, record = fuse_clamps(lone)
    assert _ops(fused)[-1] == "Relu" and record["output_clamp"] is None  # ... which ORT folds


def _tiles(n=6):
    return np.random.default_rng(3).uniform(0.0, 1.0, (n, 8, 8, 3)).astype(np.float32)


def test_onnxruntime_int8_folds_the_clamps_and_gives_the_output_exactly_0_to_1():
    """Asymmetric (ONNX Runtime) recipe: no Clip/Min/Max/Relu left, the output tensor quantized as
    uint8 with scale 1/255 and zero point 0 (saturation is the clamp)."""
    int8, info = quantize_qdq(_graph(), _tiles(), layout="NCHW", symmetric_activations=False)
    ops = _ops(int8)
    assert not {"Clip", "Min", "Max", "Relu"} & set(ops), ops
    assert ops.count("Conv") == 2 and info["quantized_nodes"]["Conv"] == 2
    inits = {t.name: numpy_helper.to_array(t) for t in int8.graph.initializer}
    shuffle = next(n for n in int8.graph.node if n.op_type == "DepthToSpace")
    dq = next(n for n in int8.graph.node if n.output[0] == shuffle.input[0])
    scale, zero = inits[dq.input[1]], inits[dq.input[2]]
    assert dq.op_type == "DequantizeLinear" and zero.dtype == np.uint8 and int(zero) == 0
    assert float(scale) == np.float32(1 / 255)
    assert info["calibration"]["method"] == "minmax"
    assert info["clamps"]["output_clamp"]["moved_above"] == ["DepthToSpace"]
    x = _tiles(1).transpose(0, 3, 1, 2).copy()
    y = _run(int8, x)
    assert y.min() >= 0.0 and y.max() <= 1.0
    np.testing.assert_allclose(y * 255, np.round(y * 255), atol=1e-3)  # 8-bit output levels


def test_tensorrt_recipe_keeps_the_graph_and_minmax():
    """Symmetric activations (what the TensorRT exporter asks for): graph and calibration as before."""
    int8, info = quantize_qdq(_graph(), _tiles(), layout="NCHW", symmetric_activations=True)
    assert {"Min", "Max"} <= set(_ops(int8))
    assert info["calibration"]["method"] == "minmax" and "clamps" not in info


# ------------------------------------------------------------------ vs quantize_static defaults


@pytest.mark.slow
@pytest.mark.parametrize(("name", "side"), [("dncnn", 128), ("espcn_x3", 48)])
def test_onnx_int8_no_worse_than_quantize_static_defaults(name, side, tmp_path):
    """Issue 17: edgekit's ONNX int8 (no target = host-cpu's recipe) scores within 0.02 dB of
    quantize_static with every option at its default, on the same fp32 graph and calibration
    tiles, held-out photos vs clean (the recipe before this test: dncnn -0.03, espcn_x3 -0.03)."""
    import onnxruntime.quantization as q

    from edgekit import api
    from edgekit.data.degradations import parse
    from edgekit.data.images import load_folder, split_holdout
    from edgekit.data.patches import degraded_tiles
    from edgekit.export.onnx import ort_session, run_onnx
    from edgekit.metrics import psnr
    from edgekit.models.loading import load_model
    from edgekit.paths import calibration_dir

    loaded = load_model(f"zoo:{name}")
    tile = (side, side)
    calib = api.calibration_sets(loaded, tile)[0]
    _, held = split_holdout(load_folder(calibration_dir()))
    xs, clean = degraded_tiles(held, parse(loaded.info.degradation), tile, per_image=2, seed=7)

    def export(precision):
        return api.export(
            loaded, format="onnx", precision=precision, shape=tile, calib=(calib, None),
            out=tmp_path / f"{precision}.onnx", options={"layout": "NCHW"},
        ).path  # fmt: skip

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.tiles = iter(calib)

        def get_next(self):
            x = next(self.tiles, None)
            return (
                None
                if x is None
                else {"input": np.ascontiguousarray(x[None].transpose(0, 3, 1, 2))}
            )

    qs_path = tmp_path / "qs.onnx"
    q.quantize_static(str(export("fp32")), str(qs_path), Reader())

    def score(path):
        return psnr(run_onnx(ort_session(str(path)), xs, "NCHW"), clean)

    ours, theirs = score(export("int8")), score(qs_path)
    assert ours >= theirs - 0.02, (
        f"{name}: edgekit int8 {ours:.3f} dB, quantize_static {theirs:.3f} dB"
    )
