"""run_plan end to end on a tiny model: rows carry the numbers the report needs, multi-step plans
chain (prune channels -> distil the pruned student -> QAT), bad data gets a clear error."""

from __future__ import annotations

import pytest
from test_compress_helpers import dncnn, images

from edgekit.compress import run_plan
from edgekit.config import plan_from_dict
from edgekit.data.images import Image
from edgekit.errors import EdgekitError
from edgekit.metrics import PSNR_CAP_DB
from edgekit.models.info import LoadedModel, ModelInfo

ROW_KEYS = {
    "step",
    "kind",
    "config",
    "seconds",
    *(
        f"{k}_{w}"
        for k in (
            "params",
            "macs_per_pixel",
            "size_bytes",
            "gzip_bytes",
            "psnr_db",
            "psnr_vs_float_db",
        )
        for w in ("before", "after")
    ),
}


def _loaded(width=16):
    return LoadedModel(dncnn(width=width, depth=4), ModelInfo("tiny", "denoise", "noise:sigma=25"))


def test_empty_plan_is_identity():
    loaded = _loaded()
    out, rows = run_plan(
        loaded, plan_from_dict({"steps": []}), calib_images=images(3), progress=False
    )
    assert out is loaded and rows == []


@pytest.mark.slow
def test_three_step_chain():
    loaded = _loaded(width=32)
    plan = plan_from_dict(
        {
            "name": "chain",
            "steps": [
                {"kind": "prune_channels", "ratio": 0.5, "steps": 20, "patch": 32, "lr": 1e-3},
                {
                    "kind": "distill",
                    "student": "pruned",
                    "steps": 20,
                    "patch": 32,
                    "eval_every": 10,
                },
                {"kind": "qat", "steps": 10, "patch": 32, "lr": 1e-4},
            ],
        }
    )
    out, rows = run_plan(loaded, plan, calib_images=images(5), progress=False)
    assert [r["kind"] for r in rows] == ["prune_channels", "distill", "qat"]
    for r in rows:
        assert ROW_KEYS <= set(r), ROW_KEYS - set(r)
    assert rows[0]["channels"]["conv1"] == [32, 16]
    assert rows[0]["macs_per_pixel_after"] < 0.35 * rows[0]["macs_per_pixel_before"]
    # rows chain: each step starts where the previous ended
    assert rows[1]["params_before"] == rows[0]["params_after"]
    assert rows[2]["macs_per_pixel_after"] == rows[0]["macs_per_pixel_after"]  # QAT keeps the graph
    assert rows[0]["psnr_vs_float_db_before"] == PSNR_CAP_DB  # the untouched model is the reference
    assert (
        out.info.extra["plan"]["name"] == "chain"
        and [s["kind"] for s in out.info.extra["plan"]["steps"]][-1] == "qat"
    )
    assert any(type(layer).__name__ == "QuantizeWrapperV2" for layer in out.model.layers)


def test_too_few_images():
    with pytest.raises(EdgekitError, match="too little training data: 1 calibration image"):
        run_plan(
            _loaded(), plan_from_dict([{"kind": "qat"}]), calib_images=images(1), progress=False
        )


def test_images_smaller_than_patch():
    small = [Image(im.name, im.pixels[:40, :40]) for im in images(4)]
    with pytest.raises(
        EdgekitError,
        match=r"step 0 \(qat\): too little training data: no training image is at least 48x48",
    ):
        run_plan(_loaded(), plan_from_dict([{"kind": "qat"}]), calib_images=small, progress=False)


def test_no_degradation_known():
    loaded = LoadedModel(dncnn(), ModelInfo("mine", "restore", None))
    with pytest.raises(EdgekitError, match="model 'mine': no degradation known"):
        run_plan(loaded, plan_from_dict([{"kind": "qat"}]), calib_images=images(3), progress=False)
