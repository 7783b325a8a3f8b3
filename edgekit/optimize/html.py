"""report.html for a search: the Pareto plot, the per-layer sensitivity chart, the candidates.

Built with edgekit.report.html (one self-contained page, plots as embedded PNGs).
"""

from __future__ import annotations

from pathlib import Path


def _pareto_figure(report: dict):
    from ..report import html

    fig, ax = html.figure(7.5, 4.2)
    rows = [r for r in report["candidates"] if r["ok"] and r["latency_ms"] is not None]
    front = {p["id"] for p in report["pareto"]}
    sizes = [r["size_bytes"] or 1 for r in rows]
    big = max(sizes) if sizes else 1
    for r, sz in zip(rows, sizes, strict=True):
        colour = "#2a7" if r["meets_budget"] else "#c44"
        ax.scatter(
            r["latency_ms"], r["psnr_db"], s=30 + 300 * sz / big, c=colour, alpha=0.6,
            edgecolors="k" if r["id"] in front else "none",
        )  # fmt: skip
        ax.annotate(r["label"], (r["latency_ms"], r["psnr_db"]), fontsize=7, xytext=(4, 3),
                    textcoords="offset points")  # fmt: skip
    pts = sorted((p["latency_ms"], p["psnr_db"]) for p in report["pareto"])
    if pts:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "k--", lw=1, label="Pareto front")
    ref = report["reference"]["validation"]["psnr_db"]
    ax.axhline(ref, color="#555", lw=1, label=f"float model {ref:.2f} dB")
    if report["budget"]["metric"] == "psnr":
        ax.axhline(
            ref - report["budget"]["max_drop"], color="#c80", lw=1.5,
            label=f"budget: -{report['budget']['max_drop']:g} dB",
        )  # fmt: skip
    b = report.get("best")
    if b:
        match = [r for r in rows if r["id"] == b["id"]]
        if match:
            ax.scatter(match[0]["latency_ms"], match[0]["psnr_db"], marker="*", s=260, c="gold",
                       edgecolors="k", zorder=5, label="chosen")  # fmt: skip
    ax.set_xlabel("latency p50, ms per tile (" + (rows[0]["measured_on"] if rows else "-") + ")")
    ax.set_ylabel("PSNR dB (validation photos)")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    return fig


def _sensitivity_figure(ranking: list[dict]):
    from ..report import html

    top = ranking[:30]
    fig, ax = html.figure(7.5, 0.6 + 0.22 * max(len(top), 3))
    names = [(r["layer"] or r["node"])[:32] + f" ({r['op']})" for r in top]
    ax.barh(range(len(top)), [100 * (r["share"] or 0) for r in top], color="#47a")
    ax.set_yticks(range(len(top)))
    ax.set_yticklabels(names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("share of int8's error (%): output MSE vs the float model, only this node int8")
    ax.grid(axis="x", alpha=0.3)
    return fig


def _f(v, fmt="{:.2f}"):
    return "-" if v is None else fmt.format(v)


def write_html(report: dict, path: Path) -> Path:
    from ..report import html

    b = report.get("best")
    budget = report["budget"]
    head = (
        f"{report['model']['name']} for {report['target']['name']}: max drop "
        f"{budget['max_drop']:g} {budget['unit']}"
    )
    if b:
        summary = (
            f"Chosen: {b['label']} ({Path(b['path']).name}) — test photos: PSNR "
            f"{b['psnr_db']:.2f} dB, drop {b['drop_db']:+.3f} dB, SSIM {b['ssim']:.4f}; "
            f"{b['latency_ms']:.2f} ms p50 on {b['measured_on']}; {b['size_bytes'] / 1024:.0f} KB."
        )
    else:
        c = report.get("closest")
        summary = "No candidate meets the budget." + (
            f" Closest: {c['label']} ({c['drop']:+.3f})." if c else ""
        )
    blocks = [html.text(summary)]
    cmp = report.get("comparison")
    if cmp:
        rows = [
            [name if name == "best" or r["id"] != cmp["rows"]["best"]["id"] else f"{name} (= best)",
             r["label"], _f(r["psnr_db"]), _f(r["drop_db"], "{:+.3f}"), _f(r["ssim"], "{:.4f}"),
             _f(r["latency_ms"]), r["measured_on"]]
            for name, r in cmp["rows"].items()
        ]  # fmt: skip
        blocks.append(
            html.section(
                "Chosen vs plain PTQ (test photos, one interleaved run)",
                html.table(
                    ["", "artifact", "PSNR dB", "drop dB", "SSIM", "p50 ms", "measured on"],
                    rows,
                    align="llrrrrl",
                ),
            )
        )
    blocks.append(
        html.section(
            "Latency vs quality",
            html.plot(
                _pareto_figure(report),
                alt="Pareto plot: latency against PSNR per candidate",
                caption="marker area ~ file size; green = within budget, red = over; outlined = "
                "on the Pareto front",
            ),
        )
    )
    if report.get("sensitivity"):
        blocks.append(
            html.section(
                "Per-layer sensitivity (int8)",
                html.plot(_sensitivity_figure(report["sensitivity"]), alt="per-layer sensitivity"),
            )
        )
    cand_rows = [
        [r["label"], r["kind"], _f(r["psnr_db"]), _f(r["drop_db"], "{:+.3f}"),
         _f(r["ssim"], "{:.4f}"), _f(r["latency_ms"]),
         _f(r["size_bytes"] and r["size_bytes"] / 1024, "{:.0f}"),
         "yes" if r["meets_budget"] else "no", ", ".join(r["float_layers"] or []) or "-",
         "cache" if r["cached"] else "built", (r["error"] or "")[:120]]
        for r in report["candidates"]
    ]  # fmt: skip
    blocks.append(
        html.section(
            "Candidates (validation photos)",
            html.table(
                ["candidate", "kind", "PSNR dB", "drop dB", "SSIM", "p50 ms", "KB", "in budget",
                 "float layers", "source", "error"],
                cand_rows,
                align="llrrrrrclll",
            ),
        )
    )  # fmt: skip
    sp = report["splits"]
    blocks.append(
        html.section(
            "Photos and notes",
            f"calibration: {', '.join(sp['calibration'])}; validation: "
            f"{', '.join(sp['validation'])}; test: {', '.join(sp['test'])}; {sp['eval_crop']}; "
            f"degradation {sp['degradation']}.",
            *report.get("notes", []),
        )
    )
    return html.write_page(path, "edgekit optimize", blocks, subtitle=head)
