"""Channel pruning: rebuilt models are narrower, exactly equivalent when the removed filters were
dead, coupled channels (residuals, concat, pixel shuffle) stay consistent, errors name the layer."""

from __future__ import annotations

import numpy as np
import pytest
from test_compress_helpers import dncnn, espcn, images, keras, unet

from edgekit.compress.channels import prune_channels
from edgekit.errors import EdgekitError


def _x(n=2, size=16, seed=1):
    return np.random.default_rng(seed).random((n, size, size, 3)).astype(np.float32)


def _mixed_model():
    """Conv+BN+PReLU, residual Add between two convs, strided conv, Conv2DTranspose, Concatenate,
    pixel shuffle, DepthwiseConv2D: every layer kind the pruner rewrites."""
    from edgekit.models.layers import layer_classes

    k = keras()
    k.utils.set_random_seed(3)
    L = k.layers
    inp = k.Input((None, None, 3), name="image")
    a = L.Conv2D(16, 3, padding="same", name="c1")(inp)
    a = L.BatchNormalization(name="bn1")(a)
    a = L.PReLU(shared_axes=[1, 2], name="pr1")(a)
    b = L.Conv2D(16, 3, padding="same", activation="relu", name="c2")(a)
    s = L.Add(name="add")([a, b])
    d = L.Conv2D(24, 3, strides=2, padding="same", activation="relu", name="down")(s)
    u = L.Conv2DTranspose(16, 2, strides=2, padding="same", name="up")(d)
    c = L.Concatenate(name="cat")([u, s])
    c = L.DepthwiseConv2D(3, padding="same", name="dw")(c)
    e = L.Conv2D(16, 3, padding="same", name="c3")(c)
    e = L.Conv2D(12, 3, padding="same", name="c4")(e)
    sh = layer_classes()["DepthToSpace"](2, name="d2s")(e)
    out = L.Conv2D(3, 3, padding="same", name="out")(sh)
    model = k.Model(inp, out)
    rng = np.random.default_rng(0)
    bn = model.get_layer("bn1")
    g, beta, mean, var = bn.get_weights()
    bn.set_weights(
        [g + 0.3 * rng.random(16), beta + 0.1, mean + 0.2 * rng.random(16), var + rng.random(16)]
    )
    return model


def _kill(model, name, idx):
    """Make filters `idx` of `name` dead (zero kernel and bias) -> their output channels are 0."""
    layer = model.get_layer(name)
    w = layer.get_weights()
    axis = 2 if type(layer).__name__ == "Conv2DTranspose" else -1
    sl = [slice(None)] * w[0].ndim
    sl[axis] = idx
    w[0][tuple(sl)] = 0.0
    if len(w) > 1:
        w[1][idx] = 0.0
    layer.set_weights(w)


def test_ratio_zero_is_identity():
    m = _mixed_model()
    pruned, plan = prune_channels(m, 0.0)
    assert all(a == b for a, b in plan.channels().values())
    np.testing.assert_allclose(pruned(_x()).numpy(), m(_x()).numpy(), atol=1e-6)


def test_removing_dead_filters_is_exact():
    m = _mixed_model()
    dead16 = [0, 2, 3, 5, 8, 11, 12, 15]
    _kill(m, "c1", dead16)
    bn = m.get_layer("bn1")  # make the BN output of dead channels exactly 0 as well
    g, beta, mean, var = bn.get_weights()
    beta[dead16], mean[dead16] = 0.0, 0.0
    bn.set_weights([g, beta, mean, var])
    _kill(m, "c2", dead16)  # coupled with c1 through the residual Add
    _kill(m, "down", list(range(0, 24, 3)))
    _kill(m, "up", [1, 4, 6, 7, 9, 10, 13, 14])
    _kill(m, "c3", list(range(8)))
    x = _x()
    ref = m(x).numpy()
    pruned, plan = prune_channels(m, 0.5)
    ch = plan.channels()
    assert ch["c1"] == (16, 8) and ch["c2"] == (16, 8)
    assert ch["down"] == (24, 16)  # 12 rounded to a multiple of 8, ties keep more
    assert ch["up"] == (16, 8) and ch["c3"] == (16, 8)
    assert ch["out"] == (3, 3)  # feeds the model output
    assert plan.kept["c1"] == [i for i in range(16) if i not in dead16]
    assert plan.kept["c1"] == plan.kept["c2"]
    # every rebuilt tensor is narrower where it should be
    assert pruned.get_layer("cat").output.shape[-1] == 16
    assert pruned.get_layer("dw").get_weights()[0].shape[2] == 16
    assert pruned.get_layer("c4").get_weights()[0].shape[2] == 8
    np.testing.assert_allclose(pruned(x).numpy(), ref, atol=1e-5)
    assert pruned.count_params() < 0.5 * m.count_params()


def test_original_model_untouched():
    m = dncnn(width=16)
    before = [w.copy() for w in m.get_weights()]
    prune_channels(m, 0.5)
    for a, b in zip(before, m.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_dncnn_48_to_32_and_macs():
    from edgekit.models.stats import macs_per_pixel

    m = dncnn(width=48, depth=6)
    pruned, plan = prune_channels(m, 1 / 3)
    assert [plan.channels()[f"conv{i}"] for i in range(1, 6)] == [(48, 32)] * 5
    assert plan.channels()["conv6"] == (3, 3)
    assert "model input" in plan.pinned["conv6"]  # residual Add with the input pins it
    ratio = macs_per_pixel(pruned) / macs_per_pixel(m)
    assert ratio == pytest.approx((6 * 32 + 4 * 32 * 32) / (6 * 48 + 4 * 48 * 48), rel=1e-6)
    assert ratio < 0.5


@pytest.mark.parametrize(
    "round_to,floor,expect", [(8, 8, 24), (16, 8, 32), (1, 8, 24), (8, 40, 40)]
)
def test_rounding_and_floor(round_to, floor, expect):
    m = dncnn(width=48, depth=3)
    _, plan = prune_channels(m, 0.5, round_to=round_to, min_channels=floor)
    assert plan.channels()["conv1"] == (48, expect)


def test_per_layer_ratio_and_l2_and_activation():
    m = dncnn(width=16, depth=4)
    _, plan = prune_channels(m, {"conv2": 0.5}, criterion="l2")
    assert plan.channels()["conv1"] == (16, 16) and plan.channels()["conv2"] == (16, 8)
    _, plan = prune_channels(m, 0.5, criterion="activation", calib_inputs=_x(4))
    assert plan.channels()["conv1"] == (16, 8)


def test_activation_criterion_prefers_live_channels():
    m = dncnn(width=16, depth=3)
    layer = m.get_layer("conv1")
    k, b = layer.get_weights()
    b[:8] = -100.0  # ReLU kills these 8 channels on every input
    layer.set_weights([k, b])
    _, plan = prune_channels(m, 0.5, criterion="activation", calib_inputs=_x(4))
    assert plan.kept["conv1"] == list(range(8, 16))


def test_espcn_prelu_pixel_shuffle():
    m = espcn(2, width=32, mid=16)
    pruned, plan = prune_channels(m, 0.5)
    assert plan.channels()["conv1"] == (32, 16) and plan.channels()["conv2"] == (16, 8)
    assert plan.channels()["conv3"] == (
        12,
        12,
    )  # residual with the repeated input + shuffle to 3 channels
    assert pruned.get_layer("act1").get_weights()[0].shape[-1] == 16
    assert pruned(_x()).shape == (2, 32, 32, 3)


def test_unet_concat_and_transpose():
    m = unet(widths=(16, 32, 32))
    pruned, plan = prune_channels(m, 0.5)
    ch = plan.channels()
    assert ch["enc1"] == (16, 8) and ch["up2"] == (32, 16) and ch["out"] == (3, 3)
    # dec2 reads [up2 kept, down1 kept] channels from the concatenation
    assert pruned.get_layer("dec2").get_weights()[0].shape[2] == ch["up2"][1] + ch["down1"][1]
    assert pruned(_x(size=16)).shape == (2, 16, 16, 3)


def test_unknown_layer_is_pinned_and_named():
    k = keras()
    L = k.layers
    inp = k.Input((None, None, 3))
    a = L.Conv2D(16, 3, padding="same", name="c1")(inp)
    a = L.Lambda(lambda t: t[..., ::-1], name="flip")(a)
    b = L.Conv2D(16, 3, padding="same", name="c2")(a)
    out = L.Conv2D(3, 3, padding="same", name="c3")(b)
    m = k.Model(inp, out)
    pruned, plan = prune_channels(m, 0.5)
    assert plan.channels()["c1"] == (16, 16) and plan.channels()["c2"] == (16, 8)
    assert "flip" in plan.pinned["c1"] and "Lambda" in plan.pinned["c1"]
    np.testing.assert_allclose(
        pruned.get_layer("c1").get_weights()[0], m.get_layer("c1").get_weights()[0]
    )
    with pytest.raises(
        EdgekitError, match=r"layer 'c1' \(Conv2D\) cannot be pruned: .*'flip' \(Lambda\)"
    ):
        prune_channels(m, {"c1": 0.5})


def test_bad_layer_names():
    m = dncnn()
    with pytest.raises(EdgekitError, match="has no layer 'conv9'.*prunable layers: conv1"):
        prune_channels(m, {"conv9": 0.5})
    with pytest.raises(EdgekitError, match="layer 'clip01' \\(ReLU\\) has no filters"):
        prune_channels(m, {"clip01": 0.5})
    with pytest.raises(
        EdgekitError, match="layer 'conv4' \\(Conv2D\\) cannot be pruned.*model input"
    ):
        prune_channels(m, {"conv4": 0.5})


def test_nothing_prunable():
    k = keras()
    inp = k.Input((None, None, 3))
    m = k.Model(inp, k.layers.Conv2D(3, 3, padding="same", name="only")(inp))
    with pytest.raises(EdgekitError, match="no prunable filters"):
        prune_channels(m, 0.5)


@pytest.mark.slow
def test_finetune_recovers_quality():
    """Prune a trained tiny denoiser by half, fine-tune: PSNR must come back up toward the original."""
    from edgekit.compress.finetune import fit_pairs
    from edgekit.data.degradations import parse
    from edgekit.data.patches import degraded_tiles, make_pairs
    from edgekit.metrics import mean_psnr
    from edgekit.models.predict import predict

    ims = images(5)
    deg = parse("noise:sigma=25")
    xs, ys = make_pairs(ims[:4], deg, 32, 256, seed=0)
    vx, vy = degraded_tiles(ims[4:], deg, (64, 64), per_image=2)
    m = dncnn(width=16, depth=4)
    fit_pairs(m, xs, ys, steps=200, lr=2e-3, batch=16, progress=False)
    base = mean_psnr(predict(m, vx), vy)
    noisy = mean_psnr(vx, vy)
    assert base > noisy + 3.0
    pruned, _ = prune_channels(m, 0.5)
    cut = mean_psnr(predict(pruned, vx), vy)
    res = fit_pairs(pruned, xs, ys, steps=100, lr=1e-3, batch=16, val=(vx, vy), progress=False)
    tuned = mean_psnr(predict(pruned, vx), vy)
    assert res.best_psnr_db == pytest.approx(tuned, abs=1e-3)  # best weights restored
    assert tuned >= cut
    # measured: noisy 20.3, trained 29.7, pruned 20.3, fine-tuned 26.8 dB
    assert tuned > cut + 4.0
    assert tuned > noisy + 5.0


def test_pixel_shuffle_groups_pruned_together_reproduce_the_outputs():
    """A conv feeding DepthToSpace(2): output channel c of the shuffle is made of the conv's
    filters c, c + C, c + 2C, c + 3C (C = 8 here). Kill half the shuffle channels (all four of
    their filters) and prune: the kept filters must be exactly the live groups and the pruned
    model must reproduce the original's outputs; the conv after the shuffle loses the same
    input channels."""
    from edgekit.models.layers import layer_classes

    k = keras()
    k.utils.set_random_seed(5)
    L = k.layers
    inp = k.Input((None, None, 3))
    x = L.Conv2D(16, 3, padding="same", activation="relu", name="c1")(inp)
    x = L.Conv2D(32, 3, padding="same", name="pre")(x)
    x = layer_classes()["DepthToSpace"](2, name="shuffle")(x)
    out = L.Conv2D(3, 3, padding="same", name="post")(x)
    m = k.Model(inp, out)
    dead_channels = [1, 3, 4, 6]
    dead = sorted(c + 8 * b for c in dead_channels for b in range(4))
    _kill(m, "pre", dead)
    x = _x()
    ref = m(x).numpy()
    pruned, plan = prune_channels(m, {"pre": 0.5}, round_to=1, min_channels=1)
    assert plan.channels()["pre"] == (32, 16)
    assert plan.kept["pre"] == [i for i in range(32) if i not in dead]
    live = [c for c in range(8) if c not in dead_channels]
    np.testing.assert_array_equal(
        pruned.get_layer("post").get_weights()[0], m.get_layer("post").get_weights()[0][:, :, live]
    )
    assert pruned(x).shape == (2, 32, 32, 3)
    np.testing.assert_allclose(pruned(x).numpy(), ref, atol=1e-5)
