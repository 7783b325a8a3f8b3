"""Shared test set-up: Keras 2 before TensorFlow loads, and one way to build a test Target."""

import os

import pytest

# Keras 2 (tf_keras) for every test, before anything imports TensorFlow.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def make_target(**fields):
    """A validated Target for a test: the bundled host-cpu profile with a quick timing loop
    (1 warm-up, 5 repeats) named 'test-cpu', then `fields` (e.g. connection={...}, tile=[16, 16])."""
    from edgekit.config import load_target, target_from_dict

    base = load_target("host-cpu").model_dump(mode="json", exclude={"source"})
    base.update({"name": "test-cpu", "warmup": 1, "repeats": 5})
    base.update(fields)
    return target_from_dict(base, source="test")


@pytest.fixture(name="make_target")
def make_target_fixture():
    """make_target as a fixture, for tests that prefer injection to an import."""
    return make_target
