"""The measurement core (edgekit.runtimes.measure): interleaving, stats, outputs, memory, CLI."""

import json
import subprocess
import sys

import numpy as np
import pytest
from test_bench_helpers import TILE, box_denoiser, convert, info

from edgekit.runtimes import measure as m
from edgekit.runtimes.base import RunnerError


class _FakeRunner:
    """Records every run as (artifact path, input checksum); output = input * k."""

    runtime = "fake"
    calls: list = []

    def __init__(self, path, threads=1, delegate="xnnpack", manifest=None):
        self.path = path
        self.k = float(manifest["k"])

    def run(self, x):
        _FakeRunner.calls.append((self.path, float(x.sum())))
        return x * self.k

    def versions(self):
        return {"fake": "1"}


@pytest.fixture
def fake(monkeypatch, tmp_path):
    _FakeRunner.calls = []
    monkeypatch.setattr(m, "runner_for", lambda path, **kw: _FakeRunner(path, **kw))
    jobs = []
    for name, k in (("A", 1.0), ("B", 2.0), ("C", 3.0)):
        p = tmp_path / f"{name}.fake"
        p.write_bytes(b"x")
        jobs.append({"id": name, "path": str(p), "manifest": {"k": k}})
    return jobs


def test_timed_runs_are_interleaved_across_artifacts(fake):
    inputs = np.stack([np.full((4, 4, 3), i, np.float32) for i in range(2)])
    seen = {}
    res = m.measure(
        fake,
        inputs,
        threads=1,
        delegate="xnnpack",
        warmup=2,
        repeats=3,
        progress=lambda stage, done, total: seen.__setitem__(stage, (done, total)),
    )
    assert seen == {"load": (3, 3), "warmup": (6, 6), "timing": (3, 3), "outputs": (6, 6)}
    seq = [c[0].rsplit("/", 1)[1][0] for c in _FakeRunner.calls]
    warm = ["A", "B", "C", "A", "B", "C"]
    timed = ["A", "B", "C"] * 3
    outputs = ["A", "A", "B", "B", "C", "C"]
    assert seq == warm + timed + outputs
    # timed round r uses input r % N, the same input for every artifact in the round
    sums = [c[1] for c in _FakeRunner.calls[len(warm) : len(warm) + len(timed)]]
    assert sums == [0.0] * 3 + [48.0] * 3 + [0.0] * 3
    for job in fake:
        r = res["results"][job["id"]]
        assert r["latency_ms"]["n"] == 3
        assert len(r["samples_ms"]) == 3
        lat = r["latency_ms"]
        assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        np.testing.assert_array_equal(res["outputs"][job["id"]], inputs * job["manifest"]["k"])
    assert res["settings"]["order"] == "interleaved"
    assert res["device"]["cpu_count"] >= 1 and res["device"]["hostname"]


def test_latency_stats_numbers():
    s = m.latency_stats(np.arange(1, 101, dtype=float))
    assert s["n"] == 100
    assert s["mean"] == pytest.approx(50.5)
    assert s["p50"] == pytest.approx(50.5)
    assert s["p90"] == pytest.approx(90.1)
    assert s["p99"] == pytest.approx(99.01)
    assert (s["min"], s["max"]) == (1.0, 100.0)


def test_bad_jobs_are_errors_naming_the_problem(fake, tmp_path):
    x = np.zeros((1, 4, 4, 3), np.float32)
    with pytest.raises(RunnerError, match="nothere.tflite: artifact file not found"):
        m.measure(
            [{"id": "a", "path": str(tmp_path / "nothere.tflite")}],
            x,
            threads=1,
            delegate="xnnpack",
            warmup=0,
            repeats=1,
        )
    with pytest.raises(RunnerError, match="unique 'id'"):
        m.measure([fake[0], fake[0]], x, threads=1, delegate="xnnpack", warmup=0, repeats=1)
    with pytest.raises(RunnerError, match="repeats must be >= 1"):
        m.measure(fake, x, threads=1, delegate="xnnpack", warmup=0, repeats=0)


@pytest.fixture(scope="module")
def tflite_pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("measure")
    small, small_fixed = box_denoiser()
    big, big_fixed = box_denoiser(width=192)
    return (
        convert(small_fixed, d / "small.tflite", "fp32", info()),
        convert(big_fixed, d / "big.tflite", "fp32", info()),
    )


def test_outputs_equal_a_direct_interpreter_run(tflite_pair):
    from ai_edge_litert.interpreter import Interpreter

    path = tflite_pair[0]
    x = np.random.default_rng(0).random((3, TILE, TILE, 3), dtype=np.float32)
    res = m.measure(
        [{"id": "s", "path": str(path), "manifest": {}}],
        x,
        threads=1,
        delegate="xnnpack",
        warmup=1,
        repeats=4,
    )
    assert res["results"]["s"]["latency_ms"]["n"] == 4
    assert res["results"]["s"]["runtime"] == "litert"
    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    direct = []
    for t in x:
        it.set_tensor(inp["index"], t[None])
        it.invoke()
        direct.append(it.get_tensor(out["index"])[0])
    np.testing.assert_allclose(res["outputs"]["s"], np.stack(direct), atol=1e-6)


def test_peak_rss_in_a_child_process_grows_with_the_weights(tflite_pair):
    small, big = tflite_pair
    assert big.stat().st_size > small.stat().st_size + 1_000_000
    a = m.peak_rss_mb(str(small), 1, "xnnpack", (1, TILE, TILE, 3))
    b = m.peak_rss_mb(str(big), 1, "xnnpack", (1, TILE, TILE, 3))
    for r in (a, b):
        assert 5 < r["baseline_rss_mb"] <= r["peak_rss_mb"] < 2000
        assert r["delta_rss_mb"] == pytest.approx(r["peak_rss_mb"] - r["baseline_rss_mb"], abs=0.02)
    # the child's numbers are its own, not this (TensorFlow-sized) test process's
    assert a["baseline_rss_mb"] < 300
    # >= 1.3 MB more weights in the file: the artifact's own memory must show it
    assert b["delta_rss_mb"] > a["delta_rss_mb"] + 1.0


def _cli(folder):
    cmd = [
        sys.executable,
        "-m",
        "edgekit.runtimes.measure",
        str(folder / "job.json"),
        str(folder / "out.json"),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_command_line_job_file_matches_in_process_run(tflite_pair, tmp_path):
    path = tflite_pair[0]
    x = np.random.default_rng(1).random((2, TILE, TILE, 3), dtype=np.float32)
    np.save(tmp_path / "inputs.npy", x)
    (tmp_path / "job.json").write_text(
        json.dumps(
            {
                "jobs": [{"id": "s", "path": str(path), "manifest": {}}],
                "inputs": "inputs.npy",
                "threads": 1,
                "delegate": "xnnpack",
                "warmup": 1,
                "repeats": 3,
            }
        )
    )
    proc = _cli(tmp_path)
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "out.json").read_text())
    assert res["schema"] == m.MEASURE_SCHEMA
    assert res["results"]["s"]["latency_ms"]["n"] == 3
    assert res["device"]["kernel"] and res["device"]["python"]
    assert "ai-edge-litert" in res["device"]["versions"]
    outs = np.load(tmp_path / res["outputs_file"])["s"]
    local = m.measure(
        [{"id": "s", "path": str(path)}], x, threads=1, delegate="xnnpack", warmup=0, repeats=1
    )
    np.testing.assert_array_equal(outs, local["outputs"]["s"])


def test_command_line_bad_job_exits_2(tmp_path):
    (tmp_path / "job.json").write_text(
        json.dumps({"jobs": [{"id": "s", "path": "missing.tflite"}], "inputs": "inputs.npy"})
    )
    np.save(tmp_path / "inputs.npy", np.zeros((1, 4, 4, 3), np.float32))
    proc = _cli(tmp_path)
    assert proc.returncode == 2
    assert "missing.tflite: artifact file not found" in proc.stderr
    assert not (tmp_path / "out.json").exists()
