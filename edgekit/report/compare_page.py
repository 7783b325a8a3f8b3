"""compare.html for `edgekit compare`: outputs, the pair-PSNR matrix as a heatmap, first tiles.

One self-contained page (edgekit.report.html) rendered from the compare result dict.
"""

from __future__ import annotations

import numpy as np

from . import html

ERROR_GAIN = 32.0


def _matrix(result: dict):
    names = [o["name"] for o in result["outputs"] if o.get("status") == "ok"]
    m = np.full((len(names), len(names)), np.nan)
    for p in result["pairs"]:
        i, j = names.index(p["a"]), names.index(p["b"])
        m[i, j] = m[j, i] = min(p["psnr_db"], 100.0)
    return names, m


def _heatmap(result: dict) -> html.Html:
    names, m = _matrix(result)
    fig, ax = html.figure(1.2 + 0.9 * len(names), 0.8 + 0.7 * len(names))
    im = ax.imshow(m, cmap="viridis", vmin=np.nanmin(m) if np.isfinite(m).any() else 0)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    for i in range(len(names)):
        for j in range(len(names)):
            if np.isfinite(m[i, j]):
                ax.text(j, i, f"{m[i, j]:.1f}", ha="center", va="center", fontsize=7, color="w")
    fig.colorbar(im, ax=ax, label="PSNR between outputs, dB (capped at 100)")
    return html.plot(fig, alt="pairwise PSNR matrix")


def render_compare(result: dict) -> str:
    outs = [
        [
            o["name"],
            o["format"],
            o["precision"],
            o["status"] if o["status"] == "ok" else f"skipped: {o.get('reason', '')}",
            f"{o['psnr_vs_clean_db']:.2f}" if "psnr_vs_clean_db" in o else "-",
        ]
        for o in result["outputs"]
    ]
    pairs = [
        [
            p["a"],
            p["b"],
            f"{p['psnr_db']:.2f}",
            f"{p['threshold_db']:g}",
            "ok" if p["ok"] else "BELOW",
        ]
        for p in result["pairs"]
    ]
    blocks = [
        html.section(
            "Outputs",
            html.table(
                ["output", "format", "precision", "status", "PSNR vs clean dB"], outs, align="llllr"
            ),
        ),  # fmt: skip
        html.section(
            "Pairs",
            html.table(
                ["A", "B", "PSNR A vs B dB", "threshold dB", "result"], pairs, align="llrrl"
            ),
            f"Flagged: {', '.join(result['flagged']) or 'none'}",
        ),
    ]
    try:
        if len(result["pairs"]) > 0:
            blocks.append(html.section("Pair matrix", _heatmap(result)))
    except Exception as exc:  # noqa: BLE001 - e.g. matplotlib missing: keep the tables
        blocks.append(html.section("Pair matrix", f"(plot not drawn: {exc})"))
    px = result.get("pixels")
    if px:
        ref_name = px.get("reference", "keras")
        ref = px["outputs"][ref_name].astype(np.float32)
        rows = [html.image_row([(px["clean"], "clean"), (px["degraded"], "degraded")], zoom=2)]
        for name, y in px["outputs"].items():
            err = np.abs(y.astype(np.float32) - ref).mean(axis=2) * ERROR_GAIN / 255.0
            rows.append(
                html.image_row(
                    [(y, name), (err, f"|{name} − {ref_name}| × {ERROR_GAIN:g}")],
                    zoom=2,
                    title=name,
                )
            )
        blocks.append(html.section("First tile of every output", *rows))
    title = f"edgekit compare: {result['model']}"
    sub = (
        f"{result['degradation']}, {result['tiles']} tiles of {result['tile'][0]}x"
        f"{result['tile'][1]}, measured on {result['measured_on']}"
    )
    return html.page(title, blocks, subtitle=sub)
