"""The terminal stays quiet: TensorFlow's start-up log lines are hidden unless --verbose."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit import quiet

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {
        k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", quiet.VERBOSE_ENV)
    }
    env["PYTHONPATH"] = str(ROOT)
    # `compare` loads the zoo model (imports TensorFlow), then fails on the missing artifact
    return subprocess.run(
        [sys.executable, "-m", "edgekit.cli", *args, "compare", "zoo:dncnn", "missing.tflite"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


@pytest.mark.slow
def test_a_command_that_imports_tensorflow_prints_only_its_own_error():
    r = _run()
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines == ["edgekit: error: missing.tflite: artifact not found"], r.stderr


@pytest.mark.slow
def test_verbose_shows_tensorflow_start_up_logs():
    r = _run("--verbose")
    assert r.returncode == 2
    assert "oneDNN" in r.stderr or "cuda" in r.stderr.lower(), r.stderr
    assert r.stderr.rstrip().endswith("missing.tflite: artifact not found")


def test_capture_keeps_real_errors_and_drops_noise(capfd, monkeypatch):
    monkeypatch.delenv(quiet.VERBOSE_ENV, raising=False)
    with quiet.capture_stderr():
        os.write(2, b"E0000 00:00:1.0 1 cuda_platform.cc:52] failed call to cuInit: X\n")
        os.write(2, b"a real problem\n")
    err = capfd.readouterr().err
    assert "cuInit" not in err and "a real problem" in err
