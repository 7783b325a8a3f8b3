"""Render a report dict: report.json + report.md (written atomically) and the terminal rows.

edgekit.terminal.print_report draws the rows and lines built here.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..atomic import write_bytes, write_text
from .schema import json_safe


def _mb(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e3:.1f} kB" if n < 100_000 else f"{n / 1e6:.2f} MB"


def _ms(v) -> str:
    return "-" if v is None else f"{v:.3f}" if v < 1.0 else f"{v:.1f}"


def _f(v, fmt: str = ".2f", suffix: str = "") -> str:
    return "-" if v is None else f"{v:{fmt}}{suffix}"


def _delta_ref(row: dict, report: dict) -> float | None:
    ref = (report.get("reference") or {}).get("psnr_db")
    return None if ref is None or row.get("psnr_db") is None else row["psnr_db"] - ref


def table_rows(report: dict) -> list[list[str]]:
    """The summary table as strings: one list per artifact, columns as in `TABLE_HEADER`."""
    rows = []
    arts = report.get("artifacts", [])
    several = len({r.get("target") for r in arts}) > 1  # a merged report (edgekit demo)
    for r in arts:
        lat = r.get("latency_ms") or {}
        label = r.get("label") or f"{r.get('format')}-{r.get('precision')}"
        rows.append(
            [
                f"{r.get('target')}/{label}" if several else label,
                _mb(r.get("size_bytes")),
                _mb(r.get("gzip_size_bytes")),
                _ms(lat.get("p50")),
                _ms(lat.get("p90")),
                _f(r.get("speedup_vs_fp32"), ".2f", "x"),
                _f(r.get("peak_rss_mb"), ".0f"),
                _f(r.get("psnr_db"), ".2f"),
                _f(r.get("ssim"), ".4f"),
                _f(_delta_ref(r, report), "+.2f"),
                _f(r.get("psnr_vs_reference_db"), ".1f"),
                r.get("measured_on") or "-",
            ]
        )
    return rows


TABLE_HEADER = [
    "artifact",
    "size",
    "gzip",
    "p50 ms",
    "p90 ms",
    "speed-up vs fp32",
    "peak RSS MB",
    "PSNR dB",
    "SSIM",
    "ΔPSNR vs float",
    "PSNR vs float out",
    "measured on",
]


def table_header(report: dict) -> list[str]:
    """TABLE_HEADER, with the speed-up column naming its baseline when the report has one
    (`edgekit compress`: the user's own model exported as fp32)."""
    rel = report.get("relative_to") or {}
    if rel.get("speed-up", "").startswith("baseline"):
        return ["speed-up vs baseline" if h == "speed-up vs fp32" else h for h in TABLE_HEADER]
    return list(TABLE_HEADER)


STEP_HEADER = [
    "#",
    "step",
    "params",
    "MACs / px",
    "size B",
    "gzip B",
    "PSNR dB",
    "PSNR vs float dB",
    "s",
]


def step_rows(report: dict) -> list[list[str]]:
    """The compression steps as strings, "before → after" per measure (columns STEP_HEADER)."""

    def n(v):
        return "-" if v is None else f"{v:,.0f}"

    def ba(s, key, fmt=None):
        b, a = s.get(f"{key}_before"), s.get(f"{key}_after")
        if fmt:
            return f"{_f(b, fmt)} → {_f(a, fmt)}"
        return f"{n(b)} → {n(a)}"

    return [
        [
            str(s.get("step")),
            str(s.get("kind")),
            ba(s, "params"),
            ba(s, "macs_per_pixel"),
            ba(s, "size_bytes"),
            ba(s, "gzip_bytes"),
            ba(s, "psnr_db", ".2f"),
            ba(s, "psnr_vs_float_db", ".1f"),
            _f(s.get("seconds"), ".0f"),
        ]
        for s in report.get("steps") or []
    ]


# The terminal shows the essentials; report.md has every column.
TERMINAL_COLUMNS = [
    "artifact",
    "size",
    "p50 ms",
    "speed-up vs fp32",
    "PSNR dB",
    "ΔPSNR vs float",
    "measured on",
]


def _op_fallbacks(row: dict) -> list[str]:
    rep = row.get("int8_report") or {}
    ops = rep.get("ops") or []
    out = [f"{e.get('op')} #{e.get('index')} ({e.get('kind')}): {e.get('reason')}" for e in ops]
    seen = {(e.get("op"), e.get("index")) for e in ops}
    for e in (row.get("ops") or {}).get("not_delegated") or []:
        if isinstance(e, str):
            text = e
        elif (e.get("op"), e.get("index")) in seen:
            continue
        else:
            text = f"{e.get('op')} #{e.get('index')}: not delegated to XNNPACK"
        if text not in out:
            out.append(text)
    return out


def _tiles(tiles) -> str:
    if not isinstance(tiles, dict):
        return str(tiles)
    return ", ".join(f"{n} tiles of {k}" for k, n in tiles.items())


def _tiling_cost(db) -> str:
    return "identical" if db is not None and db >= 200.0 else f"{_f(db, '.1f')} dB"


def render_markdown(report: dict) -> str:
    t = report.get("target", {})
    m = report.get("model", {})
    ev = report.get("eval_set", {})
    ref = report.get("reference", {})
    deg = report.get("degraded_input", {})
    targets = report.get("targets") or [t]  # a merged report lists every target
    places = sorted(
        {r.get("measured_on") for r in report.get("artifacts", []) if r.get("measured_on")}
    )
    lines = [
        f"# edgekit benchmark: {m.get('name', '?')} on {', '.join(str(x.get('name', '?')) for x in targets)}",
        "",
        f"- **Measured on:** {'; '.join(places) or report.get('measured_on')}",
    ]
    for x in targets:
        used = x.get("used", {})
        lines.append(
            f"- **Target {x.get('name')}:** {x.get('description')} (meant for: {x.get('device')}); "
            f"used {used.get('threads')} threads, delegate {used.get('delegate')}, {used.get('warmup')} "
            f"warm-up rounds, {used.get('repeats')} timed repeats per artifact, interleaved across artifacts"
        )
    lines += [
        f"- **Model:** {m.get('name')} ({m.get('task')}, scale {m.get('scale')}, source {m.get('source') or '-'})",
        f"- **Eval set:** {ev.get('count')} image(s) from {ev.get('source')} [{ev.get('split')}]: "
        + ", ".join(i["name"] for i in ev.get("images", []))
        + (f" ({ev['crop']})" if ev.get("crop") else "")
        + f"; degradation `{ev.get('degradation')}`, seed {ev.get('seed')}; {_tiles(ev.get('tiles'))} "
        f"(overlap {ev.get('overlap')}, margin {ev.get('margin')})",
        f"- **Float reference:** PSNR {_f(ref.get('psnr_db'))} dB, SSIM {_f(ref.get('ssim'), '.4f')}"
        + (
            f" (whole-image {_f(ref.get('whole_image_psnr_db'))} dB; tiled vs whole-image output: {_tiling_cost(ref.get('tiling_psnr_db'))})"
            if ref.get("whole_image_psnr_db") is not None
            else ""
        ),
        f"- **Degraded input:** PSNR {_f(deg.get('psnr_db'))} dB, SSIM {_f(deg.get('ssim'), '.4f')} ({deg.get('description')})",
        f"- **Created:** {report.get('created')} by edgekit {report.get('edgekit_version')}",
        "",
        "| " + " | ".join(table_header(report)) + " |",
        "|" + "|".join("---" for _ in TABLE_HEADER) + "|",
    ]
    for row in table_rows(report):
        lines.append("| " + " | ".join(c.replace("|", "/") for c in row) + " |")
    lines += [
        "",
        "Latency: p50/p90 over n timed runs per artifact (see report.json for mean, p99, min, max, n). "
        + (
            "; ".join(f"{k} is against {v}" for k, v in report["relative_to"].items()) + "."
            if report.get("relative_to")
            else "Speed-up and ΔPSNR are relative to the fp32 row and the float Keras model of the same run."
        ),
    ]
    arts = report.get("artifacts", [])
    budget = t.get("latency_budget_ms")
    floor = t.get("quality_floor_db")
    if budget is not None or floor is not None:
        lines += [
            "",
            "## Target budgets",
            "",
            f"Budgets come from the target profile; these numbers were measured on {report.get('measured_on')}.",
            "",
        ]
        for r in arts:
            parts = []
            if budget is not None:
                parts.append(
                    f"latency p50 {_f(r['latency_ms']['p50'], '.1f')} ms vs budget {budget} ms: "
                    + ("meets" if r.get("meets_latency_budget") else "misses")
                )
            if floor is not None:
                ok = r.get("meets_quality_floor")
                parts.append(
                    f"PSNR vs float {_f(r.get('psnr_vs_reference_db'), '.1f')} dB vs floor {floor} dB: "
                    + ("-" if ok is None else "meets" if ok else "misses")
                )
            lines.append(f"- {r.get('label')}: " + "; ".join(parts))
    notes = report.get("notes") or []
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    fall = [(r.get("label"), _op_fallbacks(r)) for r in arts]
    if any(ops for _, ops in fall):
        lines += ["", "## Ops off the integer / XNNPACK fast path", ""]
        for label, ops in fall:
            if ops:
                lines.append(f"- **{label}**: " + "; ".join(ops))
    steps = report.get("steps") or []
    if steps:
        lines += [
            "",
            "## Compression steps",
            "",
            "| " + " | ".join(STEP_HEADER) + " |",
            "|" + "|".join("---" for _ in STEP_HEADER) + "|",
        ]
        lines += ["| " + " | ".join(r) + " |" for r in step_rows(report)]
        lines += ["", "Each step's full configuration is in report.json (`steps[].config`)."]
    return "\n".join(lines) + "\n"


def strip_pixels(report: dict) -> dict:
    """A shallow copy without the crop pixels the harness keeps for report.html (JSON keeps
    the boxes only)."""
    out = dict(report)
    crops = out.get("crops")
    if isinstance(crops, dict):
        out["crops"] = {
            **crops,
            "photos": [
                {k: v for k, v in p.items() if k != "pixels"} for p in crops.get("photos", [])
            ],
        }
    out["artifacts"] = [
        {k: v for k, v in r.items() if k != "crop_pixels"} for r in report.get("artifacts", [])
    ]
    return out


def write_report(report: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """Write out_dir/report.json, report.md and report.html atomically; returns the first two.

    Every text is rendered before any file is written, so a report that cannot be rendered
    leaves no file behind (nor a stale set from a previous run half-replaced)."""
    from .page import render_html

    out_dir = Path(out_dir)
    safe = json_safe(strip_pixels(report))
    json_text = json.dumps(safe, indent=2, allow_nan=False) + "\n"
    md_text = render_markdown(safe)
    html_text = render_html(report)
    json_path = write_text(out_dir / "report.json", json_text)
    md_path = write_text(out_dir / "report.md", md_text)
    write_bytes(out_dir / "report.html", html_text.encode("utf-8"))
    return json_path, md_path


def summary_line(report: dict) -> str:
    """One line under the table: the float reference's and the degraded input's PSNR."""
    ref = report.get("reference") or {}
    deg = report.get("degraded_input") or {}
    return f"float reference PSNR {_f(ref.get('psnr_db'))} dB; degraded input {_f(deg.get('psnr_db'))} dB"
