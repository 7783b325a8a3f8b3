"""ONNX Runtime runner: numpy + onnxruntime only, so it also runs on a device.

Execution providers: the CPU provider always, with `intra_op_num_threads = threads`; the
TensorRT and CUDA providers are put in front of it when this onnxruntime build has them
(onnxruntime-gpu), unless delegate is "cpu"/"none"/"xnnpack" (the CPU-only names targets use).
`providers_used` says what the session really got.

`run` takes and returns float32 NHWC batches whatever the artifact's layout (NCHW artifacts from
`--layout NCHW` are transposed here; the layout comes from the manifest or the input shape) and
dtype (float16 I/O is cast here). A batch is run one image at a time when the graph's batch is 1.
"""

from __future__ import annotations

import os

import numpy as np

from .base import Runner, RunnerError, register_runner
from .manifest import read_manifest

_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
_CPU_ONLY = ("cpu", "none", "xnnpack")
_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


def _import_ort():
    try:
        import onnxruntime
    except ImportError:
        raise RunnerError(
            "running .onnx files needs the Python package 'onnxruntime' "
            "(pip install onnxruntime, or onnxruntime-gpu for CUDA/TensorRT)"
        ) from None
    return onnxruntime


def _dim(d):
    return d if isinstance(d, int) and d > 0 else None


@register_runner
class OnnxRuntimeRunner(Runner):
    runtime = "onnxruntime"
    suffixes = (".onnx",)

    def _load(self) -> None:
        ort = _import_ort()
        self._version = ort.__version__
        if not os.path.isfile(self.path):
            raise RunnerError(f"{self.path}: no such .onnx file")
        if not self.manifest:
            self.manifest = read_manifest(self.path) or {}
        delegate = (self.delegate or "cpu").lower()
        available = ort.get_available_providers()
        providers = [] if delegate in _CPU_ONLY else [p for p in _GPU_PROVIDERS if p in available]
        providers.append("CPUExecutionProvider")
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(self.threads or 1)
        so.inter_op_num_threads = 1
        # ORT's pool threads spin for a while after each run by default; in an interleaved
        # measurement they steal the cores from the next artifact (a TFLite int8 DnCNN ran 30 ms
        # instead of 16 ms right after an ORT run on 2 cores) and ORT itself gains nothing.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(self.path, so, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types per failure
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RunnerError(
                f"{self.path}: ONNX Runtime {self._version} cannot load this file ({first}); is it a "
                "valid .onnx model produced by `edgekit export --format onnx`?"
            ) from None
        self.providers_used = self._session.get_providers()
        self.delegate_used = self.providers_used[0]
        ins, outs = self._session.get_inputs(), self._session.get_outputs()
        if len(ins) != 1 or len(outs) != 1:
            raise RunnerError(
                f"{self.path}: expected a model with one image input and one image output, "
                f"got {len(ins)} inputs and {len(outs)} outputs"
            )
        self._in, self._out = ins[0], outs[0]
        if len(self._in.shape) != 4:
            raise RunnerError(
                f"{self.path}: expected a 4-D image input, got shape {self._in.shape}"
            )
        if self._in.type not in _DTYPES:
            raise RunnerError(
                f"{self.path}: input '{self._in.name}' is {self._in.type}; expected float or float16"
            )
        self.layout = self._layout()

    def _layout(self) -> str:
        layout = str(self.manifest.get("layout") or "").upper()
        if layout in ("NCHW", "NHWC"):
            return layout
        shape = [_dim(d) for d in self._in.shape]
        return "NCHW" if shape[1] in (1, 3) and shape[3] not in (1, 3) else "NHWC"

    # -- shapes -------------------------------------------------------------------------------
    def _nhwc(self, shape) -> tuple:
        dims = tuple(_dim(d) for d in shape)
        return (dims[0], dims[2], dims[3], dims[1]) if self.layout == "NCHW" else dims

    @property
    def input_shape(self) -> tuple:
        """NHWC input shape with None for dynamic dimensions, e.g. (1, 256, 256, 3)."""
        return self._nhwc(self._in.shape)

    @property
    def output_shape(self) -> tuple:
        return self._nhwc(self._out.shape) if len(self._out.shape) == 4 else tuple(self._out.shape)

    @property
    def input_dtype(self) -> str:
        return np.dtype(_DTYPES[self._in.type]).name

    @property
    def output_dtype(self) -> str:
        return np.dtype(_DTYPES.get(self._out.type, np.float32)).name

    # -- inference -----------------------------------------------------------------------------
    def _check(self, x: np.ndarray) -> None:
        want = self.input_shape
        for axis, name in ((1, "height"), (2, "width"), (3, "channels")):
            if want[axis] is not None and x.shape[axis] != want[axis]:
                raise RunnerError(
                    f"{self.path}: the model takes NHWC input of {want[1]}x{want[2]}x{want[3]}, got "
                    f"{x.shape[1]}x{x.shape[2]}x{x.shape[3]} ({name} differs); cut the image into "
                    "tiles of that size or export with a dynamic shape"
                )

    def _infer(self, x: np.ndarray) -> np.ndarray:
        self._check(x)
        dtype = _DTYPES[self._in.type]
        per_image = self.input_shape[0] == 1
        batches = [x[i : i + 1] for i in range(x.shape[0])] if per_image else [x]
        outs = []
        for b in batches:
            feed = b.transpose(0, 3, 1, 2) if self.layout == "NCHW" else b
            y = self._session.run(
                [self._out.name], {self._in.name: np.ascontiguousarray(feed, dtype=dtype)}
            )[0]
            y = np.asarray(y, dtype=np.float32)
            outs.append(y.transpose(0, 2, 3, 1) if self.layout == "NCHW" else y)
        return np.concatenate(outs, axis=0) if len(outs) > 1 else np.ascontiguousarray(outs[0])

    def versions(self) -> dict:
        return {
            "runtime": "onnxruntime",
            "onnxruntime": self._version,
            "providers": list(self.providers_used),
        }
