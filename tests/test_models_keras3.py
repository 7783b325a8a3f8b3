"""Keras 3 `.keras` files: rebuilt as tf_keras models with parity to Keras 3's own outputs on real
photos, exported to full-int8 TFLite and ONNX, compressed, and bad files refused in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from cli_checks import assert_export_refused

from edgekit.errors import EdgekitError
from edgekit.metrics import psnr
from edgekit.models.loading import load_model

HERE = Path(__file__).parent
# name -> (scale, input multiple)
MODELS = {
    "ca_denoiser": (1, 1),
    "unet": (1, 4),
    "sr_shuffle": (2, 1),
    "sr_tconv": (2, 1),
    "layer_zoo": (1, 2),
    "nested": (1, 1),
    "sequential": (1, 1),
}


def _keras3_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["CUDA_VISIBLE_DEVICES"] = ""
    return env


@pytest.fixture(scope="session")
def k3(tmp_path_factory):
    """All Keras 3 fixtures, built once per session in a Keras 3 subprocess: (folder, inputs).

    Inputs are 64x96 crops of three held-out calibration photos."""
    from edgekit.data.images import load_folder, split_holdout
    from edgekit.paths import calibration_dir

    _, held = split_holdout(load_folder(calibration_dir()))
    crops = []
    for im in held[:3]:
        h, w = im.pixels.shape[:2]
        crops.append(im.pixels[h // 2 - 32 : h // 2 + 32, w // 2 - 48 : w // 2 + 48])
    inputs = np.stack(crops).astype(np.float32)
    folder = tmp_path_factory.mktemp("keras3")
    np.save(folder / "inputs.npy", inputs)
    r = subprocess.run(
        [sys.executable, str(HERE / "keras3_build.py"), str(folder), str(folder / "inputs.npy")],
        env=_keras3_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return folder, inputs


def _inputs_for(name, inputs):
    return inputs[:, :64, :64] if name == "sequential" else inputs


@pytest.mark.parametrize("name", list(MODELS))
def test_rebuilt_model_matches_keras3_on_real_photos(k3, name):
    folder, inputs = k3
    loaded = load_model(str(folder / f"{name}.keras"))
    x = _inputs_for(name, inputs)
    ref = np.load(folder / f"{name}.out.npy")
    got = loaded.model(x, training=False).numpy()
    assert got.shape == ref.shape
    assert psnr(got, ref) >= 60.0
    # the network does something: a weight in the wrong slot would show
    scale, multiple = MODELS[name]
    base = np.repeat(np.repeat(x, scale, axis=1), scale, axis=2)
    assert psnr(ref, base) < 40.0
    info = loaded.info
    assert info.extra["format"] == "keras3"
    assert (info.scale, info.input_multiple) == (scale, multiple)
    if name == "sequential":
        assert info.extra["fixed_input_hw"] == [64, 64]


def test_layer_zoo_uses_every_promised_layer(k3):
    folder, _ = k3
    config = json.loads(zipfile.ZipFile(folder / "layer_zoo.keras").read("config.json"))
    layers = config["config"]["layers"]
    classes = {e["class_name"] for e in layers}
    promised = {
        "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose", "Dense",
        "BatchNormalization", "LayerNormalization", "ReLU", "LeakyReLU", "PReLU", "Activation",
        "Add", "Subtract", "Multiply", "Average", "Maximum", "Concatenate", "UpSampling2D",
        "ZeroPadding2D", "Cropping2D", "AveragePooling2D", "MaxPooling2D",
        "GlobalAveragePooling2D", "Rescaling", "Dropout", "Identity",
    }  # fmt: skip
    assert promised <= classes, promised - classes
    acts = {e["config"]["activation"] for e in layers if e["class_name"] == "Activation"}
    assert {"gelu", "silu", "hard_sigmoid", "softplus", "tanh", "sigmoid", "relu"} <= acts
    ups = {e["config"]["interpolation"] for e in layers if e["class_name"] == "UpSampling2D"}
    assert ups == {"nearest"}  # bilinear: unet and sr_tconv
    relu6 = [e for e in layers if e["class_name"] == "ReLU" and e["config"]["max_value"] == 6.0]
    assert relu6


def test_keras3_hard_sigmoid_is_not_tf_keras_hard_sigmoid(k3):
    """Keras 3's hard_sigmoid is relu6(x + 3) / 6; tf_keras' is clip(0.2 x + 0.5)."""
    folder, inputs = k3
    loaded = load_model(str(folder / "layer_zoo.keras"))
    names = [layer.name for layer in loaded.model.layers]
    assert any(n.endswith("_affine") for n in names)  # the translated hard_sigmoid


@pytest.mark.parametrize(
    "name,fmt,precision,floor_db",
    [
        ("ca_denoiser", "tflite", "int8", 30.0),  # full integer
        ("layer_zoo", "tflite", "fp32", 60.0),  # every translated layer converts
        ("unet", "onnx", "fp32", 60.0),
    ],
)
def test_export_of_a_keras3_model_matches_keras3(k3, tmp_path, name, fmt, precision, floor_db):
    from edgekit import api
    from edgekit.runtimes.base import runner_for

    folder, inputs = k3
    out = tmp_path / f"{name}.{fmt}"
    art = api.export(
        str(folder / f"{name}.keras"),
        format=fmt,
        precision=precision,
        shape=(64, 96),
        degradation="noise:sigma=25",
        out=out,
    )
    assert out.exists() and art.manifest["precision"] == precision
    got = runner_for(str(out), threads=2).run(inputs)
    assert psnr(got, np.load(folder / f"{name}.out.npy")) >= floor_db


@pytest.mark.parametrize("name", ["ca_denoiser", "nested"])
def test_h5_saved_by_keras3_is_rebuilt(k3, name):
    folder, inputs = k3
    loaded = load_model(str(folder / f"{name}.h5"))
    assert loaded.info.extra["format"] == "keras3_h5"
    got = loaded.model(inputs, training=False).numpy()
    assert psnr(got, np.load(folder / f"{name}.out.npy")) >= 60.0


def test_keras3_savedmodel_export_still_loads(k3):
    folder, inputs = k3
    loaded = load_model(str(folder / "ca_denoiser_savedmodel"))
    assert loaded.info.extra["format"] == "saved_model"
    got = loaded.model(inputs, training=False).numpy()
    assert psnr(got, np.load(folder / "ca_denoiser.out.npy")) >= 60.0


@pytest.mark.slow
def test_default_plan_compresses_a_keras3_model(k3):
    """The target's default plan (prune channels -> distil), a few steps each, then QAT."""
    from edgekit.compress import run_plan
    from edgekit.config import load_target, plan_from_dict
    from edgekit.data.images import load_folder
    from edgekit.paths import calibration_dir

    folder, _ = k3
    loaded = load_model(str(folder / "unet.keras"), degradation="noise:sigma=25")
    default = load_target("host-cpu").plan
    steps = [
        s.model_dump(exclude_none=True) | {"steps": 4, "patch": 32}
        | ({"eval_every": 2} if s.kind == "distill" else {})
        for s in default.steps
    ]  # fmt: skip
    steps.append({"kind": "qat", "steps": 4, "patch": 32})
    plan = plan_from_dict({"name": "short-default", "steps": steps})
    images = load_folder(calibration_dir())[:6]
    out, rows = run_plan(loaded, plan, calib_images=images, progress=False)
    assert [r["kind"] for r in rows] == ["prune_channels", "distill", "qat"]
    assert rows[0]["macs_per_pixel_after"] < 0.7 * rows[0]["macs_per_pixel_before"]
    assert any(type(layer).__name__ == "QuantizeWrapperV2" for layer in out.model.layers)


# ----------------------------------------------------------------------------- bad input


def _rewrite(src: Path, dst: Path, drop=(), replace=None) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.namelist():
            if item in drop:
                continue
            data = (replace or {}).get(item) or zin.read(item)
            zout.writestr(item, data)
    return dst


def _bad_files(folder: Path, tmp: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, regex the one-line message must match)."""
    ca = folder / "ca_denoiser.keras"
    truncated = tmp / "truncated.keras"
    truncated.write_bytes(ca.read_bytes()[: ca.stat().st_size // 2])
    unet_weights = zipfile.ZipFile(folder / "unet.keras").read("model.weights.h5")
    return {
        "no_config": (
            _rewrite(ca, tmp / "no_config.keras", drop=("config.json",)),
            r"no_config.keras: .keras archive without config.json",
        ),
        "lambda": (
            folder / "with_lambda.keras",
            r"with_lambda.keras: layer 'halve' \(Lambda\): a Lambda layer is Python code",
        ),
        "custom": (
            folder / "with_custom.keras",
            r"with_custom.keras: layer 'gain' \(Gain\): a custom class \('acme>Gain'",
        ),
        "wrong_weights": (
            _rewrite(ca, tmp / "wrong_weights.keras", replace={"model.weights.h5": unet_weights}),
            r"wrong_weights.keras: layer 'b0_c1' \(Conv2D\): model.weights.h5 layers/conv2d_1 "
            r"holds 2 arrays \[\(3, 3, 16, 24\), \(24,\)\] but the config needs 2 "
            r"\[\(3, 3, 16, 16\), \(16,\)\]; the weights do not belong",
        ),
        "truncated": (truncated, r"truncated.keras: not a valid .keras archive"),
    }


@pytest.mark.parametrize("case", ["no_config", "lambda", "custom", "wrong_weights", "truncated"])
def test_bad_keras3_file_one_line_exit_2_nothing_written(k3, tmp_path, case):
    folder, _ = k3
    path, pattern = _bad_files(folder, tmp_path)[case]
    args = ["--format", "tflite", "--precision", "fp32", "--degradation", "noise:sigma=25"]
    assert_export_refused(path, args, pattern, tmp_path)


def test_allow_custom_code_does_not_run_keras3_code(k3):
    folder, _ = k3
    with pytest.raises(EdgekitError, match=r"--allow-custom-code can't help.*model.export"):
        load_model(str(folder / "with_lambda.keras"), allow_custom_code=True)


def test_unsupported_keras3_layer_named(k3, tmp_path):
    folder, _ = k3
    ca = folder / "ca_denoiser.keras"
    config = json.loads(zipfile.ZipFile(ca).read("config.json"))
    config["config"]["layers"][1]["class_name"] = "ConvLSTM2D"
    bad = _rewrite(ca, tmp_path / "lstm.keras", replace={"config.json": json.dumps(config)})
    with pytest.raises(EdgekitError) as e:
        load_model(str(bad))
    msg = str(e.value)
    assert "lstm.keras: layer 'head' (ConvLSTM2D): a Keras 3 layer edgekit's converter" in msg
    assert "\n" not in msg
