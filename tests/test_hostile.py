"""Hostile inputs through the CLI: every case builds its own bad file or value and checks one
'edgekit: error:' line naming the path/key, exit code 2 (a signal's code for SIGTERM), nothing
left behind and any file already at --out untouched. Root-only cases (device nodes, tmpfs
mounts) are skipped with the reason where not root."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image as PILImage

from edgekit.cli import main
from edgekit.errors import EdgekitError, EdgekitWarning

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
_skip_unless_root = pytest.mark.skipif(
    not IS_ROOT, reason="needs root (mknod / mount); CI runs as root"
)


def root_only(test):
    """Marked `root` (select with -m root) and skipped with the reason where not root."""
    return pytest.mark.root(_skip_unless_root(test))


DEG = "noise:sigma=25"
REPO = Path(__file__).resolve().parents[1]


def _tiny_model(path: Path, *, shape=(None, None, 3), nan_layer: str | None = None) -> Path:
    from edgekit.tfcompat import import_tf

    _, keras = import_tf()
    keras.utils.set_random_seed(1)
    inp = keras.Input(shape=shape)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inp)
    out = keras.layers.Conv2D(3, 3, padding="same", name="c2")(x)
    model = keras.Model(inp, out, name="tiny")
    if nan_layer:
        w = model.get_layer(nan_layer).get_weights()
        w[0][0, 0, 0, 0] = np.nan
        model.get_layer(nan_layer).set_weights(w)
    model.save(path)
    return path


def _images(folder: Path, n: int = 4, size: int = 48) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        arr = (rng.random((size, size, 3)) * 255).astype(np.uint8)
        PILImage.fromarray(arr).save(folder / f"im{i}.png")
    return folder


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    model = _tiny_model(root / "m.h5")
    calib = _images(root / "imgs")
    art = root / "art" / "a.tflite"
    rc = main(_export_args(model, calib, art))
    assert rc == 0 and art.exists() and Path(str(art) + ".json").exists()
    return SimpleNamespace(root=root, model=model, calib=calib, art=art)


def _export_args(model, calib, out, *extra, fmt="tflite"):
    args = ["export", model, "--format", fmt, "--precision", "fp32", "--shape", "32x32"]
    args += ["--calib", calib, "--degradation", DEG, "--out", out, *extra]
    return [str(a) for a in args]


def cli(capsys, args) -> tuple[int, list[str]]:
    """Exit code and the 'edgekit: error:' lines (each must be a single line)."""
    rc = main([str(a) for a in args])
    err = capsys.readouterr().err
    return rc, [line for line in err.splitlines() if line.startswith("edgekit: error:")]


def assert_refused(rc, errors, *names):
    assert rc == 2, errors
    assert len(errors) == 1, errors
    for name in names:
        assert str(name) in errors[0], errors[0]


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


OLD = (b"old artifact", '{"old": true}')


@pytest.fixture
def old_out(tmp_path):
    """An artifact and manifest already at --out, which a refused command must leave alone."""
    out = tmp_path / "a.tflite"
    out.write_bytes(OLD[0])
    Path(f"{out}.json").write_text(OLD[1])
    return out


def assert_untouched(out: Path) -> None:
    assert out.read_bytes() == OLD[0] and Path(f"{out}.json").read_text() == OLD[1]
    assert not [p.name for p in out.parent.iterdir() if ".tmp-" in p.name]


# ------------------------------------------------------------------ writing


@root_only
def test_out_is_a_character_device(env, capsys, tmp_path):
    dev = tmp_path / "full.tflite"
    os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 7))  # a copy of /dev/full
    rc, errors = cli(capsys, _export_args(env.model, env.calib, dev))
    assert_refused(rc, errors, dev, "character device")
    assert listing(tmp_path) == ["full.tflite"] and dev.is_char_device()


def test_out_is_a_fifo_a_folder_or_its_manifest_is_a_folder(env, capsys, tmp_path):
    fifo = tmp_path / "p.tflite"
    os.mkfifo(fifo)
    rc, errors = cli(capsys, _export_args(env.model, env.calib, fifo))
    assert_refused(rc, errors, fifo, "FIFO")
    folder = tmp_path / "d.tflite"
    folder.mkdir()
    rc, errors = cli(capsys, _export_args(env.model, env.calib, folder))
    assert_refused(rc, errors, folder, "folder")
    (tmp_path / "m.tflite.json").mkdir()
    rc, errors = cli(capsys, _export_args(env.model, env.calib, tmp_path / "m.tflite"))
    assert_refused(rc, errors, tmp_path / "m.tflite.json", "manifest")
    assert listing(tmp_path) == ["d.tflite", "m.tflite.json", "p.tflite"]


def test_out_under_a_file(env, capsys, tmp_path):
    (tmp_path / "f").write_text("keep")
    rc, errors = cli(capsys, _export_args(env.model, env.calib, tmp_path / "f" / "a.tflite"))
    assert_refused(rc, errors, tmp_path / "f", "not a folder")
    assert (tmp_path / "f").read_text() == "keep"


@pytest.mark.parametrize(
    "fmt,name", [("tflite", "x.onnx"), ("onnx", "x.tflite"), ("tensorrt", "x.onnx")]
)
def test_out_suffix_must_match_the_format(env, capsys, tmp_path, fmt, name):
    rc, errors = cli(capsys, _export_args(env.model, env.calib, tmp_path / name, fmt=fmt))
    assert_refused(rc, errors, tmp_path / name, f"--format {fmt}")
    assert listing(tmp_path) == []


def test_bench_and_compress_out_is_a_file_refused_before_any_work(
    env, capsys, tmp_path, monkeypatch
):
    import edgekit.pipeline as pipeline

    def no_work(*a, **k):
        raise AssertionError("the model was loaded before --out was checked")

    monkeypatch.setattr(pipeline, "load_checked", no_work)
    out = tmp_path / "report"
    out.write_text("old")
    rc, errors = cli(capsys, ["bench", env.art, "--images", env.calib, "--out", out])
    assert_refused(rc, errors, out, "not a folder")
    rc, errors = cli(
        capsys, ["compress", env.model, "--target", "host-cpu", "--calib", env.calib, "--out", out]
    )
    assert_refused(rc, errors, out, "not a folder")
    (tmp_path / "dir" / "artifacts").mkdir(parents=True)
    (tmp_path / "dir" / "report.json").mkdir()  # a folder where a report file goes
    rc, errors = cli(capsys, ["bench", env.art, "--out", tmp_path / "dir"])
    assert_refused(rc, errors, tmp_path / "dir" / "report.json")
    rc, errors = cli(capsys, ["compare", env.model, env.art, "--out", out])
    assert_refused(rc, errors, out)
    assert out.read_text() == "old"


def test_manifest_write_fails_after_artifact_nothing_appears(tmp_path, monkeypatch):
    """Disk full while the manifest is written: neither file appears; the old one survives."""
    from edgekit.atomic import atomic_paths

    old = tmp_path / "a.tflite"
    old.write_bytes(b"old artifact")
    with pytest.raises(EdgekitError, match=r"a.tflite.*No space left on device"):
        with atomic_paths(old, tmp_path / "a.tflite.json") as (tmp, tmp_manifest):
            tmp.write_bytes(b"new artifact")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert listing(tmp_path) == ["a.tflite"] and old.read_bytes() == b"old artifact"


def test_second_rename_fails_first_is_taken_back(tmp_path, monkeypatch):
    from edgekit import atomic

    real = os.replace
    calls = []

    def flaky(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(errno.EIO, "I/O error")
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", flaky)
    with pytest.raises(EdgekitError, match=r"a.tflite.json: cannot write"):
        with atomic.atomic_paths(tmp_path / "a.tflite", tmp_path / "a.tflite.json") as (t1, t2):
            t1.write_bytes(b"x")
            t2.write_text("{}")
    assert listing(tmp_path) == []  # no artifact without its manifest


@pytest.fixture
def tmpfs(tmp_path):
    if not IS_ROOT:
        pytest.skip("needs root to mount a tmpfs; CI runs as root")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)])
    if r.returncode:
        pytest.skip("mount -t tmpfs is not permitted here")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)])


def _fill(mnt: Path, leave_pages: int) -> None:
    st = os.statvfs(mnt)
    free = st.f_bavail * st.f_frsize - leave_pages * st.f_frsize
    with open(mnt / "filler", "wb") as f:
        f.write(b"\0" * max(0, free))


@root_only
@pytest.mark.parametrize("leave_pages", [0, 1])  # 1 page: the artifact fits, the manifest not
def test_disk_full(env, capsys, tmpfs, leave_pages):
    old = tmpfs / "a.tflite"
    old.write_bytes(b"old")
    _fill(tmpfs, leave_pages)
    before = listing(tmpfs)
    rc, errors = cli(capsys, _export_args(env.model, env.calib, old))
    assert_refused(rc, errors, "a.tflite", "No space left on device")
    assert listing(tmpfs) == before and old.read_bytes() == b"old"


@root_only
def test_read_only_filesystem(env, capsys, tmpfs):
    old = tmpfs / "a.tflite"
    old.write_bytes(b"old")
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    rc, errors = cli(capsys, _export_args(env.model, env.calib, old))
    assert_refused(rc, errors, old, "read-only")
    rc, errors = cli(capsys, ["bench", env.art, "--out", tmpfs / "rep"])
    assert_refused(rc, errors, tmpfs / "rep", "read-only")
    assert listing(tmpfs) == ["a.tflite"] and old.read_bytes() == b"old"


def test_sigterm_during_export_removes_temporary_files(env, tmp_path):
    out = tmp_path / "a.tflite"
    # Hold the export in validation (its temporary files exist then) until the signal arrives.
    code = (
        "import sys, time; import edgekit.export.validate as v\n"
        "def slow(*a, **k):\n    time.sleep(120)\n"
        "v.validate_outputs = slow\n"
        "from edgekit.cli import main\n"
        f"sys.exit(main({_export_args(env.model, env.calib, out)!r}))\n"
    )
    envvars = {**os.environ, "PYTHONPATH": str(REPO), "TF_USE_LEGACY_KERAS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=envvars, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 90
    while time.time() < deadline and not list(tmp_path.glob(".a.tflite*.tmp-*")):
        time.sleep(0.2)
    assert list(tmp_path.glob(".a.tflite*.tmp-*")), "the export never reached validation"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "terminated by signal 15" in err
    assert listing(tmp_path) == []


# ------------------------------------------------------------------ checks that were bypassable


@pytest.mark.parametrize("value", ["nan", "inf", "-5"])
def test_min_psnr_must_be_a_finite_non_negative_number(env, capsys, tmp_path, old_out, value):
    rc, errors = cli(capsys, _export_args(env.model, env.calib, old_out, "--min-psnr", value))
    assert_refused(rc, errors, "--min-psnr")
    assert listing(tmp_path) == ["a.tflite", "a.tflite.json"]
    assert_untouched(old_out)


def test_manifest_never_holds_nan(tmp_path):
    from edgekit.export.manifest import write_manifest

    with pytest.raises(EdgekitError, match=r"a.tflite.json.*'validation.psnr_vs_keras_db'"):
        write_manifest(tmp_path / "a.tflite", {"validation": {"psnr_vs_keras_db": float("nan")}})
    assert listing(tmp_path) == []


def test_qat_plan_for_a_target_with_float_exports(env, capsys, tmp_path, monkeypatch):
    import edgekit.pipeline as pipeline

    monkeypatch.setattr(pipeline, "load_checked", lambda *a, **k: pytest.fail("model loaded first"))
    plan = tmp_path / "plan.yaml"
    plan.write_text("steps:\n  - kind: distill\n    student: dncnn\n  - kind: qat\n")
    out = tmp_path / "out"
    args = ["compress", env.model, "--target", "host-cpu", "--plan", plan, "--out", out]
    rc, errors = cli(capsys, args)
    assert_refused(rc, errors, plan, "step 1 (qat)", "host-cpu", "tflite-fp32")
    assert listing(tmp_path) == ["plan.yaml"]


def test_layout_with_tflite_is_refused(env, capsys, tmp_path, old_out):
    rc, errors = cli(capsys, _export_args(env.model, env.calib, old_out, "--layout", "NCHW"))
    assert_refused(rc, errors, "--layout NCHW", "onnx")
    assert listing(tmp_path) == ["a.tflite", "a.tflite.json"]
    assert_untouched(old_out)


def test_compare_exit_code_is_a_ci_gate(env, capsys, tmp_path):
    def compare(*artifacts, opts=()):
        flags = ["--images", env.calib, "--degradation", DEG, *opts]
        return main([str(a) for a in ["compare", env.model, *artifacts, *flags]])

    assert compare(env.art) == 0  # fp32 TFLite agrees with Keras
    assert compare(env.art, opts=["--threshold", "250"]) == 1  # a pair below: exit 1
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer")
    out = tmp_path / "cmp"
    assert compare(env.art, bad, opts=["--out", out]) == 1  # skipped = not checked: exit 1
    saved = json.loads((out / "compare.json").read_text())
    assert [o["status"] for o in saved["outputs"]] == ["ok", "ok", "skipped"]
    assert "Skipped (not checked): bad.tflite" in (out / "compare.md").read_text()
    capsys.readouterr()
    args = ["compare", env.model, env.art, "--degradation", DEG, "--threshold", "nan"]
    rc, errors = cli(capsys, args)
    assert_refused(rc, errors, "--threshold")


# ------------------------------------------------------------------ degenerate files and values


@pytest.mark.parametrize(
    "manifest,key",
    [
        ([1, 2, 3], "JSON object"),
        ("just a string", "JSON object"),
        ({"input_shape": "abc"}, "'input_shape'"),
        ({"input_shape": [1, 0, 0, 3]}, "'input_shape'"),
        ({"model": "zoo:dncnn"}, "'model'"),
        ({"model": {"name": "m", "task": "t", "degradation": DEG, "scale": "2"}}, "'model.scale'"),
        ({"model": {"name": "m", "task": "t", "degradation": 5}}, "'model.degradation'"),
        ({"model": {"name": "m", "task": "t", "degradation": DEG, "bogus": 1}}, "'model.bogus'"),
        (
            {"model": {"name": "m", "task": "t", "degradation": DEG, "value_range": [1, 0]}},
            "'model.value_range'",
        ),
        ({"dynamic_shape": "no"}, "'dynamic_shape'"),
    ],
)
def test_manifest_of_the_wrong_shape(env, capsys, tmp_path, manifest, key):
    art = tmp_path / "a.tflite"
    art.write_bytes(env.art.read_bytes())
    (tmp_path / "a.tflite.json").write_text(json.dumps(manifest))
    rc, errors = cli(capsys, ["bench", art, "--images", env.calib, "--out", tmp_path / "r"])
    assert_refused(rc, errors, "a.tflite.json", key)
    rc, errors = cli(
        capsys, ["compare", env.model, art, "--images", env.calib, "--degradation", DEG]
    )
    assert_refused(rc, errors, "a.tflite.json", key)
    assert not (tmp_path / "r").exists()


def test_manifest_is_a_fifo(env, capsys, tmp_path):
    art = tmp_path / "a.tflite"
    art.write_bytes(env.art.read_bytes())
    os.mkfifo(tmp_path / "a.tflite.json")
    with _no_blocking_on(tmp_path / "a.tflite.json") as blocked:
        rc, errors = cli(capsys, ["bench", art, "--images", env.calib, "--out", tmp_path / "r"])
    assert not blocked and rc == 2
    assert_refused(rc, errors, "a.tflite.json", "FIFO")


def test_tiny_evaluation_image_in_bench(env, capsys, tmp_path):
    one = tmp_path / "one"
    one.mkdir()
    PILImage.new("RGB", (1, 1)).save(one / "a.png")
    rc, errors = cli(
        capsys, ["bench", env.art, "--images", one, "--out", tmp_path / "r", "--no-memory"]
    )
    assert_refused(rc, errors, "a.png", "1x1", "32x32")
    assert listing(tmp_path) == ["one", "one/a.png"]


def test_negative_seed(env, capsys, tmp_path):
    rc, errors = cli(capsys, ["bench", env.art, "--seed", "-3", "--out", tmp_path / "r"])
    assert_refused(rc, errors, "--seed", "-3")
    rc, errors = cli(capsys, ["zoo", "train", "dncnn", "--seed", "-1", "--out", tmp_path / "z"])
    assert_refused(rc, errors, "--seed")
    plan = tmp_path / "p.yaml"
    plan.write_text("seed: -1\nsteps: []\n")
    with pytest.raises(EdgekitError, match=r"p.yaml: invalid plan: plan key 'seed'"):
        from edgekit.config import load_plan

        load_plan(plan)
    assert listing(tmp_path) == ["p.yaml"]


def test_enormous_fixed_input_refused_before_allocating(capsys, tmp_path, env, old_out):
    model = _tiny_model(tmp_path / "huge.h5", shape=(100_000, 100_000, 3))
    rc, errors = cli(capsys, _export_args(model, env.calib, old_out))
    assert_refused(rc, errors, "huge.h5", "100000x100000", "4096")
    big = _export_args(env.model, env.calib, old_out, "--shape", "100000x100000")
    rc, errors = cli(capsys, big)  # the later --shape wins
    assert_refused(rc, errors, "--shape")
    assert listing(tmp_path) == ["a.tflite", "a.tflite.json", "huge.h5"]
    assert_untouched(old_out)


class _no_blocking_on:
    """While the block runs, open `fifo` for writing whenever a reader blocks on it (which
    unblocks the reader) and record that it happened."""

    def __init__(self, fifo: Path):
        self.fifo, self.blocked, self.stop = fifo, [], threading.Event()

    def _watch(self):
        while not self.stop.is_set():
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: nobody is reading
                time.sleep(0.05)
                continue
            self.blocked.append(True)
            os.close(fd)

    def __enter__(self):
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self.blocked

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)


def test_fifo_as_model_or_image(env, capsys, tmp_path, old_out):
    fifo = tmp_path / "m.h5"
    os.mkfifo(fifo)
    with _no_blocking_on(fifo) as blocked:
        rc, errors = cli(capsys, _export_args(fifo, env.calib, old_out))
    assert not blocked
    assert_refused(rc, errors, fifo, "FIFO")
    images = _images(tmp_path / "imgs")
    os.mkfifo(images / "zz.png")
    with _no_blocking_on(images / "zz.png") as blocked:
        rc, errors = cli(capsys, _export_args(env.model, images, old_out))
    assert not blocked
    assert_refused(rc, errors, images / "zz.png", "FIFO")
    assert_untouched(old_out)


@root_only
def test_device_node_as_model(env, capsys, tmp_path, old_out):
    dev = tmp_path / "zero.h5"
    os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 5))  # a copy of /dev/zero: never ends
    rc, errors = cli(capsys, _export_args(dev, env.calib, old_out))
    assert_refused(rc, errors, dev, "character device")
    assert_untouched(old_out)


def test_nan_weights_name_the_layer(env, capsys, tmp_path, old_out):
    model = _tiny_model(tmp_path / "nan.h5", nan_layer="c2")
    rc, errors = cli(capsys, _export_args(model, env.calib, old_out))
    assert_refused(rc, errors, "nan.h5", "layer 'c2'", "NaN")
    assert "conversion bug" not in errors[0]
    assert listing(tmp_path) == ["a.tflite", "a.tflite.json", "nan.h5"]
    assert_untouched(old_out)


def test_fully_transparent_image_warns_and_keeps_its_colours(tmp_path):
    from edgekit.data.images import load_image

    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200  # red under alpha 0
    PILImage.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    with pytest.warns(EdgekitWarning, match=r"t.png: fully transparent"):
        im = load_image(tmp_path / "t.png")
    assert np.allclose(im.pixels[..., 0], 200 / 255) and np.allclose(im.pixels[..., 1:], 0)


def test_transparent_image_warning_is_one_cli_line(env, capsys, tmp_path):
    images = _images(tmp_path / "imgs")
    PILImage.fromarray(np.zeros((48, 48, 4), np.uint8), "RGBA").save(images / "zz.png")
    rc = main(_export_args(env.model, images, tmp_path / "a.tflite"))
    err = capsys.readouterr().err
    assert rc == 0
    assert [ln for ln in err.splitlines() if "fully transparent" in ln] == [
        next(ln for ln in err.splitlines() if ln.startswith("edgekit: warning:"))
    ]


def test_jpeg_exif_orientation_is_honoured(tmp_path):
    from edgekit.data.images import load_image

    arr = np.zeros((40, 80, 3), np.uint8)  # 80 wide, 40 high; white block at the top left
    arr[:16, :16] = 255
    img = PILImage.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=95)
    im = load_image(tmp_path / "r.jpg")
    assert im.shape == (80, 40)  # upright: 40 wide, 80 high
    assert im.pixels[:16, -16:].mean() > 0.9 and im.pixels[:16, :16].mean() < 0.1


def test_negative_tile_in_a_target(capsys, tmp_path, env):
    import yaml

    data = yaml.safe_load((REPO / "targets" / "host-cpu.yaml").read_text())
    data["tile"] = [-5, 0]
    t = tmp_path / "t.yaml"
    t.write_text(yaml.safe_dump(data))
    rc, errors = cli(capsys, ["bench", env.art, "--target", t, "--out", tmp_path / "r"])
    assert_refused(rc, errors, "t.yaml", "tile.0", "tile.1")


def _keras3_h5(path, layers_code):
    code = (
        "import keras\n"
        "inp = keras.Input(shape=(None, None, 3))\n"
        f"keras.Model(inp, {layers_code}).save({str(path)!r})\n"
    )
    clean = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    r = subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True)
    if r.returncode or not path.exists():
        pytest.fail(f"Keras 3 could not save the test model: {r.stderr[-300:]}")


def test_keras3_h5_is_rebuilt_not_a_traceback(env, capsys, tmp_path):
    # was a truncated TypeError from tf_keras; Keras 3 .h5 files are now rebuilt (models/keras3.py)
    path = tmp_path / "k3.h5"
    _keras3_h5(path, "keras.layers.Conv2D(3, 3, padding='same')(inp)")
    out = tmp_path / "k3.tflite"
    rc = main(["export", str(path), "--format", "tflite", "--precision", "fp32", "--shape", "32x32",
               "--calib", str(env.calib), "--degradation", "noise:sigma=25", "--out", str(out)])  # fmt: skip
    assert rc == 0 and out.is_file() and out.with_suffix(".tflite.json").is_file()


def test_keras3_h5_with_an_unknown_layer_is_one_clear_line(env, capsys, tmp_path, old_out):
    path = tmp_path / "k3flip.h5"
    _keras3_h5(path, "keras.layers.RandomFlip()(inp)")
    rc, errors = cli(capsys, _export_args(path, env.calib, old_out))
    assert_refused(rc, errors, "k3flip.h5", "RandomFlip")
    assert "TypeError" not in errors[0]
    assert_untouched(old_out)


def test_an_os_error_outside_edgekit_writers_is_one_line(env, capsys, tmp_path, monkeypatch):
    import edgekit.api as api

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "x.bin"))

    monkeypatch.setattr(api, "bench", full)
    rc, errors = cli(capsys, ["bench", env.art, "--out", tmp_path / "r"])
    assert_refused(rc, errors, tmp_path / "x.bin", "No space left on device")
