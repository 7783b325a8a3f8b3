"""Zoo architectures, their cost figures, training mechanics, and the shipped weights."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.data.images import Image, load_folder
from edgekit.errors import EdgekitError
from edgekit.models import zoo
from edgekit.models.loading import load_model
from edgekit.models.stats import count_params, macs_per_pixel
from edgekit.paths import calibration_dir
from edgekit.tfcompat import import_tf

tf, keras = import_tf()

# Each trained model must clearly beat its degraded input (issue 2 / issue 3).
MIN_GAIN_DB = {"dncnn": 7.0, "unet_deblur": 3.0, "unet_deshadow": 3.0, "unet_demoire": 3.0}


@pytest.mark.parametrize("name", zoo.names())
def test_builds_and_runs_at_two_sizes(name):
    entry = zoo.get(name)
    model = zoo.build(name)
    rng = np.random.default_rng(0)
    m = max(entry.input_multiple, 8)
    for h, w in [(2 * m, 3 * m), (5 * m, 4 * m)]:  # two sizes, neither square nor equal
        y = model(rng.random((1, h, w, 3), dtype=np.float32)).numpy()
        assert y.shape == (1, h * entry.scale, w * entry.scale, 3)
        assert y.dtype == np.float32 and y.min() >= 0.0 and y.max() <= 1.0
    assert all(w % 16 == 0 for w in _hidden_widths(model)), (
        "hidden channel counts must be multiples of 16"
    )


def _hidden_widths(model):
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    return [layer.filters for layer in convs[:-1] if layer.filters > 3 * 9]


def test_dncnn_shape_and_cost_match_the_design():
    model = zoo.build("dncnn")
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 12 and [c.filters for c in convs[:-1]] == [48] * 11
    # 3x3 convs: 3->48, 10 x 48->48, 48->3; per output pixel (same size in and out).
    expected_macs = 9 * (3 * 48 + 10 * 48 * 48 + 48 * 3)
    assert macs_per_pixel(model) == expected_macs
    expected_params = expected_macs + 11 * 48 + 3  # weights + biases
    assert count_params(model) == expected_params == model.count_params()
    narrow = zoo.build("dncnn", width=32)
    assert macs_per_pixel(narrow) == 9 * (3 * 32 + 10 * 32 * 32 + 32 * 3)


def test_espcn_macs_are_per_high_resolution_pixel():
    model = zoo.build("espcn_x3")
    lr_macs = 25 * 3 * 64 + 9 * 64 * 32 + 9 * 32 * 27  # per low-resolution pixel
    assert macs_per_pixel(model) == pytest.approx(lr_macs / 9)
    assert any(isinstance(layer, keras.layers.PReLU) for layer in zoo.build("espcn_x2").layers)


def test_unet_has_the_trap_layers_and_needs_multiples_of_4():
    model = zoo.build("unet_deblur")
    kinds = {type(layer).__name__ for layer in model.layers}
    assert {"Conv2DTranspose", "Concatenate", "Add", "ReLU"} <= kinds
    assert any(getattr(layer, "strides", (1, 1)) == (2, 2) for layer in model.layers)
    assert zoo.get("unet_deblur").input_multiple == 4


def test_input_size_check_names_the_multiple():
    from edgekit.models.loading import check_input_size
    from edgekit.models.train import _zoo_info

    info = _zoo_info(zoo.get("unet_deblur"))
    check_input_size(info, 256, 128)
    with pytest.raises(
        EdgekitError,
        match=r"'unet_deblur' \(zoo:unet_deblur\) needs .* multiples of 4, got 250x128",
    ):
        check_input_size(info, 250, 128)


def test_unknown_name_lists_known_ones():
    with pytest.raises(
        EdgekitError, match=r"unknown zoo model 'dcnn': expected one of dncnn, espcn_x2"
    ):
        zoo.get("dcnn")


def test_table_rows():
    rows = zoo.table()
    assert [r["name"] for r in rows] == zoo.names()
    for r in rows:
        entry = zoo.get(r["name"])
        assert r["trained"] == entry.weights_path.exists()
        assert r["params"] > 0 and r["macs_per_pixel"] > 0
        if r["trained"]:
            assert (
                r["psnr_db"] > r["degraded_psnr_db"]
                and 0 < r["ssim"] <= 1
                and r["train_seconds"] > 0
            )


def _tiny_images():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    ims = []
    for i in range(5):
        base = np.stack([np.sin(xx * (i + 2)), np.cos(yy * (i + 1)), xx * yy], -1) * 0.4 + 0.5
        ims.append(
            Image(
                f"t{i}.png",
                np.clip(base + rng.normal(0, 0.02, base.shape), 0, 1).astype(np.float32),
            )
        )
    return ims[:4], ims[4:]


@pytest.mark.slow
def test_train_writes_weights_and_metrics_and_is_deterministic(tmp_path):
    from edgekit.models.train import train

    images = _tiny_images()
    a = train("dncnn", steps=3, seed=5, out_dir=tmp_path / "a", images=images, progress=False)
    b = train("dncnn", steps=3, seed=5, out_dir=tmp_path / "b", images=images, progress=False)
    for key in ("psnr_db", "ssim", "degraded_psnr_db", "steps", "seed", "train_seconds", "machine"):
        assert key in a
    assert a["steps"] == 3 and a["seed"] == 5 and a["psnr_db"] == b["psnr_db"]
    ma, mb = zoo.build("dncnn"), zoo.build("dncnn")
    ma.load_weights(str(tmp_path / "a" / "dncnn.weights.h5"))
    mb.load_weights(str(tmp_path / "b" / "dncnn.weights.h5"))
    for wa, wb in zip(ma.get_weights(), mb.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert not list((tmp_path / "a").glob(".*tmp*")), "no temporary files left behind"
    from tensorflow.python.framework import config as tf_config

    assert not tf_config.is_op_determinism_enabled(), "train() must restore op determinism"


@pytest.mark.slow
def test_zoo_train_cli_writes_to_out_and_leaves_shipped_weights_alone(tmp_path, monkeypatch):
    from edgekit.cli import main
    from edgekit.models import train as train_mod

    monkeypatch.setattr(train_mod, "calibration_split", _tiny_images)
    shipped = zoo.get("dncnn").weights_path
    before = shipped.read_bytes()
    out = tmp_path / "scratch"
    assert main(["zoo", "train", "dncnn", "--steps", "2", "--out", str(out)]) == 0
    assert (out / "dncnn.weights.h5").stat().st_size > 0
    assert json.loads((out / "dncnn.json").read_text())["steps"] == 2
    assert shipped.read_bytes() == before


def test_evaluate_draws_average_the_single_draws():
    from edgekit.models.train import evaluate

    loaded = load_model("zoo:dncnn")
    images = _tiny_images()[0][:2]
    one = [evaluate(loaded, images, seed=s) for s in (3, 4)]
    both = evaluate(loaded, images, seed=3, draws=2)
    assert both["draws"] == 2 and one[0]["draws"] == 1
    for k in range(2):
        row = both["per_image"][k]
        assert [d["seed"] for d in row["draws"]] == [3, 4]
        assert row["psnr_db"] == pytest.approx(np.mean([o["per_image"][k]["psnr_db"] for o in one]))
    # noise draws differ, so the per-draw figures do too
    assert one[0]["degraded_psnr_db"] != one[1]["degraded_psnr_db"]
    with pytest.raises(EdgekitError, match="draws must be at least 1"):
        evaluate(loaded, images, draws=0)


@pytest.mark.slow
def test_reevaluate_rewrites_only_the_evaluation(tmp_path, monkeypatch):
    from edgekit.models import train as train_mod

    monkeypatch.setattr(train_mod, "calibration_split", _tiny_images)
    recorded = zoo.get("dncnn").metrics()
    new = train_mod.reevaluate("dncnn", out_dir=tmp_path)
    written = json.loads((tmp_path / "dncnn.json").read_text())
    assert written == new
    assert new["eval_draws"] == train_mod.EVAL_DRAWS and len(new["per_image"][0]["draws"]) == 5
    assert new["held_out"] == ["t4.png"] and new["evaluated"].startswith("re-evaluated ")
    for key in ("steps", "train_seconds", "loss_curve", "train_config", "params"):
        assert new[key] == recorded[key]


def test_train_rejects_bad_steps():
    from edgekit.models.train import train

    with pytest.raises(EdgekitError, match="steps must be at least 1"):
        train("dncnn", steps=0, images=_tiny_images(), progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo.names())
def test_shipped_weights_reproduce_recorded_psnr(name):
    from edgekit.models.train import evaluate

    entry = zoo.get(name)
    if not entry.trained:
        pytest.fail(f"zoo model {name} has no shipped weights at {entry.weights_path}")
    recorded = entry.metrics()
    fixed = recorded["fixed_set"]
    by_name = {im.name: im for im in load_folder(calibration_dir())}
    images = [by_name[n] for n in fixed["images"]]
    got = evaluate(load_model(f"zoo:{name}"), images, crop=fixed["crop"], seed=fixed["seed"])
    assert got["psnr_db"] == pytest.approx(fixed["psnr_db"], abs=0.1)
    assert got["degraded_psnr_db"] == pytest.approx(fixed["degraded_psnr_db"], abs=0.01)


@pytest.mark.parametrize("name", zoo.names())
def test_recorded_quality_meets_the_bar(name):
    """Held-out result in the shipped JSON: SR beats bicubic, others gain MIN_GAIN_DB or more."""
    entry = zoo.get(name)
    recorded = entry.metrics()
    assert recorded is not None, f"zoo model {name} has no recorded metrics"
    from edgekit.models.train import EVAL_DRAWS

    assert recorded.get("eval_draws") == EVAL_DRAWS, "recorded on the current evaluation"
    if entry.scale > 1:
        assert recorded["psnr_db"] > recorded["degraded_psnr_db"], "SR must beat bicubic"
    else:
        assert recorded["psnr_db"] - recorded["degraded_psnr_db"] >= MIN_GAIN_DB[name]


def test_image_scale_pairs_are_aligned_and_seeded():
    from edgekit.data.degradations import parse
    from edgekit.data.patches import image_scale_pairs

    images, _ = _tiny_images()
    shadow = parse("shadow")
    xs, ys = image_scale_pairs(images, shadow, 32, 24, seed=1)
    xs2, ys2 = image_scale_pairs(images, shadow, 32, 24, seed=1)
    np.testing.assert_array_equal(xs, xs2)
    np.testing.assert_array_equal(ys, ys2)
    assert xs.shape == ys.shape == (24, 32, 32, 3)
    # a shadow only darkens: the degraded patch is the clean one times a factor <= 1, same place
    # (up to rounding the result to 8 bits)
    assert np.all(xs <= ys + 0.5 / 255 + 1e-6) and (xs < ys - 0.05).any()
    assert not np.array_equal(image_scale_pairs(images, shadow, 32, 24, seed=2)[0], xs)
    with pytest.raises(EdgekitError, match="same-size degradation"):
        image_scale_pairs(images, parse("downscale:factor=2"), 16, 4, seed=0)


def test_image_scale_pairs_clean_share():
    from edgekit.data.degradations import parse
    from edgekit.data.patches import image_scale_pairs

    images, _ = _tiny_images()
    shadow = parse("shadow")
    plain = image_scale_pairs(images, shadow, 32, 40, seed=1, per_chunk=8)
    # share 0 draws nothing extra: existing recipes get exactly the pairs they had
    np.testing.assert_array_equal(
        image_scale_pairs(images, shadow, 32, 40, seed=1, per_chunk=8, clean_share=0.0)[0],
        plain[0],
    )
    xs, ys = image_scale_pairs(images, shadow, 32, 40, seed=1, per_chunk=8, clean_share=0.5)
    untouched = np.all(xs == ys, axis=(1, 2, 3))
    # a patch can miss a shadow by chance; a clean share of one half leaves many more untouched
    assert untouched.sum() > np.all(plain[0] == plain[1], axis=(1, 2, 3)).sum() + 8
    assert 0 < untouched.sum() < len(xs)


def test_photometric_jitter_is_seeded_and_stays_in_range():
    from edgekit.data.patches import photometric_jitter

    img = np.random.default_rng(0).random((32, 48, 3), dtype=np.float32)
    a = photometric_jitter(img, np.random.default_rng(1))
    b = photometric_jitter(img, np.random.default_rng(1))
    c = photometric_jitter(img, np.random.default_rng(2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.dtype == np.float32 and a.min() >= 0.0 and a.max() <= 1.0
    assert np.abs(a - img).mean() > 0.01  # re-lit, not a no-op
    # chosen ranges: a fixed exposure of 0.3 and neutral gain darkens by exactly that (gamma aside)
    dark = photometric_jitter(img, np.random.default_rng(1), gain=(1, 1), exposure=(0.3, 0.3))
    assert dark.max() <= 0.3 + 1e-6 and dark.mean() < 0.5 * img.mean()


def test_illumination_ramp_is_smooth_and_spans_the_frame():
    """The ramp darkens one side of the frame to the drawn factor and the other not at all, with
    no step anywhere (unlike a shadow's few-pixel penumbra); without `ramp` jitter is unchanged."""
    from edgekit.data.patches import illumination_ramp, photometric_jitter

    field = illumination_ramp(np.random.default_rng(3), 64, 96, (0.25, 0.5))
    assert field.shape == (64, 96, 3)
    assert field.max() == pytest.approx(1.0, abs=1e-6)
    assert 0.25 - 1e-6 <= field.min() and field.reshape(-1, 3).min(0).max() <= 0.5 + 1e-6
    steps = max(np.abs(np.diff(field, axis=0)).max(), np.abs(np.diff(field, axis=1)).max())
    assert steps < 0.05  # about (1 - 0.25) / 96 per pixel at most, never a hard edge
    img = np.full((64, 96, 3), 0.5, np.float32)
    plain = photometric_jitter(img, np.random.default_rng(5))
    assert np.ptp(plain[..., 0]) == 0.0  # no ramp asked: a flat photo stays flat
    ramped = [photometric_jitter(img, np.random.default_rng(s), ramp=(0.25, 0.5)) for s in range(8)]
    lit = [r for r in ramped if np.ptp(r[..., 1]) > 0.05]
    assert 0 < len(lit) < 8  # about half the photos get a ramp


def test_image_scale_degradations_tile_from_the_whole_photo():
    """Validation/calibration tiles of a shadow are cut from the shadowed whole photo (the
    pattern at full-photo scale), not from a shadow drawn inside each small tile."""
    from edgekit.data.degradations import parse
    from edgekit.data.patches import degraded_tiles

    images, _ = _tiny_images()
    shadow = parse("shadow")
    assert shadow.image_scale and not parse("noise").image_scale
    xs, ys = degraded_tiles(images[:2], shadow, (32, 32), per_image=1, seed=4)
    whole, _ = shadow(images[0].pixels, seed=4 * 7919)
    np.testing.assert_array_equal(xs[0], whole[16:48, 16:48])
    np.testing.assert_array_equal(ys[0], images[0].pixels[16:48, 16:48])
