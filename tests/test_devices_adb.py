"""The adb path with STAND-IN tools (tests/fixtures/devices/adb, benchmark_model, getprop): the
"phone" is this machine, the tools replay output in the real tools' documented formats. What is
tested is edgekit's plumbing: arguments, fixed remote names, parsing, labels, cleanup, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import make_target

from edgekit.devices import DeviceError, check_target, executor_for
from edgekit.devices.adb import AdbExecutor

FIX = Path(__file__).parent / "fixtures" / "devices"


@pytest.fixture
def phone(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_ADB", str(FIX / "adb"))
    monkeypatch.setenv("FAKE_ADB_SERIAL", "R5CT0001")
    monkeypatch.setenv("FAKE_ADB_STATE", "device")
    monkeypatch.setenv("FAKE_BM_DIR", str(FIX))
    monkeypatch.setenv("FAKE_BM_LOG", str(tmp_path / "bm-args.log"))
    remote = tmp_path / "data-local-tmp"
    return tmp_path, remote


@pytest.fixture(scope="module")
def tflite(tmp_path_factory):
    from edgekit.tfcompat import import_tf

    tf, keras = import_tf()
    inp = keras.Input((16, 16, 3), batch_size=1)
    model = keras.Model(inp, keras.layers.Conv2D(3, 3, padding="same")(inp))
    path = tmp_path_factory.mktemp("adb") / "tiny.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


def _target(
    remote: Path,
    *,
    serial="R5CT0001",
    delegate="xnnpack",
    benchmark_model=str(FIX / "benchmark_model"),
):
    conn = {"kind": "adb", "serial": serial, "remote_dir": str(remote), "timeout_s": 60}
    if benchmark_model:
        conn["benchmark_model"] = benchmark_model
    return make_target(
        name="pixel",
        description="phone",
        device="Android phone",
        runtime="litert",
        exports=[{"format": "tflite", "precision": "int8"}],
        tile=[16, 16],
        threads=4,
        delegate=delegate,
        warmup=3,
        repeats=20,
        connection=conn,
    )


def _measure(target, tflite, **kw):
    x = np.random.default_rng(0).random((2, 16, 16, 3), dtype=np.float32)
    ex = executor_for(target)
    return ex, ex.measure(
        [{"id": "m", "path": str(tflite), "manifest": {}}],
        x,
        threads=target.threads,
        delegate=target.delegate,
        warmup=target.warmup,
        repeats=target.repeats,
        **kw,
    )


def test_adb_stand_in_benchmark_model_run(phone, tflite):
    tmp, remote = phone
    ex, res = _measure(_target(remote), tflite)
    assert isinstance(ex, AdbExecutor)
    # the stand-ins announce themselves: their numbers are never labelled as the phone's
    label = "adb:R5CT0001 (stand-in)"
    assert res["measured_on"] == label == ex.measured_on() == res["device"]["measured_on"]
    assert res["device"]["stand_in"].startswith("EDGEKIT STAND-IN")
    assert res["results"]["m"]["benchmark_model"]["stand_in"] is True
    r = res["results"]["m"]
    assert r["latency_ms"]["n"] == 20 and r["latency_ms"]["p50"] == pytest.approx(24.102)
    assert r["load_ms"] == pytest.approx(41.207)
    assert "35 of 35 nodes delegated" in r["delegate_used"]
    assert (
        res["device"]["model"] == "Google Pixel 8 (stand-in)"
        and res["device"]["abi"] == "arm64-v8a"
    )
    assert res["device"]["soc"] == "Google Tensor G3"
    # quality comes from the host and says so
    assert res["outputs_measured_on"].startswith("host-cpu")
    assert res["outputs"]["m"].shape == (2, 16, 16, 3)
    mem = ex.peak_rss(str(tflite), threads=4, delegate="xnnpack", input_shape=(1, 16, 16, 3))
    assert mem["peak_rss_mb"] == pytest.approx(26.9375) and mem["measured_on"] == label
    # the flags benchmark_model got, under edgekit's fixed name
    args = (tmp / "bm-args.log").read_text().split()
    assert args[:3] == ["--graph=a0.tflite", "--num_threads=4", "--use_xnnpack=true"]
    assert "--num_runs=20" in args and "--warmup_runs=3" in args
    assert list(remote.iterdir()) == []  # remote work dir removed


@pytest.mark.parametrize(
    "delegate,flag",
    [("gpu", "--use_gpu=true"), ("nnapi", "--use_nnapi=true"), ("none", "--use_xnnpack=false")],
)
def test_adb_stand_in_delegate_flags(phone, tflite, delegate, flag):
    tmp, remote = phone
    _measure(_target(remote, delegate=delegate), tflite)
    assert flag in (tmp / "bm-args.log").read_text().split()


def test_adb_stand_in_old_benchmark_model_output(phone, tflite, monkeypatch):
    tmp, remote = phone
    monkeypatch.setenv("FAKE_BM_REPLAY", str(FIX / "benchmark_model_old.txt"))
    _, res = _measure(_target(remote), tflite)
    assert res["results"]["m"]["latency_ms"]["mean"] == pytest.approx(2950.34)


@pytest.mark.parametrize(
    "state,kind,words",
    [
        ("unauthorized", "auth", "Allow USB debugging"),
        ("offline", "unreachable", "adb reconnect"),
        ("none", "unreachable", "connection.serial"),
    ],
)
def test_adb_stand_in_connection_errors(phone, tflite, monkeypatch, state, kind, words):
    _, remote = phone
    monkeypatch.setenv("FAKE_ADB_STATE", state)
    with pytest.raises(DeviceError) as e:
        _measure(_target(remote), tflite)
    assert e.value.kind == kind and words in str(e.value) and "adb:R5CT0001" in str(e.value)


def test_adb_stand_in_wrong_serial(phone, tflite):
    _, remote = phone
    with pytest.raises(DeviceError, match="adb:NOPE.*connection.serial") as e:
        _measure(_target(remote, serial="NOPE"), tflite)
    assert e.value.kind == "unreachable"


def test_adb_stand_in_unloadable_artifact_cleans_up(phone, tmp_path):
    _, remote = phone
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(DeviceError) as e:
        _measure(_target(remote), bad)
    assert (
        e.value.kind == "artifact-load"
        and "bad.tflite" in str(e.value)
        and "not a valid Flatbuffer" in str(e.value)
    )
    assert list(remote.iterdir()) == []


def test_adb_stand_in_needs_benchmark_model_binary(phone, tflite):
    _, remote = phone
    with pytest.raises(DeviceError, match="connection.benchmark_model"):
        _measure(_target(remote, benchmark_model=None), tflite)
    with pytest.raises(DeviceError, match="benchmark_model binary not found"):
        _measure(_target(remote, benchmark_model="/nonexistent/benchmark_model"), tflite)


def test_adb_stand_in_rejects_non_tflite(phone, tmp_path):
    _, remote = phone
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"x")
    with pytest.raises(DeviceError, match="benchmark_model.*--format tflite"):
        _measure(_target(remote), onnx)


def test_adb_stand_in_check_target(phone):
    _, remote = phone
    info = check_target(_target(remote))
    assert info["measured_on"] == "adb:R5CT0001 (stand-in)"
    assert info["can_run"]["litert"] and info["problems"] == []
    assert info["facts"]["android"] == "14"


def test_adb_stand_in_phone_without_adb_binary(phone, tflite, monkeypatch):
    _, remote = phone
    monkeypatch.setenv("EDGEKIT_ADB", "/nonexistent/adb")
    with pytest.raises(DeviceError, match="platform-tools") as e:
        _measure(_target(remote), tflite)
    assert e.value.kind == "tool-missing" and "'/nonexistent/adb' is not installed" in str(e.value)
    assert not remote.exists()  # nothing was pushed anywhere


def test_adb_stand_in_bench_report_is_labelled_stand_in(phone, tflite, tmp_path):
    """Through the harness: every latency row of a run on the stand-in phone says so."""
    from cli_fixtures import crop_photos

    from edgekit.bench.harness import bench

    _, remote = phone
    photos = crop_photos(tmp_path / "photos", 32, 1)
    report = bench(
        [tflite], target=_target(remote), images_dir=photos, degradation="noise:sigma=25",
        out_dir=tmp_path / "r", progress=False, memory=False,
    )  # fmt: skip
    assert report["measured_on"] == "adb:R5CT0001 (stand-in)"
    assert report["artifacts"][0]["measured_on"] == "adb:R5CT0001 (stand-in)"
    assert report["device"]["stand_in"].startswith("EDGEKIT STAND-IN")
