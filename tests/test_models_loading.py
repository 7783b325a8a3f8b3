"""Loading users' models: formats, safety checks before deserialising, conventions, errors."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.models.loading import check_config, load_model
from edgekit.tfcompat import import_tf

tf, keras = import_tf()


def _tiny(channels=3, name="tiny"):
    keras.utils.set_random_seed(1)
    inp = keras.Input(shape=(None, None, channels))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(inp)
    x = keras.layers.Conv2D(channels, 3, padding="same", name="c2")(x)
    out = keras.layers.Add(name="res")([inp, x])
    return keras.Model(inp, out, name=name)


def _img(h=16, w=20, c=3, seed=0):
    return np.random.default_rng(seed).random((1, h, w, c), dtype=np.float32)


def test_h5_full_model_round_trip(tmp_path):
    model = _tiny()
    path = tmp_path / "m.h5"
    model.save(path)
    loaded = load_model(str(path))
    x = _img()
    np.testing.assert_allclose(loaded.model(x).numpy(), model(x).numpy(), atol=1e-6)
    info = loaded.info
    assert (info.scale, info.task, info.degradation, info.source) == (1, "restore", None, str(path))
    assert info.extra["format"] == "h5"


def test_h5_lambda_refused_without_opt_in_and_loads_with_it(tmp_path):
    inp = keras.Input(shape=(None, None, 3))
    out = keras.layers.Lambda(lambda t: t * 0.5, name="halve")(inp)
    path = tmp_path / "lam.h5"
    keras.Model(inp, out).save(path)
    with pytest.raises(EdgekitError) as e:
        load_model(str(path))
    msg = str(e.value)
    assert str(path) in msg and "'halve'" in msg and "Lambda" in msg
    assert "--allow-custom-code" in msg and "code" in msg and "\n" not in msg
    loaded = load_model(str(path), allow_custom_code=True)
    x = _img()
    np.testing.assert_allclose(loaded.model(x).numpy(), x * 0.5, atol=1e-6)
    assert loaded.info.extra["custom_code_allowed"] is True


def test_h5_lambda_code_never_runs_without_opt_in(tmp_path):
    marker = tmp_path / "ran"
    touch = eval(f"lambda t: (__import__('pathlib').Path({str(marker)!r}).touch(), t)[1]")
    inp = keras.Input(shape=(None, None, 3))
    path = tmp_path / "side_effect.h5"
    keras.Model(inp, keras.layers.Lambda(touch, name="touch")(inp)).save(path)
    marker.unlink()  # building the model above ran it once
    with pytest.raises(EdgekitError, match="'touch' is a Lambda"):
        load_model(str(path))
    assert not marker.exists()
    load_model(str(path), allow_custom_code=True)
    assert marker.exists()


def test_h5_lambda_inside_nested_model_is_found(tmp_path):
    inner_in = keras.Input(shape=(None, None, 3))
    inner = keras.Model(inner_in, keras.layers.Lambda(lambda t: t + 1.0, name="sneaky")(inner_in))
    inp = keras.Input(shape=(None, None, 3))
    path = tmp_path / "nested.h5"
    keras.Model(inp, inner(keras.layers.Conv2D(3, 1)(inp))).save(path)
    with pytest.raises(EdgekitError, match="'sneaky' is a Lambda"):
        load_model(str(path))


def test_h5_several_inputs(tmp_path):
    a = keras.Input(shape=(None, None, 3), name="a")
    b = keras.Input(shape=(None, None, 3), name="b")
    path = tmp_path / "two.h5"
    keras.Model([a, b], keras.layers.Add()([a, b])).save(path)
    with pytest.raises(EdgekitError, match=r"two.h5: model has 2 inputs \(a, b\)"):
        load_model(str(path))


def test_h5_non_image_input(tmp_path):
    inp = keras.Input(shape=(8,))
    path = tmp_path / "vec.h5"
    keras.Model(inp, keras.layers.Dense(4)(inp)).save(path)
    with pytest.raises(EdgekitError, match=r"vec.h5: input has shape \(None, 8\).*NHWC"):
        load_model(str(path))


def test_h5_wrong_channel_count(tmp_path):
    inp = keras.Input(shape=(None, None, 4))
    path = tmp_path / "rgba.h5"
    keras.Model(inp, keras.layers.Conv2D(4, 1)(inp)).save(path)
    with pytest.raises(
        EdgekitError, match=r"rgba.h5: input has shape \(None, None, None, 4\).*3 \(RGB\) or 1"
    ):
        load_model(str(path))


def test_corrupted_and_weights_only_h5(tmp_path):
    bad = tmp_path / "broken.h5"
    bad.write_bytes(b"\x89HDF\r\n" + bytes(range(200)))
    with pytest.raises(EdgekitError, match=r"broken.h5: not a readable HDF5 model file"):
        load_model(str(bad))
    weights = tmp_path / "w.h5"
    _tiny().save_weights(weights)
    with pytest.raises(EdgekitError, match=r"w.h5: holds only weights; .*model.save"):
        load_model(str(weights))


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(EdgekitError, match="nope.h5: model file not found"):
        load_model(str(tmp_path / "nope.h5"))
    other = tmp_path / "m.pt"
    other.write_bytes(b"x")
    with pytest.raises(EdgekitError, match=r"unsupported model file type '.pt'"):
        load_model(str(other))


def test_unregistered_custom_class_named(tmp_path):
    path = tmp_path / "custom.h5"
    _tiny().save(path)
    import h5py

    with h5py.File(path, "r+") as f:
        cfg = json.loads(f.attrs["model_config"])
        cfg["config"]["layers"][1]["class_name"] = "my_pkg>FancyConv"
        f.attrs["model_config"] = json.dumps(cfg)
    with pytest.raises(
        EdgekitError, match=r"layer 'c1' has class 'my_pkg>FancyConv'.*--allow-custom-code"
    ):
        load_model(str(path))
    with pytest.raises(EdgekitError, match=r"custom class.*register_keras_serializable"):
        load_model(str(path), allow_custom_code=True)


def test_tf_op_layers_checked_by_function():
    ok = [("TFOpLambda", "mul", {"function": "math.multiply"})]
    assert check_config(ok, "m.h5", allow_custom_code=False) == []
    bad = [("TFOpLambda", "w", {"function": "io.write_file"})]
    with pytest.raises(EdgekitError, match=r"layer 'w' \(TFOpLambda\) calls tf.io.write_file"):
        check_config(bad, "m.h5", allow_custom_code=False)
    rnn = [("LSTM", "seq", {})]
    with pytest.raises(EdgekitError, match=r"m.h5: layer 'seq' \(LSTM\) can't be handled"):
        check_config(rnn, "m.h5", allow_custom_code=True)


def test_keras_v2_zip_loads_and_broken_keras3_zip_refused(tmp_path):
    model = _tiny()
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = load_model(str(path))
    x = _img()
    np.testing.assert_allclose(loaded.model(x).numpy(), model(x).numpy(), atol=1e-6)

    # Keras 3 files are rebuilt (tests/test_models_keras3.py); this one has an empty weights file
    k3 = tmp_path / "k3.keras"
    with zipfile.ZipFile(k3, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.6.0", "date_saved": "x"}))
        config = {"module": "keras.src.models.functional", "class_name": "Functional"}
        inp = {
            "module": "keras.layers",
            "class_name": "InputLayer",
            "config": {"batch_shape": [None, None, None, 3], "name": "x"},
        }
        io = {"layers": [inp], "input_layers": ["x", 0, 0], "output_layers": ["x", 0, 0]}
        z.writestr("config.json", json.dumps(config | {"config": io}))
        z.writestr("model.weights.h5", b"")
    with pytest.raises(EdgekitError, match=r"k3.keras: model.weights.h5 inside the archive is"):
        load_model(str(k3))

    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a zip")
    with pytest.raises(EdgekitError, match="junk.keras: not a valid .keras archive"):
        load_model(str(junk))


def test_keras_saved_model_dir_loads(tmp_path):
    model = _tiny()
    path = tmp_path / "sm_keras"
    model.save(path, save_format="tf")
    loaded = load_model(str(path))
    x = _img()
    np.testing.assert_allclose(loaded.model(x).numpy(), model(x).numpy(), atol=1e-5)
    assert loaded.info.extra["format"] == "saved_model"


def test_plain_saved_model_signature_wrapped(tmp_path):
    class Doubler(tf.Module):
        def __init__(self):
            super().__init__()
            self.k = tf.Variable(0.5)

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="img")])
        def __call__(self, img):
            return {"restored": img * self.k}

    path = tmp_path / "sm_plain"
    m = Doubler()
    tf.saved_model.save(m, str(path), signatures=m.__call__)
    loaded = load_model(str(path))
    x = _img()
    np.testing.assert_allclose(loaded.model(x).numpy(), x * 0.5, atol=1e-6)
    assert loaded.info.scale == 1


def test_saved_model_without_serving_signature(tmp_path):
    m = tf.Module()
    m.v = tf.Variable(1.0)
    path = tmp_path / "nosig"
    tf.saved_model.save(m, str(path))
    with pytest.raises(EdgekitError, match=r"nosig: SavedModel has no serving signature"):
        load_model(str(path))
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(EdgekitError, match=r"empty_dir: a folder but not a SavedModel"):
        load_model(str(empty))


def test_saved_model_signature_with_two_inputs(tmp_path):
    class Two(tf.Module):
        @tf.function(
            input_signature=[
                tf.TensorSpec([None, None, None, 3], tf.float32, name="a"),
                tf.TensorSpec([None, None, None, 3], tf.float32, name="b"),
            ]
        )
        def __call__(self, a, b):
            return {"out": a + b}

    path = tmp_path / "two_sm"
    m = Two()
    tf.saved_model.save(m, str(path), signatures=m.__call__)
    with pytest.raises(
        EdgekitError, match=r"two_sm: signature 'serving_default' has 2 inputs \(a, b\)"
    ):
        load_model(str(path))


def test_scale_inferred_for_super_resolution(tmp_path):
    from edgekit.models.layers import layer_classes

    inp = keras.Input(shape=(None, None, 3))
    x = keras.layers.Conv2D(12, 3, padding="same")(inp)
    out = layer_classes()["DepthToSpace"](2, name="shuffle")(x)
    path = tmp_path / "sr.h5"
    keras.Model(inp, out).save(path)
    loaded = load_model(str(path))  # edgekit's own layer needs no opt-in
    assert loaded.info.scale == 2
    assert loaded.info.degradation == "downscale:factor=2"
    assert loaded.info.task == "super-resolution"
    assert loaded.model(_img(10, 14)).shape == (1, 20, 28, 3)
    with pytest.raises(
        EdgekitError, match=r"degradation 'noise:sigma=25' has scale 1 but the model's output is 2x"
    ):
        load_model(str(path), degradation="noise:sigma=25")


def test_value_range_and_grayscale_wrapped(tmp_path):
    # A grayscale model working on 0..255: y = x + 10 (in 0..255 units).
    inp = keras.Input(shape=(None, None, 1))
    out = keras.layers.Rescaling(1.0, offset=10.0)(inp)
    path = tmp_path / "gray255.h5"
    keras.Model(inp, out).save(path)
    loaded = load_model(
        str(path), value_range=(0, 255), task="denoise", degradation="noise:sigma=15"
    )
    x = _img(12, 12, 3)
    np.testing.assert_allclose(loaded.model(x).numpy(), x + 10.0 / 255.0, atol=1e-5)
    info = loaded.info
    assert info.task == "denoise" and info.degradation == "noise:sigma=15,clip=1"
    assert info.extra["native_value_range"] == [0.0, 255.0] and info.extra["per_channel"] is True
    assert info.value_range == (0.0, 1.0) and info.channels == 3


def test_zoo_spec_errors():
    with pytest.raises(EdgekitError, match=r"unknown zoo model 'nope': expected one of dncnn, "):
        load_model("zoo:nope")
    with pytest.raises(EdgekitError, match="value_range can't be overridden"):
        load_model("zoo:dncnn", value_range=(0, 255))


@pytest.mark.parametrize(
    "name,multiple,scale", [("unet_deblur", 4, 1), ("unet_demoire", 32, 1), ("espcn_x3", 1, 3)]
)
def test_zoo_architectures_saved_by_a_user_load_without_opt_in(tmp_path, name, multiple, scale):
    from edgekit.models import zoo

    model = zoo.build(name)
    path = tmp_path / f"{name}.h5"
    model.save(path)
    loaded = load_model(str(path))
    assert (loaded.info.input_multiple, loaded.info.scale) == (multiple, scale)
    assert loaded.info.to_dict()["extra"]["input_multiple"] == multiple  # what manifests record
    m = max(8, multiple)
    x = _img(2 * m, 3 * m)
    np.testing.assert_allclose(loaded.model(x).numpy(), model(x).numpy(), atol=1e-6)
