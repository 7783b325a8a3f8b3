"""ONNX models as MODEL (not produced by edgekit's exporter): validation, ONNX fp16/int8 exports,
an RTX int8 engine, the compare parity table, and one-line refusals."""

from __future__ import annotations

import numpy as np
import pytest
from cli_checks import assert_export_refused

from edgekit.errors import EdgekitError
from edgekit.models.loading import load_model

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

TILE = (64, 64)


def _gauss(size=5, sigma=1.2):
    r = np.arange(size) - size // 2
    g = np.exp(-(r**2) / (2 * sigma**2))
    k = np.outer(g, g)
    return (k / k.sum()).astype(np.float32)


def denoiser_proto(two_inputs=False, custom_domain=False):
    """NCHW residual conv denoiser, built with onnx.helper (dynamic H/W):
    y = clip(x + conv1x1(relu(conv5x5(x))), 0, 1), where the 5x5 conv computes +-(blur - x) per
    channel, so y is a Gaussian blur of x that passes through ReLU and a residual Add."""
    hp = _gauss()
    hp[2, 2] -= 1.0  # blur - identity
    w1 = np.zeros((6, 3, 5, 5), np.float32)
    for c in range(3):
        w1[c, c], w1[3 + c, c] = hp, -hp
    w2 = np.zeros((3, 6, 1, 1), np.float32)
    for c in range(3):
        w2[c, c], w2[c, 3 + c] = 1.0, -1.0
    inits = [
        numpy_helper.from_array(w1, "w1"),
        numpy_helper.from_array(np.zeros(6, np.float32), "b1"),
        numpy_helper.from_array(w2, "w2"),
        numpy_helper.from_array(np.zeros(3, np.float32), "b2"),
        numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
        numpy_helper.from_array(np.array(1.0, np.float32), "hi"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["h"], pads=[2, 2, 2, 2]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Conv", ["r", "w2", "b2"], ["d"]),
        helper.make_node("Add", ["x", "d"], ["s"]),
        helper.make_node("Clip", ["s", "lo", "hi"], ["y"]),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "H", "W"])]
    opsets = [helper.make_opsetid("", 17)]
    if two_inputs:
        inputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 3, "H", "W"]))
        nodes[3] = helper.make_node("Add", ["z", "d"], ["s"])
    if custom_domain:
        nodes.append(helper.make_node("Sharpen", ["y"], ["y2"], domain="com.acme"))
        opsets.append(helper.make_opsetid("com.acme", 1))
    out_name = "y2" if custom_domain else "y"
    graph = helper.make_graph(
        nodes,
        "blur_denoiser",
        inputs,
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [1, 3, "H", "W"])],
        inits,
    )
    return helper.make_model(graph, opset_imports=opsets, producer_name="onnx.helper")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "blur.onnx"
    onnx.save(denoiser_proto(), str(path))
    return path


def _held_tiles(n=6):
    from edgekit.data.degradations import parse
    from edgekit.data.images import load_folder, split_holdout
    from edgekit.data.patches import degraded_tiles
    from edgekit.paths import calibration_dir

    _, held = split_holdout(load_folder(calibration_dir()))
    xs, clean = degraded_tiles(held, parse("noise:sigma=25"), TILE, per_image=2, seed=1)
    return xs[:n], clean[:n]


def test_onnx_model_loads_and_runs_as_reference(model_path):
    from edgekit.metrics import psnr

    loaded = load_model(str(model_path), degradation="noise:sigma=25")
    info = loaded.info
    assert info.extra["format"] == "onnx" and info.extra["onnx_layout"] == "NCHW"
    assert (info.scale, info.input_multiple, info.extra["onnx_opset"]) == (1, 1, 17)
    xs, clean = _held_tiles()
    ys = loaded.model(xs)
    assert ys.shape == xs.shape
    assert psnr(ys, clean) > psnr(xs, clean) + 3.0  # the blur removes much of sigma-25 noise


def _export(path, fmt, precision, out, **kw):
    from edgekit import api

    return api.export(
        str(path),
        format=fmt,
        precision=precision,
        shape=TILE,
        degradation="noise:sigma=25",
        out=out,
        **kw,
    )


def test_onnx_fp16_int8_exports_and_compare_table(model_path, tmp_path):
    from edgekit import api

    arts = {}
    for prec in ("fp32", "fp16", "int8"):
        arts[prec] = _export(model_path, "onnx", prec, tmp_path / f"blur_{prec}.onnx")
        assert arts[prec].manifest["converter"]["name"].startswith("source onnx")
        assert arts[prec].manifest["layout"] == "NCHW"
    assert arts["int8"].manifest["ops"].get("QuantizeLinear", 0) > 0
    result = api.compare(
        str(model_path),
        [a.path for a in arts.values()],
        degradation="noise:sigma=25",
        out_dir=tmp_path / "cmp",
    )
    clean = {o["name"]: o["psnr_vs_clean_db"] for o in result["outputs"]}
    assert result["outputs"][0]["runtime"] == "onnxruntime"
    # ORT int8 within 0.5 dB of its fp32 on the held-out photos
    assert abs(clean["blur_fp32.onnx"] - clean["blur_int8.onnx"]) <= 0.5
    pairs = {(p["a"], p["b"]): p["psnr_db"] for p in result["pairs"]}
    assert pairs[("source.onnx", "blur_fp32.onnx")] >= 60.0 and not result["flagged"]
    assert (tmp_path / "cmp" / "compare.md").exists()


def test_rtx_int8_engine_builds_from_an_onnx_model(model_path, tmp_path):
    pytest.importorskip("tensorrt_rtx", reason="tensorrt-rtx-cu12 is not installed")
    art = _export(model_path, "tensorrt", "int8", tmp_path / "blur.engine", target="rtx-desktop")
    assert art.path.exists() and art.path.stat().st_size > 10_000
    assert art.manifest["module"] == "tensorrt_rtx" and art.manifest["precision"] == "int8"
    assert art.manifest["onnx_validation"]["psnr_vs_keras_db"] >= 30.0


def test_jetson_target_gets_the_onnx_and_its_build_script(model_path, tmp_path):
    import json

    _export(model_path, "tensorrt", "int8", tmp_path / "b.engine", target="jetson-orin-nano")
    script = tmp_path / "b.engine.build.sh"
    assert script.exists() and "trtexec" in script.read_text()
    assert (tmp_path / "b.onnx").exists() and not (tmp_path / "b.engine").exists()
    record = json.loads((tmp_path / "b.engine.build.json").read_text())
    assert record["profile"]["opt"] == [1, 3, *TILE] and record["layout"] == "NCHW"
    assert record["onnx_validation"]["psnr_vs_keras_db"] >= 30.0


def test_tflite_and_compress_refuse_an_onnx_model(model_path, tmp_path):
    from edgekit import api

    with pytest.raises(EdgekitError, match=r"blur.onnx: TFLite export .* needs a Keras model"):
        _export(model_path, "tflite", "fp32", tmp_path / "b.tflite")
    with pytest.raises(EdgekitError, match=r"blur.onnx: compress needs a Keras model"):
        api.compress(
            str(model_path), target="host-cpu", degradation="noise:sigma=25", out_dir=tmp_path / "c"
        )
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("case", ["two_inputs", "custom_domain", "truncated"])
def test_bad_onnx_one_line_exit_2_nothing_written(tmp_path, case):
    bad = tmp_path / f"{case}.onnx"
    if case == "truncated":
        data = denoiser_proto().SerializeToString()
        bad.write_bytes(data[: len(data) // 2])
    else:
        # written without onnx.save's checks, as another tool might
        bad.write_bytes(denoiser_proto(**{case: True}).SerializeToString())
    pattern = {
        "two_inputs": r"two_inputs.onnx: model has 2 inputs \(x, z\); edgekit needs exactly one",
        "custom_domain": r"custom_domain.onnx: uses operators from custom domains "
        r"\(com.acme:Sharpen\); edgekit never loads custom-op libraries",
        "truncated": r"truncated.onnx: not a readable ONNX model \(truncated or corrupted\?\)",
    }[case]
    assert_export_refused(bad, ["--format", "onnx", "--precision", "int8"], pattern, tmp_path)
