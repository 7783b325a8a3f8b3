"""report.html in a real browser (headless Chromium): it draws something and no image is broken."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgekit.report import html
from edgekit.report.render import write_report

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium)"
)
_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio"]

# Injected into a *copy* of the page: after load, count images that did not decode.
_PROBE = """<script>window.addEventListener('load', () => {
  const imgs = [...document.images];
  const broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length;
  document.body.setAttribute('data-probe', imgs.length + ':' + broken);
});</script>"""


def _images_and_broken(page: Path, tmp: Path) -> tuple[int, int]:
    probe = tmp / f"probe-{page.stem}.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"))
    dom = subprocess.run(
        [CHROMIUM, *_FLAGS, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    m = re.search(r'data-probe="(\d+):(\d+)"', dom)
    assert m, f"the probe did not run; DOM starts: {dom[:300]!r}"
    return int(m.group(1)), int(m.group(2))


def _screenshot(page: Path, out: Path) -> np.ndarray:
    subprocess.run(
        [CHROMIUM, *_FLAGS, "--window-size=1280,1800", f"--screenshot={out}", page.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    return np.asarray(Image.open(out).convert("L"), np.float32)


def _report() -> dict:
    """A bench-shaped report with every section: table, scatter, steps, crops."""
    rng = np.random.default_rng(0)
    crop = lambda: (rng.random((96, 96, 3)) * 255).astype(np.uint8)  # noqa: E731
    arts = []
    for i, (prec, ms, db) in enumerate(
        [("fp32", 300.0, 29.2), ("fp16", 310, 29.2), ("int8", 80, 29.0)]
    ):
        arts.append({
            "id": f"tflite-{prec}", "label": f"tflite-{prec}", "format": "tflite", "precision": prec,
            "size_bytes": 800_000 // (i + 1), "gzip_size_bytes": 700_000 // (i + 1),
            "latency_ms": {"p50": ms, "p90": ms * 1.1}, "psnr_db": db, "ssim": 0.8,
            "psnr_vs_reference_db": 60.0 - 10 * i, "measured_on": "host-cpu (test)",
            "speedup_vs_fp32": 300.0 / ms, "peak_rss_mb": 100.0,
            "crop_pixels": [{"artifact": crop(), "error": crop()[..., 0], "error_against": "float"}],
        })  # fmt: skip
    step = {
        "step": 0, "kind": "prune_channels", "config": {"ratio": 0.33},
        "params_before": 210_000, "params_after": 100_000, "macs_per_pixel_before": 209_000,
        "macs_per_pixel_after": 99_000, "size_bytes_before": 840_000, "size_bytes_after": 400_000,
        "gzip_bytes_before": 780_000, "gzip_bytes_after": 370_000, "psnr_db_before": 29.2,
        "psnr_db_after": 28.9, "psnr_vs_float_db_before": None, "psnr_vs_float_db_after": 38.0,
        "seconds": 40,
    }  # fmt: skip
    return {
        "created": "2026-12-03T08:00:00Z", "edgekit_version": "0.1.0", "measured_on": "host-cpu (test)",
        "model": {"name": "dncnn", "task": "denoise", "scale": 1, "source": "zoo:dncnn"},
        "target": {"name": "host-cpu", "used": {"threads": 2}}, "eval_set": {"count": 1, "images": []},
        "reference": {"psnr_db": 29.23}, "degraded_input": {"psnr_db": 20.7},
        "artifacts": arts, "steps": [step], "notes": ["a note <b>not bold</b>"],
        "crops": {"size": 96, "error_gain": 8.0, "photos": [
            {"name": "04.png", "box": [0, 0, 96, 96],
             "pixels": {"clean": crop(), "degraded": crop(), "float": crop()}}]},
    }  # fmt: skip


@pytest.mark.slow
def test_report_html_renders_in_chromium_with_every_image(tmp_path):
    write_report(_report(), tmp_path)
    page = tmp_path / "report.html"
    n, broken = _images_and_broken(page, tmp_path)
    # 2 plots + per artifact: clean, degraded, float, its crop, its error map
    assert (n, broken) == (2 + 3 * 5, 0)
    shot = _screenshot(page, tmp_path / "shot.png")
    assert shot.std() > 20.0  # not a blank page: text, table, plot
    assert "<b>not bold</b>" not in page.read_text(encoding="utf-8")


@pytest.mark.slow
def test_the_probe_sees_a_broken_image(tmp_path):
    page = html.write_page(
        tmp_path / "bad.html",
        "bad",
        [
            html.Html('<img src="data:image/png;base64,AAAA" alt="broken">'),
            html.image(np.zeros((4, 4)), alt="ok"),
        ],
    )
    assert _images_and_broken(page, tmp_path) == (2, 1)
    assert _screenshot(page, tmp_path / "s.png").std() > 1.0
