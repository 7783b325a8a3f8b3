"""Magnitude and 2:4 pruning through run_plan: sparsity reached per layer, compressed size,
quality kept, the m:n pattern really holds."""

from __future__ import annotations

import numpy as np
import pytest
from test_compress_helpers import dncnn, images

from edgekit.compress.plan import run_plan
from edgekit.compress.prune import blocks_ok, m_by_n_ok
from edgekit.config import plan_from_dict
from edgekit.models.info import LoadedModel, ModelInfo


@pytest.fixture(scope="module")
def trained():
    from edgekit.compress.finetune import fit_pairs
    from edgekit.data.degradations import parse
    from edgekit.data.patches import make_pairs

    ims = images(5)
    m = dncnn(width=16, depth=4)
    xs, ys = make_pairs(ims[:4], parse("noise:sigma=25"), 32, 256, seed=0)
    fit_pairs(m, xs, ys, steps=150, lr=2e-3, batch=16, progress=False)
    return LoadedModel(m, ModelInfo("tiny", "denoise", "noise:sigma=25")), ims


@pytest.mark.slow
def test_magnitude_50(trained):
    loaded, ims = trained
    before = [w.copy() for w in loaded.model.get_weights()]
    plan = plan_from_dict(
        [{"kind": "prune_magnitude", "sparsity": 0.5, "steps": 60, "lr": 5e-4, "patch": 32}]
    )
    out, rows = run_plan(loaded, plan, calib_images=ims, progress=False)
    row = rows[0]
    assert set(row["sparsity"]) == {"conv1", "conv2", "conv3", "conv4"}
    for name, s in row["sparsity"].items():
        assert s == pytest.approx(0.5, abs=0.02), name
    assert row["gzip_bytes_before"] / row["gzip_bytes_after"] > 1.5
    assert row["params_after"] == row["params_before"]  # zeros, not removed weights
    noisy = 20.3  # held-out noisy input PSNR of these images at sigma 25 (see channel test)
    assert row["psnr_db_after"] > noisy + 3.0
    assert row["psnr_db_before"] - row["psnr_db_after"] < 5.0
    # the plan leaves no tfmot wrappers behind and the caller's model untouched
    assert all("prune_low_magnitude" not in layer.name for layer in out.model.layers)
    for a, b in zip(before, loaded.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert out.info.extra["plan"]["steps"][0]["kind"] == "prune_magnitude"


@pytest.mark.slow
def test_two_four(trained):
    loaded, ims = trained
    plan = plan_from_dict(
        [{"kind": "prune_magnitude", "m_by_n": "2:4", "steps": 40, "lr": 5e-4, "patch": 32}]
    )
    out, rows = run_plan(loaded, plan, calib_images=ims, progress=False)
    row = rows[0]
    assert row["dense_layers"] == {"conv1": "3 input channels, not a multiple of 4"}
    for name in ("conv2", "conv3", "conv4"):
        assert row["sparsity"][name] == pytest.approx(0.5, abs=1e-6)
        assert m_by_n_ok(out.model.get_layer(name).get_weights()[0], 2, 4)
    assert row["m_by_n_ok"] == {"conv2": True, "conv3": True, "conv4": True}


@pytest.mark.slow
def test_block_pruning_zeroes_whole_runs_of_input_channels(trained):
    """50 % in runs of 4 input channels: every run all-zero or untouched, conv1 (3 input
    channels) pruned weight by weight and listed."""
    loaded, ims = trained
    plan = plan_from_dict(
        [
            {
                "kind": "prune_magnitude",
                "sparsity": 0.5,
                "block": 4,
                "steps": 60,
                "lr": 5e-4,
                "patch": 32,
            }
        ]
    )
    out, rows = run_plan(loaded, plan, calib_images=ims, progress=False)
    row = rows[0]
    assert row["unstructured_layers"] == {"conv1": "3 input channels, not a multiple of 4"}
    assert row["blocks_ok"] == {"conv2": True, "conv3": True, "conv4": True}
    for name, s in row["sparsity"].items():
        assert s == pytest.approx(0.5, abs=0.02), name
    for name in ("conv2", "conv3", "conv4"):
        k = out.model.get_layer(name).get_weights()[0]
        assert blocks_ok(k, 4) and not blocks_ok(k, 8)  # runs of exactly 4, not longer
    # still denoises (noisy input 20.3 dB; measured 22.3 dB: coarser zeros cost this 16-channel
    # net more than scattered ones, 25.0 dB, at 60 steps) and recovers once the mask is final
    evals = [p for _, p in row["train"]["evals"]]
    assert row["psnr_db_after"] > 20.3 + 1.5
    assert evals[-1] > min(evals) + 0.5
    assert row["gzip_bytes_before"] / row["gzip_bytes_after"] > 1.5


def test_blocks_checker():
    k = np.ones((3, 3, 8, 4), np.float32)
    k[:, :, 0:4, 1] = 0.0
    assert blocks_ok(k, 4) and not blocks_ok(k, 8)
    k[0, 0, 5, 0] = 0.0  # a lone zero inside a kept run
    assert not blocks_ok(k, 4)
    assert not blocks_ok(np.ones((3, 3, 3, 4)), 4)


def test_m_by_n_checker():
    k = np.ones((3, 3, 8, 4), np.float32)
    assert not m_by_n_ok(k, 2, 4)
    k[:, :, 0::2, :] = 0.0
    assert m_by_n_ok(k, 2, 4)
    assert not m_by_n_ok(np.zeros((3, 3, 3, 4)), 2, 4)  # 3 input channels: no whole blocks
