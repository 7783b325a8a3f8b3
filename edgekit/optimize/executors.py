"""Where candidate builds run: in this process (local) or as Ray tasks (ray).

Both call edgekit.optimize.build.build_candidate and hand each result to a callback in the
driver, which caches it; only builds run here, latency is timed elsewhere (serially, one machine).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

from ..errors import EdgekitError

EXECUTORS = ("local", "ray")


class LocalExecutor:
    name = "local"
    where = "this process"

    def map(self, fn: Callable, ctx, items: list, on_result: Callable) -> None:
        for item in items:
            on_result(item, fn(ctx, item))

    def close(self) -> None:
        pass


def check_address(address: str) -> tuple[str, int]:
    """host:port of a running Ray cluster, reachable now; otherwise a one-line error."""
    host, _, port = address.rpartition(":")
    if address.startswith("ray://"):
        host, _, port = address[len("ray://") :].rpartition(":")
    try:
        port_n = int(port)
    except ValueError:
        raise EdgekitError(
            f"--ray-address '{address}': expected HOST:PORT of a Ray head (e.g. 10.0.0.5:6379)"
        ) from None
    try:
        with socket.create_connection((host or "127.0.0.1", port_n), timeout=3):
            pass
    except OSError as exc:
        raise EdgekitError(
            f"--ray-address '{address}': no Ray head answers there ({exc.strerror or exc}); "
            "start one with `ray start --head` or omit --ray-address for a local Ray"
        ) from None
    return host, port_n


class RayExecutor:
    """Candidate builds as Ray tasks (one CPU each) on a cluster, or a local Ray started here."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None):
        from ..errors import require

        if address:
            check_address(address)
        ray = require("ray", "ray", "--executor ray")
        self._ray = ray
        root = str(Path(__file__).resolve().parents[2])
        # Workers import edgekit the way this process does (same checkout on a shared disk, or an
        # installed edgekit on the cluster's nodes), with Keras 2 like every edgekit process.
        env = {
            "TF_USE_LEGACY_KERAS": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p),
        }
        self._started = False
        if not ray.is_initialized():
            kwargs = {"runtime_env": {"env_vars": env}, "log_to_driver": False}
            if address:
                kwargs["address"] = address
            else:
                kwargs.update(
                    num_cpus=num_cpus or os.cpu_count() or 1,
                    include_dashboard=False,
                    object_store_memory=200 * 1024 * 1024,
                )
            try:
                ray.init(**kwargs)
            except Exception as exc:  # noqa: BLE001 - ConnectionError, RuntimeError, ...
                raise EdgekitError(
                    f"--ray-address '{address or 'local'}': cannot join Ray "
                    f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
                ) from None
            self._started = True
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        self.where = (
            f"Ray at {address or 'a local Ray started for this run'} "
            f"({len(nodes)} node(s), {int(ray.cluster_resources().get('CPU', 0))} CPUs)"
        )

    def map(self, fn: Callable, ctx, items: list, on_result: Callable) -> None:
        ray = self._ray
        if not items:
            return
        ctx_ref = ray.put(ctx)
        task = ray.remote(num_cpus=1, max_retries=1)(fn)
        pending = {task.remote(ctx_ref, item): item for item in items}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                item = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - a worker crash: a failed build, named
                    result = {
                        "ok": False,
                        "transient": True,
                        "error": f"Ray task failed: {str(exc).splitlines()[0]}",
                    }
                on_result(item, result)

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


def make_executor(name: str, address: str | None):
    if name not in EXECUTORS:
        raise EdgekitError(f"--executor '{name}': expected one of {', '.join(EXECUTORS)}")
    if name == "local":
        if address:
            raise EdgekitError("--ray-address needs --executor ray")
        return LocalExecutor()
    return RayExecutor(address)
