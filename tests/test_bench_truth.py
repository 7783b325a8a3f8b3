"""The harness's numbers against truth: latency statistics of runners whose every run takes a known
time (an injected clock, and a real sleep for the units), and PSNR/SSIM against scikit-image's
implementations on outputs known in closed form (a 1x1 affine model: y = 0.8 x + 0.1)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from clock_runtime import AFTER_LIST_MS, CLOCK, ClockLiteRTRunner, ClockRunner
from skimage.metrics import peak_signal_noise_ratio as sk_psnr
from skimage.metrics import structural_similarity as sk_ssim

from edgekit.runtimes import base
from edgekit.runtimes import measure as m

SKIMAGE_SSIM = dict(
    data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=-1
)


@pytest.fixture
def fake_clock(monkeypatch):
    """measure.py's `time` replaced by the fake clock; the clock runners registered."""

    class _Time:
        perf_counter = staticmethod(CLOCK.perf_counter)

    monkeypatch.setattr(m, "time", _Time)
    monkeypatch.setitem(base._RUNNERS, ".clock", ClockRunner)
    return CLOCK


def _job(tmp_path, name, clock_ms, **manifest):
    p = tmp_path / f"{name}.clock"
    p.write_bytes(b"x")
    return {"id": name, "path": str(p), "manifest": {"clock_ms": clock_ms, **manifest}}


def _truth(samples):
    a = np.asarray(samples, np.float64)
    return {
        "mean": a.mean(),
        "p50": np.median(a),
        "p90": np.percentile(a, 90),
        "p99": np.percentile(a, 99),
        "min": a.min(),
        "max": a.max(),
        "n": a.size,
    }


def test_latency_statistics_equal_the_known_durations(fake_clock, tmp_path):
    warmup, repeats = 2, 10
    # A: 10 timed runs of 5..14 ms and one 90 ms outlier; B: a constant 3 ms; warm-up runs and
    # the load take long, distinct times that must not leak into the timed statistics.
    a_timed = [5, 6, 7, 8, 9, 10, 11, 12, 13, 90]
    b_timed = [3.0] * repeats
    jobs = [
        _job(tmp_path, "A", [40.0, 500.0, 400.0, *a_timed]),
        _job(tmp_path, "B", [20.0, 300.0, 200.0, *b_timed]),
    ]
    x = np.random.default_rng(0).random((3, 8, 8, 3), dtype=np.float32)
    res = m.measure(jobs, x, threads=1, delegate="none", warmup=warmup, repeats=repeats)
    for job, timed in zip(jobs, (a_timed, b_timed), strict=True):
        r = res["results"][job["id"]]
        truth = _truth(timed)
        for key, want in truth.items():
            assert r["latency_ms"][key] == pytest.approx(want, abs=1e-6), key
        assert r["samples_ms"] == pytest.approx(timed, abs=1e-3)  # in run order, in ms
        assert r["load_ms"] == pytest.approx(job["manifest"]["clock_ms"][0])
        assert r["first_run_ms"] == pytest.approx(job["manifest"]["clock_ms"][1])
        np.testing.assert_array_equal(res["outputs"][job["id"]], x)
    # A's outlier moves the mean and p99, not the median
    lat = res["results"]["A"]["latency_ms"]
    assert lat["p50"] == pytest.approx(9.5) and lat["mean"] == pytest.approx(17.1)
    assert lat["max"] == pytest.approx(90.0) and lat["p99"] > 80.0


def test_a_sleeping_runner_measures_its_sleep_in_milliseconds(monkeypatch, tmp_path):
    """The real perf_counter: a run that sleeps 20 ms reads 20 ms (not 0.02 s, not 20000 us).
    sleep() never returns early, so the lower bound is exact; the upper one only rules out units."""
    monkeypatch.setitem(base._RUNNERS, ".clock", ClockRunner)
    job = _job(tmp_path, "S", [], sleep_ms=20.0)
    x = np.zeros((1, 4, 4, 3), np.float32)
    res = m.measure([job], x, threads=1, delegate="none", warmup=1, repeats=5)
    lat = res["results"]["S"]["latency_ms"]
    assert lat["n"] == 5
    assert 20.0 <= lat["min"] <= lat["p50"] <= lat["max"] < 200.0


# ---------------------------------------------------------------- through the bench harness


@pytest.fixture(scope="module")
def affine(tmp_path_factory):
    """A 1x1 conv computing 0.8 x + 0.1 exported to fp32 TFLite, and its photos (2 x 64 px)."""
    from cli_fixtures import NOISE, crop_photos

    from edgekit.config import Format, Precision
    from edgekit.export.base import ExportRequest, get_exporter
    from edgekit.models.info import LoadedModel, ModelInfo
    from edgekit.tfcompat import import_tf

    _, keras = import_tf()
    d = tmp_path_factory.mktemp("truth")

    def pointwise(gain, bias, name):
        inp = keras.Input((None, None, 3))
        conv = keras.layers.Conv2D(3, 1, name="affine")
        model = keras.Model(inp, conv(inp), name=name)
        conv.set_weights([np.eye(3, dtype=np.float32)[None, None] * gain, np.full(3, bias)])
        info = ModelInfo(name=name, task="denoise", degradation=NOISE, source="test")
        return LoadedModel(model, info)

    loaded = pointwise(0.8, 0.1, "affine")
    identity = pointwise(1.0, 0.0, "identity")
    xs = np.random.default_rng(0).random((2, 16, 16, 3), dtype=np.float32)
    request = ExportRequest(Format.tflite, Precision.fp32, (16, 16), calib_inputs=xs, val_inputs=xs)
    art = get_exporter("tflite").export(loaded, request, d / "affine.tflite")
    photos = crop_photos(d / "photos", 64, 2, start=3)
    return art.path, identity, photos, d


def _expected(photos, seed=0):
    """What the harness must score, computed here: degraded photos (the harness's seeded draw),
    the affine model's output on them, and the clean photos."""
    from edgekit.data.degradations import parse
    from edgekit.data.images import load_folder

    deg = parse("noise:sigma=25")
    out = []
    for k, im in enumerate(load_folder(photos)):
        x, clean = deg(im.pixels, seed=seed * 1_000_003 + k)
        out.append((x, np.clip(0.8 * x + 0.1, 0, 1), clean))
    return out


def test_harness_report_against_truth(affine, monkeypatch, tmp_path):
    """Latency rows equal the clock's durations; PSNR/SSIM equal scikit-image's on the same
    outputs (closed form), vs clean, vs the reference model and for the degraded input."""
    from edgekit.bench.harness import bench
    from edgekit.config import load_target

    path, identity, photos, _ = affine
    timed = [4.0, 6.0, 5.0, 7.0, 30.0, 5.5]
    manifest_file = path.with_name(path.name + ".json")
    manifest = json.loads(manifest_file.read_text())
    manifest["clock_ms"] = [12.0, 100.0, *timed]  # load, one warm-up, the timed runs
    work = tmp_path / "affine.tflite"
    work.write_bytes(path.read_bytes())
    (tmp_path / "affine.tflite.json").write_text(json.dumps(manifest))

    class _Time:
        perf_counter = staticmethod(CLOCK.perf_counter)

    monkeypatch.setattr(m, "time", _Time)
    monkeypatch.setitem(base._RUNNERS, ".tflite", ClockLiteRTRunner)
    target = load_target("host-cpu").model_copy(update={"warmup": 1, "repeats": len(timed)})
    report = bench(
        [work], target=target, images_dir=photos, reference=identity, out_dir=tmp_path,
        progress=False, memory=False,
    )  # fmt: skip
    row = report["artifacts"][0]
    truth = _truth(timed)
    for key, want in truth.items():
        assert row["latency_ms"][key] == pytest.approx(want, abs=1e-6), key
    assert row["load_ms"] == pytest.approx(12.0) and row["first_run_ms"] == pytest.approx(100.0)
    assert AFTER_LIST_MS not in [row["latency_ms"]["max"], row["latency_ms"]["min"]]

    expected = _expected(photos)
    want_psnr = [sk_psnr(clean, y, data_range=1.0) for _, y, clean in expected]
    want_ssim = [sk_ssim(clean, y, **SKIMAGE_SSIM) for _, y, clean in expected]
    assert row["psnr_per_image"] == pytest.approx(want_psnr, abs=1e-3)
    assert row["psnr_db"] == pytest.approx(np.mean(want_psnr), abs=1e-3)
    assert row["ssim"] == pytest.approx(np.mean(want_ssim), abs=1e-4)
    vs_ref = [sk_psnr(np.clip(x, 0, 1), y, data_range=1.0) for x, y, _ in expected]
    assert row["psnr_vs_reference_per_image"] == pytest.approx(vs_ref, abs=1e-3)
    # the identity reference scores the degraded input itself
    degraded = [sk_psnr(clean, np.clip(x, 0, 1), data_range=1.0) for x, _, clean in expected]
    assert report["reference"]["psnr_db"] == pytest.approx(np.mean(degraded), abs=1e-3)
    assert report["degraded_input"]["psnr_db"] == pytest.approx(np.mean(degraded), abs=1e-3)
    want_deg_ssim = np.mean([sk_ssim(c, np.clip(x, 0, 1), **SKIMAGE_SSIM) for x, _, c in expected])
    assert report["degraded_input"]["ssim"] == pytest.approx(want_deg_ssim, abs=1e-4)


def test_clock_runner_registration_is_the_measure_contract(fake_clock, tmp_path):
    """The clock runner is reached through runtimes.base.runner_for, as every real runtime is."""
    r = base.runner_for(_job(tmp_path, "R", [1.0])["path"], manifest={"clock_ms": [1.0]})
    assert isinstance(r, ClockRunner) and r.runtime == "clock"
