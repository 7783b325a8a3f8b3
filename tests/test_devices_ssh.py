"""Remote benchmarks over a REAL OpenSSH server on 127.0.0.1.

The session starts Debian's sshd (`/usr/sbin/sshd -D -f <tmp config>`) as the current user with a
throwaway host key and client key made by ssh-keygen, a known_hosts file for it and an ssh config
file passed with `-F` (the user's own ~/.ssh is untouched). The "device's Python" is a separate
virtualenv holding only numpy + ai-edge-litert + onnxruntime (cached under
~/.cache/edgekit-test-device-venv, keyed by versions), so the runner cannot lean on anything the
host has. Skipped with a reason when sshd or ssh is not installed (.ci/run installs
openssh-server).
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from conftest import make_target

from edgekit.config import target_from_dict
from edgekit.devices import DeviceError, check_target, executor_for
from edgekit.devices.local import LocalExecutor
from edgekit.devices.ssh import SshExecutor
from edgekit.metrics import psnr

SSHD = "/usr/sbin/sshd"
HOST_ALIAS = "edgekit-test-device"
VENV_ROOT = Path(
    os.environ.get("EDGEKIT_TEST_VENV_ROOT", Path.home() / ".cache" / "edgekit-test-device-venv")
)

pytestmark = [
    pytest.mark.skipif(
        not os.path.exists(SSHD),
        reason="OpenSSH server not installed (apt-get install openssh-server)",
    ),
    pytest.mark.skipif(
        shutil.which("ssh") is None or shutil.which("ssh-keygen") is None,
        reason="OpenSSH client not installed (apt-get install openssh-client)",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgekit-test", "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )


class Sshd:
    def __init__(self, root: Path, sftp: bool = True):
        self.root = root
        self.port = _free_port()
        self.user = getpass.getuser()
        self.host_key = root / "host_ed25519"
        self.client_key = root / "client_ed25519"
        self.other_key = root / "unauthorised_ed25519"
        for k in (self.host_key, self.client_key, self.other_key):
            _keygen(k)
        (root / "authorized_keys").write_text((root / "client_ed25519.pub").read_text())
        (root / "known_hosts").write_text(
            f"[127.0.0.1]:{self.port} "
            + " ".join((root / "host_ed25519.pub").read_text().split()[:2])
            + "\n"
        )
        (root / "empty_known_hosts").write_text("")
        (root / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
            f"PidFile {root / 'sshd.pid'}\nAuthorizedKeysFile {root / 'authorized_keys'}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
            "UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nPrintMotd no\n"
            + ("Subsystem sftp internal-sftp\n" if sftp else "")
            + "MaxStartups 50\nLogLevel VERBOSE\n"
        )
        self.log = open(root / "sshd.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(root / "sshd_config")],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("sshd exited: " + (root / "sshd.log").read_text()[-2000:])
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return
            time.sleep(0.1)
        raise RuntimeError("sshd did not start listening")

    def ssh_config(
        self,
        name: str,
        *,
        key: Path | None = None,
        known_hosts: Path | None = None,
        port: int | None = None,
    ) -> Path:
        path = self.root / f"ssh_config_{name}"
        path.write_text(
            f"Host {HOST_ALIAS}\n  HostName 127.0.0.1\n  Port {port or self.port}\n  User {self.user}\n"
            f"  IdentityFile {key or self.client_key}\n  IdentitiesOnly yes\n  IdentityAgent none\n"
            f"  UserKnownHostsFile {known_hosts or self.root / 'known_hosts'}\n"
            "  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n"
        )
        return path

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
        try:
            os.makedirs("/run/sshd", mode=0o755)
        except OSError as exc:
            pytest.skip(f"sshd as root needs /run/sshd and it cannot be created: {exc}")
    server = Sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


# ------------------------------------------------------------------ device virtualenvs


def _make_venv(name: str, packages: list[str]) -> Path:
    """A cached venv holding only `packages` (made once per version key, under a file lock)."""
    base = getattr(sys, "_base_executable", sys.executable)
    vi = sys.version_info
    key = f"{name}-py{vi.major}{vi.minor}-" + "-".join(p.replace("==", "") for p in packages)
    VENV_ROOT.mkdir(parents=True, exist_ok=True)
    final = VENV_ROOT / key
    py = final / "bin" / "python"
    with open(VENV_ROOT / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if py.exists() and (final / ".complete").exists():
            return py
        shutil.rmtree(final, ignore_errors=True)
        args = [base, "-m", "venv"] + ([] if packages else ["--without-pip"]) + [str(final)]
        subprocess.run(args, check=True, capture_output=True, timeout=300)
        if packages:
            proc = subprocess.run(
                [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q", *packages],
                capture_output=True,
                text=True,
                timeout=900,
            )
            if proc.returncode != 0:
                shutil.rmtree(final, ignore_errors=True)
                why = f"could not pip install {packages} into the device venv: {proc.stderr[-500:]}"
                # CI must exercise the ssh path: there a failed install is a failure, not a skip
                if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
                    pytest.fail(why)
                pytest.skip(why)
        (final / ".complete").write_text("ok\n")
    return py


def _pins() -> dict:
    return {d: f"{d}=={metadata.version(d)}" for d in ("numpy", "ai-edge-litert", "onnxruntime")}


@pytest.fixture(scope="session")
def device_python():
    pins = _pins()
    return _make_venv("device", [pins["numpy"], pins["ai-edge-litert"], pins["onnxruntime"]])


@pytest.fixture(scope="session")
def numpy_only_python():
    return _make_venv("numpy-only", [_pins()["numpy"]])


@pytest.fixture(scope="session")
def bare_python():
    return _make_venv("bare", [])


# ------------------------------------------------------------------ artifacts


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory):
    """A tiny residual conv denoiser exported by edgekit's own exporters: full-int8 .tflite
    (int8 kernels on the device) and fp32 .onnx, each with its manifest."""
    from edgekit.config import Format, Precision
    from edgekit.export.base import ExportRequest, get_exporter
    from edgekit.models.info import LoadedModel, ModelInfo
    from edgekit.tfcompat import import_tf

    tf, keras = import_tf()
    out = tmp_path_factory.mktemp("artifacts")
    keras.utils.set_random_seed(3)
    inp = keras.Input((None, None, 3))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    h = keras.layers.Conv2D(3, 3, padding="same")(h)
    model = keras.Model(inp, keras.layers.ReLU(max_value=1.0)(keras.layers.Subtract()([inp, h])))
    loaded = LoadedModel(
        model, ModelInfo(name="tiny", task="denoise", degradation="noise:sigma=25", source="test")
    )
    x = np.random.default_rng(0).random((8, 32, 32, 3), dtype=np.float32)
    for fmt, prec in (("tflite", "int8"), ("onnx", "fp32")):
        req = ExportRequest(
            format=Format(fmt),
            precision=Precision(prec),
            shape=(32, 32),
            calib_inputs=x,
            val_inputs=x[:4],
        )
        get_exporter(fmt).export(loaded, req, out / f"tiny.{fmt}")
    (out / "broken.tflite").write_bytes(b"this is not a flatbuffer" * 10)
    return out


@pytest.fixture(scope="session")
def images():
    rng = np.random.default_rng(11)
    clean = rng.random((3, 32, 32, 3), dtype=np.float32)
    noisy = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)
    return clean, noisy


def _target(
    sshd: Sshd,
    tmp_path: Path,
    python: Path | str,
    *,
    config: Path | None = None,
    port: int | None = None,
    runtime: str = "litert",
    **extra,
):
    conn = {
        "kind": "ssh",
        "host": HOST_ALIAS,
        "ssh_config": str(config or sshd.ssh_config("ok")),
        "python": str(python),
        "workdir": str(tmp_path / "remote-work"),
        "timeout_s": 300,
        "connect_timeout_s": 5,
        **extra,
    }
    if port:
        conn["port"] = port
    fmt = {"litert": "tflite", "onnxruntime": "onnx", "tensorrt": "tensorrt"}[runtime]
    return make_target(
        name="loopback-board",
        description="sshd on 127.0.0.1",
        device="test sshd",
        runtime=runtime,
        exports=[{"format": fmt, "precision": "fp32"}],
        tile=[32, 32],
        threads=1,
        delegate="xnnpack",
        warmup=1,
        repeats=3,
        connection=conn,
    )


def _leftovers(tmp_path: Path) -> list[str]:
    work = tmp_path / "remote-work"
    return sorted(p.name for p in work.iterdir()) if work.exists() else []


def _jobs(artifacts: Path, *names: str) -> list[dict]:
    return [{"id": n, "path": str(artifacts / n), "manifest": {}} for n in names]


# ------------------------------------------------------------------ the real thing


@pytest.mark.slow
def test_ssh_measure_matches_local_psnr_and_carries_device_facts(
    sshd, device_python, artifacts, images, tmp_path
):
    clean, noisy = images
    target = _target(sshd, tmp_path, device_python)
    ex = executor_for(target)
    assert isinstance(ex, SshExecutor)
    jobs = _jobs(artifacts, "tiny.tflite", "tiny.onnx")
    kw = {"threads": 1, "delegate": "xnnpack", "warmup": 1, "repeats": 3}
    seen = []
    remote = ex.measure(
        jobs, noisy, progress=lambda stage, done, total: seen.append((stage, done, total)), **kw
    )
    # the device streamed its progress (load, warm-up, timing, outputs) while it worked
    assert (f"ssh:{HOST_ALIAS}: on the device: timing", 3, 3) in seen
    assert any("on the device: outputs" in s for s, _, _ in seen)
    local_ex = LocalExecutor(target)
    local = local_ex.measure(jobs, noisy, **kw)

    assert remote["measured_on"] == f"ssh:{HOST_ALIAS}" == ex.measured_on()
    assert local_ex.measured_on().startswith("host-cpu")
    dev = remote["device"]
    # Facts come from the device's own Python (the separate venv), not from this process.
    assert dev["python_executable"] == str(device_python)
    assert dev["versions"]["ai-edge-litert"] == metadata.version("ai-edge-litert")
    assert dev["versions"]["onnxruntime"] == metadata.version("onnxruntime")
    assert "tensorflow" not in dev["versions"]
    assert dev["hostname"] and dev["kernel"] and dev["machine"]
    for jid in ("tiny.tflite", "tiny.onnx"):
        r, lo = remote["outputs"][jid], local["outputs"][jid]
        assert r.shape == (3, 32, 32, 3)
        p_remote, p_local = psnr(r, clean), psnr(lo, clean)
        assert p_remote == p_local, jid
        assert psnr(noisy, clean) != p_remote  # the model did something
        res = remote["results"][jid]
        assert res["path"] == str(artifacts / jid)  # local path restored
        assert res["latency_ms"]["n"] == 3 and res["latency_ms"]["p50"] > 0
    mem = ex.peak_rss(
        str(artifacts / "tiny.onnx"), threads=1, delegate="xnnpack", input_shape=(1, 32, 32, 3)
    )
    assert mem["peak_rss_mb"] > mem["baseline_rss_mb"] > 0  # a fresh process on the device
    assert _leftovers(tmp_path) == []  # the remote work dir is gone


def test_executor_for_finds_the_ssh_executor(sshd, tmp_path):
    ex = executor_for(_target(sshd, tmp_path, "python3"))
    assert isinstance(ex, SshExecutor) and ex.kind == "ssh"


@pytest.mark.slow
def test_check_target_lists_device_runtimes(sshd, device_python, tmp_path):
    info = check_target(_target(sshd, tmp_path, device_python))
    assert info["measured_on"] == f"ssh:{HOST_ALIAS}"
    assert info["runtimes"]["numpy"] == metadata.version("numpy")
    assert info["runtimes"]["ai_edge_litert"] == metadata.version("ai-edge-litert")
    assert info["runtimes"]["tensorrt"] is None
    assert info["can_run"]["litert"] and info["can_run"]["onnxruntime"]
    assert not info["can_run"]["tensorrt"]
    assert info["facts"]["python_executable"] == str(device_python)
    assert info["problems"] == []
    assert _leftovers(tmp_path) == []
    from rich.console import Console

    from edgekit.terminal import check_table

    console = Console(record=True, width=200)
    console.print(check_table(info))
    text = console.export_text()
    assert str(device_python) in text and "can run litert" in text


# ------------------------------------------------------------------ bad input


def _fails(target, jobs, noisy) -> DeviceError:
    with pytest.raises(DeviceError) as e:
        executor_for(target).measure(
            jobs, noisy, threads=1, delegate="xnnpack", warmup=0, repeats=1
        )
    msg = str(e.value)
    assert "\n" not in msg
    assert f"ssh:{HOST_ALIAS}" in msg
    return e.value


def test_wrong_port_is_refused(sshd, artifacts, images, tmp_path):
    port = _free_port()
    err = _fails(
        _target(sshd, tmp_path, "python3", port=port), _jobs(artifacts, "tiny.tflite"), images[1]
    )
    assert err.kind == "refused"
    assert f"port {port}" in str(err) and "connection.port" in str(err)


def test_unauthorised_key_is_an_auth_error(sshd, artifacts, images, tmp_path):
    cfg = sshd.ssh_config("wrongkey", key=sshd.other_key)
    err = _fails(
        _target(sshd, tmp_path, "python3", config=cfg), _jobs(artifacts, "tiny.tflite"), images[1]
    )
    assert err.kind == "auth"
    assert "ssh-copy-id" in str(err) and "identity_file" in str(err)


def test_unknown_host_key_is_never_accepted_silently(sshd, artifacts, images, tmp_path):
    cfg = sshd.ssh_config("nohostkey", known_hosts=sshd.root / "empty_known_hosts")
    err = _fails(
        _target(sshd, tmp_path, "python3", config=cfg), _jobs(artifacts, "tiny.tflite"), images[1]
    )
    assert err.kind == "host-key"
    assert "ssh-keyscan" in str(err)
    assert (sshd.root / "empty_known_hosts").read_text() == ""


def test_missing_python(sshd, artifacts, images, tmp_path):
    err = _fails(
        _target(sshd, tmp_path, "/nonexistent/bin/python3"),
        _jobs(artifacts, "tiny.tflite"),
        images[1],
    )
    assert err.kind == "python-missing"
    assert "connection.python" in str(err)
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_device_python_without_numpy(sshd, bare_python, artifacts, images, tmp_path):
    err = _fails(_target(sshd, tmp_path, bare_python), _jobs(artifacts, "tiny.tflite"), images[1])
    assert err.kind == "numpy-missing"
    assert f"{bare_python} -m pip install numpy" in str(err)
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_device_without_the_runtime(sshd, numpy_only_python, artifacts, images, tmp_path):
    err = _fails(
        _target(sshd, tmp_path, numpy_only_python), _jobs(artifacts, "tiny.onnx"), images[1]
    )
    assert err.kind == "runtime-missing"
    assert "onnxruntime" in str(err) and "pip install" in str(err)
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_artifact_the_device_cannot_load(sshd, device_python, artifacts, images, tmp_path):
    err = _fails(
        _target(sshd, tmp_path, device_python), _jobs(artifacts, "broken.tflite"), images[1]
    )
    assert err.kind == "artifact-load"
    assert "broken.tflite" in str(err) and "upgrade" in str(err)
    assert f"ai_edge_litert {metadata.version('ai-edge-litert')}" in str(err)
    assert _leftovers(tmp_path) == []


def test_hostile_file_names_never_reach_the_remote_shell(
    sshd, device_python, artifacts, images, tmp_path
):
    """A local artifact named like a shell command is staged under edgekit's own name."""
    evil = tmp_path / "x; touch PWNED; $(touch PWNED2).tflite"
    shutil.copyfile(artifacts / "tiny.tflite", evil)
    target = _target(sshd, tmp_path, device_python)
    res = executor_for(target).measure(
        [{"id": "evil", "path": str(evil), "manifest": {}}],
        images[1],
        threads=1,
        delegate="xnnpack",
        warmup=0,
        repeats=1,
    )
    assert res["results"]["evil"]["path"] == str(evil)
    assert not list(Path.home().glob("PWNED*")) and not list(tmp_path.glob("**/PWNED*"))
    assert json.dumps(res["device"])  # plain JSON facts


# ------------------------------------------------------------------ Jetson: engine built on the device

FIX = Path(__file__).parent / "fixtures" / "devices"


def _jetson_onnx(artifacts: Path, tmp_path: Path, payload: bytes | None = None) -> Path:
    d = tmp_path / "build"
    d.mkdir()
    onnx = d / "tiny.onnx"
    onnx.write_bytes(payload or (artifacts / "tiny.onnx").read_bytes())
    record = {  # what edgekit.export.tensorrt writes for `build_on: device`
        "precision": "fp16",
        "strongly_typed": True,
        "dynamic_shapes": False,
        "workspace_mb": 256,
        "engine": "tiny.fp16.engine",
        "profile": {
            "input": "input",
            "min": [1, 32, 32, 3],
            "opt": [1, 32, 32, 3],
            "max": [1, 32, 32, 3],
        },
    }
    (d / "tiny.onnx.json").write_text(json.dumps({"format": "onnx", "tensorrt_build": record}))
    return onnx


@pytest.mark.slow
def test_stand_in_trtexec_engine_is_built_on_the_device_and_kept_with_a_build_record(
    sshd, device_python, artifacts, tmp_path
):
    """Real ssh, STAND-IN trtexec (tests/fixtures/devices/trtexec replays TensorRT 10.3 output)."""
    from edgekit.devices.trtexec import build_engine_on_device

    onnx = _jetson_onnx(artifacts, tmp_path)
    target = _target(
        sshd, tmp_path, device_python, runtime="tensorrt", trtexec=str(FIX / "trtexec")
    )
    rec = build_engine_on_device(executor_for(target), onnx, iterations=50)
    engine = onnx.with_name("tiny.fp16.engine")
    assert engine.read_bytes().startswith(b"stand-in engine for")  # came back from the device
    on_disk = json.loads(engine.with_name("tiny.fp16.engine.json").read_text())
    assert on_disk == rec
    assert rec["tensorrt_version"] == "10.3.0" and rec["built_on"] == f"ssh:{HOST_ALIAS} (stand-in)"
    assert rec["measured_on"] == f"ssh:{HOST_ALIAS} (stand-in)"  # replayed numbers, labelled so
    assert rec["builder"] == "trtexec" and "--stronglyTyped" in rec["build_command"]
    assert (
        "--saveEngine=model.engine" in rec["build_command"]
        and "--iterations=50" in rec["build_command"]
    )
    assert rec["trtexec"]["latency_ms"]["p99"] == pytest.approx(5.61719)
    assert rec["trtexec"]["gpu_compute_ms"]["p50"] == pytest.approx(4.43555)
    assert rec["compute_capability"] == "8.7"
    assert onnx.with_name(f"timing.{HOST_ALIAS}.cache").is_file()  # reused by the next build
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_stand_in_trtexec_build_failure_leaves_no_engine(sshd, device_python, tmp_path):
    from edgekit.devices.trtexec import build_engine_on_device

    onnx = _jetson_onnx(Path("."), tmp_path, payload=b"REJECT this graph")
    target = _target(
        sshd, tmp_path, device_python, runtime="tensorrt", trtexec=str(FIX / "trtexec")
    )
    with pytest.raises(DeviceError) as e:
        build_engine_on_device(executor_for(target), onnx)
    assert (
        e.value.kind == "engine-build"
        and "tiny.onnx" in str(e.value)
        and f"ssh:{HOST_ALIAS}" in str(e.value)
    )
    assert "\n" not in str(e.value)
    assert not list(onnx.parent.glob("*.engine*"))
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_stand_in_trtexec_target_without_device_trt_python(
    sshd, device_python, artifacts, images, tmp_path
):
    """bench on a TensorRT target builds the engine first; a device Python without `tensorrt`
    then gets a clear error, and the built engine is kept."""
    onnx = _jetson_onnx(artifacts, tmp_path)
    target = _target(
        sshd, tmp_path, device_python, runtime="tensorrt", trtexec=str(FIX / "trtexec")
    )
    seen = []
    with pytest.raises(DeviceError) as e:
        executor_for(target).measure(
            [{"id": "e", "path": str(onnx), "manifest": {}}],
            images[1],
            threads=1,
            delegate="none",
            warmup=0,
            repeats=1,
            progress=lambda stage, done, total: seen.append(stage),
        )
    assert e.value.kind == "runtime-missing" and "python3-libnvinfer" in str(e.value)
    assert onnx.with_name("tiny.fp16.engine").is_file()
    assert any("building a TensorRT engine from tiny.onnx" in s for s in seen)
    assert _leftovers(tmp_path) == []


def test_no_trtexec_and_no_tensorrt_module(sshd, device_python, artifacts, tmp_path):
    from edgekit.devices.trtexec import build_engine_on_device

    onnx = _jetson_onnx(artifacts, tmp_path)
    target = _target(
        sshd, tmp_path, device_python, runtime="tensorrt", trtexec="/nonexistent/trtexec"
    )
    with pytest.raises(DeviceError, match="nvidia-jetpack") as e:
        build_engine_on_device(executor_for(target), onnx)
    assert e.value.kind == "runtime-missing"
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_bench_report_over_ssh(sshd, device_python, artifacts, tmp_path):
    """The whole harness (tiling, scoring, report) with the measurement on the ssh device."""
    from PIL import Image

    from edgekit.bench.harness import bench

    imgs = tmp_path / "images"
    imgs.mkdir()
    rng = np.random.default_rng(2)
    for i in range(2):
        yy, xx = np.mgrid[0:48, 0:40]
        base = (
            (np.sin(xx / (4 + i)) + np.cos(yy / 5))[..., None] * 60
            + 128
            + rng.normal(0, 3, (48, 40, 3))
        )
        Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(imgs / f"im{i}.png")
    arts = [artifacts / "tiny.tflite", artifacts / "tiny.onnx"]
    target = _target(sshd, tmp_path, device_python)
    remote = bench(
        arts,
        target=target,
        images_dir=imgs,
        degradation="noise:sigma=25",
        out_dir=tmp_path / "r1",
        progress=False,
    )
    local_target = target_from_dict(
        {**target.model_dump(exclude={"source"}), "connection": {"kind": "local"}}
    )
    local = bench(
        arts,
        target=local_target,
        images_dir=imgs,
        degradation="noise:sigma=25",
        out_dir=tmp_path / "r2",
        progress=False,
    )
    rows_r = {a["path"]: a for a in remote["artifacts"]}
    rows_l = {a["path"]: a for a in local["artifacts"]}
    for path, row in rows_r.items():
        assert row["measured_on"] == f"ssh:{HOST_ALIAS}"
        assert rows_l[path]["measured_on"].startswith("host-cpu")
        assert row["psnr_db"] == rows_l[path]["psnr_db"]  # same function computed on the device
        assert row["latency_ms"]["p50"] > 0 and row["peak_rss_mb"] > 0
    assert _leftovers(tmp_path) == []


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs as the device's work dir (needs root to mount; skipped otherwise)."""
    d = tmp_path / "remote-work"
    d.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs to fill the disk needs root")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(d)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    yield d
    subprocess.run(["umount", str(d)], capture_output=True)


def test_full_disk_on_the_device(sshd, device_python, artifacts, tiny_disk, tmp_path):
    big = np.zeros((4, 128, 128, 3), np.float32)  # 786 KB of inputs > 256 KiB free
    err = _fails(_target(sshd, tmp_path, device_python), _jobs(artifacts, "tiny.tflite"), big)
    assert err.kind == "disk-full"
    assert "connection.workdir" in str(err) and "free" in str(err)
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_stand_in_tensorrt_module_builds_the_engine_when_trtexec_is_absent(
    sshd, device_python, artifacts, tmp_path
):
    """No trtexec on the device: the runner .pyz builds with the device's `tensorrt` module (a
    STAND-IN module here, tests/fixtures/devices/fake_tensorrt, that records the builder calls)."""
    from edgekit.devices.trtexec import build_engine_on_device

    wrapper = tmp_path / "python-with-tensorrt"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={FIX / "fake_tensorrt"} exec {device_python} "$@"\n')
    wrapper.chmod(0o755)
    onnx = _jetson_onnx(artifacts, tmp_path)
    record = json.loads(onnx.with_name("tiny.onnx.json").read_text())["tensorrt_build"]
    record.update(dynamic_shapes=True, profile={**record["profile"], "max": [1, 64, 64, 3]})
    target = _target(sshd, tmp_path, wrapper, runtime="tensorrt", trtexec="/nonexistent/trtexec")
    rec = build_engine_on_device(executor_for(target), onnx, record=record)
    assert rec["builder"] == "tensorrt-python" and rec["tensorrt_version"] == "10.3.0"
    assert rec["built_on"] == rec["measured_on"] == f"ssh:{HOST_ALIAS} (stand-in)"
    calls = json.loads(onnx.with_name("tiny.fp16.engine").read_bytes())["calls"]
    assert ["network_flags", 2] in calls  # 1 << STRONGLY_TYPED
    assert ["workspace", 256 << 20] in calls
    assert ["set_shape", "input", [1, 32, 32, 3], [1, 32, 32, 3], [1, 64, 64, 3]] in calls
    assert not any(c[0] == "flag" for c in calls)  # strongly typed: precision from the graph
    assert _leftovers(tmp_path) == []

    onnx.write_bytes(b"REJECT")
    with pytest.raises(DeviceError, match="importDepthToSpace") as e:
        build_engine_on_device(executor_for(target), onnx, record=record, out=tmp_path / "x.engine")
    assert e.value.kind == "engine-build" and not (tmp_path / "x.engine").exists()
    assert _leftovers(tmp_path) == []


def test_device_without_sftp_server_falls_back_to_legacy_scp(
    device_python, artifacts, images, tmp_path
):
    """Boards with a minimal ssh server (no SFTP subsystem) still work: scp retries with -O."""
    root = tmp_path / "sshd-nosftp"
    root.mkdir()
    server = Sshd(root, sftp=False)
    try:
        target = _target(server, tmp_path, device_python)
        res = executor_for(target).measure(
            _jobs(artifacts, "tiny.tflite"),
            images[1],
            threads=1,
            delegate="xnnpack",
            warmup=0,
            repeats=1,
        )
        assert res["outputs"]["tiny.tflite"].shape == images[1].shape
        assert _leftovers(tmp_path) == []
    finally:
        server.stop()


def test_device_side_timeout_is_reported_and_cleaned_up(
    sshd, device_python, artifacts, images, tmp_path
):
    target = _target(sshd, tmp_path, device_python, timeout_s=3)
    with pytest.raises(DeviceError) as e:
        executor_for(target).measure(
            _jobs(artifacts, "tiny.tflite"),
            images[1],
            threads=1,
            delegate="xnnpack",
            warmup=0,
            repeats=10_000_000,
        )
    assert e.value.kind == "timeout" and "connection.timeout_s" in str(e.value)
    assert f"ssh:{HOST_ALIAS}" in str(e.value)
    assert _leftovers(tmp_path) == []
