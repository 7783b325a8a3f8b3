"""Compression steps driven by a Plan: channel pruning, magnitude pruning, distillation, QAT.

`run_plan(loaded, plan, calib_images=..., degradation=...)` is the entry point; TensorFlow and
tfmot are imported inside the step functions, so importing this package stays light.
"""

from .plan import run_plan

__all__ = ["run_plan"]
