"""report.html for a benchmark report: the table, latency-vs-PSNR, compression steps, crops.

Rendered from the same report dict as report.md (plus the crop pixels the harness keeps in
memory), into one self-contained page (edgekit.report.html): it opens offline, plots are
matplotlib PNGs, crops are shown with sharp pixels so int8 banding and tile seams are visible.
"""

from __future__ import annotations

from . import html
from .render import STEP_HEADER, _f, step_rows, table_header, table_rows

_PANELS = ("clean", "degraded", "float")


def _facts(report: dict) -> html.Html:
    m = report.get("model") or {}
    ev = report.get("eval_set") or {}
    ref = report.get("reference") or {}
    deg = report.get("degraded_input") or {}
    targets = report.get("targets") or [report.get("target") or {}]
    places = sorted(
        {r.get("measured_on") for r in report.get("artifacts", []) if r.get("measured_on")}
    )
    rows = [
        ["Measured on", "; ".join(places) or report.get("measured_on") or "-"],
        ["Model", f"{m.get('name')} ({m.get('task')}, scale {m.get('scale')}, source {m.get('source') or '-'})"],
        [
            "Eval set",
            f"{ev.get('count')} photo(s) [{ev.get('split')}]: "
            + ", ".join(i["name"] for i in ev.get("images", []))
            + (f" ({ev['crop']})" if ev.get("crop") else "")
            + f"; degradation {ev.get('degradation')}, seed {ev.get('seed')}",
        ],
        ["Float reference", f"PSNR {_f(ref.get('psnr_db'))} dB, SSIM {_f(ref.get('ssim'), '.4f')} ({ref.get('mode') or '-'})"],
        ["Degraded input", f"PSNR {_f(deg.get('psnr_db'))} dB ({deg.get('description') or '-'})"],
    ]  # fmt: skip
    for t in targets:
        used = t.get("used") or {}
        rows.append(
            [
                f"Target {t.get('name')}",
                f"{t.get('description')} (meant for {t.get('device')}); {used.get('threads')} threads, "
                f"delegate {used.get('delegate')}, {used.get('repeats')} timed repeats, interleaved",
            ]
        )
    if report.get("relative_to"):
        for k, v in report["relative_to"].items():
            rows.append([f"{k} is against", v])
    return html.table(["item", "details"], rows)


def _scatter(report: dict) -> html.Html | None:
    arts = [a for a in report.get("artifacts", []) if a.get("psnr_db") is not None]
    if not arts:
        return None
    fig, ax = html.figure(7.0, 4.2)
    targets = list(dict.fromkeys(a.get("target") for a in arts))
    markers = "osD^v<>"
    for i, t in enumerate(targets):
        pts = [a for a in arts if a.get("target") == t]
        xs = [(a.get("latency_ms") or {}).get("p50") for a in pts]
        ys = [a["psnr_db"] for a in pts]
        ax.scatter(xs, ys, marker=markers[i % len(markers)], s=46, label=t or "artifacts", zorder=3)
        for j, (a, x, y) in enumerate(zip(pts, xs, ys, strict=True)):
            # staggered labels: variants of one model often sit at nearly the same PSNR
            ax.annotate(
                a.get("label") or a.get("id"),
                (x, y),
                textcoords="offset points",
                xytext=(5, 5 + 9 * ((j + i) % 3) * (1 if (j + i) % 2 else -1)),
                fontsize=7,
            )
    ref = (report.get("reference") or {}).get("psnr_db")
    deg = (report.get("degraded_input") or {}).get("psnr_db")
    if ref is not None:
        ax.axhline(ref, color="tab:green", ls="--", lw=1, label=f"float Keras model {ref:.2f} dB")
    # the degraded input is far below: named in the caption, not drawn (it would flatten the axis)
    ax.set_xscale("log")
    ax.set_xlabel("latency p50, ms per tile (log scale)")
    ax.set_ylabel("PSNR vs clean, dB")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    where = "; ".join(sorted({a.get("measured_on") or "?" for a in arts}))
    return html.plot(
        fig,
        alt="latency vs PSNR scatter",
        caption=f"Up and to the left is better. Latency measured on {where}."
        + (f" The degraded input scores {deg:.2f} dB." if deg is not None else ""),
    )


def _steps(report: dict) -> list:
    steps = report.get("steps") or []
    if not steps:
        return []
    blocks = [html.table(STEP_HEADER, step_rows(report), align="ll" + "r" * 7)]
    try:
        blocks.insert(0, _steps_chart(steps))
    except Exception as exc:  # noqa: BLE001 - a missing plot must not lose the report
        blocks.insert(0, f"(chart not drawn: {exc})")
    return blocks


def _steps_chart(steps: list[dict]) -> html.Html:
    fig, (ax, bx) = html.figure(8.0, 3.4, ncols=2)
    names = ["start"] + [f"{s.get('step')}:{s.get('kind')}" for s in steps]
    keys = (("params", "params"), ("macs_per_pixel", "MACs/px"), ("size_bytes", "size"))
    xs = list(range(len(names)))
    for key, label in keys:
        first = steps[0].get(f"{key}_before")
        vals = [first] + [s.get(f"{key}_after") for s in steps]
        if first:
            ax.plot(xs, [None if v is None else v / first for v in vals], marker="o", label=label)
    ax.set_xticks(xs, names, rotation=20, fontsize=8)
    ax.set_ylabel("relative to the start")
    ax.set_title("model cost after each step", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    psnr = [steps[0].get("psnr_db_before")] + [s.get("psnr_db_after") for s in steps]
    bx.plot(xs, psnr, marker="o", color="tab:purple")
    bx.set_xticks(xs, names, rotation=20, fontsize=8)
    bx.set_ylabel("PSNR vs clean, dB")
    bx.set_title("quality after each step", fontsize=10)
    bx.grid(alpha=0.3)
    return html.plot(fig, alt="compression steps chart")


def _crops(report: dict) -> list:
    ctx = report.get("crops") or {}
    photos = ctx.get("photos") or []
    if not photos:
        return []
    gain = ctx.get("error_gain")
    blocks = [
        f"Crops of {len(photos)} held-out photo(s), {ctx.get('size')} px, shown at 2x with sharp "
        f"pixels. The error map is |artifact − float output| × {gain:g} (black: identical)."
    ]
    for a in report.get("artifacts", []):
        mine = a.get("crop_pixels") or []
        label = a.get("label") or a.get("id")
        if a.get("target") and (report.get("targets") or []):
            label = f"{a['target']}/{label}"
        for ph, c in zip(photos, mine, strict=False):
            items = [(ph["pixels"][k], k) for k in _PANELS if k in ph.get("pixels", {})]
            items.append((c["artifact"], label))
            items.append((c["error"], f"|error vs {c['error_against']}| × {gain:g}"))
            blocks.append(
                html.image_row(items, zoom=2, title=f"{label} — {ph['name']} (box {ph['box']})")
            )
    return blocks


def render_html(report: dict) -> str:
    """The whole page as a string (plots are skipped, with a note, without matplotlib)."""
    m = report.get("model") or {}
    targets = report.get("targets") or [report.get("target") or {}]
    title = f"edgekit benchmark: {m.get('name', '?')} on {', '.join(str(t.get('name')) for t in targets)}"
    blocks = [html.section("Setup", _facts(report))]
    header = table_header(report)
    blocks.append(
        html.section(
            "Results",
            html.table(header, table_rows(report), align="l" + "r" * (len(header) - 2) + "l"),
            "Latency: p50/p90 per tile over the timed runs; PSNR/SSIM on whole held-out photos "
            "after tiling. Every number says where it was measured.",
        )
    )
    try:
        plot = _scatter(report)
        if plot is not None:
            blocks.append(html.section("Latency vs quality", plot))
    except Exception as exc:  # noqa: BLE001 - e.g. matplotlib missing: keep the rest
        blocks.append(html.section("Latency vs quality", f"(plot not drawn: {exc})"))
    steps = _steps(report)
    if steps:
        blocks.append(html.section("Compression steps", *steps))
    crops = _crops(report)
    if crops:
        blocks.append(html.section("What the artifacts do to the photos", *crops))
    notes = report.get("notes") or []
    if notes:
        blocks.append(html.section("Notes", *notes))
    return html.page(
        title,
        blocks,
        subtitle=f"created {report.get('created')} by edgekit {report.get('edgekit_version')}",
    )
