"""The end of a search: test-split scoring, DIR/best.<ext>, DIR/report.json and DIR/report.html.

The chosen artifact is benchmarked once more by the harness on the test photos (never used for
a choice), interleaved with plain PTQ int8 and fp32 of the same format, so its speed-up and its
quality are claims from one run on one machine.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from .. import __version__
from ..atomic import write_json
from ..errors import EdgekitError

SCHEMA = "edgekit.optimize/1"


def pareto(rows: list[dict]) -> list[dict]:
    """Rows not beaten on both latency (lower) and PSNR (higher) by another row."""
    pts = [r for r in rows if r.get("latency_ms") is not None and r.get("psnr_db") is not None]
    front = []
    for r in pts:
        dominated = any(
            o is not r
            and o["latency_ms"] <= r["latency_ms"]
            and o["psnr_db"] >= r["psnr_db"]
            and (o["latency_ms"] < r["latency_ms"] or o["psnr_db"] > r["psnr_db"])
            for o in pts
        )
        if not dominated:
            front.append(r)
    return sorted(front, key=lambda r: r["latency_ms"])


def _row(s, rec) -> dict:
    c, res = rec.candidate, rec.result
    ref = s.reference
    ok = bool(res.get("ok"))
    return {
        "id": c.id,
        "label": c.label,
        "kind": c.kind,
        "recipe": c.recipe(),
        "ok": ok,
        "error": res.get("error"),
        "cached": rec.cached,
        "build_seconds": res.get("seconds"),
        "psnr_db": res.get("psnr_db"),
        "ssim": res.get("ssim"),
        "drop_db": (ref["psnr_db"] - res["psnr_db"]) if ok else None,
        "ssim_drop": (ref["ssim"] - res["ssim"]) if ok else None,
        "meets_budget": rec.meets if ok else False,
        "latency_ms": rec.p50,
        "latency": (rec.latency or {}).get("latency_ms"),
        "latency_run": (rec.latency or {}).get("run"),
        "measured_on": (rec.latency or {}).get("measured_on"),
        "size_bytes": (res.get("manifest") or {}).get("size_bytes") or _size(res.get("artifact")),
        "psnr_vs_keras_db": (res.get("validation") or {}).get("psnr_vs_keras_db"),
        "float_layers": (res.get("mixed_precision") or {}).get("float_layers"),
        "artifact": res.get("artifact"),
        "split": "validation",
    }


def _size(path) -> int | None:
    return Path(path).stat().st_size if path and Path(path).is_file() else None


def _final_run(s, best, out_dir: Path, test_folder: Path, max_side) -> dict:
    """Harness run on the test photos, interleaved: the best, plain PTQ int8 of every format and
    fp32 of the best's format (rows keyed "best", "tflite-int8", "onnx-int8", "tflite-fp32" ...)."""
    from ..bench.harness import bench

    peers = {"best": best}
    for rec in s.records.values():  # plain PTQ int8 of every format, fp32 of the best's format
        c = rec.candidate
        if (
            c.kind != "ptq"
            or c.io != "float"
            or not rec.result.get("artifact")
            or c.rewrite is not None
        ):
            continue
        if c.precision == "int8" or (c.precision == "fp32" and c.format == best.candidate.format):
            peers.setdefault(f"{c.format}-{c.precision}", rec)
    order = list(dict.fromkeys(peers.values()))
    report = bench(
        [Path(r.result["artifact"]) for r in order],
        target=s.target,
        images_dir=test_folder,
        reference=s.loaded,
        out_dir=out_dir / "final",
        progress=False,
        memory=False,
        max_side=max_side,
    )
    by_path = {row["path"]: row for row in report["artifacts"]}
    ref = report["reference"]
    rows = {}
    for name, rec in peers.items():
        row = by_path[str(Path(rec.result["artifact"]))]
        rows[name] = {
            "label": rec.candidate.label,
            "id": rec.candidate.id,
            "psnr_db": row["psnr_db"],
            "ssim": row["ssim"],
            "drop_db": ref["psnr_db"] - row["psnr_db"],
            "ssim_drop": ref["ssim"] - row["ssim"],
            "latency_ms": row["latency_ms"]["p50"],
            "latency": row["latency_ms"],
            "measured_on": row["measured_on"],
            "size_bytes": row["size_bytes"],
        }
    return {
        "split": "test",
        "reference": {"psnr_db": ref["psnr_db"], "ssim": ref["ssim"]},
        "measured_on": report["measured_on"],
        "rows": rows,
        "notes": report.get("notes", []),
    }


def _write_best(best, out_dir: Path, report_best: dict) -> Path:
    from ..atomic import write_bytes
    from ..export.base import manifest_path

    src = Path(best.result["artifact"])
    dst = out_dir / ("best" + best.candidate.suffix)
    manifest = json.loads(manifest_path(src).read_text())
    manifest["file"] = dst.name
    manifest["optimize"] = {k: v for k, v in report_best.items() if k != "path"}
    write_bytes(dst, src.read_bytes())
    write_json(manifest_path(dst), manifest)
    return dst


def finish(
    s, *, out_dir, test_folder, splits, deg, ranking, notes, time_budget, wall_s, executor
) -> dict:
    out_dir = Path(out_dir)
    rows = [_row(s, r) for r in s.records.values() if r.candidate.kind != "probe"]
    front = pareto([r for r in rows if r["ok"]])
    best = s.best
    report_best, comparison = None, None
    for old in out_dir.glob("best.*"):
        old.unlink()  # a rerun that finds nothing must not leave a stale best behind
    if best is not None:
        comparison = _final_run(s, best, out_dir, test_folder, splits.max_side)
        b = comparison["rows"]["best"]
        report_best = {
            "path": None,
            "label": best.candidate.label,
            "id": best.candidate.id,
            "format": best.candidate.format,
            "precision": best.candidate.precision,
            "recipe": best.candidate.recipe(),
            "float_layers": (best.result.get("mixed_precision") or {}).get("float_layers"),
            "psnr_db": b["psnr_db"],
            "drop_db": b["drop_db"],
            "ssim": b["ssim"],
            "ssim_drop": b["ssim_drop"],
            "latency_ms": b["latency_ms"],
            "latency": b["latency"],
            "size_bytes": b["size_bytes"],
            "measured_on": b["measured_on"],
            "split": "test",
            "meets_budget_on_test": (b["drop_db"] if s.metric == "psnr" else b["ssim_drop"])
            <= s.max_drop + 1e-9,
            "validation": {
                "psnr_db": best.result["psnr_db"],
                "ssim": best.result["ssim"],
                "drop": best.drop,
            },
        }
        report_best["path"] = str(_write_best(best, out_dir, report_best))
        if not report_best["meets_budget_on_test"]:
            notes.append(
                f"the chosen {best.candidate.label} meets the budget on the validation photos but "
                f"not on the test photos ({b['drop_db']:.3f} dB): few photos make both estimates "
                "noisy; add photos to --calib"
            )
    ok = [r for r in rows if r["ok"]]
    closest = None
    if best is None and ok:
        key = "drop_db" if s.metric == "psnr" else "ssim_drop"
        c = min(ok, key=lambda r: r[key])
        closest = {"label": c["label"], "drop": c[key], "path": c["artifact"], "id": c["id"]}
    report = {
        "schema": SCHEMA,
        "edgekit_version": __version__,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": s.loaded.info.to_dict(),
        "target": {
            "name": s.target.name,
            "source": s.target.source,
            "device": s.target.device,
            "tile": list(s.target.tile),
            "threads": s.target.threads,
            "connection": s.target.connection.kind,
        },
        "budget": {
            "metric": s.metric,
            "max_drop": s.max_drop,
            "unit": "dB" if s.metric == "psnr" else "SSIM",
            "time_budget_min": time_budget,
            "stopped_by_time": s.stopped_by_time,
        },
        "splits": {**splits.describe(), "degradation": deg.spec},
        "reference": {
            "validation": {"psnr_db": s.reference["psnr_db"], "ssim": s.reference["ssim"]},
            "test": (comparison or {}).get("reference"),
            "measured_on": "host CPU (TensorFlow, float32 Keras model through the same tiling)",
        },
        "best": report_best,
        "closest": closest,
        "comparison": comparison,
        "candidates": rows,
        "pareto": [
            {k: r[k] for k in ("id", "label", "latency_ms", "psnr_db", "size_bytes")} for r in front
        ],
        "sensitivity": ranking,
        "executor": {"name": executor.name, "where": executor.where},
        "search": {
            "wall_s": round(wall_s, 1),
            "planned": s.planned,
            "built": s.built,
            "from_cache": s.reused,
            "latency_runs": s.latency_runs,
            "latency_note": "each timing run is interleaved with the then-best candidate; "
            "latencies of candidates in different runs are from different runs",
        },
        "notes": notes,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "report.json", report)
    try:
        from .html import write_html

        write_html(report, out_dir / "report.html")
    except EdgekitError as exc:  # matplotlib missing: the JSON is the report
        notes.append(f"report.html not written: {exc}")
        write_json(out_dir / "report.json", report)
    _print_summary(s, report, out_dir)
    return report


def _print_summary(s, report: dict, out_dir: Path) -> None:
    from rich.table import Table

    con = s.console
    t = Table(
        title=f"candidates (validation photos; max drop {s.max_drop:g} {report['budget']['unit']})"
    )
    for col in ("candidate", "PSNR dB", "drop", "SSIM", "p50 ms", "size KB", "budget", "pareto"):
        t.add_column(col)
    on_front = {p["id"] for p in report["pareto"]}
    for r in report["candidates"]:
        t.add_row(
            r["label"],
            f"{r['psnr_db']:.2f}" if r["ok"] else "-",
            f"{r['drop_db']:+.3f}" if r["ok"] else (r["error"] or "")[:60],
            f"{r['ssim']:.4f}" if r["ok"] else "-",
            f"{r['latency_ms']:.2f}" if r["latency_ms"] is not None else "-",
            f"{r['size_bytes'] / 1024:.0f}" if r["size_bytes"] else "-",
            "yes" if r["meets_budget"] else "no",
            "*" if r["id"] in on_front else "",
        )
    con.print(t)
    b = report["best"]
    if b:
        cmp_rows = report["comparison"]["rows"]
        extra = ", ".join(
            f"{name} {row['latency_ms']:.2f} ms / drop {row['drop_db']:+.3f} dB"
            for name, row in cmp_rows.items()
            if name != "best"
        )
        con.print(
            f"[bold]best[/]: {b['label']} -> {b['path']}: test-split PSNR {b['psnr_db']:.2f} dB "
            f"(drop {b['drop_db']:+.3f} dB), SSIM {b['ssim']:.4f}, {b['latency_ms']:.2f} ms p50 "
            f"on {b['measured_on']}; same run: {extra}"
        )
    con.print(f"report: {out_dir / 'report.json'}  {out_dir / 'report.html'}")
