"""TensorRT runner: deserializes an engine and runs it on an NVIDIA GPU.

numpy + the TensorRT module only (`tensorrt` on Jetson/GPU hosts, `tensorrt_rtx` for TensorRT for
RTX engines; which one comes from the build record `<engine>.json`, else the first importable).
Device memory and the stream come from the CUDA runtime library through ctypes (libcudart, which
every TensorRT install ships or needs), so no cuda-python package is required.

Without a CUDA runtime or GPU, loading raises RunnerError with the reason; tests that need it are
marked `gpu`. `run` takes and returns float32 NHWC; NCHW engines are transposed here.
"""

from __future__ import annotations

import ctypes
import glob
import importlib
import os
import sys

import numpy as np

from .base import Runner, RunnerError, register_runner
from .manifest import read_manifest

_MODULES = ("tensorrt", "tensorrt_rtx")
_H2D, _D2H = 1, 2  # cudaMemcpyKind
_CUDART_NAMES = (
    "libcudart.so",
    "libcudart.so.13",
    "libcudart.so.12",
    "libcudart.so.11.0",
    "cudart64_12.dll",
)


def _load_cudart():
    """The CUDA runtime library via ctypes, or RunnerError saying why not."""
    candidates = list(_CUDART_NAMES)
    for base in sys.path:  # pip's nvidia-cuda-runtime wheels
        candidates += sorted(
            glob.glob(os.path.join(base, "nvidia", "cuda_runtime", "lib", "libcudart.so*"))
        )
    errors = []
    for name in candidates:
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError as exc:
            errors.append(str(exc).split(":")[0])
    else:
        raise RunnerError(
            "TensorRT engines need the CUDA runtime (libcudart) and an NVIDIA GPU; no libcudart was "
            "found on this machine (run on the GPU machine the engine was built for)"
        )
    lib.cudaGetErrorString.restype = ctypes.c_char_p
    count = ctypes.c_int(0)
    rc = lib.cudaGetDeviceCount(ctypes.byref(count))
    if rc != 0 or count.value == 0:
        why = lib.cudaGetErrorString(rc).decode() if rc else "0 devices"
        raise RunnerError(
            f"TensorRT engines need an NVIDIA GPU with a working driver; the CUDA runtime reports: {why}"
        )
    return lib


class _Cuda:
    """The few CUDA runtime calls the runner needs, each checked."""

    def __init__(self):
        self.lib = _load_cudart()
        self.stream = ctypes.c_void_p()
        self._check(self.lib.cudaStreamCreate(ctypes.byref(self.stream)), "cudaStreamCreate")

    def _check(self, rc: int, what: str) -> None:
        if rc != 0:
            raise RunnerError(f"CUDA {what} failed: {self.lib.cudaGetErrorString(rc).decode()}")

    def malloc(self, nbytes: int) -> int:
        ptr = ctypes.c_void_p()
        self._check(
            self.lib.cudaMalloc(ctypes.byref(ptr), ctypes.c_size_t(max(1, nbytes))), "cudaMalloc"
        )
        return int(ptr.value)

    def free(self, ptr: int) -> None:
        self.lib.cudaFree(ctypes.c_void_p(ptr))

    def to_device(self, ptr: int, arr: np.ndarray) -> None:
        rc = self.lib.cudaMemcpy(
            ctypes.c_void_p(ptr),
            arr.ctypes.data_as(ctypes.c_void_p),
            ctypes.c_size_t(arr.nbytes),
            _H2D,
        )
        self._check(rc, "cudaMemcpy host->device")

    def to_host(self, arr: np.ndarray, ptr: int) -> None:
        rc = self.lib.cudaMemcpy(
            arr.ctypes.data_as(ctypes.c_void_p),
            ctypes.c_void_p(ptr),
            ctypes.c_size_t(arr.nbytes),
            _D2H,
        )
        self._check(rc, "cudaMemcpy device->host")

    def sync(self) -> None:
        self._check(self.lib.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")


def _import_module(preferred: str | None):
    order = [preferred] if preferred in _MODULES else list(_MODULES)
    for name in order:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    want = preferred or " or ".join(_MODULES)
    raise RunnerError(
        f"running TensorRT engines needs the Python module {want} (JetPack's tensorrt, or "
        "pip install tensorrt-rtx-cu12 for TensorRT-RTX engines)"
    )


@register_runner
class TensorRTRunner(Runner):
    runtime = "tensorrt"
    suffixes = (".engine", ".plan")

    def _load(self) -> None:
        if not os.path.isfile(self.path):
            raise RunnerError(f"{self.path}: no such engine file")
        if not self.manifest:
            self.manifest = read_manifest(self.path) or {}
        trt = _import_module(self.manifest.get("module"))
        self._trt = trt
        self._module = trt.__name__
        self._cuda = _Cuda()  # before deserializing: without a GPU this is the clear reason
        logger = trt.Logger(trt.Logger.ERROR)
        self._runtime = trt.Runtime(logger)
        with open(self.path, "rb") as f:
            blob = f.read()
        self._engine = self._runtime.deserialize_cuda_engine(blob)
        if self._engine is None:
            built = self.manifest.get("tensorrt_version")
            raise RunnerError(
                f"{self.path}: {self._module} {trt.__version__} cannot deserialize this engine"
                + (
                    f" (built with {built} for {self.manifest.get('compute_capability')})"
                    if built
                    else ""
                )
                + "; engines are tied to the TensorRT version and GPU: rebuild it on this machine"
            )
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        ins = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outs = [n for n in names if n not in ins]
        if len(ins) != 1 or len(outs) != 1:
            raise RunnerError(
                f"{self.path}: expected one input and one output tensor, got {ins} and {outs}"
            )
        self._in, self._out = ins[0], outs[0]
        self._in_dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(self._in)))
        self._out_dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(self._out)))
        sig = tuple(int(d) for d in self._engine.get_tensor_shape(self._in))
        self._signature = sig
        layout = str(self.manifest.get("layout") or "").upper()
        self.layout = layout if layout in ("NCHW", "NHWC") else ("NCHW" if sig[1] == 3 else "NHWC")
        self._buffers: dict = {}
        self.delegate_used = "gpu"

    @property
    def input_shape(self) -> tuple:
        dims = tuple(None if d < 0 else d for d in self._signature)
        return (dims[0], dims[2], dims[3], dims[1]) if self.layout == "NCHW" else dims

    def _prepare(self, shape: tuple) -> tuple:
        """Set the input shape, (re)allocate device buffers; returns the output shape."""
        if self._buffers.get("shape") == shape:
            return self._buffers["out_shape"]
        if not self._context.set_input_shape(self._in, shape):
            prof = self.manifest.get("profile") or {}
            raise RunnerError(
                f"{self.path}: input shape {shape} is outside the engine's profile "
                f"{prof.get('min')}..{prof.get('max')}; cut the image into tiles of {prof.get('opt')}"
            )
        out_shape = tuple(int(d) for d in self._context.get_tensor_shape(self._out))
        self._release()
        nin = int(np.prod(shape)) * self._in_dtype.itemsize
        nout = int(np.prod(out_shape)) * self._out_dtype.itemsize
        self._buffers = {
            "shape": shape,
            "out_shape": out_shape,
            "in": self._cuda.malloc(nin),
            "out": self._cuda.malloc(nout),
        }
        self._context.set_tensor_address(self._in, self._buffers["in"])
        self._context.set_tensor_address(self._out, self._buffers["out"])
        return out_shape

    def _release(self) -> None:
        for key in ("in", "out"):
            if key in self._buffers:
                self._cuda.free(self._buffers[key])
        self._buffers = {}

    def _infer(self, x: np.ndarray) -> np.ndarray:
        outs = []
        for i in range(x.shape[0]):
            b = x[i : i + 1]
            feed = np.ascontiguousarray(
                b.transpose(0, 3, 1, 2) if self.layout == "NCHW" else b, dtype=self._in_dtype
            )
            out_shape = self._prepare(tuple(feed.shape))
            self._cuda.to_device(self._buffers["in"], feed)
            if not self._context.execute_async_v3(self._cuda.stream.value or 0):
                raise RunnerError(f"{self.path}: TensorRT execution failed")
            self._cuda.sync()
            y = np.empty(out_shape, self._out_dtype)
            self._cuda.to_host(y, self._buffers["out"])
            y = y.astype(np.float32)
            outs.append(y.transpose(0, 2, 3, 1) if self.layout == "NCHW" else y)
        return np.concatenate(outs, axis=0)

    def versions(self) -> dict:
        return {"runtime": self._module, self._module: self._trt.__version__}

    def __del__(self):
        try:
            self._release()
        except Exception:
            pass
