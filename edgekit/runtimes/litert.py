"""LiteRT (TFLite) runner: numpy + ai_edge_litert only, so it also runs on a device.

Delegates: LiteRT applies XNNPACK to every CPU model by default (the interpreter's AUTO op
resolver = BUILTIN with default delegates); `num_threads` is handed to XNNPACK. delegate="none"
(or "cpu") selects BUILTIN_WITHOUT_DEFAULT_DELEGATES, i.e. the plain built-in kernels without
XNNPACK. "gpu" and "nnapi" load the platform's delegate library when it exists (on a phone);
on a host without it the runner falls back to the CPU (XNNPACK) and says so in `delegate_used`.

`run` always takes and returns float32 NHWC batches in the model's value range: int8/uint8/int16
I/O is (de)quantized here with the tensors' own scale and zero point, dynamic-shape models are
resized to each input, and a batch is run one image at a time when the model's batch is 1.
"""

from __future__ import annotations

import ctypes
import os

import numpy as np

from .base import Runner, RunnerError, register_runner

# Library names tried for the non-CPU delegates (found only on devices that ship them).
_DELEGATE_LIBS = {
    "gpu": ("libtensorflowlite_gpu_delegate.so", "libLiteRtGpuAccelerator.so"),
    "nnapi": ("libtensorflowlite_nnapi_delegate.so", "libnnapi_delegate.so"),
}
_CPU_DELEGATES = ("xnnpack", "none", "cpu")


def import_litert():
    """(interpreter module, runtime name, version). ai_edge_litert first, tflite_runtime second."""
    try:
        import ai_edge_litert
        from ai_edge_litert import interpreter as mod

        return mod, "ai-edge-litert", getattr(ai_edge_litert, "__version__", "unknown")
    except ImportError:
        pass
    try:
        import tflite_runtime
        from tflite_runtime import interpreter as mod

        return mod, "tflite-runtime", getattr(tflite_runtime, "__version__", "unknown")
    except ImportError:
        raise RunnerError(
            "running .tflite files needs the Python package 'ai-edge-litert' "
            "(pip install ai-edge-litert); neither ai_edge_litert nor tflite_runtime is installed"
        ) from None


@register_runner
class LiteRTRunner(Runner):
    runtime = "litert"
    suffixes = (".tflite",)

    def _load(self) -> None:
        mod, self._runtime_name, self._version = import_litert()
        if not os.path.isfile(self.path):
            raise RunnerError(f"{self.path}: no such .tflite file")
        delegate = (self.delegate or "xnnpack").lower()
        if delegate not in _CPU_DELEGATES and delegate not in _DELEGATE_LIBS:
            raise RunnerError(
                f"{self.path}: unknown delegate '{self.delegate}'; expected one of "
                f"{', '.join((*_CPU_DELEGATES, *_DELEGATE_LIBS))}"
            )
        threads = int(self.threads) if self.threads else None
        kwargs: dict = {"model_path": self.path, "num_threads": threads}
        self.delegate_used = "xnnpack"
        if delegate in ("none", "cpu"):
            kwargs["experimental_op_resolver_type"] = (
                mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            )
            self.delegate_used = "none (built-in CPU kernels, XNNPACK off)"
        elif delegate in _DELEGATE_LIBS:
            loaded, errors = None, []
            for lib in _DELEGATE_LIBS[delegate]:
                try:
                    ctypes.CDLL(lib)  # probe first: a failed load_delegate warns from __del__
                    loaded = mod.load_delegate(lib)
                    break
                except (ValueError, OSError, RuntimeError) as exc:
                    errors.append(
                        f"{lib}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                    )
            if loaded is not None:
                kwargs["experimental_delegates"] = [loaded]
                self.delegate_used = delegate
            else:
                self.delegate_used = f"xnnpack (CPU fallback: the {delegate} delegate is not available on this machine)"
        try:
            self._interp = mod.Interpreter(**kwargs)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RunnerError(
                f"{self.path}: LiteRT cannot load this file ({first}); is it a valid .tflite model "
                "produced by `edgekit export --format tflite`?"
            ) from None
        ins, outs = self._interp.get_input_details(), self._interp.get_output_details()
        if len(ins) != 1 or len(outs) != 1:
            raise RunnerError(
                f"{self.path}: expected a model with one image input and one image output, "
                f"got {len(ins)} inputs and {len(outs)} outputs"
            )
        self._in, self._out = ins[0], outs[0]
        self._signature = tuple(int(d) for d in self._in["shape_signature"])
        if len(self._signature) != 4:
            raise RunnerError(
                f"{self.path}: expected a 4-D NHWC image input, got shape {self._signature}"
            )
        self._current = tuple(int(d) for d in self._in["shape"])

    # -- shapes -------------------------------------------------------------------------------
    @property
    def input_shape(self) -> tuple:
        """Input shape with None for dynamic dimensions, e.g. (1, 256, 256, 3) or (1, None, None, 3)."""
        return tuple(None if d < 0 else d for d in self._signature)

    @property
    def output_shape(self) -> tuple:
        sig = self._out.get("shape_signature", self._out["shape"])
        return tuple(None if int(d) < 0 else int(d) for d in sig)

    @property
    def input_dtype(self) -> str:
        return np.dtype(self._in["dtype"]).name

    @property
    def output_dtype(self) -> str:
        return np.dtype(self._out["dtype"]).name

    @property
    def is_dynamic(self) -> bool:
        return any(d < 0 for d in self._signature[1:3])

    def _prepare(self, shape: tuple[int, ...]) -> None:
        """Resize the input for this image if the model allows it; else check the tile."""
        if shape == self._current:
            return
        for axis, (want, got) in enumerate(zip(self._signature, shape, strict=True)):
            if axis == 0:
                continue
            if want >= 0 and want != got:
                raise RunnerError(
                    f"{self.path}: the model takes a fixed {self._signature[1]}x{self._signature[2]}x"
                    f"{self._signature[3]} input, got {shape[1]}x{shape[2]}x{shape[3]}; cut the image "
                    "into tiles of that size or export with a dynamic shape (fp32/fp16/dynamic only)"
                )
        try:
            self._interp.resize_tensor_input(self._in["index"], list(shape), strict=True)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise RunnerError(f"{self.path}: cannot resize the input to {shape}: {exc}") from None
        self._in = self._interp.get_input_details()[0]
        self._out = self._interp.get_output_details()[0]
        self._current = shape

    # -- (de)quantization ----------------------------------------------------------------------
    @staticmethod
    def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
        dtype = np.dtype(detail["dtype"])
        if dtype.kind == "f":
            return x.astype(dtype, copy=False)
        scale, zero = detail["quantization"]
        if not scale:
            raise RunnerError(
                f"input tensor '{detail['name']}' is {dtype.name} without quantization parameters"
            )
        info = np.iinfo(dtype)
        q = np.round(x / scale + zero)
        return np.clip(q, info.min, info.max).astype(dtype)

    @staticmethod
    def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
        if np.dtype(detail["dtype"]).kind == "f":
            return y.astype(np.float32, copy=False)
        scale, zero = detail["quantization"]
        return ((y.astype(np.float32) - np.float32(zero)) * np.float32(scale)).astype(np.float32)

    # -- inference -----------------------------------------------------------------------------
    def _infer(self, x: np.ndarray) -> np.ndarray:
        if x.shape[-1] != self._signature[3]:
            raise RunnerError(
                f"{self.path}: expected NHWC input with {self._signature[3]} channels, got shape {x.shape}"
            )
        per_image = self._signature[0] == 1
        batches = [x[i : i + 1] for i in range(x.shape[0])] if per_image else [x]
        outs = []
        for b in batches:
            self._prepare(tuple(b.shape))
            self._interp.set_tensor(self._in["index"], self._quantize(b, self._in))
            self._interp.invoke()
            outs.append(self._dequantize(self._interp.get_tensor(self._out["index"]), self._out))
        return np.concatenate(outs, axis=0) if len(outs) > 1 else outs[0].copy()

    def versions(self) -> dict:
        return {"runtime": self._runtime_name, "litert": self._version}
