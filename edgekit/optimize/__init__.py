"""`edgekit optimize`: the fastest artifact for a target within a quality budget (issue 14).

search.optimize() is the entry point; the package never imports TensorFlow at module level.
"""

from __future__ import annotations

__all__ = ["optimize"]


def optimize(*args, **kwargs):
    from .search import optimize as run

    return run(*args, **kwargs)
