"""The system OpenSSH client (`ssh`, `scp`) driven with argument lists.

The user's ~/.ssh/config, keys, ssh-agent and ProxyJump all apply, because edgekit only adds the
options the target itself sets (port, user, identity file, an ssh config file) plus
`BatchMode=yes` (never prompt) and `ConnectTimeout`. Host-key checking is never switched off: an
unknown host key is an error that says how to add it. Every remote path is quoted with
shlex.quote; local file names never reach the remote shell (files are staged under fixed names).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

from .base import DeviceError, Result, last_line

# A remote directory edgekit created with mktemp and may pass to scp/rm: no shell metacharacters.
_SAFE_REMOTE = re.compile(r"/[A-Za-z0-9_./+@%=,-]*")
# what scp prints when the device has no SFTP subsystem
_NO_SFTP = (
    "subsystem request failed",
    "Connection closed",
    "sftp-server",
    "Received message too long",
)


def remote_path(path: str) -> str:
    """Quote a remote path for the remote POSIX shell; a leading ~/ becomes "$HOME"/."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


class SshClient:
    """One device reached over ssh. `label` is what reports carry: 'ssh:<host>'."""

    def __init__(self, conn, ssh: str = "ssh", scp: str = "scp"):
        if conn.host.startswith("-") or not conn.host.strip():
            raise DeviceError(
                f"ssh target host '{conn.host}': not a host name; fix connection.host", "config"
            )
        self.conn = conn
        self.ssh = ssh
        self.scp = scp

    # -- naming ---------------------------------------------------------------------------
    @property
    def label(self) -> str:
        return f"ssh:{self.conn.host}"

    @property
    def where(self) -> str:
        c = self.conn
        user = f"{c.user}@" if c.user else ""
        port = f":{c.port}" if c.port else ""
        return f"device ssh:{c.host} ({user}{c.host}{port})"

    def _ssh_hint(self) -> str:
        c = self.conn
        parts = ["ssh"]
        if c.ssh_config:
            parts += ["-F", c.ssh_config]
        if c.port:
            parts += ["-p", str(c.port)]
        if c.identity_file:
            parts += ["-i", c.identity_file]
        parts.append(f"{c.user}@{c.host}" if c.user else c.host)
        return shlex.join(parts)

    # -- option lists ---------------------------------------------------------------------
    def options(self) -> list[str]:
        """Options for both ssh and scp (scp spells the port -P, so `-o Port=` is used)."""
        c = self.conn
        opts: list[str] = []
        if c.ssh_config:
            opts += ["-F", os.path.expanduser(c.ssh_config)]
        opts += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={int(c.connect_timeout_s)}"]
        if c.port:
            opts += ["-o", f"Port={int(c.port)}"]
        if c.user:
            opts += ["-o", f"User={c.user}"]
        if c.identity_file:
            opts += ["-o", f"IdentityFile={os.path.expanduser(c.identity_file)}"]
        return opts

    def _host_spec(self) -> str:
        host = self.conn.host
        return f"[{host}]" if ":" in host and not host.startswith("[") else host

    def ssh_argv(self, command: str) -> list[str]:
        return [self.ssh, *self.options(), "--", self.conn.host, command]

    # -- running --------------------------------------------------------------------------
    def _exec(
        self, argv: list[str], timeout: float, what: str, stdin: bytes | None = None
    ) -> Result:
        try:
            proc = subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                timeout=timeout,
                check=False,
                stdin=None if stdin is not None else subprocess.DEVNULL,
            )
        except FileNotFoundError:
            raise DeviceError(
                f"{self.where}: the OpenSSH client '{argv[0]}' is not installed on this machine; "
                "install it (Debian/Ubuntu: apt-get install openssh-client)",
                "tool-missing",
            ) from None
        except subprocess.TimeoutExpired:
            raise DeviceError(
                f"{self.where}: {what} did not finish within {timeout:.0f} s; check the device "
                "(load, network) or raise connection.timeout_s in the target",
                "timeout",
            ) from None
        return Result(
            proc.returncode,
            proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"),
        )

    def run(
        self,
        command: str,
        *,
        timeout: float,
        what: str,
        check: bool = True,
        stdin: bytes | None = None,
    ) -> Result:
        """Run a remote shell command (already quoted). Connection failures always raise;
        a failing remote command raises when `check`."""
        res = self._exec(self.ssh_argv(command), timeout, what, stdin)
        if res.rc == 255:
            raise self.classify(res.stderr, what)
        if check and res.rc != 0:
            raise self.classify(res.stderr, what, rc=res.rc)
        return res

    def stream(self, command: str, *, timeout: float, what: str, on_line) -> Result:
        """Like run(check=False), but stderr lines are handed to on_line(line) as they arrive
        (on_line returns True for lines it consumed, which are left out of the result)."""
        import threading

        try:
            proc = subprocess.Popen(
                self.ssh_argv(command),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except FileNotFoundError:
            raise DeviceError(
                f"{self.where}: the OpenSSH client '{self.ssh}' is not installed on this machine; "
                "install it (Debian/Ubuntu: apt-get install openssh-client)",
                "tool-missing",
            ) from None
        out: list[bytes] = []
        err: list[str] = []

        def read_out():
            out.append(proc.stdout.read())

        def read_err():
            for raw in proc.stderr:
                line = raw.decode("utf-8", "replace")
                if not on_line(line.rstrip("\n")):
                    err.append(line)

        threads = [
            threading.Thread(target=read_out, daemon=True),
            threading.Thread(target=read_err, daemon=True),
        ]
        for t in threads:
            t.start()
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise DeviceError(
                f"{self.where}: {what} did not finish within {timeout:.0f} s; check the device "
                "(load, network) or raise connection.timeout_s in the target",
                "timeout",
            ) from None
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        for t in threads:
            t.join(timeout=10)
        res = Result(rc, b"".join(out).decode("utf-8", "replace"), "".join(err))
        if res.rc == 255:
            raise self.classify(res.stderr, what)
        return res

    def _scp(self, paths: list[str], timeout: float, what: str) -> Result:
        """scp over SFTP (OpenSSH >= 9 default); devices without an SFTP server (dropbear,
        minimal images) get one retry with the legacy protocol (-O). Remote paths are edgekit's
        own mktemp paths (checked by _check_safe), so the legacy remote shell sees nothing to expand."""
        res = self._exec([self.scp, "-q", "-B", *self.options(), "--", *paths], timeout, what)
        if res.rc != 0 and any(p in res.stderr for p in _NO_SFTP):
            res = self._exec(
                [self.scp, "-q", "-B", "-O", *self.options(), "--", *paths], timeout, what
            )
        return res

    def put(self, files: list[Path], remote_dir: str, *, timeout: float) -> None:
        """Copy local files (their names are edgekit's own, fixed) into a remote directory."""
        self._check_safe(remote_dir)
        res = self._scp(
            [*map(str, files), f"{self._host_spec()}:{remote_dir}/"],
            timeout,
            f"copying {len(files)} file(s) to the device",
        )
        if res.rc != 0:
            err = self.classify(res.stderr, "copying files to the device", rc=res.rc)
            if err.kind == "remote":  # SFTP reports a full disk as a bare "Failure": look
                need = sum(Path(f).stat().st_size for f in files)
                free = self.free_bytes(remote_dir)
                if free is not None and free < need:
                    raise DeviceError(
                        f"{self.where}: the device's disk is full: {need / 1e6:.1f} MB to copy, "
                        f"{free / 1e6:.1f} MB free under {self.conn.workdir}; free space there or point "
                        "connection.workdir at a filesystem with room",
                        "disk-full",
                    )
            raise err

    def free_bytes(self, remote_dir: str) -> int | None:
        """Free space of the filesystem holding remote_dir (POSIX `df -Pk`), None if unknown."""
        try:
            res = self.run(
                f"df -Pk -- {shlex.quote(remote_dir)}",
                timeout=60,
                what="checking free space",
                check=False,
            )
        except DeviceError:
            return None
        rows = [ln.split() for ln in res.stdout.splitlines()[1:] if ln.split()]
        try:
            return int(rows[-1][3]) * 1024
        except (IndexError, ValueError):
            return None

    def get(self, remote_files: list[str], local_dir: Path, *, timeout: float) -> None:
        for f in remote_files:
            self._check_safe(f)
        res = self._scp(
            [*(f"{self._host_spec()}:{f}" for f in remote_files), str(local_dir)],
            timeout,
            "fetching results from the device",
        )
        if res.rc != 0:
            raise self.classify(res.stderr, "fetching results from the device", rc=res.rc)

    def _check_safe(self, path: str) -> None:
        if not _SAFE_REMOTE.fullmatch(path) or "/../" in path + "/":
            raise DeviceError(
                f"{self.where}: remote path {path!r} has characters edgekit will not pass to scp; "
                "set connection.workdir to a plain absolute path such as /tmp/edgekit",
                "config",
            )

    # -- work directory -------------------------------------------------------------------
    def make_workdir(self, *, timeout: float = 60) -> str:
        """mkdir -p workdir; mktemp -d under it. Returns the new absolute directory."""
        base = self.conn.workdir.rstrip("/") or "/"
        cmd = f"mkdir -p -- {remote_path(base)} && mktemp -d {remote_path(base)}/edgekit.XXXXXXXX"
        res = self.run(cmd, timeout=timeout, what=f"creating a work dir under {base}")
        path = last_line(res.stdout)
        self._check_safe(path)
        return path

    def remove_dir(self, path: str, *, timeout: float = 60) -> bool:
        """rm -rf a directory edgekit created. Never raises (cleanup runs in finally)."""
        try:
            self._check_safe(path)
            if "/edgekit." not in path:
                return False
            res = self.run(
                f"rm -rf -- {shlex.quote(path)}", timeout=timeout, what="cleaning up", check=False
            )
            return res.rc == 0
        except DeviceError:
            return False

    # -- error classification ---------------------------------------------------------------
    def classify(self, stderr: str, what: str, rc: int = 255) -> DeviceError:
        c = self.conn
        port = c.port or 22
        text = stderr
        last = last_line(text) or f"exit status {rc}"
        w = self.where
        if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
            return DeviceError(
                f"{w}: the device's host key has CHANGED since it was recorded in known_hosts; if the "
                f"device was reinstalled, remove the old key with `ssh-keygen -R {c.host}` and connect "
                f"once with `{self._ssh_hint()}` to check and accept the new one",
                "host-key",
            )
        if "Host key verification failed" in text or re.search(r"No \S+ host key is known", text):
            scan = shlex.join(["ssh-keyscan", *(["-p", str(c.port)] if c.port else []), c.host])
            return DeviceError(
                f"{w}: the device's host key is not in your known_hosts and edgekit never turns host-key "
                f"checking off; connect once with `{self._ssh_hint()}` and accept the key, or add it with "
                f"`{scan} >> ~/.ssh/known_hosts` after checking its fingerprint",
                "host-key",
            )
        if "Could not resolve hostname" in text or "Name or service not known" in text:
            return DeviceError(
                f"{w}: cannot resolve the host name '{c.host}'; check connection.host in the target "
                "(or the Host entry in your ssh config)",
                "unreachable",
            )
        if "Connection refused" in text:
            return DeviceError(
                f"{w}: connection refused on port {port}; check connection.port and that the ssh server "
                "runs on the device (e.g. `sudo systemctl status ssh` there)",
                "refused",
            )
        for pat in (
            "Connection timed out",
            "Operation timed out",
            "No route to host",
            "Network is unreachable",
            "Connection reset",
            "kex_exchange_identification",
            "Connection closed by",
        ):
            if pat in text:
                return DeviceError(
                    f"{w}: cannot reach the device ({last}); check the address and port, that the device "
                    f"is on and on the network (connect timeout {c.connect_timeout_s} s)",
                    "unreachable",
                )
        if "Permission denied" in text or "Too many authentication failures" in text:
            user = f"{c.user}@" if c.user else ""
            copy = shlex.join(
                ["ssh-copy-id", *(["-p", str(c.port)] if c.port else []), f"{user}{c.host}"]
            )
            return DeviceError(
                f"{w}: authentication refused ({last}); edgekit runs ssh in batch mode (no password "
                f"prompts): install your key with `{copy}`, set "
                "connection.identity_file, or load the key into ssh-agent",
                "auth",
            )
        if "No space left on device" in text or "Disk quota exceeded" in text:
            return DeviceError(
                f"{w}: the device's disk is full while {what} ({last}); free space under "
                f"{c.workdir} or point connection.workdir at a filesystem with room",
                "disk-full",
            )
        if "subsystem request failed" in text or "sftp-server" in text:
            return DeviceError(
                f"{w}: scp needs the SFTP subsystem on the device ({last}); install the ssh server's "
                "sftp-server there (e.g. apt-get install openssh-sftp-server)",
                "tool-missing",
            )
        return DeviceError(f"{w}: {what} failed ({last})", "remote")
