"""Parsers for trtexec and benchmark_model output, on outputs written in the real tools'
documented formats (tests/fixtures/devices/*.txt are stand-ins: invented numbers, real layout)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.devices.benchmark_model import (
    BenchmarkModelParseError,
    benchmark_args,
    parse_benchmark_model,
)
from edgekit.devices.trtexec import build_flags, parse_trtexec, trtexec_argv

FIX = Path(__file__).parent / "fixtures" / "devices"


def test_trtexec_performance_summary():
    out = parse_trtexec((FIX / "trtexec_orin_fp16.txt").read_text())
    assert out["tensorrt_version"] == "10.3.0"
    assert out["passed"] is True
    assert out["gpu"] == "Orin" and out["compute_capability"] == "8.7"
    assert out["throughput_qps"] == pytest.approx(211.734)
    lat = out["latency_ms"]
    assert lat == {
        "min": 4.61768,
        "max": 5.93433,
        "mean": 4.71925,
        "p50": 4.69263,
        "p90": 4.77124,
        "p95": 4.81396,
        "p99": 5.61719,
    }
    # "GPU Compute Time" is its own line; "H2D Latency"/"End-to-End Host Latency" are not "Latency"
    assert out["gpu_compute_ms"]["p50"] == pytest.approx(4.43555)
    assert out["gpu_compute_ms"]["p99"] == pytest.approx(5.35547)


def test_trtexec_versions_from_banner_and_old_percentiles():
    text = (
        "&&&& RUNNING TensorRT.trtexec [TensorRT v8601] # trtexec --loadEngine=x.engine\n"
        "[05/09/2022-06:27:25] [I] End-to-End Host Latency: min = 9 ms, max = 9 ms, mean = 9 ms, median = 9 ms, percentile(99%) = 9 ms\n"
        "[05/09/2022-06:27:25] [I] Latency: min = 2.05615 ms, max = 2.59482 ms, mean = 2.09467 ms, median = 2.08276 ms, percentile(99%) = 2.58971 ms\n"
        "&&&& FAILED TensorRT.trtexec\n"
    )
    out = parse_trtexec(text)
    assert out["tensorrt_version"] == "8.6.1"
    assert out["latency_ms"]["p50"] == 2.08276 and out["latency_ms"]["p90"] is None
    assert out["gpu_compute_ms"] is None
    assert out["passed"] is False
    assert parse_trtexec("[TensorRT v100300]")["tensorrt_version"] == "10.3.0"


def test_trtexec_errors_are_collected():
    out = parse_trtexec((FIX / "trtexec_reject.txt").read_text())
    assert out["passed"] is False and out["latency_ms"] is None
    assert "In function importDepthToSpace" in out["errors"][0]
    assert out["errors"][-1] == "Engine set up failed" and len(out["errors"]) == 5


def test_trtexec_build_flags_follow_the_record():
    rec = {
        "strongly_typed": True,
        "dynamic_shapes": True,
        "workspace_mb": 512,
        "profile": {
            "input": "input",
            "min": [1, 3, 64, 64],
            "opt": [1, 3, 256, 256],
            "max": [1, 3, 512, 512],
        },
    }
    flags = build_flags(rec)
    assert flags == [
        "--stronglyTyped",
        "--minShapes=input:1x3x64x64",
        "--optShapes=input:1x3x256x256",
        "--maxShapes=input:1x3x512x512",
        "--memPoolSize=workspace:512M",
    ]
    assert build_flags({"strongly_typed": False, "precision": "int8"})[:2] == ["--int8", "--fp16"]
    assert "--minShapes" not in " ".join(build_flags({**rec, "dynamic_shapes": False}))
    argv = trtexec_argv("/usr/src/tensorrt/bin/trtexec", rec, warmup_ms=200, iterations=50)
    assert argv[0] == "/usr/src/tensorrt/bin/trtexec" and "--saveEngine=model.engine" in argv
    assert "--iterations=50" in argv and "--duration=0" in argv


def test_benchmark_model_new_format():
    out = parse_benchmark_model((FIX / "benchmark_model_xnnpack.txt").read_text())
    assert out["init_ms"] == pytest.approx(41.207)
    assert out["first_inference_ms"] == pytest.approx(31.874)
    assert out["inference_avg_ms"] == pytest.approx(24.5186)
    lat = out["latency_ms"]
    assert lat["n"] == 20  # the timed block, not the warm-up block
    assert lat["mean"] == pytest.approx(24.5186) and lat["p50"] == pytest.approx(24.102)
    assert lat["min"] == pytest.approx(23.712) and lat["p95"] == pytest.approx(27.415)
    assert lat["p90"] is None and lat["p99"] is None  # not printed by the tool: not invented
    assert out["warmup_latency_ms"]["n"] == 3
    assert out["memory_mb"] == {
        "delta_init_mb": 6.48828,
        "delta_overall_mb": 21.6172,
        "peak_mb": 26.9375,
    }
    assert out["delegated"] == {"delegate": "TfLiteXNNPackDelegate", "nodes": 35, "of": 35}
    assert out["model_size_mb"] == pytest.approx(0.562184)
    assert out["stand_in"] is False  # the replay file alone carries no stand-in announcement


def test_stand_in_announcement_is_recorded():
    text = (FIX / "benchmark_model_xnnpack.txt").read_text()
    marked = "INFO: EDGEKIT STAND-IN benchmark_model (tests): replayed\n" + text
    assert parse_benchmark_model(marked)["stand_in"] is True
    trt = (FIX / "trtexec_orin_fp16.txt").read_text()
    assert parse_trtexec(trt)["stand_in"] is False
    assert parse_trtexec("[I] EDGEKIT STAND-IN trtexec\n" + trt)["stand_in"] is True


def test_benchmark_model_old_format_scientific_notation():
    out = parse_benchmark_model((FIX / "benchmark_model_old.txt").read_text())
    assert out["inference_avg_ms"] == pytest.approx(2950.34)
    assert out["latency_ms"]["n"] == 50 and out["latency_ms"]["p50"] is None
    assert out["latency_ms"]["max"] == pytest.approx(3189.954)
    assert out["memory_mb"] == {"peak_init_mb": 4.92969, "peak_overall_mb": 138.809}


def test_benchmark_model_failure_is_reported():
    with pytest.raises(
        BenchmarkModelParseError,
        match=r"no timing summary \(Failed to mmap model a0\.tflite; Benchmarking failed\.\)",
    ):
        parse_benchmark_model(
            "INFO: STARTING!\nERROR: Failed to mmap model a0.tflite\nERROR: Benchmarking failed.\n"
        )


def test_benchmark_model_args():
    a = benchmark_args("a0.tflite", threads=4, delegate="gpu", warmup=3, repeats=20)
    assert a[:3] == ["--graph=a0.tflite", "--num_threads=4", "--use_gpu=true"]
    assert "--num_runs=20" in a and "--warmup_runs=3" in a and "--min_secs=0" in a
    assert "--use_xnnpack=false" in benchmark_args(
        "m", threads=1, delegate="none", warmup=0, repeats=1
    )
    assert "--use_nnapi=true" in benchmark_args(
        "m", threads=1, delegate="nnapi", warmup=0, repeats=1
    )
    with pytest.raises(ValueError):
        benchmark_args("m", threads=1, delegate="tpu", warmup=0, repeats=1)
