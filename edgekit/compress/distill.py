"""Knowledge distillation: train a smaller student to match both the clean image and the teacher.

teacher = the float model that entered the plan (the user's model); student = the model the
preceding steps produced ("pruned") or a fresh zoo architecture with fewer channels/layers.
Loss = L1(student, clean) + alpha * L1(student, teacher output), on degraded calibration pairs;
held-out PSNR is tracked, the best weights are kept, training stops after `patience`
evaluations without improvement.
"""

from __future__ import annotations

import inspect

import numpy as np

from ..errors import EdgekitError


def build_student(name: str, *, width: int | None = None, depth: int | None = None, seed: int = 0):
    """A fresh zoo architecture with the given width/depth (only the arguments its builder has)."""
    from ..models import zoo
    from ..tfcompat import import_tf

    _, keras = import_tf()
    entry = zoo.get(name)
    wanted = {k: v for k, v in (("width", width), ("depth", depth)) if v is not None}
    params = inspect.signature(entry.builder).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if accepts_any:  # a lambda(**kw) around the real builder: ask the builder it forwards to
        try:
            keras.utils.set_random_seed(seed)
            return zoo.build(name, **wanted)
        except TypeError as exc:
            raise EdgekitError(
                f"distill: zoo builder '{name}' does not take {', '.join(wanted)} ({exc}); "
                "drop width/depth or choose another student"
            ) from None
    missing = [k for k in wanted if k not in params]
    if missing:
        raise EdgekitError(
            f"distill: zoo builder '{name}' has no {', '.join(repr(k) for k in missing)} parameter; "
            f"it takes {', '.join(params)}"
        )
    keras.utils.set_random_seed(seed)
    return zoo.build(name, **wanted)


def _check_compatible(student, teacher, name: str) -> None:
    x = np.zeros((1, 16, 16, int(teacher.inputs[0].shape[-1])), np.float32)
    ys, yt = student(x).shape, teacher(x).shape
    if tuple(ys) != tuple(yt):
        raise EdgekitError(
            f"distill: student '{name}' maps a 16x16 input to {tuple(ys)[1:]}, the teacher to "
            f"{tuple(yt)[1:]}; pick a student for the same task and scale"
        )


def distill(
    student,
    teacher,
    xs: np.ndarray,
    ys: np.ndarray,
    *,
    steps: int,
    lr: float,
    batch: int,
    alpha: float,
    val: tuple[np.ndarray, np.ndarray] | None,
    eval_every: int,
    patience: int | None,
    seed: int,
    progress: bool = True,
    description: str = "distill",
):
    """Train `student` in place against clean targets and the teacher's outputs."""
    from .finetune import fit_pairs, predict

    teacher_ys = predict(teacher, xs, batch=16) if alpha > 0 else None
    return fit_pairs(
        student,
        xs,
        ys,
        steps=steps,
        lr=lr,
        batch=batch,
        val=val,
        eval_every=eval_every,
        patience=patience,
        teacher_ys=teacher_ys,
        alpha=alpha,
        seed=seed,
        progress=progress,
        description=description,
    )


def run_distill(step, model, ctx):
    """Plan step: distil the plan's input model into `step.student`."""
    seed = ctx.seed if step.seed is None else step.seed
    if step.student == "pruned":
        student, name = model, "pruned"
        if step.width is not None or step.depth is not None:
            raise EdgekitError(
                f"{ctx.label(step)}: width/depth apply to a zoo student, not to 'pruned' "
                "(set the pruned widths in the prune_channels step)"
            )
    else:
        student, name = (
            build_student(step.student, width=step.width, depth=step.depth, seed=seed),
            step.student,
        )
        _check_compatible(student, ctx.teacher, name)
    xs, ys = ctx.pairs(step.patch, step.steps * step.batch)
    result = distill(
        student,
        ctx.teacher,
        xs,
        ys,
        steps=step.steps,
        lr=step.lr,
        batch=step.batch,
        alpha=step.alpha,
        val=(ctx.val_x, ctx.val_y),
        eval_every=step.eval_every,
        patience=step.patience,
        seed=seed,
        progress=ctx.progress,
        description=f"{ctx.label(step)}: distill into {name}",
    )
    return student, {"student": name, "train": result.to_dict()}
