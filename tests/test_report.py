"""report.json / report.md rendering, the terminal table and the schema checker."""

import copy
import json

import pytest
from rich.console import Console

from edgekit.report import render
from edgekit.report.schema import (
    REQUIRED_ARTIFACT_FIELDS,
    SCHEMA_VERSION,
    json_safe,
    missing_fields,
)
from edgekit.terminal import print_report


def _row(precision: str, p50: float, size: int, psnr: float, vs_ref: float, int8_ops=None) -> dict:
    return {
        "id": f"tflite-{precision}",
        "label": f"tflite-{precision}",
        "format": "tflite",
        "precision": precision,
        "io": "float",
        "path": f"build/m-{precision}.tflite",
        "size_bytes": size,
        "gzip_size_bytes": size // 2,
        "latency_ms": {
            "mean": p50 * 1.1,
            "p50": p50,
            "p90": p50 * 1.2,
            "p99": p50 * 1.3,
            "min": p50 * 0.9,
            "max": p50 * 1.4,
            "std": 1.0,
            "n": 20,
        },
        "peak_rss_mb": 80.0,
        "baseline_rss_mb": 60.0,
        "rss_delta_mb": 20.0,
        "psnr_db": psnr,
        "ssim": 0.9,
        "psnr_vs_reference_db": vs_ref,
        "measured_on": "host-cpu (box, x86_64, 2 cores)",
        "speedup_vs_fp32": 371.0 / p50,
        "size_ratio_vs_fp32": size / 1_000_000,
        "meets_latency_budget": p50 <= 100,
        "meets_quality_floor": vs_ref >= 35,
        "int8_report": {"on_integer_path": not int8_ops, "ops": int8_ops or []},
        "ops": {"not_delegated": []},
    }


@pytest.fixture
def report():
    return {
        "schema_version": SCHEMA_VERSION,
        "edgekit_version": "0.1.0",
        "created": "2026-01-01T00:00:00Z",
        "measured_on": "host-cpu (box, x86_64, 2 cores)",
        "target": {
            "name": "android-cpu-int8",
            "description": "phone",
            "device": "Android phone",
            "latency_budget_ms": 100,
            "quality_floor_db": 35,
            "used": {"threads": 2, "delegate": "xnnpack", "warmup": 3, "repeats": 20},
        },
        "model": {"name": "dncnn", "task": "denoise", "scale": 1, "source": "zoo:dncnn"},
        "eval_set": {
            "count": 2,
            "source": "calibration_data",
            "split": "held-out",
            "images": [{"name": "a.png"}, {"name": "b.png"}],
            "degradation": "noise:sigma=25,clip=1",
            "seed": 0,
            "tiles": {"256x256": 12},
            "overlap": 64,
            "margin": 16,
        },
        "reference": {
            "psnr_db": 30.5,
            "ssim": 0.91,
            "whole_image_psnr_db": 30.5,
            "tiling_psnr_db": 70.0,
        },
        "degraded_input": {"psnr_db": 20.2, "ssim": 0.4, "description": "the noisy input"},
        "artifacts": [
            _row("fp32", 371.0, 1_000_000, 30.5, 75.0),
            _row(
                "int8",
                89.0,
                260_000,
                30.3,
                41.2,
                int8_ops=[
                    {"op": "PRELU", "index": 3, "kind": "slow_path", "reason": "int8 PReLU is slow"}
                ],
            ),
        ],
        "steps": [],
        "notes": ["no device attached: numbers are host-CPU numbers, not phone numbers"],
    }


def test_write_report_json_and_markdown(report, tmp_path):
    report["artifacts"][0]["psnr_vs_reference_db"] = float("inf")
    jp, mp = render.write_report(report, tmp_path / "out")
    assert (jp.name, mp.name) == ("report.json", "report.md")
    data = json.loads(jp.read_text())  # strict JSON: no Infinity
    assert data["artifacts"][0]["psnr_vs_reference_db"] is None
    assert data["artifacts"][1]["latency_ms"]["p50"] == 89.0
    md = mp.read_text()
    assert "# edgekit benchmark: dncnn on android-cpu-int8" in md
    assert "**Measured on:** host-cpu (box, x86_64, 2 cores)" in md
    assert "| artifact | size |" in md
    int8_line = next(line for line in md.splitlines() if line.startswith("| tflite-int8"))
    cells = [c.strip() for c in int8_line.strip("|").split("|")]
    assert cells[1] == "0.26 MB" and cells[3] == "89.0" and cells[5] == "4.17x"
    assert cells[7] == "30.30" and cells[9] == "-0.20" and cells[10] == "41.2"
    assert "no device attached: numbers are host-CPU numbers, not phone numbers" in md
    assert "PRELU #3 (slow_path): int8 PReLU is slow" in md
    assert "latency p50 371.0 ms vs budget 100 ms: misses" in md
    assert "a.png, b.png" in md
    assert not list((tmp_path / "out").glob(".*tmp*"))


def test_unserialisable_report_leaves_no_file(report, tmp_path):
    report["notes"].append(object())
    with pytest.raises(TypeError):
        render.write_report(report, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_print_table_shows_the_essentials(report):
    console = Console(record=True, width=200)
    print_report(report, console=console)
    text = console.export_text()
    for needle in (
        "artifact",
        "p50 ms",
        "speed-up vs fp32",
        "ΔPSNR vs float",
        "measured on",
        "tflite-int8",
        "4.17x",
        "-0.20",
        "host-cpu (box",
        "not phone numbers",
    ):
        assert needle in text, needle


def test_missing_fields_reports_nulls_and_non_finite(report):
    assert missing_fields(report) == []
    bad = copy.deepcopy(report)
    bad["artifacts"][1]["psnr_vs_reference_db"] = None
    bad["artifacts"][0]["latency_ms"]["p99"] = float("nan")
    del bad["reference"]["ssim"]
    assert missing_fields(bad) == [
        "reference.ssim",
        "artifacts[0].latency_ms.p99",
        "artifacts[1].psnr_vs_reference_db",
    ]
    assert "measured_on" in REQUIRED_ARTIFACT_FIELDS
    assert missing_fields({**report, "artifacts": []})[-1:] == ["artifacts"]


def test_json_safe_handles_numpy_and_infinity():
    import numpy as np

    out = json_safe({"a": np.float32(1.5), "b": np.array([1, 2]), "c": (float("-inf"), 2)})
    assert out == {"a": 1.5, "b": [1, 2], "c": [None, 2]}


def test_markdown_failure_writes_neither_file(report, tmp_path, monkeypatch):
    def boom(_):
        raise RuntimeError("render failed")

    monkeypatch.setattr(render, "render_markdown", boom)
    with pytest.raises(RuntimeError):
        render.write_report(report, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_merged_report_names_each_target(report):
    phone = copy.deepcopy(report["target"])
    host = {**copy.deepcopy(report["target"]), "name": "host-cpu", "device": "the host"}
    report["targets"] = [host, phone]
    report["artifacts"][0]["target"] = "host-cpu"
    report["artifacts"][1]["target"] = "android-cpu-int8"
    md = render.render_markdown(report)
    assert md.startswith("# edgekit benchmark: dncnn on host-cpu, android-cpu-int8")
    assert "- **Target host-cpu:**" in md and "- **Target android-cpu-int8:**" in md
    assert "| host-cpu/tflite-fp32 |" in md and "| android-cpu-int8/tflite-int8 |" in md
    console = Console(record=True, width=200)
    print_report(report, console=console)
    text = console.export_text()
    assert (
        "dncnn on host-cpu (2 threads)" in text and "dncnn on android-cpu-int8 (2 threads)" in text
    )
