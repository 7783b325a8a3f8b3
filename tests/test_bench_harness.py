"""The benchmark harness end to end on a tiny box-filter denoiser and two small images."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_target
from test_bench_helpers import DEGRADATION, TILE, box_denoiser, convert, info, loaded, write_images

from edgekit.bench import harness
from edgekit.bench.artifacts import tile_from
from edgekit.config import host_label
from edgekit.devices import executor_for, register_executor
from edgekit.devices.local import LocalExecutor
from edgekit.errors import EdgekitError
from edgekit.report.render import strip_pixels
from edgekit.report.schema import missing_fields


def _target(**over):
    return make_target(**{"tile": [TILE, TILE], **over})


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("harness")
    model, fixed = box_denoiser()
    mi = info()
    fp32 = convert(fixed, d / "box-fp32.tflite", "fp32", mi)
    dyn = convert(fixed, d / "box-dynamic.tflite", "dynamic", mi)
    bare = convert(fixed, d / "bare.tflite", "fp32", mi, manifest=False)
    images = write_images(d / "images")
    return {
        "dir": d,
        "fp32": fp32,
        "dynamic": dyn,
        "bare": bare,
        "images": images,
        "ref": loaded(model, mi),
    }


def _bench(setup, artifacts, out: str, **kw):
    """harness.bench with the test's defaults (images, reference, quick target, no progress)."""
    args = {
        "target": _target(),
        "images_dir": setup["images"],
        "reference": setup["ref"],
        "out_dir": setup["dir"] / out,
        "progress": False,
        "memory": False,
    }
    args.update(kw)
    return harness.bench(artifacts, **args)


@pytest.fixture(scope="module")
def report(setup):
    return _bench(setup, [setup["fp32"], setup["dynamic"]], "out", memory=True, whole_image=True)


def test_report_has_every_required_field(report):
    assert missing_fields(report) == []
    assert [a["precision"] for a in report["artifacts"]] == ["fp32", "dynamic"]
    assert report["steps"] == []
    # plain JSON once the crop pixels kept for report.html are stripped (as report.json is)
    json.dumps(strip_pixels(report), allow_nan=False)
    crops = report["crops"]["photos"]
    assert len(crops) == 2 and crops[0]["pixels"]["clean"].shape == (crops[0]["box"][2],) * 2 + (3,)
    mine = report["artifacts"][0]["crop_pixels"][0]
    assert mine["artifact"].dtype == np.uint8 and mine["error_against"] == "float"


def test_quality_numbers(report):
    fp32, dyn = report["artifacts"]
    ref, deg = report["reference"], report["degraded_input"]
    # the box filter really denoises: the float model beats the noisy input
    assert ref["psnr_db"] > deg["psnr_db"] + 2.0
    # fp32 TFLite is the same math as the Keras model (through the same tiling)
    assert fp32["psnr_vs_reference_db"] > 60.0
    assert abs(fp32["psnr_db"] - ref["psnr_db"]) < 0.01
    # dynamic range: the converter keeps tiny weight tensors in float, so nothing may change much
    assert dyn["psnr_vs_reference_db"] > 40.0
    assert abs(dyn["psnr_db"] - ref["psnr_db"]) < 0.1
    assert 0.0 < fp32["ssim"] <= 1.0 and fp32["ssim"] > report["degraded_input"]["ssim"]
    # tiling vs whole-image reference: margins cover the 1-layer receptive field exactly
    assert ref["tiling_psnr_db"] > 60.0
    assert len(fp32["psnr_per_image"]) == 2


def test_psnr_vs_reference_catches_an_artifact_that_differs(setup, tmp_path):
    # An artifact whose filter is 3% too strong: PSNR vs clean barely moves, vs the float model it shows.
    _, fixed = box_denoiser()
    w, b = fixed.get_layer(index=1).get_layer("box").get_weights()
    fixed.get_layer(index=1).get_layer("box").set_weights([w * 1.03, b])
    off = convert(fixed, tmp_path / "off-fp32.tflite", "fp32", info())
    rep = _bench(setup, [setup["fp32"], off], "off")
    good, bad = rep["artifacts"]
    assert good["id"] == "tflite-fp32" and bad["id"] == "tflite-fp32#2"
    assert 20.0 < bad["psnr_vs_reference_db"] < 45.0 < good["psnr_vs_reference_db"]
    assert bad["speedup_vs_fp32"] == pytest.approx(
        good["latency_ms"]["p50"] / bad["latency_ms"]["p50"]
    )


def test_latency_size_memory_and_labels(report, setup):
    fp32, dyn = report["artifacts"]
    for row in report["artifacts"]:
        lat = row["latency_ms"]
        assert lat["n"] == 5
        assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert row["measured_on"] == host_label()
        assert row["peak_rss_mb"] >= row["baseline_rss_mb"] > 0
        assert 0 < row["gzip_size_bytes"] < row["size_bytes"] + 100
        assert row["validation"]["passed"] is True
    assert fp32["size_bytes"] == Path(setup["fp32"]).stat().st_size
    assert fp32["speedup_vs_fp32"] == 1.0 and fp32["size_ratio_vs_fp32"] == 1.0
    assert dyn["speedup_vs_fp32"] == pytest.approx(
        fp32["latency_ms"]["p50"] / dyn["latency_ms"]["p50"]
    )
    assert report["target"]["used"] == {
        "threads": 2,
        "delegate": "xnnpack",
        "warmup": 1,
        "repeats": 5,
    }
    ev = report["eval_set"]
    assert ev["count"] == 2 and [i["name"] for i in ev["images"]] == ["img0.png", "img1.png"]
    assert ev["degradation"] == "noise:sigma=25,clip=1" and ev["seed"] == 0
    assert report["model"]["name"] == "box"
    assert report["host"]["cpu_count"] >= 1
    assert not any("no device attached" in n for n in report["notes"])


def test_phone_target_without_device_says_host_numbers(setup):
    t = _target(name="phone-gpu", device="Android phone (Adreno GPU)", delegate="gpu", threads=64)
    rep = _bench(setup, [setup["fp32"]], "phone", target=t)
    notes = " | ".join(rep["notes"])
    assert "no device attached: numbers are host-CPU numbers, not phone numbers" in notes
    assert "delegate 'gpu' requested" in notes
    assert rep["artifacts"][0]["measured_on"].startswith("host-cpu")
    assert rep["target"]["used"]["threads"] <= 64 and "threads were used" in notes


def test_remote_executor_seam(setup):
    calls = []

    class FakeRemote(LocalExecutor):
        kind = "ssh"

        def measured_on(self):
            return "ssh:jetson"

        def measure(self, jobs, inputs, **kw):
            calls.append((len(jobs), inputs.shape))
            res = super().measure(jobs, inputs, **kw)
            res["device"] = {"hostname": "jetson", "cpu_count": 6}
            return res

    rep = _bench(setup, [setup["fp32"]], "remote", executor=FakeRemote(_target()))
    assert calls and calls[0][1][1:] == (TILE, TILE, 3)
    assert rep["artifacts"][0]["measured_on"] == "ssh:jetson" == rep["measured_on"]
    assert rep["device"]["hostname"] == "jetson"
    assert rep["artifacts"][0]["psnr_vs_reference_db"] > 60.0


def test_streamed_local_scores_equal_the_all_tiles_path_and_whole_image_is_opt_in(setup):
    class AllTiles(LocalExecutor):
        kind = "all-tiles"  # not "local": the harness ships every tile and blends their outputs

    local = _bench(setup, [setup["dynamic"]], "streamed")
    remote = _bench(setup, [setup["dynamic"]], "alltiles", executor=AllTiles(_target()))
    a, b = local["artifacts"][0], remote["artifacts"][0]
    np.testing.assert_allclose(a["psnr_per_image"], b["psnr_per_image"], rtol=0, atol=1e-9)
    assert a["psnr_vs_reference_db"] == pytest.approx(b["psnr_vs_reference_db"], abs=1e-6)
    # the whole-image float run is opt-in (it took 16 GB on a 12-megapixel photo)
    assert local["reference"]["tiling_psnr_db"] is None
    assert local["eval_set"]["tiles"] == remote["eval_set"]["tiles"]


def test_whole_image_check_that_would_not_fit_is_refused_up_front(setup, monkeypatch):
    from edgekit.bench import stream

    monkeypatch.setattr(stream, "_available_bytes", lambda: 10_000)
    with pytest.raises(EdgekitError, match="--whole-image-check: the float model on the whole"):
        _bench(setup, [setup["fp32"]], "whole", whole_image=True)


def test_executor_registry_picks_the_connection_kind(monkeypatch):
    from edgekit.devices import base

    assert isinstance(executor_for(_target()), LocalExecutor)
    monkeypatch.setattr(base, "_EXECUTORS", dict(base._EXECUTORS))

    @register_executor
    class Board(LocalExecutor):
        kind = "ssh"

    assert type(executor_for(_target(connection={"kind": "ssh", "host": "board"}))) is Board


def test_missing_manifest_is_an_error_unless_degradation_given(setup):
    with pytest.raises(
        EdgekitError, match=r"bare\.tflite: no manifest bare\.tflite\.json .* --degradation"
    ):
        _bench(setup, [setup["bare"]], "x", reference=None)
    rep = _bench(setup, [setup["bare"]], "bare", degradation=DEGRADATION, reference=None)
    row = rep["artifacts"][0]
    assert row["format"] == "tflite" and row["precision"] is None
    assert row["psnr_db"] > rep["degraded_input"]["psnr_db"]
    assert row["psnr_vs_reference_db"] is None
    assert any("no reference model" in n for n in rep["notes"])
    assert any("no manifest" in n for n in rep["notes"])


def test_empty_image_folder_is_an_error(setup, tmp_path):
    with pytest.raises(EdgekitError, match="no images found"):
        _bench(setup, [setup["fp32"]], "o", images_dir=tmp_path)


def test_image_smaller_than_tile_is_an_error_naming_it(setup, tmp_path):
    write_images(tmp_path / "small", sizes=((40, 40), (12, 50)))
    with pytest.raises(
        EdgekitError, match=r"img1\.png: image is 12x50, smaller than the model's 16x16"
    ):
        _bench(setup, [setup["fp32"]], "o", images_dir=tmp_path / "small")


def test_missing_artifact_and_wrong_suffix(setup, tmp_path):
    with pytest.raises(EdgekitError, match="nope.tflite: artifact not found"):
        _bench(setup, [tmp_path / "nope.tflite"], "o")
    odd = tmp_path / "model.bin"
    odd.write_bytes(b"x")
    with pytest.raises(EdgekitError, match=r"model\.bin: unknown artifact type '\.bin'"):
        _bench(setup, [odd], "o")


def test_degradation_is_seeded(setup):
    a = _bench(setup, [setup["fp32"]], "s1")
    b = _bench(setup, [setup["fp32"]], "s2", seed=1)
    assert np.isclose(a["reference"]["psnr_db"], a["artifacts"][0]["psnr_db"], atol=0.01)
    assert a["degraded_input"]["psnr_db"] != b["degraded_input"]["psnr_db"]


def test_max_side_crops_eval_images(setup):
    rep = _bench(setup, [setup["fp32"]], "crop", max_side=20)
    ev = rep["eval_set"]
    assert [(i["height"], i["width"]) for i in ev["images"]] == [(20, 20), (20, 20)]
    assert ev["crop"] == "centre crop to at most 20x20"
    assert ev["tiles"] == {"16x16": 8}  # 2 x 2 tiles per 20x20 image
    assert rep["artifacts"][0]["psnr_vs_reference_db"] > 60.0


def test_super_resolution_scale_end_to_end(setup, tmp_path):
    from test_bench_helpers import upscaler

    model, fixed = upscaler(2)
    mi = info("up2", scale=2, degradation="downscale:factor=2")
    art = convert(fixed, tmp_path / "up2-fp32.tflite", "fp32", mi)
    rep = _bench(setup, [art], "sr", reference=loaded(model, mi))
    row, ev = rep["artifacts"][0], rep["eval_set"]
    assert ev["scale"] == 2 and ev["degradation"] == "downscale:factor=2"
    # clean images keep even sizes; the model sees the x1/2 degraded image in 16x16 tiles
    assert [(i["height"], i["width"]) for i in ev["images"]] == [(40, 52), (32, 48)]
    assert row["input_shape"] == [1, TILE, TILE, 3]
    assert row["psnr_vs_reference_db"] > 60.0
    # bilinear upsampling of smooth images: close to bicubic, both scored at full resolution
    assert row["psnr_db"] > 40.0 and abs(row["psnr_db"] - rep["degraded_input"]["psnr_db"]) < 5.0
    assert rep["degraded_input"]["description"] == "bicubic x2 upscale of the input"


def test_tile_from_manifest_shapes():
    assert tile_from([256, 192]) == (256, 192)
    assert tile_from([1, 256, 192, 3]) == (256, 192)
    assert tile_from([256, 192, 3]) == (256, 192)
    assert tile_from([1, None, None, 3]) is None
    assert tile_from(None) is None


def test_reference_cache_runs_the_float_model_once(setup):
    class Counting:
        def __init__(self, model):
            self.model, self.calls, self.input_shape = model, 0, model.input_shape

        def __call__(self, x, training=False):
            self.calls += 1
            return self.model(x, training=training)

        def get_weights(self):
            return self.model.get_weights()

    ref = loaded(Counting(setup["ref"].model), setup["ref"].info)
    cache: dict = {}
    a = _bench(setup, [setup["fp32"]], "c1", reference=ref, reference_cache=cache)
    first = ref.model.calls
    b = _bench(setup, [setup["dynamic"]], "c2", reference=ref, reference_cache=cache)
    assert first > 0 and ref.model.calls == first
    assert a["reference"] == b["reference"]
    assert b["artifacts"][0]["psnr_vs_reference_db"] > 40.0
    # the cache key is the model's weights, not its identity: other weights run again
    other = Counting(setup["ref"].model)
    other.get_weights = lambda: [w * 0.5 for w in setup["ref"].model.get_weights()]
    _bench(setup, [setup["fp32"]], "c3", reference=loaded(other, setup["ref"].info),
           reference_cache=cache)  # fmt: skip
    assert other.calls > 0


def test_memory_failure_is_a_note_and_a_null(setup):
    class NoMemory(LocalExecutor):
        def peak_rss(self, path, **kw):
            raise RuntimeError("device has no /proc")

    rep = _bench(setup, [setup["fp32"]], "nomem", memory=True, executor=NoMemory(_target()))
    assert rep["artifacts"][0]["peak_rss_mb"] is None
    assert "artifacts[0].peak_rss_mb" in missing_fields(rep)
    assert any(
        "box-fp32.tflite: peak memory not measured (device has no /proc)" in n for n in rep["notes"]
    )
