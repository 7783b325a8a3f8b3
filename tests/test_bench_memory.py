"""bench's memory does not grow with the number of artifacts: each whole output is scored, then dropped.

At 12 megapixels one float32 output is 144 MB; the harness used to keep every artifact's outputs
of every photo until they were scored, plus clipped copies of them. These tests count whole
outputs alive at once (weak references) and take tracemalloc's peak, both without wall time.
"""

import json
import shutil
import tracemalloc
import weakref

import numpy as np
import pytest
from conftest import make_target
from test_bench_helpers import box_denoiser, convert, info, loaded, write_images

from edgekit import metrics
from edgekit.bench import crops, harness
from edgekit.bench.perphoto import score_outputs
from edgekit.bench.scoring import psnr_vs, scores

TILE = 48
SIZES = ((192, 256), (160, 224))  # two photos, 20 and 15 tiles of 48x48


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from edgekit.tfcompat import import_tf

    _, keras = import_tf()
    d = tmp_path_factory.mktemp("benchmem")
    model, _ = box_denoiser()
    fin = keras.Input((TILE, TILE, 3), batch_size=1)
    mi = info()
    first = convert(keras.Model(fin, model(fin)), d / "a0.tflite", "fp32", mi)
    arts = [first]
    for k in (1, 2):  # the same model under other names: three artifacts to score
        p = d / f"a{k}.tflite"
        shutil.copy(first, p)
        man = json.loads((d / "a0.tflite.json").read_text()) | {"label": f"copy-{k}"}
        (d / f"a{k}.tflite.json").write_text(json.dumps(man))
        arts.append(p)
    return {"dir": d, "arts": arts, "images": write_images(d / "images", SIZES),
            "ref": loaded(model, mi), "cache": {}}  # fmt: skip


def _bench(setup, arts, out):
    return harness.bench(
        arts, target=make_target(tile=[TILE, TILE]), images_dir=setup["images"],
        reference=setup["ref"], out_dir=setup["dir"] / out, progress=False, memory=False,
        reference_cache=setup["cache"],
    )  # fmt: skip


def test_no_artifact_output_is_alive_when_the_next_one_is_made(setup, monkeypatch):
    _bench(setup, setup["arts"][:1], "warm")  # the float reference runs once, into the cache
    made = []  # weak references to every whole output made since (the artifacts' only)
    alive_at_next = []
    real = harness._stream.tiled.restore

    def tracked(*a, **kw):
        alive_at_next.append(sum(r() is not None for r in made))
        y = real(*a, **kw)
        made.append(weakref.ref(y))
        return y

    monkeypatch.setattr(harness._stream.tiled, "restore", tracked)
    rep = _bench(setup, setup["arts"], "alive")
    assert len(made) == 3 * len(SIZES)  # every artifact, every photo, as a whole output
    assert alive_at_next == [0] * len(made)  # the previous one was dropped before the next
    assert all(r() is None for r in made)  # and nothing kept one (only numbers and crops)
    assert [len(a["psnr_per_image"]) for a in rep["artifacts"]] == [len(SIZES)] * 3


def test_peak_memory_does_not_grow_with_the_number_of_artifacts(setup, monkeypatch):
    # a small band so SSIM's band temporaries do not hide the whole-photo arrays on small photos
    monkeypatch.setattr(metrics, "_BAND_VALUES", 4096, raising=False)
    _bench(setup, setup["arts"][:1], "warm")  # the float reference runs once, into the cache

    def peak(arts, out) -> int:
        tracemalloc.start()
        try:
            _bench(setup, arts, out)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    one, three = peak(setup["arts"][:1], "one"), peak(setup["arts"], "three")
    photo = max(h * w for h, w in SIZES) * 3 * 4  # one whole float32 photo
    # the old harness held a second artifact's outputs while making the next: + 2 photos; what
    # each artifact keeps is its numbers and its report crops (uint8, 96x96, RGB + error map)
    kept = crops.PHOTOS * crops.CROP**2 * 4
    assert three - one < photo // 2 + 2 * kept, (one, three, photo)
    # clean + degraded of each photo, one output, and what a tile row and the timing tiles take
    bound = (2 * len(SIZES) + 1) * photo + 24 * TILE * max(w for _, w in SIZES) * 3 * 8
    assert one < bound, (one, bound, photo)


def test_score_outputs_equals_scoring_whole_lists_and_drops_each_output():
    rng = np.random.default_rng(3)
    cleans = [rng.random((40, 56, 3), dtype=np.float32) for _ in range(3)]
    outs = [np.clip(c + rng.normal(0, 0.1, c.shape), -0.2, 1.2).astype(np.float32) for c in cleans]
    refs = [c + np.float32(0.02) for c in cleans]
    ctx = crops.context([type("I", (), {"name": f"p{k}"})() for k in range(3)], cleans, cleans,
                        refs, 1)  # fmt: skip
    made = []

    def gen():
        for y in outs:
            y = y.copy()
            made.append(weakref.ref(y))
            yield y
            del y
            assert sum(r() is not None for r in made) == 0

    got = score_outputs(gen(), cleans, refs, ctx)
    p, s = scores(outs, cleans)
    assert got["psnr"] == p and got["ssim"] == s
    assert got["psnr_vs_reference"] == psnr_vs(outs, refs)
    want = crops.artifact_crops(outs, ctx, refs)
    assert len(got["crops"]) == len(want) == crops.PHOTOS
    for g, w in zip(got["crops"], want, strict=True):
        assert np.array_equal(g["artifact"], w["artifact"])
        assert np.array_equal(g["error"], w["error"])
    with pytest.raises(ValueError, match="2 outputs for 3 photos"):
        score_outputs(iter(outs[:2]), cleans, refs, ctx)


def test_metrics_clip_in_bands_equals_clipping_first_and_band_memory_does_not_grow_with_width():
    rng = np.random.default_rng(0)
    a = rng.normal(0.5, 0.4, (70, 900, 3)).astype(np.float32)  # many values outside [0, 1]
    b = rng.random((70, 900, 3), dtype=np.float32)
    clipped = np.clip(a, 0.0, 1.0)
    assert metrics.ssim(a, b, clip=True) == pytest.approx(metrics.ssim(clipped, b), abs=1e-12)
    assert metrics.psnr(a, b, clip=True) == pytest.approx(metrics.psnr(clipped, b), abs=1e-9)
    assert metrics.psnr(b, a, clip_b=True) == pytest.approx(metrics.psnr(b, clipped), abs=1e-9)

    def ssim_peak(width: int) -> int:
        x = rng.random((64, width, 3), dtype=np.float32)
        tracemalloc.start()
        try:
            metrics.ssim(x, x, clip=True)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    # 256-row bands of the whole width took ~0.5 GB on a 4000-pixel-wide photo; bands now hold
    # about _BAND_VALUES values, so a photo twice as wide does not need twice the memory
    narrow, wide = ssim_peak(2000), ssim_peak(4000)
    assert wide < 1.3 * narrow, (narrow, wide)
