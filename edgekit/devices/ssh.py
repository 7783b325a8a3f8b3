"""The ssh executor: a Linux board or Jetson over the system OpenSSH client.

The runner .pyz, the artifacts and the inputs go to a fresh mktemp dir on the device, the
device's Python measures (edgekit.runtimes.measure), the JSON/npz come back, the dir is removed.
TensorRT targets build each ONNX job's engine on the device first (edgekit.devices.trtexec).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..config import Target
from ..runtimes.manifest import read_manifest
from .base import DeviceError, Executor, last_line, register_executor
from .package import RUNNER_NAME, build_runner
from .progress import stages
from .ssh_client import SshClient, remote_path

ERROR_MARK = "EDGEKIT_DEVICE_ERROR "
PROGRESS_MARK = "EDGEKIT_PROGRESS "

# runtime Python module -> what to pip install on the device
_INSTALL = {
    "ai_edge_litert": "ai-edge-litert",
    "tflite_runtime": "tflite-runtime",
    "onnxruntime": "onnxruntime",
    "tensorrt": "tensorrt (on a Jetson: JetPack's python3-libnvinfer, `sudo apt install nvidia-jetpack`)",
    "tensorrt_rtx": "tensorrt-rtx",
}
_PIP = {
    "ai_edge_litert": "ai-edge-litert",
    "tflite_runtime": "tflite-runtime",
    "onnxruntime": "onnxruntime",
    "tensorrt": "tensorrt",
    "tensorrt_rtx": "tensorrt-rtx",
}


def _link_or_copy(src: Path, dest: Path) -> None:
    """Put `src` at `dest` without copying big files when a hard link works."""
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def _host_versions() -> dict:
    from importlib import metadata

    out = {}
    for dist in ("ai-edge-litert", "onnxruntime", "numpy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


@register_executor
class SshExecutor(Executor):
    """A Linux board or Jetson over ssh (connection: {kind: ssh, host: ...})."""

    kind = "ssh"

    def __init__(self, target: Target, *, client: SshClient | None = None):
        super().__init__(target)
        self.conn = target.connection
        self.client = client or SshClient(self.conn)
        self.label = self.client.label
        self._builds: dict[str, dict] = {}  # job id -> engine build record (TensorRT targets)
        self._alias: dict[str, str] = {}  # ONNX path -> engine path built from it

    # -- what other device tools (edgekit.devices.trtexec) use --------------------------------
    @property
    def where(self) -> str:
        """'device ssh:<host> (...)' for messages."""
        return self.client.where

    @property
    def host(self) -> str:
        return self.conn.host

    @property
    def timeout_s(self) -> int:
        return self.conn.timeout_s

    def put(self, files: list[Path], wd: str) -> None:
        self.client.put(files, wd, timeout=self.conn.timeout_s)

    def get(self, remote_files: list[str], local_dir: Path) -> None:
        self.client.get(remote_files, local_dir, timeout=self.conn.timeout_s)

    def run(self, command: str, *, what: str):
        """Run a shell command on the device (no check: the caller reads rc)."""
        return self.client.run(command, timeout=self.conn.timeout_s + 30, what=what, check=False)

    @contextlib.contextmanager
    def workdir(self):
        """A fresh remote work dir that is always removed afterwards."""
        wd = self.client.make_workdir(timeout=self.conn.connect_timeout_s + 60)
        try:
            yield wd
        finally:
            self.client.remove_dir(wd, timeout=self.conn.connect_timeout_s + 60)

    def python_command(self, wd: str, args: list[str], timeout_s: int) -> str:
        """`cd WD && [timeout] PY edgekit-runner.pyz ARGS` for the remote POSIX shell."""
        py = (
            remote_path(self.conn.python)
            if self.conn.python.startswith("~/")
            else shlex.quote(self.conn.python)
        )
        tail = " ".join([py, RUNNER_NAME, *map(shlex.quote, args)])
        return (
            f"cd -- {shlex.quote(wd)} && if command -v timeout >/dev/null 2>&1; "
            f"then exec timeout -k 10 {int(timeout_s)} {tail}; else exec {tail}; fi"
        )

    def device_failure(self, res, what: str) -> DeviceError:
        """Turn a failed runner invocation into one line naming the device and the remedy."""
        w = self.client.where
        py = self.conn.python
        for line in res.stderr.splitlines():
            if line.startswith(ERROR_MARK):
                try:
                    info = json.loads(line[len(ERROR_MARK) :])
                except ValueError:
                    break
                return self._explain(info)
        if res.rc == 127 or res.rc == 126:
            return DeviceError(
                f"{w}: the device has no usable Python '{py}' ({last_line(res.stderr)}); install "
                "python3 (3.10 or newer) on the device or set connection.python to its full path",
                "python-missing",
            )
        if res.rc == 124:
            return DeviceError(
                f"{w}: {what} was stopped after connection.timeout_s = {self.conn.timeout_s} s; use "
                "fewer repeats/images or raise connection.timeout_s in the target",
                "timeout",
            )
        err = self.client.classify(res.stderr, what, rc=res.rc)
        if err.kind != "remote":
            return err
        return DeviceError(
            f"{w}: {what} failed on the device (exit {res.rc}): {last_line(res.stderr)}", "remote"
        )

    def _explain(self, info: dict) -> DeviceError:
        w, py, kind, msg = (
            self.client.where,
            self.conn.python,
            info.get("kind", "remote"),
            info.get("message", ""),
        )
        if kind == "python-too-old":
            text = (
                f"{w}: {msg}; install Python 3.10+ on the device (e.g. a venv or conda) and set "
                "connection.python to it"
            )
        elif kind == "numpy-missing":
            text = (
                f"{w}: the device's Python ({info.get('executable', py)}) has no numpy; install it "
                f"there with `{py} -m pip install numpy`, or set connection.python to a Python that has it"
            )
        elif kind == "runtime-missing":
            mods = info.get("modules", [])
            pkgs = " or ".join(_INSTALL.get(m, m) for m in mods)
            text = (
                f"{w}: the device's Python ({info.get('executable', py)}) has no runtime for "
                f"{info.get('suffix', 'these')} artifacts (none of {', '.join(mods)} imports); install "
                f"{pkgs} on the device (e.g. `{py} -m pip install {_PIP.get(mods[0], mods[0]) if mods else '<runtime>'}`)"
            )
        elif kind == "artifact-load":
            dev = (
                ", ".join(f"{k} {v}" for k, v in (info.get("versions") or {}).items())
                or "its runtime"
            )
            host = ", ".join(f"{k} {v}" for k, v in _host_versions().items() if k != "numpy")
            text = (
                f"{w}: the device's {dev} cannot load artifact '{info.get('artifact')}' ({msg}); "
                f"the runtime there is probably older than the one the artifact was made for (host: "
                f"{host}): upgrade it on the device (`{py} -m pip install -U <runtime>`) or export "
                "for the older runtime (e.g. a lower ONNX opset)"
            )
        elif kind == "disk-full":
            text = (
                f"{w}: {msg}; free space under {self.conn.workdir} or point connection.workdir at a "
                "filesystem with room"
            )
        else:
            text = f"{w}: {msg}"
        return DeviceError(text, kind)

    # -- measure --------------------------------------------------------------------------
    def _engines_first(self, jobs: list[dict], stage, warmup: int, repeats: int) -> list[dict]:
        """TensorRT targets: build each .onnx job's engine on the device (kept next to the ONNX
        with its build record), then measure the engine instead of the ONNX."""
        from .trtexec import build_engine_on_device

        if self.target is None or self.target.runtime != "tensorrt":
            return jobs
        out = []
        for job in jobs:
            if Path(job["path"]).suffix.lower() != ".onnx":
                out.append(job)
                continue
            stage(f"building the TensorRT engine for {Path(job['path']).name} on the device")
            rec = build_engine_on_device(
                self, job["path"], warmup_ms=200, iterations=max(int(repeats), 10), stage=stage
            )
            self._builds[job["id"]] = rec
            engine = str(Path(job["path"]).with_name(rec["engine"]))
            self._alias[str(job["path"])] = engine
            # the engine's manifest is its build record (module, layout, profile, versions),
            # which the device's TensorRT runner reads; the ONNX manifest supplies the rest
            onnx_manifest = job.get("manifest") or (read_manifest(job["path"]) or {})
            out.append({**job, "path": engine, "manifest": {**onnx_manifest, **rec}})
        if any(j["path"].endswith(".engine") for j in out) and not (
            self.facts().get("modules") or {}
        ).get("tensorrt"):
            raise DeviceError(
                f"{self.client.where}: the engine was built and kept (trtexec timings are in its build record), "
                "but the device's Python has no `tensorrt` module to run it on edgekit's images; install "
                "JetPack's python3-libnvinfer (`sudo apt install nvidia-jetpack`) or set connection.python "
                "to a Python that can import tensorrt",
                "runtime-missing",
            )
        return out

    def measure(self, jobs, inputs, *, threads, delegate, warmup, repeats, progress=None) -> dict:
        inputs = np.ascontiguousarray(inputs, dtype=np.float32)
        self._builds = {}
        with stages(self.label, progress) as stage:
            jobs = self._engines_first(list(jobs), stage, warmup, repeats)
            result = self._measure(
                jobs,
                inputs,
                stage,
                threads=threads,
                delegate=delegate,
                warmup=warmup,
                repeats=repeats,
            )
        for jid, rec in self._builds.items():
            result["results"][jid]["tensorrt_build"] = rec
        return result

    def _measure(self, jobs, inputs, stage, *, threads, delegate, warmup, repeats) -> dict:
        with tempfile.TemporaryDirectory(prefix="edgekit-ssh-") as tmp:
            up, down = Path(tmp) / "up", Path(tmp) / "down"
            up.mkdir()
            down.mkdir()
            remote_jobs, local_paths = [], {}
            for k, job in enumerate(jobs):
                src = Path(job["path"])
                if not src.is_file():
                    raise DeviceError(f"{src}: artifact file not found; export it first", "config")
                name = f"a{k}{src.suffix.lower()}"
                _link_or_copy(src, up / name)
                # the manifest travels inside the job (its file is not copied beside the artifact)
                manifest = job.get("manifest") or read_manifest(src) or {}
                remote_jobs.append({**job, "path": name, "manifest": manifest})
                local_paths[job["id"]] = str(job["path"])
            build_runner(up / RUNNER_NAME)
            np.save(up / "inputs.npy", inputs)
            spec = {
                "jobs": remote_jobs,
                "inputs": "inputs.npy",
                "threads": int(threads),
                "delegate": delegate,
                "warmup": int(warmup),
                "repeats": int(repeats),
                "memory": True,  # a fresh device process per artifact; served by peak_rss()
            }
            (up / "job.json").write_text(json.dumps(spec))
            files = sorted(up.iterdir())
            size_mb = sum(f.stat().st_size for f in files) / 1e6
            stage("preparing a work dir", 0, 4)
            with self.workdir() as wd:
                stage(f"copying {len(files)} files ({size_mb:.1f} MB)", 1, 4)
                self.client.put(files, wd, timeout=self.conn.timeout_s)
                stage(
                    f"measuring {len(jobs)} artifact(s) on the device ({warmup} warm-up + "
                    f"{repeats} timed runs each, {inputs.shape[0]} tiles)",
                    2,
                    4,
                )
                cmd = self.python_command(
                    wd, ["measure", "job.json", "out.json"], self.conn.timeout_s
                )

                def on_line(line: str) -> bool:
                    if not line.startswith(PROGRESS_MARK):
                        return False
                    with contextlib.suppress(ValueError, TypeError):
                        name, done, total = json.loads(line[len(PROGRESS_MARK) :])
                        stage(f"on the device: {name}", int(done), int(total))
                    return True

                res = self.client.stream(
                    cmd, timeout=self.conn.timeout_s + 30, what="measuring", on_line=on_line
                )
                if res.rc != 0:
                    raise self.device_failure(res, "measuring")
                stage("fetching results", 3, 4)
                self.client.get(
                    [f"{wd}/out.json", f"{wd}/out.npz"], down, timeout=self.conn.timeout_s
                )
            stage("done", 4, 4)
            result = json.loads((down / "out.json").read_text())
            with np.load(down / "out.npz") as z:
                result["outputs"] = {k: np.array(z[k]) for k in z.files}
        for jid, path in local_paths.items():
            r = result["results"][jid]
            r["device_path"] = r.get("path")
            r["path"] = path
            if "memory" in r:
                self._memory[path] = r["memory"]
        result.pop("outputs_file", None)
        result["measured_on"] = self.label
        result["device"]["measured_on"] = self.label
        return result

    def peak_rss(self, path, *, threads, delegate, input_shape, manifest=None) -> dict:
        path = self._alias.get(str(path), str(path))  # an ONNX measured as its device-built engine
        return super().peak_rss(path, threads=threads, delegate=delegate, input_shape=input_shape)

    # -- probe ----------------------------------------------------------------------------
    def probe(self) -> dict:
        with tempfile.TemporaryDirectory(prefix="edgekit-ssh-") as tmp:
            runner = build_runner(Path(tmp) / RUNNER_NAME)
            with self.workdir() as wd:
                self.client.put([runner], wd, timeout=self.conn.timeout_s)
                args = ["probe"] + (["--trtexec", self.conn.trtexec] if self.conn.trtexec else [])
                res = self.client.run(
                    self.python_command(wd, args, 120), timeout=150, what="probing", check=False
                )
                if res.rc != 0:
                    raise self.device_failure(res, "probing the device")
        lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
        if not lines:
            raise DeviceError(
                f"{self.client.where}: the probe printed no facts ({last_line(res.stderr)})",
                "remote",
            )
        return json.loads(lines[-1])
