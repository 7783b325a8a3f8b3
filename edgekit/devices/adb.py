"""Android phones over adb: TFLite's `benchmark_model` measures the .tflite on the phone.

Flow per run: `adb -s SERIAL shell mktemp -d` under connection.remote_dir, `adb push` the
benchmark_model binary (host path: connection.benchmark_model) and each .tflite under fixed names,
`adb shell` benchmark_model with the target's threads and delegate (XNNPACK / GPU / NNAPI),
parse its output (edgekit.devices.benchmark_model), `rm -rf` the dir (always, in finally).

benchmark_model feeds random inputs and returns no outputs, so the artifact's quality (PSNR/SSIM)
is measured on this host with the same file and labelled `outputs_measured_on: host-cpu (...)`;
the timings and memory are the phone's and labelled `adb:<serial>`.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from ..config import host_label
from .base import DeviceError, Executor, Result, last_line, register_executor
from .benchmark_model import BenchmarkModelParseError, benchmark_args, parse_benchmark_model
from .progress import stages

_PROPS = (
    "ro.product.manufacturer",
    "ro.product.model",
    "ro.product.cpu.abi",
    "ro.build.version.release",
    "ro.build.version.sdk",
    "ro.soc.manufacturer",
    "ro.soc.model",
    "ro.board.platform",
    "ro.hardware",
    "edgekit.stand_in",  # set only by the test stand-ins (tests/fixtures/devices); empty on phones
)


class AdbClient:
    """The `adb` tool for one phone (connection.serial), as argument lists."""

    def __init__(self, conn, adb: str | None = None):
        self.conn = conn
        self.adb = adb or os.environ.get("EDGEKIT_ADB", "adb")

    @property
    def label(self) -> str:
        return f"adb:{self.conn.serial or 'device'}"

    @property
    def where(self) -> str:
        return f"device {self.label}"

    def argv(self, *args: str) -> list[str]:
        return [self.adb, *(["-s", self.conn.serial] if self.conn.serial else []), *args]

    def _exec(self, args: list[str], timeout: float, what: str) -> Result:
        try:
            proc = subprocess.run(
                self.argv(*args),
                capture_output=True,
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError:
            raise DeviceError(
                f"{self.where}: '{self.adb}' is not installed on this machine; install Android "
                "platform-tools (Debian/Ubuntu: apt-get install adb) or put adb on PATH",
                "tool-missing",
            ) from None
        except subprocess.TimeoutExpired:
            raise DeviceError(
                f"{self.where}: {what} did not finish within {timeout:.0f} s; check the phone "
                "(screen on, not throttling) or raise connection.timeout_s in the target",
                "timeout",
            ) from None
        res = Result(
            proc.returncode,
            proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"),
        )
        self._check_transport(res, what)
        return res

    def _check_transport(self, res: Result, what: str) -> None:
        text = res.stderr + ("\n" + res.stdout if res.rc != 0 else "")
        s = self.conn.serial
        if "unauthorized" in text:
            raise DeviceError(
                f"{self.where}: the phone has not authorised this computer; unlock it and accept the "
                "'Allow USB debugging' prompt, then retry (`adb devices` should say 'device')",
                "auth",
            )
        if "no devices/emulators found" in text or (s and f"device '{s}' not found" in text):
            raise DeviceError(
                f"{self.where}: no such phone attached; check the USB cable / `adb connect`, that USB "
                "debugging is on, and connection.serial against `adb devices`",
                "unreachable",
            )
        if "more than one device" in text:
            raise DeviceError(
                f"{self.where}: several phones are attached; set connection.serial to one of the "
                "serials `adb devices` lists",
                "config",
            )
        if "device offline" in text:
            raise DeviceError(
                f"{self.where}: the phone is offline; reconnect it (replug USB or `adb reconnect`)",
                "unreachable",
            )
        if "No space left on device" in text:
            raise DeviceError(
                f"{self.where}: the phone's storage is full while {what}; free space under "
                f"{self.conn.remote_dir} or set connection.remote_dir elsewhere",
                "disk-full",
            )

    def shell(self, command: str, *, timeout: float, what: str, check: bool = True) -> Result:
        # `adb shell` (Android 7+) returns the remote command's exit status.
        res = self._exec(["shell", command], timeout, what)
        if check and res.rc != 0:
            raise DeviceError(
                f"{self.where}: {what} failed (exit {res.rc}): {last_line(res.stderr + res.stdout)}",
                "remote",
            )
        return res

    def push(self, local: Path, remote: str, *, timeout: float) -> None:
        res = self._exec(["push", str(local), remote], timeout, f"pushing {local.name}")
        if res.rc != 0:
            raise DeviceError(
                f"{self.where}: pushing {local.name} failed ({last_line(res.stderr + res.stdout)})",
                "remote",
            )

    def make_workdir(self) -> str:
        base = self.conn.remote_dir.rstrip("/") or "/data/local/tmp"
        res = self.shell(
            f"mkdir -p {shlex.quote(base)} && mktemp -d {shlex.quote(base)}/edgekit.XXXXXXXX",
            timeout=60,
            what=f"creating a work dir under {base}",
        )
        path = last_line(res.stdout)
        if (
            not path.startswith("/")
            or "/edgekit." not in path
            or any(c in path for c in " ;&|$`'\"\\")
        ):
            raise DeviceError(
                f"{self.where}: mktemp returned an unexpected path {path!r}", "remote"
            )
        return path

    def remove_dir(self, path: str) -> bool:
        try:
            return (
                self.shell(
                    f"rm -rf {shlex.quote(path)}", timeout=60, what="cleaning up", check=False
                ).rc
                == 0
            )
        except DeviceError:
            return False


@register_executor
class AdbExecutor(Executor):
    """An Android phone over adb (connection: {kind: adb, serial: ..., benchmark_model: ...})."""

    kind = "adb"

    def __init__(self, target, *, client: AdbClient | None = None):
        super().__init__(target)
        self.conn = target.connection
        self.client = client or AdbClient(self.conn)
        self.label = self.client.label
        self.benchmark_model = self.conn.benchmark_model

    def measured_on(self) -> str:
        self.facts()  # the device's facts say whether it is a test stand-in
        return self.label

    def _mark_stand_in(self) -> None:
        if not self.label.endswith(" (stand-in)"):
            self.label = f"{self.client.label} (stand-in)"

    def _binary(self) -> Path:
        if not self.benchmark_model:
            raise DeviceError(
                f"{self.client.where}: no benchmark_model binary given; download TFLite's prebuilt "
                "benchmark_model for the phone's ABI (android_aarch64_benchmark_model) and set "
                "connection.benchmark_model to its path on this machine",
                "config",
            )
        p = Path(os.path.expanduser(self.benchmark_model))
        if not p.is_file():
            raise DeviceError(
                f"{p}: benchmark_model binary not found (connection.benchmark_model of {self.client.where}); "
                "download it for the phone's ABI and fix the path",
                "config",
            )
        return p

    def probe(self) -> dict:
        cmd = "; ".join(f'echo "{p}=$(getprop {p})"' for p in _PROPS)
        cmd += '; echo "kernel=$(uname -r)"; echo "machine=$(uname -m)"'
        cmd += "; grep -m1 -E '^(Hardware|model name)' /proc/cpuinfo"
        res = self.client.shell(cmd, timeout=60, what="reading device facts", check=False)
        props = {}
        for line in res.stdout.splitlines():
            k, sep, v = line.partition("=")
            if sep:
                props[k.strip()] = v.strip()
            elif ":" in line:
                props["cpu_model"] = line.split(":", 1)[1].strip()
        facts = {
            "model": " ".join(
                filter(None, [props.get("ro.product.manufacturer"), props.get("ro.product.model")])
            ),
            "android": props.get("ro.build.version.release"),
            "sdk": props.get("ro.build.version.sdk"),
            "abi": props.get("ro.product.cpu.abi"),
            "soc": " ".join(
                filter(None, [props.get("ro.soc.manufacturer"), props.get("ro.soc.model")])
            )
            or props.get("ro.board.platform")
            or props.get("ro.hardware"),
            "kernel": props.get("kernel"),
            "machine": props.get("machine"),
            "cpu_model": props.get("cpu_model"),
            "stand_in": props.get("edgekit.stand_in") or None,
        }
        if facts["stand_in"]:
            self._mark_stand_in()
        facts["measured_on"] = self.label
        bm = None
        if self.benchmark_model:
            bm = (
                self.benchmark_model
                if Path(os.path.expanduser(self.benchmark_model)).is_file()
                else None
            )
        facts["tools"] = {"benchmark_model": bm}
        facts["modules"] = {}
        return facts

    def measure(self, jobs, inputs, *, threads, delegate, warmup, repeats, progress=None) -> dict:
        for j in jobs:
            if Path(j["path"]).suffix.lower() != ".tflite":
                raise DeviceError(
                    f"{j['path']}: adb targets run .tflite artifacts with benchmark_model; export this "
                    "model with --format tflite for the phone",
                    "config",
                )
            if not Path(j["path"]).is_file():
                raise DeviceError(
                    f"{j['path']}: artifact file not found; export it first", "config"
                )
        binary = self._binary()
        facts = self.facts()
        results = {}
        with stages(self.label, progress) as stage:
            stage("preparing a work dir", 0, len(jobs) + 1)
            wd = self.client.make_workdir()
            try:
                self.client.push(binary, f"{wd}/benchmark_model", timeout=self.conn.timeout_s)
                self.client.shell(
                    f"chmod 755 {shlex.quote(wd)}/benchmark_model", timeout=60, what="chmod"
                )
                for k, job in enumerate(jobs):
                    name = f"a{k}.tflite"
                    stage(f"benchmark_model on {Path(job['path']).name}", k + 1, len(jobs) + 1)
                    self.client.push(Path(job["path"]), f"{wd}/{name}", timeout=self.conn.timeout_s)
                    args = benchmark_args(
                        name, threads=threads, delegate=delegate, warmup=warmup, repeats=repeats
                    )
                    cmd = f"cd {shlex.quote(wd)} && ./benchmark_model {' '.join(map(shlex.quote, args))} 2>&1"
                    res = self.client.shell(
                        cmd, timeout=self.conn.timeout_s, what="benchmark_model", check=False
                    )
                    try:
                        parsed = parse_benchmark_model(res.stdout + res.stderr)
                    except BenchmarkModelParseError as exc:
                        raise DeviceError(
                            f"{self.client.where}: benchmark_model failed on {Path(job['path']).name} "
                            f"(exit {res.rc}): {exc}; check that the binary matches the phone's ABI "
                            f"({facts.get('abi')}) and is as new as the LiteRT the artifact was made with",
                            "artifact-load",
                        ) from None
                    self.client.shell(
                        f"rm -f {shlex.quote(wd)}/{name}", timeout=60, what="cleanup", check=False
                    )
                    if parsed.get("stand_in"):
                        self._mark_stand_in()
                    lat = parsed["latency_ms"]
                    mem = parsed["memory_mb"]
                    results[job["id"]] = {
                        "path": str(job["path"]),
                        "runtime": "litert (TFLite benchmark_model)",
                        "versions": {},
                        "load_ms": parsed["init_ms"],
                        "first_run_ms": parsed["first_inference_ms"],
                        "latency_ms": lat,
                        "delegate_used": _delegate_used(parsed, delegate),
                        "benchmark_model": parsed,
                    }
                    self._memory[str(job["path"])] = {
                        "peak_rss_mb": mem.get("peak_mb", mem.get("peak_overall_mb")),
                        "baseline_rss_mb": None,
                        "delta_rss_mb": mem.get("delta_overall_mb"),
                        "measured_on": self.label,
                    }
            finally:
                self.client.remove_dir(wd)
            stage("done", len(jobs) + 1, len(jobs) + 1)
        # Quality: the same artifact on this host (benchmark_model returns no outputs).
        from ..runtimes.measure import measure as host_measure

        host = host_measure(jobs, inputs, threads=threads, delegate="xnnpack", warmup=0, repeats=1)
        return {
            "schema": host["schema"],
            "device": facts,
            # the phone's settings over the host run's (input shape and count are the same)
            "settings": {
                **{k: v for k, v in host["settings"].items() if k != "order"},
                **{"threads": threads, "delegate": delegate, "warmup": warmup, "repeats": repeats},
                "inputs": "random (benchmark_model)",
            },
            "results": results,
            "outputs": host["outputs"],
            "measured_on": self.label,
            "outputs_measured_on": host_label(),
        }


def _delegate_used(parsed: dict, requested: str) -> str:
    d = parsed.get("delegated")
    if parsed.get("delegate_warnings"):
        return f"{requested} (partly or not applied: {parsed['delegate_warnings'][0]})"
    if d:
        return f"{requested} ({d['nodes']} of {d['of']} nodes delegated to {d['delegate']})"
    return requested
