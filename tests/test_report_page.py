"""report.md / report.html content: steps as a table, the baseline named, pixels kept out of JSON."""

import json

from test_report_browser import _report

from edgekit.report.page import render_html
from edgekit.report.render import render_markdown, write_report


def test_steps_are_a_table_and_json_has_no_pixels(tmp_path):
    rep = _report()
    md = render_markdown(rep)
    assert "| 0 | prune_channels | 210,000 → 100,000 | 209,000 → 99,000 |" in md
    assert '{"' not in md.split("## Compression steps")[1]  # no raw JSON any more
    write_report(rep, tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["crops"]["photos"][0] == {"name": "04.png", "box": [0, 0, 96, 96]}
    assert all("crop_pixels" not in a for a in data["artifacts"])
    assert (tmp_path / "report.html").stat().st_size > 10_000


def test_speed_up_column_names_its_baseline():
    rep = _report()
    assert "speed-up vs fp32" in render_html(rep)
    rep["relative_to"] = {"speed-up": "baseline: your model exported as tflite fp32"}
    page, md = render_html(rep), render_markdown(rep)
    assert "speed-up vs baseline" in page and "speed-up vs baseline" in md
    assert "speed-up is against baseline: your model exported as tflite fp32" in md
