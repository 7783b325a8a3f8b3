"""edgekit compress: the user's own model, exported as fp32, is the report's baseline row."""

from pathlib import Path

import pytest

from edgekit import pipeline
from edgekit.config import load_target


@pytest.fixture
def wired(monkeypatch, tmp_path):
    """compress() with the plan, the exporters and the harness replaced by recorders."""
    import edgekit.bench.harness as harness
    import edgekit.compress as compress_pkg

    seen = {"exports": [], "bench": None}
    step = {"step": 0, "kind": "prune_channels", "params_before": 10, "params_after": 5}
    monkeypatch.setattr(compress_pkg, "run_plan", lambda loaded, plan, **kw: (loaded, [step]))
    monkeypatch.setattr(pipeline, "calibration_sets", lambda *a, **k: ("calib", "val"))

    def fake_export(loaded, fmt, precision, *, out, **kw):
        seen["exports"].append((fmt, precision.value, Path(out).name, kw.get("calib")))
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_bytes(b"x")
        return type("A", (), {"path": Path(out)})()

    def fake_bench(artifacts, **kw):
        seen["bench"] = [Path(a).name for a in artifacts]
        rows = [
            {"path": str(a), "format": "tflite", "precision": "fp32" if i < 2 else "int8",
             "label": None, "latency_ms": {"p50": 10.0 / (i + 1), "p90": 1}, "psnr_db": 29.0}
            for i, a in enumerate(artifacts)
        ]  # fmt: skip
        return {"artifacts": rows, "model": {"name": "dncnn"}, "notes": [], "steps": []}

    monkeypatch.setattr(pipeline, "export_loaded", fake_export)
    monkeypatch.setattr(harness, "bench", fake_bench)
    return seen


@pytest.mark.slow
def test_baseline_is_exported_first_in_the_table_and_named(wired, tmp_path):
    target = load_target("host-cpu")
    report = pipeline.compress(
        "zoo:dncnn", target=target, plan_path=None, calib_dir=None, degradation=None,
        out_dir=tmp_path,
    )  # fmt: skip
    baseline_name = "dncnn-baseline-tflite-fp32.tflite"
    assert wired["bench"][0] == baseline_name and len(wired["bench"]) == len(target.exports) + 1
    assert ("tflite", "fp32", baseline_name, ("calib", "val")) in wired["exports"]
    first = report["artifacts"][0]
    assert first["baseline"] is True and first["label"] == "baseline: your model tflite-fp32"
    assert report["relative_to"]["speed-up"].startswith("baseline: dncnn as given")
    md = (tmp_path / "report.md").read_text()
    assert "speed-up vs baseline" in md and "| 0 | prune_channels | 10 → 5 |" in md
