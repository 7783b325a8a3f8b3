"""Plan-step handlers: one function per step config type (edgekit.config: PruneChannelsStep, ...).

A step's descriptor is its config class (fields, what it needs, which steps may not follow it,
edgekit.config) plus the handler registered here with `@step_handler(ConfigClass)`:
`handler(step, model, ctx) -> (model, detail)`.
"""

from __future__ import annotations

from collections.abc import Callable

_HANDLERS: dict[type, Callable] = {}


def step_handler(config_cls: type):
    """Decorator: run plan steps of type `config_cls` with the decorated function."""

    def add(fn: Callable) -> Callable:
        _HANDLERS[config_cls] = fn
        return fn

    return add


def handler_for(step) -> Callable:
    """The handler registered for this step's config type."""
    return _HANDLERS[type(step)]
