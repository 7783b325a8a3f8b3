"""Distillation: the student learns from the teacher (closer to its outputs than a student trained
from scratch with the same seed and budget), early stopping keeps the best weights, zoo students
are built with the requested width/depth, mismatched students are refused."""

from __future__ import annotations

import pytest
from test_compress_helpers import dncnn, images

from edgekit.compress.distill import build_student, distill
from edgekit.compress.finetune import fit_pairs
from edgekit.compress.plan import run_plan
from edgekit.config import plan_from_dict
from edgekit.data.degradations import parse
from edgekit.data.patches import degraded_tiles, make_pairs
from edgekit.errors import EdgekitError
from edgekit.metrics import mean_psnr
from edgekit.models.info import LoadedModel, ModelInfo
from edgekit.models.predict import predict


@pytest.fixture(scope="module")
def setup():
    ims = images(6)
    deg = parse("noise:sigma=25")
    xs, ys = make_pairs(ims[:4], deg, 32, 512, seed=0)
    vx, vy = degraded_tiles(ims[4:], deg, (64, 64), per_image=2, seed=5)
    teacher = dncnn(width=32, depth=5, seed=0)
    fit_pairs(teacher, xs, ys, steps=200, lr=2e-3, batch=16, progress=False)
    return ims, xs, ys, vx, vy, teacher


@pytest.mark.slow
def test_student_follows_teacher(setup):
    ims, xs, ys, vx, vy, teacher = setup
    t_out = predict(teacher, vx)
    vs_teacher = {}
    for alpha in (0.0, 2.0):
        student = dncnn(width=16, depth=3, seed=1)
        distill(
            student,
            teacher,
            xs,
            ys,
            steps=150,
            lr=3e-3,
            batch=16,
            alpha=alpha,
            val=None,
            eval_every=40,
            patience=None,
            seed=1,
            progress=False,
        )
        vs_teacher[alpha] = mean_psnr(predict(student, vx), t_out)
    # measured: 29.4 dB (scratch) vs 30.5 dB (distilled) to the teacher's output
    assert vs_teacher[2.0] > vs_teacher[0.0] + 0.5


@pytest.mark.slow
def test_early_stopping_restores_best(setup):
    ims, xs, ys, vx, vy, teacher = setup
    student = dncnn(width=8, depth=3, seed=2)
    res = distill(
        student,
        teacher,
        xs,
        ys,
        steps=400,
        lr=0.5,
        batch=16,
        alpha=1.0,
        val=(vx, vy),
        eval_every=10,
        patience=2,
        seed=2,
        progress=False,
    )
    assert res.stopped_early and res.steps_run < 400
    assert mean_psnr(predict(student, vx), vy) == pytest.approx(res.best_psnr_db, abs=1e-3)
    assert res.best_psnr_db == max(p for _, p in res.evals)


def test_zoo_student_width_depth():
    from edgekit.models.stats import macs_per_pixel

    s = build_student("dncnn", width=16, depth=5)
    convs = [layer for layer in s.layers if type(layer).__name__ == "Conv2D"]
    assert len(convs) == 5 and convs[0].filters == 16
    t = build_student("dncnn")
    assert macs_per_pixel(s) < macs_per_pixel(t) / 3
    with pytest.raises(EdgekitError, match="distill: zoo builder 'espcn_x2' does not take depth"):
        build_student("espcn_x2", depth=3)
    with pytest.raises(EdgekitError, match="unknown zoo model 'nonet'"):
        build_student("nonet")


@pytest.mark.slow
def test_plan_distill_into_zoo_student(setup):
    ims, xs, ys, vx, vy, teacher = setup
    loaded = LoadedModel(teacher, ModelInfo("teacher", "denoise", "noise:sigma=25"))
    plan = plan_from_dict(
        [
            {
                "kind": "distill",
                "student": "dncnn",
                "width": 16,
                "depth": 3,
                "steps": 150,
                "lr": 3e-3,
                "patch": 32,
                "eval_every": 20,
            }
        ]
    )
    out, rows = run_plan(loaded, plan, calib_images=ims, progress=False)
    row = rows[0]
    assert row["student"] == "dncnn"
    assert row["macs_per_pixel_after"] < row["macs_per_pixel_before"] / 3
    assert row["psnr_db_after"] > mean_psnr(vx, vy) + 3.0  # it denoises
    assert [type(layer).__name__ for layer in out.model.layers].count("Conv2D") == 3


def test_student_for_another_task_refused():
    ims, teacher = images(4), dncnn(width=8, depth=3)
    loaded = LoadedModel(teacher, ModelInfo("teacher", "denoise", "noise:sigma=25"))
    plan = plan_from_dict([{"kind": "distill", "student": "espcn_x2", "steps": 5, "patch": 32}])
    with pytest.raises(EdgekitError, match="student 'espcn_x2' maps a 16x16 input to"):
        run_plan(loaded, plan, calib_images=ims, progress=False)


def test_feature_pairs_are_picked_at_the_same_relative_depth():
    from edgekit.compress.distill import auto_feature_pairs

    student, teacher = dncnn(width=8, depth=4), dncnn(width=16, depth=7)
    # hidden convs: student conv1-conv3, teacher conv1-conv6; 1/3 and 2/3 of the way down
    assert auto_feature_pairs(student, teacher) == [("conv2", "conv3"), ("conv2", "conv4")]
    assert auto_feature_pairs(dncnn(width=8, depth=7), teacher) == [
        ("conv3", "conv3"),
        ("conv4", "conv4"),
    ]


def test_feature_matching_names_a_missing_layer():
    from edgekit.compress.distill import feature_training_model

    student, teacher = dncnn(width=8, depth=3), dncnn(width=16, depth=3)
    with pytest.raises(EdgekitError, match="teacher has no layer 'conv9'.*conv1, conv2"):
        feature_training_model(student, teacher, [("conv1", "conv9")], 1.0)


@pytest.mark.slow
def test_feature_matching_pulls_hidden_features_towards_the_teacher(setup):
    """The feature term is in the training loss and training lowers it (the adapter and the
    student's layers learn), while the student still learns to denoise."""
    from edgekit.compress.distill import feature_training_model

    ims, xs, ys, vx, vy, teacher = setup
    student = dncnn(width=8, depth=3, seed=3)
    model = feature_training_model(student, teacher, [("conv2", "conv4")], 0.05)

    def feature_loss():
        model(vx)
        (loss,) = model.losses
        return float(loss)

    before = feature_loss()
    fit_pairs(model, xs, ys, steps=150, lr=3e-3, batch=16, progress=False)
    # measured: 0.065 -> 0.014, and 22.6 dB against 20.3 dB for the noisy input
    assert feature_loss() < 0.5 * before
    assert mean_psnr(predict(student, vx), vy) > mean_psnr(vx, vy) + 1.0


@pytest.mark.slow
def test_distill_records_the_matched_layers(setup):
    ims, xs, ys, vx, vy, teacher = setup
    student = dncnn(width=8, depth=4, seed=3)
    res = distill(
        student,
        teacher,
        xs[:64],
        ys[:64],
        steps=4,
        lr=1e-3,
        batch=16,
        alpha=1.0,
        val=None,
        eval_every=4,
        patience=None,
        seed=3,
        progress=False,
        feature_weight=0.05,
    )
    assert res.to_dict()["feature_pairs"] == [["conv2", "conv2"], ["conv2", "conv3"]]
    # the teacher is frozen only while training: its layers are trainable again afterwards
    assert all(layer.trainable for layer in teacher.layers)
