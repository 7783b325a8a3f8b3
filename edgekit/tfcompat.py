"""The one place that imports TensorFlow: forces Keras 2 (tf_keras), which tfmot requires."""

from __future__ import annotations

import os


def import_tf():
    """Return (tensorflow, tf_keras) with Keras 2 selected. Call inside functions, never at module top."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ["TF_USE_LEGACY_KERAS"] != "1":
        from .errors import EdgekitError

        raise EdgekitError(
            "TF_USE_LEGACY_KERAS is set to something other than 1; edgekit needs Keras 2 "
            "(tf_keras) for tensorflow-model-optimization: unset it or set TF_USE_LEGACY_KERAS=1"
        )
    from . import quiet

    quiet.configure()
    # TensorFlow logs its start-up (oneDNN, CUDA stubs, cuInit) from C++ on import and on the
    # first device query: both happen here, with those lines filtered out (--verbose keeps them).
    with quiet.capture_stderr():
        import tensorflow as tf
        import tf_keras

        tf.config.list_physical_devices("GPU")
    quiet.silence_python_loggers()
    return tf, tf_keras
