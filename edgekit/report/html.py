"""Build one self-contained, offline HTML page: escaped text, tables, matplotlib plots and images.

Everything a page shows is inside the file (PNG data URIs, inline CSS, no scripts, no network), so
a report can be mailed, attached to CI or opened from a USB stick.

Blocks are strings. Helpers here return `Html` (markup that is already safe); a plain `str`
handed to `page`/`section` is treated as text and escaped into a paragraph, so user-controlled
names (file names, layer names) can never inject markup.

    from edgekit.report import html
    fig, ax = html.figure(5, 3)
    ax.plot([1, 2], [3, 4])
    html.write_page("out/report.html", "My report", [
        html.heading("Results"),
        html.table(["name", "PSNR dB"], [["int8", "31.2"]], align="lr"),
        html.plot(fig, alt="latency vs PSNR"),
        html.image_row([(crop_a, "clean"), (crop_b, "int8")], zoom=2),
    ])
"""

from __future__ import annotations

import base64
import html as _html
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "Html",
    "esc",
    "text",
    "heading",
    "table",
    "figure",
    "figure_data_uri",
    "plot",
    "png_bytes",
    "png_data_uri",
    "image",
    "image_row",
    "section",
    "page",
    "write_page",
]


class Html(str):
    """Markup that is already safe to place in a page (never escaped again)."""


def esc(value) -> str:
    """`value` as text safe inside HTML elements and quoted attributes."""
    return _html.escape("" if value is None else str(value), quote=True)


def _block(b) -> Html:
    return b if isinstance(b, Html) else text(b)


def text(value, *, cls: str | None = None) -> Html:
    """A paragraph of escaped text."""
    attr = f' class="{esc(cls)}"' if cls else ""
    return Html(f"<p{attr}>{esc(value)}</p>")


def heading(value, level: int = 2) -> Html:
    if not 1 <= level <= 6:
        raise ValueError(f"heading level must be 1..6, got {level}")
    return Html(f"<h{level}>{esc(value)}</h{level}>")


def table(
    header: Sequence,
    rows: Iterable[Sequence],
    *,
    align: str | None = None,
    caption: str | None = None,
) -> Html:
    """A table of escaped cells. `align` is one letter per column: l(eft), r(ight), c(entre);
    numbers usually go right. Cells may be `Html` (e.g. an image) and are then kept as markup."""
    header = list(header)
    if align is not None and len(align) != len(header):
        raise ValueError(f"align has {len(align)} letters for {len(header)} columns")
    styles = [
        {"l": "", "r": ' class="num"', "c": ' class="ctr"'}[a] for a in (align or "l" * len(header))
    ]

    def cell(v) -> str:
        return v if isinstance(v, Html) else esc(v)

    out = ["<table>"]
    if caption:
        out.append(f"<caption>{esc(caption)}</caption>")
    out.append(
        "<thead><tr>"
        + "".join(f"<th{s}>{cell(h)}</th>" for h, s in zip(header, styles, strict=True))
        + "</tr></thead>"
    )
    out.append("<tbody>")
    for r in rows:
        r = list(r)
        if len(r) != len(header):
            raise ValueError(f"a table row has {len(r)} cells for {len(header)} columns: {r!r}")
        out.append(
            "<tr>"
            + "".join(f"<td{s}>{cell(v)}</td>" for v, s in zip(r, styles, strict=True))
            + "</tr>"
        )
    out.append("</tbody></table>")
    return Html("".join(out))


def figure(width_in: float = 6.0, height_in: float = 3.6, **subplots_kw):
    """A matplotlib (Figure, Axes) drawn with the Agg canvas, without pyplot's global state
    (no GUI backend, safe in threads and on headless machines). Extra keywords go to
    `Figure.subplots` (e.g. ncols=2: then the second value is an array of Axes). Without
    matplotlib it raises MissingBackendError naming the `report` extra."""
    from ..errors import require

    require("matplotlib", "report", "Plots in report.html")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(**subplots_kw)


def figure_data_uri(fig, *, dpi: int = 110) -> str:
    """A matplotlib figure as a `data:image/png;base64,...` URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def plot(fig, *, alt: str, caption: str | None = None, dpi: int = 110) -> Html:
    """A matplotlib figure embedded as a PNG (with alt text and an optional caption)."""
    img = f'<img src="{figure_data_uri(fig, dpi=dpi)}" alt="{esc(alt)}">'
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return Html(f'<figure class="plot">{img}{cap}</figure>')


def _to_uint8(array) -> np.ndarray:
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise ValueError(
            f"an image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {a.shape}"
        )
    if a.size == 0:
        raise ValueError(f"an image must not be empty, got {a.shape}")
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return (a.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    if a.dtype.kind == "b":
        return a.astype(np.uint8) * 255
    # float (or int) in [0, 1]: round to nearest, NaN shows as black
    f = np.nan_to_num(a.astype(np.float32), nan=0.0)
    return (np.clip(f, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def png_bytes(array) -> bytes:
    """PNG file bytes of an image: uint8, uint16, bool, or float in [0, 1] (clipped)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(_to_uint8(array)).save(buf, format="PNG")
    return buf.getvalue()


def png_data_uri(array) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(array)).decode("ascii")


def image(array, *, alt: str, caption: str | None = None, zoom: int = 1) -> Html:
    """An image (see `png_bytes`) as an embedded PNG. `zoom` > 1 shows it larger with sharp
    pixels (so int8 banding or a seam is visible, not smoothed away by the browser)."""
    a = _to_uint8(array)
    h, w = a.shape[:2]
    zoom = max(1, int(zoom))
    style = ' class="px"' if zoom > 1 else ""
    img = (
        f'<img src="{png_data_uri(a)}" alt="{esc(alt)}" width="{w * zoom}" '
        f'height="{h * zoom}"{style}>'
    )
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return Html(f'<figure class="img">{img}{cap}</figure>')


def image_row(items: Sequence[tuple], *, zoom: int = 1, title: str | None = None) -> Html:
    """Images side by side, each with its caption: `items` = [(array, caption), ...]."""
    cells = "".join(image(a, alt=c, caption=c, zoom=zoom) for a, c in items)
    head = f'<div class="rowtitle">{esc(title)}</div>' if title else ""
    return Html(f'<div class="imgrow">{head}<div class="imgs">{cells}</div></div>')


def section(title: str, *blocks) -> Html:
    """A titled section holding blocks (plain strings become escaped paragraphs)."""
    inner = "".join(_block(b) for b in blocks)
    return Html(f"<section>{heading(title, 2)}{inner}</section>")


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;
max-width:1200px;padding:0 16px;color:#1d1d1f;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;
padding-bottom:3px}h3{font-size:15px;margin:18px 0 6px}
p.sub{color:#555;margin:0 0 16px}
table{border-collapse:collapse;margin:8px 0 12px;font-size:13px}
caption{text-align:left;color:#555;padding-bottom:4px}
th,td{border:1px solid #d8d8d8;padding:3px 8px;vertical-align:top}
th{background:#f3f3f5;text-align:left}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.ctr,th.ctr{text-align:center}tbody tr:nth-child(even){background:#fafafa}
figure{margin:6px 10px 10px 0}figure.plot img{max-width:100%;height:auto}
figcaption{font-size:12px;color:#444;text-align:center;max-width:100%}
.imgrow{margin:6px 0 14px}.rowtitle{font-weight:600;margin-bottom:2px}
.imgs{display:flex;flex-wrap:wrap;align-items:flex-start}
img.px{image-rendering:pixelated;image-rendering:crisp-edges}
code,pre{font:12px ui-monospace,Menlo,Consolas,monospace;background:#f5f5f7}
"""


def page(title: str, blocks: Iterable, *, subtitle: str | None = None) -> str:
    """A complete HTML document: title, optional subtitle line, then the blocks in order."""
    body = "".join(_block(b) for b in blocks)
    sub = f'<p class="sub">{esc(subtitle)}</p>' if subtitle else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head>"
        f"<body><h1>{esc(title)}</h1>{sub}{body}</body></html>\n"
    )


def write_page(
    path: str | os.PathLike, title: str, blocks: Iterable, *, subtitle: str | None = None
) -> Path:
    """Write `page(...)` to `path` atomically (temporary name, then rename)."""
    from ..atomic import write_bytes

    # bytes, not text: the page is UTF-8 whatever the locale's default encoding is
    return write_bytes(path, page(title, blocks, subtitle=subtitle).encode("utf-8"))
