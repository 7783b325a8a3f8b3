"""Executors: where edgekit.runtimes.measure runs. The bench harness calls one method,

    executor.measure(jobs, inputs, threads=, delegate=, warmup=, repeats=, memory=) -> dict

and gets measure()'s dict back ({"schema", "device", "settings", "results", "outputs"}) plus
`measured_on`: the host label for LocalExecutor, "ssh:<host>" / "adb:<serial>" for devices, with
the device's own facts in `device`.
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

from ..config import AdbConnection, LocalConnection, SshConnection, Target, host_label
from . import DeviceError
from .package import RUNNER_NAME, build_runner
from .ssh import SshClient, _last_line, remote_path

ERROR_MARK = "EDGEKIT_DEVICE_ERROR "

# runtime Python module -> what to pip install on the device
_INSTALL = {
    "ai_edge_litert": "ai-edge-litert",
    "tflite_runtime": "tflite-runtime",
    "onnxruntime": "onnxruntime",
    "tensorrt": "tensorrt (on a Jetson: JetPack's python3-libnvinfer, `sudo apt install nvidia-jetpack`)",
}
_PIP = {
    "ai_edge_litert": "ai-edge-litert",
    "tflite_runtime": "tflite-runtime",
    "onnxruntime": "onnxruntime",
    "tensorrt": "tensorrt",
}


class Executor:
    """Runs measure() somewhere. `label` is what `measured_on` says."""

    label = "host"

    def measure(
        self,
        jobs: list[dict],
        inputs: np.ndarray,
        *,
        threads: int,
        delegate: str,
        warmup: int,
        repeats: int,
        memory: bool = False,
    ) -> dict:
        raise NotImplementedError

    def probe(self) -> dict:
        raise NotImplementedError


class LocalExecutor(Executor):
    """In this process, on this machine; numbers are host numbers."""

    def __init__(self, target: Target | None = None):
        self.target = target
        self.label = host_label()

    def measure(self, jobs, inputs, *, threads, delegate, warmup, repeats, memory=False) -> dict:
        from ..runtimes.measure import measure, peak_rss_mb

        res = measure(
            jobs, inputs, threads=threads, delegate=delegate, warmup=warmup, repeats=repeats
        )
        if memory:
            for j in jobs:
                res["results"][j["id"]]["memory"] = peak_rss_mb(
                    j["path"], threads, delegate, inputs.shape[1:], manifest=j.get("manifest")
                )
        res["measured_on"] = self.label
        return res

    def probe(self) -> dict:
        import sys

        from . import facts

        out = facts.probe()
        out["python_executable"] = sys.executable
        out["python_ok"] = sys.version_info >= (3, 10)
        return out


def _stage(src: Path, dest: Path) -> None:
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


class SshExecutor(Executor):
    """A Linux board or Jetson over ssh: the runner .pyz + artifacts + inputs go to a fresh
    mktemp dir, the device's Python measures, the JSON/npz come back, the dir is removed."""

    def __init__(
        self, conn: SshConnection, target: Target | None = None, *, client: SshClient | None = None
    ):
        self.conn = conn
        self.target = target
        self.client = client or SshClient(conn)
        self.label = self.client.label

    # -- one remote session ---------------------------------------------------------------
    @contextlib.contextmanager
    def session(self):
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
                f"{w}: the device has no usable Python '{py}' ({_last_line(res.stderr)}); install "
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
            f"{w}: {what} failed on the device (exit {res.rc}): {_last_line(res.stderr)}", "remote"
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
    def measure(self, jobs, inputs, *, threads, delegate, warmup, repeats, memory=False) -> dict:
        from rich.console import Console

        console = Console(stderr=True)
        inputs = np.ascontiguousarray(inputs, dtype=np.float32)
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
                _stage(src, up / name)
                remote_jobs.append({**job, "path": name})
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
                "memory": bool(memory),
            }
            (up / "job.json").write_text(json.dumps(spec))
            files = sorted(up.iterdir())
            size_mb = sum(f.stat().st_size for f in files) / 1e6
            with (
                console.status(f"[bold]{self.label}[/]: preparing a work dir") as status,
                self.session() as wd,
            ):
                status.update(
                    f"[bold]{self.label}[/]: copying {len(files)} files ({size_mb:.1f} MB)"
                )
                self.client.put(files, wd, timeout=self.conn.timeout_s)
                status.update(
                    f"[bold]{self.label}[/]: measuring {len(jobs)} artifact(s) on the device "
                    f"({warmup} warm-up + {repeats} timed runs each, {inputs.shape[0]} images)"
                )
                cmd = self.python_command(
                    wd, ["measure", "job.json", "out.json"], self.conn.timeout_s
                )
                res = self.client.run(
                    cmd, timeout=self.conn.timeout_s + 30, what="measuring", check=False
                )
                if res.rc != 0:
                    raise self.device_failure(res, "measuring")
                status.update(f"[bold]{self.label}[/]: fetching results")
                self.client.get(
                    [f"{wd}/out.json", f"{wd}/out.npz"], down, timeout=self.conn.timeout_s
                )
            result = json.loads((down / "out.json").read_text())
            with np.load(down / "out.npz") as z:
                result["outputs"] = {k: np.array(z[k]) for k in z.files}
        for jid, path in local_paths.items():
            result["results"][jid]["device_path"] = result["results"][jid].get("path")
            result["results"][jid]["path"] = path
        result.pop("outputs_file", None)
        result["measured_on"] = self.label
        result["device"]["measured_on"] = self.label
        return result

    # -- probe ----------------------------------------------------------------------------
    def probe(self) -> dict:
        with tempfile.TemporaryDirectory(prefix="edgekit-ssh-") as tmp:
            runner = build_runner(Path(tmp) / RUNNER_NAME)
            with self.session() as wd:
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
                f"{self.client.where}: the probe printed no facts ({_last_line(res.stderr)})",
                "remote",
            )
        return json.loads(lines[-1])


def executor_for(target: Target) -> Executor:
    conn = target.connection
    if isinstance(conn, LocalConnection):
        return LocalExecutor(target)
    if isinstance(conn, SshConnection):
        return SshExecutor(conn, target)
    if isinstance(conn, AdbConnection):
        from .adb import AdbExecutor

        return AdbExecutor(conn, target)
    raise DeviceError(f"target '{target.name}': unknown connection kind {conn.kind!r}", "config")


def check_target(target: Target) -> dict:
    """Connect and list what the device has. {"target", "measured_on", "reachable", "facts",
    "runtimes": {name: version|None}, "tools": {...}, "can_run": {runtime: bool}, "problems": [...]}"""
    ex = executor_for(target)
    facts = ex.probe()
    mods = facts.get("modules", {})
    tools = facts.get("tools", {})
    problems = []
    if not facts.get("python_ok", True):
        problems.append(f"Python {facts.get('python')} is older than 3.10")
    if not mods.get("numpy") and target.connection.kind != "adb":
        problems.append("numpy is missing")
    can = {
        "litert": bool(mods.get("ai_edge_litert") or mods.get("tflite_runtime")),
        "onnxruntime": bool(mods.get("onnxruntime")),
        "tensorrt": bool(mods.get("tensorrt") or tools.get("trtexec")),
    }
    if target.connection.kind == "adb":
        can["litert"] = bool(tools.get("benchmark_model"))
    if not can.get(target.runtime):
        problems.append(f"the target's runtime '{target.runtime}' is not available on the device")
    return {
        "target": target.name,
        "measured_on": ex.label,
        "reachable": True,
        "facts": {k: v for k, v in facts.items() if k not in ("modules", "tools")},
        "runtimes": mods,
        "tools": tools,
        "can_run": can,
        "problems": problems,
    }
