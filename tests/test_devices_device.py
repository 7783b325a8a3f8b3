"""Against a REAL device (opt-in): set EDGEKIT_DEVICE_TARGET to a target YAML with an ssh or adb
connection (a Jetson, a board, a phone). Skipped otherwise; nothing here is simulated."""

from __future__ import annotations

import os

import numpy as np
import pytest

from edgekit.config import load_target

TARGET = os.environ.get("EDGEKIT_DEVICE_TARGET")

pytestmark = [
    pytest.mark.device,
    pytest.mark.skipif(
        not TARGET, reason="no real device: set EDGEKIT_DEVICE_TARGET=path/to/target.yaml"
    ),
]


def test_real_device_check_and_measure(tmp_path):
    from edgekit.devices import check_target, executor_for
    from edgekit.tfcompat import import_tf

    target = load_target(TARGET)
    assert not target.is_local, (
        "EDGEKIT_DEVICE_TARGET must name a target with an ssh/adb connection"
    )
    info = check_target(target)
    assert info["measured_on"].startswith(("ssh:", "adb:"))
    assert info["can_run"]["litert"], info["problems"]

    tf, keras = import_tf()
    inp = keras.Input((32, 32, 3), batch_size=1)
    model = keras.Model(inp, keras.layers.Conv2D(3, 3, padding="same")(inp))
    path = tmp_path / "tiny.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    res = executor_for(target).measure(
        [{"id": "t", "path": str(path), "manifest": {}}],
        x,
        threads=1,
        delegate="xnnpack",
        warmup=1,
        repeats=3,
    )
    assert res["measured_on"] == info["measured_on"]
    assert res["results"]["t"]["latency_ms"]["mean"] > 0
    assert res["outputs"]["t"].shape == (2, 32, 32, 3)
