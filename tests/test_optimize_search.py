"""edgekit optimize end to end on a tiny user-like U-Net: mixed precision, exit 3, resume, Ray
(a real head and worker on 127.0.0.1) and report.html in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from edgekit.cli import main

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
BUDGET = 0.1  # dB: plain int8 of the fixture model loses ~0.6 dB, mixed recipes ~0.0-0.06
TARGET = """name: {name}
description: tiny test target
device: the host running edgekit
runtime: litert
exports:
{exports}
tile: [32, 32]
threads: 1
warmup: 1
repeats: 3
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """4 photos (96x96 crops of bundled photos), a fitted U-Net without output clamp, targets."""
    from PIL import Image

    sys.path.insert(0, str(REPO / "benchmarks"))
    from optimize_unet import build_user_unet, fit_denoiser

    root = tmp_path_factory.mktemp("optimize")
    photos = root / "photos"
    photos.mkdir()
    src = sorted((REPO / "calibration_data").glob("*.png"))[:4]
    pixels = []
    for i, p in enumerate(src):
        im = Image.open(p).convert("RGB")
        w, h = im.size
        im = im.crop((w // 2 - 48, h // 2 - 48, w // 2 + 48, h // 2 + 48))
        im.save(photos / f"{i:02d}.png")
        pixels.append(np.asarray(im, np.float32) / 255.0)
    model = fit_denoiser(build_user_unet(8, clip=False), pixels[:2], steps=300)
    model.save(root / "user_unet.h5")
    targets = {}
    for name, exports in {
        "int8": "  - {format: tflite, precision: int8}",
        "onnx": "  - {format: onnx, precision: int8, options: {layout: NCHW, activations: asymmetric}}",
        # a lowered floor: plain int8 is built and scored, and misses the budget
        "int8io": "  - {format: tflite, precision: int8, io: int8, options: {min_psnr_db: 20.0}}",
    }.items():
        targets[name] = root / f"{name}.yaml"
        targets[name].write_text(TARGET.format(name=f"tiny-{name}", exports=exports))
    return {"root": root, "photos": photos, "model": root / "user_unet.h5", "targets": targets}


def _run(setup, out, target="int8", budget=BUDGET, extra=()):
    return main(
        [
            "optimize", str(setup["model"]), "--target", str(setup["targets"][target]),
            "--max-drop", str(budget), "--calib", str(setup["photos"]),
            "--degradation", "noise:sigma=25", "--out", str(out), *extra,
        ]
    )  # fmt: skip


@pytest.fixture(scope="module")
def local_run(setup):
    out = setup["root"] / "local"
    assert _run(setup, out) == 0
    return out, json.loads((out / "report.json").read_text())


def test_mixed_precision_meets_a_budget_full_int8_misses(local_run):
    out, report = local_run
    by_kind = {}
    for c in report["candidates"]:
        by_kind.setdefault(c["kind"], []).append(c)
    # plain int8, with and without the fast-path rewrites, breaks the budget (by its drop, or by
    # failing its validation floor)
    assert len(by_kind["ptq"]) == 2
    for ptq in by_kind["ptq"]:
        assert not (ptq["ok"] and ptq["drop_db"] <= BUDGET)
    assert report["sensitivity"] and by_kind["mixed"]
    best = report["best"]
    assert best["recipe"]["kind"] == "mixed"
    assert best["split"] == "test" and best["drop_db"] <= BUDGET  # re-scored on unseen photos
    assert best["meets_budget_on_test"]
    assert report["splits"]["test"] and not set(report["splits"]["test"]) & set(
        report["splits"]["validation"] + report["splits"]["calibration"]
    )
    # the artifact is really mixed: some nodes float, the rest int8 (not an fp32 model)
    manifest = json.loads((out / "best.tflite.json").read_text())
    mp = manifest["converter"]["mixed_precision"]
    assert 0 < len(mp["float_nodes"]) < len([n for n in mp["nodes"]])
    assert manifest["validation"]["psnr_vs_keras_db"] >= manifest["validation"]["floor_db"]
    assert manifest["optimize"]["float_layers"] == mp["float_layers"]
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(out / "best.tflite"))
    details = it.get_tensor_details()
    dtypes = {
        (op["op_name"], str(details[op["outputs"][0]]["dtype"].__name__))
        for op in it._get_ops_details()
    }
    assert ("CONV_2D", "int8") in dtypes
    assert {op for op, dt in dtypes if dt == "float32"} - {"QUANTIZE", "DEQUANTIZE"}
    # every number says where it was measured
    assert best["measured_on"].startswith("host-cpu")
    assert all(c["measured_on"] for c in report["candidates"] if c["latency_ms"] is not None)


def test_onnx_mixed_precision_keeps_the_sensitive_nodes_out_of_qdq(setup):
    import onnx

    out = setup["root"] / "onnx"
    assert _run(setup, out, target="onnx") == 0
    report = json.loads((out / "report.json").read_text())
    best = report["best"]
    assert best["format"] == "onnx" and best["recipe"]["kind"] == "mixed"
    assert best["drop_db"] <= BUDGET and best["meets_budget_on_test"]
    excluded = set(best["recipe"]["float_nodes"])
    graph = onnx.load(str(out / "best.onnx")).graph
    names = {n.name for n in graph.node}
    assert excluded <= names
    init = {w.name for w in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    # a float Conv reads its float weights directly; an int8 one through a DequantizeLinear
    float_convs = {n.name for n in convs if n.input[1] in init}
    assert float_convs <= excluded and len(float_convs) < len(convs)
    assert report["sensitivity"][0]["share"] > 0


def test_exit_3_names_the_closest_candidate_and_keeps_the_report(setup, capsys):
    out = setup["root"] / "none"
    # int8 I/O has no mixed-precision recipes, and plain int8 misses the budget
    assert _run(setup, out, target="int8io") == 3
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("edgekit: error")]
    assert errors == err[-1:] and "closest: tflite-int8-int8io at" in errors[0]
    report = json.loads((out / "report.json").read_text())
    assert report["best"] is None and report["closest"]["drop"] > BUDGET
    assert (out / "report.html").is_file() and not list(out.glob("best.*"))
    assert Path(report["closest"]["path"]).is_file()  # the candidate's artifact is kept


def test_a_rerun_after_an_interrupted_run_rebuilds_only_what_was_missing(setup, monkeypatch):
    from edgekit.optimize import build

    out = setup["root"] / "resume"
    real = build.build_candidate
    calls = []

    def interrupted(ctx, cand):
        calls.append(cand.id)
        if len(calls) == 4:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the 4th build
        return real(ctx, cand)

    monkeypatch.setattr(build, "build_candidate", interrupted)
    assert _run(setup, out) == 130
    monkeypatch.setattr(build, "build_candidate", real)
    assert len(list((out / "cache").iterdir())) == 3  # the interrupted build left nothing
    assert _run(setup, out) == 0
    first = json.loads((out / "report.json").read_text())["search"]
    assert first["from_cache"] == 3 and first["built"] == first["planned"] - 3
    assert _run(setup, out) == 0
    again = json.loads((out / "report.json").read_text())["search"]
    assert again["built"] == 0 and again["from_cache"] == first["planned"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_cluster():
    """A Ray head and one worker node on 127.0.0.1 (separate raylets), torn down by pid."""
    ray_bin = Path(sys.executable).parent / "ray"
    if not ray_bin.exists():
        pytest.skip("ray is not installed (pip install 'edgekit[ray]')")
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ekray", dir="/tmp")  # short: Ray's socket paths are limited
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--block", "--num-cpus=1", "--object-store-memory=80000000", "--disable-usage-stats"]
    procs = []
    try:
        head = [
            str(ray_bin), "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
            "--include-dashboard=false", f"--temp-dir={temp}",
            f"--ray-client-server-port={_free_port()}", *common,
        ]  # fmt: skip
        log = open(Path(temp) / "head.out", "w")
        procs.append(
            subprocess.Popen(
                head, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        )
        deadline = time.monotonic() + 90
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or procs[0].poll() is not None:
                    pytest.fail(
                        "Ray head did not start: " + (Path(temp) / "head.out").read_text()[-2000:]
                    )
                time.sleep(0.5)
        worker = [
            str(ray_bin),
            "start",
            f"--address=127.0.0.1:{port}",
            "--node-ip-address=127.0.0.1",
            *common,
        ]
        wlog = open(Path(temp) / "worker.out", "w")
        procs.append(
            subprocess.Popen(
                worker, env=env, stdout=wlog, stderr=subprocess.STDOUT, start_new_session=True
            )
        )
        yield f"127.0.0.1:{port}"
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_cluster_gives_the_same_candidates_and_psnrs_as_local(setup, local_run, ray_cluster):
    import ray

    out = setup["root"] / "ray"
    # wait until the worker node joined, so the builds really spread over two raylets
    ray.init(address=ray_cluster, log_to_driver=False)
    deadline = time.monotonic() + 60
    while len([n for n in ray.nodes() if n["Alive"]]) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    nodes = len([n for n in ray.nodes() if n["Alive"]])
    ray.shutdown()
    assert nodes == 2
    assert _run(setup, out, extra=("--executor", "ray", "--ray-address", ray_cluster)) == 0
    got = json.loads((out / "report.json").read_text())
    _, want = local_run
    assert got["executor"]["name"] == "ray" and "2 node(s)" in got["executor"]["where"]
    assert got["search"]["built"] == got["search"]["planned"]  # nothing came from a cache
    pick = lambda r: {c["id"]: (c["ok"], c["psnr_db"], c["ssim"]) for c in r["candidates"]}  # noqa: E731
    assert pick(got) == pick(want)  # same candidates, identical PSNRs (exact equality)
    assert [s["psnr_alone_db"] for s in got["sensitivity"]] == [
        s["psnr_alone_db"] for s in want["sensitivity"]
    ]
    assert got["best"]["id"] in pick(want)


def test_report_html_renders_in_headless_chromium(local_run, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("headless Chromium is not installed (apt install chromium)")
    out, _ = local_run
    page = (out / "report.html").read_text()
    assert page.count("<img ") >= 2  # the Pareto plot and the sensitivity chart
    # a copy that records, once loaded, how many images failed to decode
    probe = tmp_path / "probe.html"
    script = (
        "<script>window.addEventListener('load',()=>{const b=[...document.images]"
        ".filter(i=>!i.complete||i.naturalWidth===0).length;"
        "document.title='images='+document.images.length+' broken='+b;});</script>"
    )
    probe.write_text(page.replace("</body>", script + "</body>"))
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [browser, *flags, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    assert "broken=0" in dom and "images=0" not in dom
    shot = tmp_path / "shot.png"
    subprocess.run(
        [browser, *flags, f"--screenshot={shot}", "--window-size=1200,1600",
         (out / "report.html").as_uri()],
        capture_output=True, timeout=120,
    )  # fmt: skip
    from PIL import Image

    px = np.asarray(Image.open(shot).convert("L"), np.float32)
    assert px.std() > 10 and (px < 128).mean() > 0.005  # text and plots, not a blank page


def test_validation_scoring_matches_the_harness(setup, local_run):
    """The builds' scorer (photos as arrays, any process) gives the harness' numbers."""
    from edgekit.data.images import load_image
    from edgekit.optimize import quality

    out, report = local_run
    test = [load_image(setup["photos"] / name) for name in report["splits"]["test"]]
    degraded, cleans = quality.degrade(test, report["splits"]["degradation"])
    got = quality.score_artifact(str(out / "best.tflite"), degraded, cleans, (32, 32), 1, (0, 1), 1)
    assert got["psnr_db"] == pytest.approx(report["best"]["psnr_db"], abs=1e-6)
    assert got["ssim"] == pytest.approx(report["best"]["ssim"], abs=1e-6)
