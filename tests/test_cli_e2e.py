"""Every command through the CLI entry point (edgekit.cli.main, one run as a real process), on a
tiny tf_keras model and small crops of the bundled photos. Nothing of edgekit is mocked: these
are the runs a user makes, and the tests check the files and numbers they get.

Numbers are checked against independently computed ones (scikit-image PSNR of a direct LiteRT /
ONNX Runtime run vs the Keras model), not against the floors the exporter itself enforces.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from cli_fixtures import NOISE, ROOT, crop_photos, home_with_photos, keras_run, tiny_denoiser
from skimage.metrics import peak_signal_noise_ratio as sk_psnr

from edgekit.cli import main
from edgekit.config import host_label

TILE = "32x32"
NOISE_SPEC = "noise:sigma=25,clip=1"  # NOISE as edgekit records it


def _run(argv: list[str]) -> tuple[int, str, str]:
    """main(argv) in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse usage errors
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()


def _ok(argv):
    rc, out, err = _run(argv)
    assert rc == 0, f"edgekit {' '.join(map(str, argv))} -> {rc}: {err.strip()[-500:]}"
    return out


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_e2e")
    w = SimpleNamespace(dir=d)
    # 8 photos: every 4th (2 of them) validates the export, the other 6 calibrate it
    w.calib = crop_photos(d / "calib", 64, 8)
    w.eval = crop_photos(d / "eval", 96, 2, start=8)  # photos the model never saw
    w.model = tiny_denoiser()
    w.h5 = d / "tiny.h5"
    w.model.save(w.h5)
    w.lambda_h5 = d / "tiny_lambda.h5"
    tiny_denoiser(with_lambda=True).save(w.lambda_h5)
    return w


def _export_argv(w, model, fmt, precision, out, *extra):
    return [
        "export", model, "--format", fmt, "--precision", precision, "--shape", TILE,
        "--calib", w.calib, "--degradation", NOISE, "--out", out, *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def exported(work):
    """The exports the later commands use, each made by `edgekit export`."""
    w, art = work, work.dir / "art"
    runs = {
        "int8io": _export_argv(
            w, w.h5, "tflite", "int8", art / "tiny-int8io.tflite", "--io", "int8", "--min-psnr", 25
        ),
        "fp32": _export_argv(w, w.h5, "tflite", "fp32", art / "tiny-fp32.tflite"),
        "onnx": _export_argv(w, w.h5, "onnx", "fp32", art / "tiny-fp32.onnx", "--layout", "NCHW"),
        "lambda": _export_argv(
            w, w.lambda_h5, "tflite", "fp32", art / "lambda.tflite", "--allow-custom-code"
        ),
    }
    out = {}
    for key, argv in runs.items():
        stdout = _ok(argv)
        path = Path(argv[argv.index("--out") + 1])
        manifest = json.loads(Path(f"{path}.json").read_text())
        out[key] = SimpleNamespace(path=path, stdout=stdout, manifest=manifest)
    return out


def _val_tiles(w):
    """The validation tiles the exporter used: held-out quarter of --calib, one tile each."""
    from edgekit.data.degradations import parse
    from edgekit.data.images import load_folder, split_holdout
    from edgekit.data.patches import degraded_tiles

    _, held = split_holdout(load_folder(w.calib))
    return degraded_tiles(held, parse(NOISE), (32, 32), per_image=1, seed=2)[0]


@pytest.mark.slow
def test_export_int8_with_int8_io_calib_and_min_psnr(work, exported):
    from edgekit.runtimes.litert import LiteRTRunner

    a = exported["int8io"]
    assert a.path.is_file() and a.stdout.startswith(f"wrote {a.path} (")
    assert "(floor 25.0 dB)" in a.stdout and a.stdout.count("\n") == 1
    m = a.manifest
    assert (m["format"], m["precision"], m["io"]) == ("tflite", "int8", "int8")
    assert m["input_shape"] == [1, 32, 32, 3] and m["output_shape"] == [1, 32, 32, 3]
    assert m["model"]["degradation"] == NOISE_SPEC and m["model"]["source"] == str(work.h5)
    assert m["converter"]["calibration_samples"] == 6  # one tile per non-held-out --calib photo
    v = m["validation"]
    assert v["floor_db"] == 25.0 and v["n_images"] == 2
    runner = LiteRTRunner(str(a.path))
    assert runner.input_dtype == "int8" and runner.output_dtype == "int8"
    # the manifest's number, recomputed here: the artifact vs Keras on the same held-out tiles
    xs = _val_tiles(work)
    got = sk_psnr(keras_run(work.model, xs), runner.run(xs), data_range=1.0)
    assert v["psnr_vs_keras_db"] == pytest.approx(got, abs=0.01)
    assert 30.0 < got < 60.0  # int8 is close to the float model, and not bit-exact


@pytest.mark.slow
def test_export_onnx_nchw_layout(work, exported):
    import onnxruntime as ort

    a = exported["onnx"]
    m = a.manifest
    assert m["layout"] == "NCHW" and m["precision"] == "fp32"
    sess = ort.InferenceSession(str(a.path), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape == [1, 3, 32, 32]
    xs = _val_tiles(work)
    outs = np.stack([sess.run(None, {sess.get_inputs()[0].name: x.transpose(2, 0, 1)[None]})[0][0]
                     for x in xs])  # fmt: skip
    got = sk_psnr(keras_run(work.model, xs), outs.transpose(0, 2, 3, 1), data_range=1.0)
    assert got >= 60.0
    assert m["validation"]["psnr_vs_keras_db"] == pytest.approx(min(got, 200.0), abs=0.01)


@pytest.mark.slow
def test_export_lambda_model_with_allow_custom_code(work, exported):
    from tf_keras.models import load_model

    from edgekit.runtimes.litert import LiteRTRunner

    a = exported["lambda"]
    assert a.path.is_file()
    model = load_model(work.lambda_h5, safe_mode=False)
    xs = _val_tiles(work)
    got = sk_psnr(keras_run(model, xs), LiteRTRunner(str(a.path)).run(xs), data_range=1.0)
    assert got >= 60.0


@pytest.fixture(scope="module")
def bench_report(work, exported):
    out = work.dir / "bench"
    arts = [exported[k].path for k in ("fp32", "int8io", "onnx")]
    stdout = _ok(["bench", *arts, "--images", work.eval, "--max-side", 64, "--no-memory",
                  "--out", out])  # fmt: skip
    return json.loads((out / "report.json").read_text()), out, stdout


@pytest.mark.slow
def test_bench_report_numbers(work, bench_report):
    report, out, stdout = bench_report
    assert (out / "report.md").is_file() and "report:" in stdout
    assert report["measured_on"] == host_label()
    assert report["target"]["name"] == "host-cpu" and report["target"]["connection"] == "local"
    ev = report["eval_set"]
    assert ev["count"] == 2 and ev["crop"] == "centre crop to at most 64x64"
    assert [im["height"] for im in ev["images"]] == [64, 64] and ev["degradation"] == NOISE_SPEC
    # sigma 25 of 255 on [0, 1] photos: 20.2 dB before clipping, a little more after
    assert 19.5 < report["degraded_input"]["psnr_db"] < 22.0
    ref = report["reference"]
    assert ref["model"]["source"] == str(work.h5)  # taken from the manifest
    rows = {r["id"]: r for r in report["artifacts"]}
    assert list(rows) == ["tflite-fp32", "tflite-int8-int8io", "onnx-fp32"]
    repeats = report["target"]["used"]["repeats"]
    for r in rows.values():
        lat = r["latency_ms"]
        assert lat["n"] == repeats == 20
        assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert lat["min"] <= lat["mean"] <= lat["max"]
        assert r["measured_on"] == host_label()
        assert r["size_bytes"] == Path(r["path"]).stat().st_size
        assert r["peak_rss_mb"] is None  # --no-memory
    for fp32 in ("tflite-fp32", "onnx-fp32"):
        assert rows[fp32]["psnr_vs_reference_db"] >= 60.0
        assert rows[fp32]["psnr_db"] == pytest.approx(ref["psnr_db"], abs=0.01)
    assert 30.0 < rows["tflite-int8-int8io"]["psnr_vs_reference_db"] < 60.0
    assert rows["tflite-fp32"]["speedup_vs_fp32"] == 1.0
    assert rows["tflite-int8-int8io"]["io"] == "int8"


@pytest.mark.slow
def test_compare(work, exported):
    out = work.dir / "compare"
    arts = [exported[k].path for k in ("fp32", "int8io", "onnx")]
    stdout = _ok(["compare", work.h5, *arts, "--degradation", NOISE, "--images", work.eval,
                  "--out", out])  # fmt: skip
    res = json.loads((out / "compare.json").read_text())
    assert (out / "compare.md").is_file() and "tiny-fp32.onnx" in stdout
    names = [o["name"] for o in res["outputs"]]
    assert names == ["keras", "tiny-fp32.tflite", "tiny-int8io.tflite", "tiny-fp32.onnx"]
    pairs = {(p["a"], p["b"]): p for p in res["pairs"]}
    assert len(pairs) == 6 and res["flagged"] == []
    assert pairs[("keras", "tiny-fp32.tflite")]["psnr_db"] >= 60.0
    assert pairs[("tiny-fp32.tflite", "tiny-fp32.onnx")]["psnr_db"] >= 60.0
    int8 = pairs[("keras", "tiny-int8io.tflite")]
    assert int8["threshold_db"] == 30.0 and 30.0 < int8["psnr_db"] < 60.0


@pytest.mark.slow
def test_compress_tiny_plan(work, tmp_path, monkeypatch):
    # a home whose calibration_data/ is 8 small photos: compress trains, exports and benches on it
    home = home_with_photos(tmp_path / "home", 64)
    monkeypatch.setenv("EDGEKIT_HOME", str(home))
    target = tmp_path / "tiny-target.yaml"
    target.write_text(
        yaml.safe_dump(
            {
                "name": "tiny-host",
                "description": "host CPU, 32x32 tiles",
                "device": "the host running edgekit",
                "runtime": "litert",
                "exports": [
                    {"format": "tflite", "precision": "fp32"},
                    {"format": "tflite", "precision": "int8"},
                ],
                "tile": [32, 32],
                "threads": 1,
                "warmup": 1,
                "repeats": 3,
                "connection": {"kind": "local"},
            }
        )
    )
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "steps:\n"
        "  - {kind: prune_channels, ratio: 0.5, round_to: 4, min_channels: 4, steps: 2, patch: 24}\n"
        "  - {kind: distill, student: pruned, steps: 2, eval_every: 1, patch: 24}\n"
    )
    out = tmp_path / "out"
    _ok(["compress", work.h5, "--target", target, "--plan", plan, "--degradation", NOISE,
         "--out", out])  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    steps = report["steps"]
    assert [s["kind"] for s in steps] == ["prune_channels", "distill"]
    prune = steps[0]
    # c1 and c2 go from 8 to 4 filters; c3 feeds the residual with the input image and stays 3
    assert prune["channels"]["c1"] == [8, 4] and prune["channels"]["c2"] == [8, 4]
    assert prune["channels"]["c3"] == [3, 3]
    assert prune["params_after"] < 0.6 * prune["params_before"]
    assert steps[1]["params_before"] == steps[1]["params_after"] == prune["params_after"]
    # first row: the user's own model exported as fp32, the baseline speed-ups are relative to
    base, *rows = report["artifacts"]
    assert base.get("baseline") is True and base["precision"] == "fp32" and not base.get("plan")
    assert report["relative_to"]
    assert [r["precision"] for r in rows] == ["fp32", "int8"]
    for r in rows:
        assert [s["kind"] for s in r["plan"]] == ["prune_channels", "distill"]
        assert r["measured_on"] == host_label() and r["latency_ms"]["n"] == 3
        assert r["psnr_vs_reference_db"] is not None
    assert report["eval_set"]["count"] == 2  # the held-out quarter of the 8 photos


def test_targets_check_host_cpu():
    rc, out, err = _run(["targets", "--check", "host-cpu"])
    assert rc == 0 and err == ""
    assert out.strip() == "host-cpu: local target; runs here: yes (yes)"


def test_zoo_list_shows_every_model_with_its_recorded_psnr():
    from edgekit.models import zoo

    rc, out, _ = _run(["zoo", "list"])
    assert rc == 0
    for name in zoo.names():
        line = next(ln for ln in out.splitlines() if f" {name} " in ln)
        m = zoo.get(name).metrics()
        assert f"{m['psnr_db']:.2f}" in line and f"{m['degraded_psnr_db']:.2f}" in line
        assert "yes" in line  # trained


# ---------------------------------------------------------------- demo (real command, small photos)


@pytest.fixture(scope="session")
def demo_report(tmp_path_factory):
    """`python -m edgekit.cli demo` once, in its own process, on 8 photos cropped to the demo's
    256 px tile (the demo itself is unchanged; the bundled photos make it ~2 min, these ~1)."""
    d = tmp_path_factory.mktemp("demo")
    home = home_with_photos(d / "home", 256)
    env = {**os.environ, "EDGEKIT_HOME": str(home), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit.cli", "demo", "--out", str(d / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((d / "out" / "report.json").read_text()), d / "out", proc.stdout


@pytest.mark.slow
def test_demo_report(demo_report):
    report, out, stdout = demo_report
    assert (out / "report.md").is_file() and "report:" in stdout
    assert [t["name"] for t in report["targets"]] == ["host-cpu", "android-cpu-int8"]
    rows = [(r["target"], r["label"]) for r in report["artifacts"]]
    assert rows == [
        ("host-cpu", "tflite-fp32"),
        ("host-cpu", "tflite-fp16"),
        ("host-cpu", "tflite-dynamic"),
        ("host-cpu", "tflite-int8"),
        ("host-cpu", "onnx-fp32"),
        ("host-cpu", "onnx-int8"),
        ("android-cpu-int8", "tflite-int8"),
        ("android-cpu-int8", "tflite-int8-int8io"),
    ]
    ref = report["reference"]["psnr_db"]
    deg = report["degraded_input"]["psnr_db"]
    assert ref > deg + 6.0  # the shipped DnCNN denoises the held-out photos
    floors = {"fp32": 60.0, "fp16": 45.0, "dynamic": 35.0, "int8": 30.0}
    for r in report["artifacts"]:
        assert r["measured_on"] == host_label()  # the android rows too: no phone attached
        lat = r["latency_ms"]
        assert lat["n"] == 20 and 0 < lat["min"] <= lat["p50"] <= lat["p99"] <= lat["max"]
        assert r["psnr_vs_reference_db"] >= floors[r["precision"]]
        assert ref - r["psnr_db"] < 0.5  # every artifact keeps the float model's quality
        assert (out / "artifacts" / r["target"] / Path(r["path"]).name).is_file()
        assert r["peak_rss_mb"] > r["baseline_rss_mb"] > 0
    assert any("not phone numbers" in n for n in report["notes"])


# ---------------------------------------------------------------- bad input: exit 2, one line, nothing written


def _bad_inputs(w, tmp: Path) -> dict:
    corrupt = tmp / "corrupt.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(512))
    refused = tmp / "embedding.h5"
    from cli_fixtures import embedding_model

    embedding_model().save(refused)
    empty = tmp / "empty"
    empty.mkdir()
    small = crop_photos(tmp / "small", 16, 4)
    bad_yaml = tmp / "bad-target.yaml"
    bad_yaml.write_text("name: t\nruntime: litert\nbogus: 1\n")
    broken_yaml = tmp / "broken.yaml"
    broken_yaml.write_text("exports: [format: tflite\n")
    garbage = tmp / "garbage.tflite"
    garbage.write_bytes(b"not a flatbuffer at all")
    manifest = {"format": "tflite", "precision": "fp32", "input_shape": [1, 32, 32, 3],
                "model": {"name": "g", "task": "denoise", "degradation": NOISE}}  # fmt: skip
    (tmp / "garbage.tflite.json").write_text(json.dumps(manifest))
    out = tmp / "out" / "x.tflite"

    def export(model, *extra, precision="fp32"):
        return ["export", model, "--format", "tflite", "--precision", precision,
                "--degradation", NOISE, "--out", out, *extra]  # fmt: skip

    return {
        "missing model": (export(tmp / "nope.h5"), "nope.h5: model file not found"),
        "corrupt model": (export(corrupt), "corrupt.h5: not a readable HDF5 model file"),
        "refused layer": (export(refused), "layer 'tokens' (Embedding) can't be handled"),
        "custom code without opt-in": (
            export(w.lambda_h5),
            "layer 'scale_lambda' is a Lambda (Python code stored in the file)",
        ),
        "empty image folder": (export(w.h5, "--calib", empty), f"{empty}: no images found"),
        "images smaller than the tile": (
            export(w.h5, "--calib", small, "--shape", TILE),
            "images smaller than the 32x32 tile",
        ),
        "malformed target YAML": (export(w.h5, "--target", bad_yaml), "bogus"),
        "unparsable target YAML": (export(w.h5, "--target", broken_yaml), "broken.yaml"),
        "unknown precision": (export(w.h5, precision="int4"), "unknown precision 'int4'"),
        "unknown format": (
            [
                "export",
                w.h5,
                "--format",
                "coreml",
                "--precision",
                "fp32",
                "--degradation",
                NOISE,
                "--out",
                out,
            ],  # fmt: skip
            "unknown format 'coreml'",
        ),
        "bench: empty image folder": (
            ["bench", garbage, "--degradation", NOISE, "--images", empty, "--out", tmp / "out"],
            f"{empty}: no images found",
        ),
        "bench: corrupt artifact": (
            [
                "bench",
                garbage,
                "--degradation",
                NOISE,
                "--images",
                w.eval,
                "--max-side",
                64,
                "--no-memory",
                "--out",
                tmp / "out",
            ],  # fmt: skip
            "garbage.tflite: LiteRT cannot load this file",
        ),
        "compress: malformed plan": (
            [
                "compress",
                w.h5,
                "--target",
                "host-cpu",
                "--plan",
                broken_yaml,
                "--degradation",
                NOISE,
                "--out",
                tmp / "out",
            ],  # fmt: skip
            "broken.yaml: malformed YAML",
        ),
    }


BAD_CASES = [
    "missing model",
    "corrupt model",
    "refused layer",
    "custom code without opt-in",
    "empty image folder",
    "images smaller than the tile",
    "malformed target YAML",
    "unparsable target YAML",
    "unknown precision",
    "unknown format",
    "bench: empty image folder",
    "bench: corrupt artifact",
    "compress: malformed plan",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case, work, tmp_path):
    cases = _bad_inputs(work, tmp_path)
    argv, words = cases[case]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    rc, _, err = _run(argv)
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgekit: error: "), err
    assert words in lines[0]
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before  # no artifact, manifest, report or temporary file


@pytest.mark.parametrize(
    "argv,words",
    [
        (
            [
                "export",
                "zoo:dncnn",
                "--format",
                "tflite",
                "--precision",
                "int4",
                "--out",
                "x.tflite",
            ],
            "unknown precision 'int4'",
        ),
        (["targets", "--check", "no-such-target"], "unknown target 'no-such-target'"),
    ],  # fmt: skip
)
def test_bad_input_exit_code_of_the_real_process(argv, words, tmp_path):
    """The installed entry point's process exit status (not just main()'s return value)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit.cli", *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and words in proc.stderr
    assert proc.stdout == "" and list(tmp_path.iterdir()) == []
