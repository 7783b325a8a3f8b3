"""LiteRT runner: loading, delegates, int8 I/O (de)quantization, shapes, errors."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.runtimes.base import RunnerError, runner_for
from edgekit.runtimes.litert import LiteRTRunner


def _convert(tmp_path, name, shape, int8_io=False):
    """A small conv net converted directly with TFLiteConverter (independent of the exporter)."""
    from edgekit.tfcompat import import_tf

    tf, keras = import_tf()
    tf.random.set_seed(3)
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    out = keras.layers.Conv2D(3, 3, padding="same")(x)
    model = keras.Model(inp, out)
    spec = tf.TensorSpec([1, *shape, 3], tf.float32)
    fn = tf.function(lambda t: model(t, training=False), input_signature=[spec])
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], model)
    if int8_io:
        rng = np.random.default_rng(0)

        def rep():
            for _ in range(8):
                yield [rng.random((1, *shape, 3), dtype=np.float32)]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    path = tmp_path / name
    path.write_bytes(conv.convert())
    return model, path


@pytest.fixture(scope="module")
def fixed(tmp_path_factory):
    return _convert(tmp_path_factory.mktemp("rt"), "fixed.tflite", (16, 16))


@pytest.fixture(scope="module")
def dynamic(tmp_path_factory):
    return _convert(tmp_path_factory.mktemp("rt"), "dyn.tflite", (None, None))


def _x(n=3, h=16, w=16, seed=0):
    return np.random.default_rng(seed).random((n, h, w, 3), dtype=np.float32)


def test_runner_for_picks_litert_and_matches_keras(fixed):
    model, path = fixed
    runner = runner_for(str(path), threads=2)
    assert isinstance(runner, LiteRTRunner)
    assert runner.input_shape == (1, 16, 16, 3)
    x = _x()
    y = runner.run(x)
    assert y.shape == (3, 16, 16, 3) and y.dtype == np.float32
    np.testing.assert_allclose(y, np.asarray(model(x)), atol=1e-4)
    assert runner.delegate_used == "xnnpack"


def test_versions_report_litert():
    import ai_edge_litert

    from edgekit.runtimes.litert import import_litert

    assert import_litert()[2] == ai_edge_litert.__version__


def test_versions_of_a_runner(fixed):
    import ai_edge_litert

    assert LiteRTRunner(str(fixed[1])).versions()["litert"] == ai_edge_litert.__version__


def test_xnnpack_off_gives_the_same_numbers(fixed):
    _, path = fixed
    x = _x()
    plain = LiteRTRunner(str(path), delegate="none")
    assert plain.delegate_used.startswith("none")
    np.testing.assert_allclose(plain.run(x), LiteRTRunner(str(path)).run(x), atol=1e-4)


@pytest.mark.parametrize("delegate", ["gpu", "nnapi"])
def test_device_delegates_fall_back_to_cpu_on_the_host(fixed, delegate):
    _, path = fixed
    runner = LiteRTRunner(str(path), delegate=delegate)
    assert runner.delegate_used.startswith("xnnpack (CPU fallback")
    assert delegate in runner.delegate_used
    np.testing.assert_allclose(runner.run(_x(1)), LiteRTRunner(str(path)).run(_x(1)), atol=1e-5)


def test_unknown_delegate(fixed):
    with pytest.raises(RunnerError, match="unknown delegate 'tpu'"):
        LiteRTRunner(str(fixed[1]), delegate="tpu")


def test_fixed_tile_rejects_other_sizes(fixed):
    with pytest.raises(
        RunnerError, match=r"fixed 16x16x3 input, got 20x16x3; cut the image into tiles"
    ):
        LiteRTRunner(str(fixed[1])).run(_x(1, 20, 16))


def test_dynamic_model_is_resized_per_input(dynamic):
    model, path = dynamic
    runner = LiteRTRunner(str(path))
    assert runner.input_shape == (1, None, None, 3)
    for h, w in ((16, 24), (40, 8), (16, 24)):
        x = _x(2, h, w, seed=h)
        np.testing.assert_allclose(runner.run(x), np.asarray(model(x)), atol=1e-4)


def test_int8_io_is_quantized_and_dequantized(tmp_path):
    model, path = _convert(tmp_path, "q.tflite", (16, 16), int8_io=True)
    runner = LiteRTRunner(str(path))
    assert runner.input_dtype == "int8" and runner.output_dtype == "int8"
    x = _x(2)
    y = runner.run(x)
    assert y.dtype == np.float32
    ref = np.asarray(model(x))
    # int8 output quantization: within a few output steps of the float model
    scale = runner._out["quantization"][0]
    assert np.mean(np.abs(y - ref)) < 3 * scale
    assert np.corrcoef(y.ravel(), ref.ravel())[0, 1] > 0.99


def test_unloadable_file_is_named(tmp_path):
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(b"this is not a flatbuffer" * 10)
    with pytest.raises(RunnerError, match=r"broken\.tflite: LiteRT cannot load this file"):
        LiteRTRunner(str(bad))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(RunnerError, match=r"nope\.tflite: no such \.tflite file"):
        runner_for(str(tmp_path / "nope.tflite"))


def test_wrong_channel_count(fixed):
    with pytest.raises(
        RunnerError,
        match=r"fixed\.tflite: expected NHWC input with 3 channels, got shape \(1, 16, 16, 4\)",
    ):
        LiteRTRunner(str(fixed[1])).run(np.zeros((1, 16, 16, 4), np.float32))
