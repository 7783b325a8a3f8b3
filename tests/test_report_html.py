"""edgekit.report.html: one self-contained page, escaped text, embedded plots and images."""

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from edgekit.report import html


def _data_uris(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_text_and_table_cells_are_escaped():
    evil = '<script>alert("x")</script> & a "b"'
    page = html.page(evil, [evil, html.table(["name"], [[evil]])])
    assert "<script>" not in page
    assert page.count("&lt;script&gt;") == 4  # <title>, <h1>, the paragraph, the cell
    assert "&amp; a &quot;b&quot;" in page


def test_html_blocks_pass_through_and_tables_check_their_shape():
    t = html.table(["a", "b"], [["1", html.Html("<b>2</b>")]], align="lr", caption="c<")
    assert "<b>2</b>" in t and '<td class="num">' in t and "c&lt;" in t
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        html.table(["a", "b", "c"], [["1", "2"]])
    with pytest.raises(ValueError, match="align"):
        html.table(["a"], [], align="lr")


def test_images_round_trip_as_png_pixels():
    rng = np.random.default_rng(0)
    rgb = rng.random((7, 5, 3)).astype(np.float32)
    gray16 = (rng.random((4, 6)) * 65535).astype(np.uint16)
    block = html.image_row([(rgb, "float"), (gray16, "16-bit")], zoom=3, title="crops")
    pngs = _data_uris(block)
    assert len(pngs) == 2
    back = np.asarray(Image.open(io.BytesIO(pngs[0])))
    np.testing.assert_array_equal(back, (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8))
    back16 = np.asarray(Image.open(io.BytesIO(pngs[1])))
    assert back16.shape == (4, 6) and np.abs(back16.astype(int) - gray16 / 257).max() <= 0.5 + 1e-6
    assert 'width="15" height="21" class="px"' in block  # zoomed with sharp pixels
    with pytest.raises(ValueError, match="image must be"):
        html.image(np.zeros((4, 4, 2)), alt="x")


def test_plot_embeds_a_non_blank_png_and_the_page_needs_no_network(tmp_path):
    fig, ax = html.figure(3, 2)
    ax.scatter([1, 2, 3], [30, 31, 29])
    ax.set_xlabel("latency ms")
    path = html.write_page(
        tmp_path / "r.html", "Report Δ", [html.section("Plot", html.plot(fig, alt="scatter"))]
    )
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "Report Δ" in page
    (png,) = _data_uris(page)
    img = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float32)
    assert img.shape == (220, 330) and img.std() > 5  # drawn, not blank
    # self-contained: nothing is fetched from elsewhere
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert not list(tmp_path.glob(".*tmp*"))
