"""Knowledge distillation: train a smaller student to match both the clean image and the teacher.

teacher = the float model that entered the plan (the user's model); student = the model the
preceding steps produced ("pruned") or a fresh zoo architecture with fewer channels/layers.
Loss = L1(student, clean) + alpha * L1(student, teacher output), on degraded calibration pairs,
plus optional feature matching: beta * sum over layer pairs of |adapter(student feature) - teacher
feature| / mean|teacher feature|, where each adapter is a 1x1 convolution that maps the student's
narrower feature to the teacher's width (trained along, thrown away afterwards). Held-out PSNR is
tracked, the best weights are kept, training stops after `patience` evaluations without
improvement.
"""

from __future__ import annotations

import inspect

import numpy as np

from ..config import DistillStep
from ..errors import EdgekitError
from .steps import step_handler


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


def _feature_layers(model) -> list[str]:
    """Names of the hidden convolutions (all but the last conv layer), in graph order."""
    convs = [
        layer.name
        for layer in model.layers
        if type(layer).__name__ in ("Conv2D", "Conv2DTranspose", "DepthwiseConv2D")
    ]
    return convs[:-1]


def auto_feature_pairs(student, teacher, count: int = 2) -> list[tuple[str, str]]:
    """`count` (student layer, teacher layer) pairs at the same relative depth (1/3, 2/3 for two)."""
    s_layers, t_layers = _feature_layers(student), _feature_layers(teacher)
    if not s_layers or not t_layers:
        raise EdgekitError(
            "distill: feature matching needs hidden convolutions in both student and teacher; "
            "set feature_weight: 0 or give feature_layers"
        )
    fractions = [(k + 1) / (count + 1) for k in range(count)]
    pairs = []
    for f in fractions:
        pair = (s_layers[round(f * (len(s_layers) - 1))], t_layers[round(f * (len(t_layers) - 1))])
        if pair not in pairs:
            pairs.append(pair)
    return pairs


def feature_training_model(student, teacher, pairs, beta: float):
    """A model with the student's output whose losses include feature matching to the teacher.

    The student's layers are shared (training it trains the student); the teacher is frozen; the
    adapters live only in the returned model. Errors name a missing layer or a shape mismatch.
    """
    from ..tfcompat import import_tf

    tf, keras = import_tf()

    def layer_out(model, name, who):
        try:
            return model.get_layer(name).output
        except ValueError:
            raise EdgekitError(
                f"distill: {who} has no layer '{name}' for feature matching; its convolutions are "
                f"{', '.join(_feature_layers(model)) or 'none'}"
            ) from None

    s_feats = keras.Model(
        student.inputs, [student.outputs[0]] + [layer_out(student, s, "student") for s, _ in pairs]
    )
    # A frozen private copy of the teacher: freezing the caller's own layers would leak into
    # later uses of it (e.g. a channel-pruned copy would inherit trainable=False).
    from ..models.layers import custom_objects

    with keras.utils.custom_object_scope(custom_objects()):
        frozen = keras.models.clone_model(teacher)
    frozen.set_weights(teacher.get_weights())
    frozen.trainable = False
    t_feats = keras.Model(frozen.inputs, [layer_out(frozen, t, "teacher") for _, t in pairs])
    x = keras.Input(shape=student.inputs[0].shape[1:], name="distill_input")
    outs = s_feats(x)
    y, s_list = outs[0], outs[1:]
    t_list = t_feats(x)
    t_list = t_list if isinstance(t_list, list) else [t_list]
    model = keras.Model(x, y, name=f"{student.name}_feature_distill")
    for (s_name, t_name), fs, ft in zip(pairs, s_list, t_list, strict=True):
        if fs.shape[1:3].as_list() != ft.shape[1:3].as_list() and None not in fs.shape[1:3]:
            raise EdgekitError(
                f"distill: student layer '{s_name}' {tuple(fs.shape[1:])} and teacher layer "
                f"'{t_name}' {tuple(ft.shape[1:])} differ in resolution; pair layers at the same scale"
            )
        adapter = keras.layers.Conv2D(int(ft.shape[-1]), 1, name=f"adapt_{s_name}_to_{t_name}")
        ft = tf.stop_gradient(ft)
        scale = tf.reduce_mean(tf.abs(ft)) + 1e-6
        model.add_loss(beta * tf.reduce_mean(tf.abs(adapter(fs) - ft)) / scale)
    return model


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
    feature_weight: float = 0.0,
    feature_pairs: list[tuple[str, str]] | None = None,
    cosine: bool = False,
):
    """Train `student` in place against clean targets, the teacher's outputs and (with
    feature_weight > 0) the teacher's hidden features at `feature_pairs` (default: automatic)."""
    from ..models.predict import predict
    from .finetune import fit_pairs

    teacher_ys = predict(teacher, xs, batch=16) if alpha > 0 else None
    trained = student
    if feature_weight > 0:
        pairs = feature_pairs or auto_feature_pairs(student, teacher)
        trained = feature_training_model(student, teacher, pairs, feature_weight)
    result = fit_pairs(
        trained,
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
        cosine=cosine,
    )
    if trained is not student:
        # fit_pairs restored the best weights into the training model, whose layers the student shares
        result.feature_pairs = [list(p) for p in pairs]
    return result


@step_handler(DistillStep)
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
        feature_weight=step.feature_weight,
        feature_pairs=[tuple(p) for p in step.feature_layers] if step.feature_layers else None,
        cosine=step.schedule == "cosine",
    )
    return student, {"student": name, "train": result.to_dict()}
