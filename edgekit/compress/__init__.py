"""Compression steps driven by a Plan: channel pruning, magnitude pruning, distillation, QAT.

`run_plan(loaded, plan, calib_images=..., degradation=...)` is the entry point; TensorFlow and
tfmot are imported inside the step functions, so importing this package stays light.
"""

from . import channels, distill, prune, quantize  # noqa: F401 - their step handlers register
from .plan import run_plan

__all__ = ["run_plan"]
