"""The search space: candidates a target allows, as plain, hashable recipes.

A candidate is what determines an artifact's bytes: format, precision, I/O, the target's exporter
options, the TFLite nodes kept in float (mixed precision) and the training steps run before the
export. Latency settings are not part of it (they change the measurement, not the artifact).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

SEARCHABLE_FORMATS = ("tflite", "onnx")  # formats whose artifacts run on this machine's CPU
# Exports converted on LiteRT's reference kernels (minutes on a CPU): tried after the cheap ones.
SLOW_PRECISIONS = ("int16x8",)
PRUNE_RATIOS = (0.25, 0.5)  # channel-pruning candidates (fine-tune + distil), int8-only targets


@dataclass(frozen=True)
class Candidate:
    format: str
    precision: str
    io: str = "float"
    options: tuple = ()  # sorted (key, value) pairs from the target's export spec
    float_nodes: tuple | None = None  # TFLite nodes kept in float (None: not a mixed recipe)
    plan: tuple = ()  # training steps (JSON strings) applied before the export
    rewrite: bool | None = None  # exporter option `rewrite` (see rewrite_variants); None: default
    kind: str = "ptq"  # ptq | mixed | probe | train
    note: str = field(default="", compare=False)

    def recipe(self) -> dict:
        return {
            "format": self.format,
            "precision": self.precision,
            "io": self.io,
            "options": dict(self.options),
            "float_nodes": list(self.float_nodes) if self.float_nodes is not None else None,
            "plan": [json.loads(s) for s in self.plan],
            "rewrite": self.rewrite,
            "kind": self.kind,
        }

    @property
    def id(self) -> str:
        blob = json.dumps(self.recipe(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    @property
    def suffix(self) -> str:
        return ".onnx" if self.format == "onnx" else ".tflite"

    @property
    def label(self) -> str:
        base = f"{self.format}-{self.precision}" + ("-int8io" if self.io == "int8" else "")
        if self.kind in ("mixed", "train") and self.float_nodes:
            base += f"-mixed{len(self.float_nodes)}"
        if self.kind == "probe":
            base += "-probe"
        if self.plan:
            base = "+".join(json.loads(s)["kind"] for s in self.plan) + ":" + base
        if self.rewrite is not None:
            base += "+rewrite" if self.rewrite else "+no-rewrite"
        return base

    def exporter_options(self) -> dict:
        opts = dict(self.options)
        if self.float_nodes is not None:
            opts["float_nodes"] = list(self.float_nodes)
        if self.rewrite is not None:
            opts["rewrite"] = self.rewrite
        return opts


def rewrite_variants(spec) -> list[bool | None]:
    """Fast-path rewrite settings to try for one export of the target.

    The exporters take `rewrite: bool | None` (None: the exact rewrites onto the int8 fast path,
    on by default for integer exports; False: `--no-rewrite`). Integer exports are tried both
    ways (label "+no-rewrite"): a rewrite is exact in float but moves int8 rounding, so on a
    given model either can be the faster or the better one. A target that sets `rewrite` itself
    is taken as it says.
    """
    if spec.precision.value not in ("int8", "int16x8") or "rewrite" in spec.options:
        return [None]
    return [None, False]


def ptq_candidates(target) -> tuple[list[Candidate], list[str]]:
    """(one candidate per searchable export of the target, notes on what was left out)."""
    out, notes = [], []
    for spec in target.exports:
        fmt, prec = spec.format.value, spec.precision.value
        if fmt not in SEARCHABLE_FORMATS:
            notes.append(
                f"{spec.label}: {fmt} artifacts are not searched (engines are built and timed on "
                "their GPU; export them from the chosen recipe with `edgekit export`)"
            )
            continue
        for rw in rewrite_variants(spec):
            out.append(
                Candidate(fmt, prec, spec.io, tuple(sorted(spec.options.items())), rewrite=rw)
            )
    out.sort(key=lambda c: c.precision in SLOW_PRECISIONS)  # stable: target order otherwise
    return out, notes


def mixed_base(c: Candidate) -> bool:
    """Whether a PTQ candidate can be turned into mixed-precision recipes."""
    return c.kind == "ptq" and c.precision == "int8" and c.io == "float" and c.rewrite is None


def with_float_nodes(c: Candidate, nodes, kind: str = "mixed") -> Candidate:
    return Candidate(c.format, c.precision, c.io, c.options, tuple(nodes), c.plan, c.rewrite, kind)


def training_allowed(target) -> bool:
    """Training candidates only where every export is integer (int8, or int16x8 beside int8, as
    on android-cpu-int8): pruning and QAT pay off through the integer export they precede."""
    precisions = {e.precision.value for e in target.exports}
    return "int8" in precisions and precisions <= {"int8", "int16x8"}


def training_candidates(target, base: Candidate) -> list[Candidate]:
    """Channel pruning (fine-tune + distil) at a few ratios, and QAT, each before `base`'s export
    (a mixed-precision base keeps its float nodes)."""
    round_to = 16 if target.threads >= 4 else 8
    plans = []
    for r in PRUNE_RATIOS:
        plans.append(
            (
                {"kind": "prune_channels", "ratio": r, "round_to": round_to, "steps": 300},
                {"kind": "distill", "student": "pruned", "steps": 400, "lr": 2e-4},
            )
        )
    plans.append(({"kind": "qat", "steps": 300},))
    return [
        Candidate(
            base.format,
            base.precision,
            base.io,
            base.options,
            base.float_nodes,  # node names survive pruning (layers keep their names)
            tuple(json.dumps(s, sort_keys=True) for s in p),
            base.rewrite,
            "train",
        )
        for p in plans
    ]
