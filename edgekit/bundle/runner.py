"""Reference runner of an edgekit bundle: restore full-size images with the bundled model.

    python restore.py INPUT... --out DIR [--threads N] [--bundle DIR]

Needs numpy, pillow and ai-edge-litert (model.tflite; LiteRT's CompiledModel API where the
installed version has it, else the Interpreter) or onnxruntime (model.onnx). No TensorFlow, no
edgekit. It is the executable spec of bundle.json: an app that cuts tiles, (de)quantizes and
blends exactly like this file gets the pixels `edgekit run` writes, bit for bit.

Inputs: RGB, grey (8 and 16 bit) and images with alpha (alpha kept). EXIF orientation applied.
Output: DIR/<input name>.png at the model's scale.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from edgekit.runtimes.tiled import from_float, restore  # edgekit bundle: tiling code inlined here

# ---------------------------------------------------------------- the model behind bundle.json


def _quantize(x: np.ndarray, q: dict, dtype) -> np.ndarray:
    # the same arithmetic as edgekit's LiteRT runner: round(x / scale + zero_point), clipped
    info = np.iinfo(dtype)
    return np.clip(np.round(x / q["scale"] + q["zero_point"]), info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, q: dict) -> np.ndarray:
    return ((y.astype(np.float32) - np.float32(q["zero_point"])) * np.float32(q["scale"])).astype(
        np.float32
    )


class LiteRTModel:
    """model.tflite through CompiledModel (what Android apps use) or the Interpreter."""

    def __init__(self, path: Path, spec: dict, threads: int):
        self.spec = spec
        self.in_dtype = np.dtype(spec["input"]["dtype"])
        self.out_dtype = np.dtype(spec["output"]["dtype"])
        self.out_shape = tuple(spec["output"]["shape"])
        try:
            from ai_edge_litert.compiled_model import CompiledModel
            from ai_edge_litert.options import Options
        except ImportError:
            CompiledModel = None
        if CompiledModel is not None:
            opts = Options()
            opts.cpu_options.num_threads = threads
            self._cm = CompiledModel.from_file(str(path), options=opts)
            self._ins = self._cm.create_input_buffers(0)
            self._outs = self._cm.create_output_buffers(0)
            self.api = "LiteRT CompiledModel"
        else:
            try:
                from ai_edge_litert.interpreter import Interpreter
            except ImportError:
                from tflite_runtime.interpreter import Interpreter
            self._cm = None
            self._it = Interpreter(model_path=str(path), num_threads=threads)
            self._it.allocate_tensors()
            self.api = "LiteRT Interpreter"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        q_in, q_out = self.spec["input"]["quantization"], self.spec["output"]["quantization"]
        x = _quantize(x, q_in, self.in_dtype) if q_in else x.astype(self.in_dtype)
        if self._cm is not None:
            self._ins[0].write(np.ascontiguousarray(x))
            self._cm.run_by_index(0, self._ins, self._outs)
            y = self._outs[0].read(int(np.prod(self.out_shape)), self.out_dtype)
            y = np.asarray(y).reshape(self.out_shape)
        else:
            self._it.set_tensor(self._it.get_input_details()[0]["index"], x)
            self._it.invoke()
            y = self._it.get_tensor(self._it.get_output_details()[0]["index"])
        return _dequantize(y, q_out) if q_out else y.astype(np.float32)


class OnnxModel:
    """model.onnx through ONNX Runtime (CPU); NCHW models get NHWC tiles transposed."""

    def __init__(self, path: Path, spec: dict, threads: int):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        self._s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self._name = self._s.get_inputs()[0].name
        self._nchw = spec["input"]["layout"] == "NCHW"
        self.api = "ONNX Runtime"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self._nchw:
            x = x.transpose(0, 3, 1, 2)
        y = self._s.run(None, {self._name: np.ascontiguousarray(x, np.float32)})[0]
        return (y.transpose(0, 2, 3, 1) if self._nchw else y).astype(np.float32)


def load(bundle_dir: Path, threads: int):
    spec = json.loads((bundle_dir / "bundle.json").read_text(encoding="utf-8"))
    path = bundle_dir / spec["model"]["file"]
    cls = OnnxModel if spec["model"]["format"] == "onnx" else LiteRTModel
    return spec, cls(path, spec, threads)


# ---------------------------------------------------------------- images


def read_image(path: Path):
    """(pixels (H, W, 3|1) uint8/uint16, alpha or None), EXIF-upright."""
    from PIL import Image, ImageOps

    im = ImageOps.exif_transpose(Image.open(path))
    if im.mode.startswith("I;16"):
        return np.asarray(im, np.uint16)[..., None], None
    alpha = None
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("LA" if im.mode == "LA" else "RGBA")
        alpha = np.asarray(im.getchannel("A"), np.uint8).copy()
    if im.mode in ("1", "L", "LA"):
        return np.asarray(im.convert("L"), np.uint8)[..., None].copy(), alpha
    return np.asarray(im.convert("RGB"), np.uint8).copy(), alpha


def write_png(path: Path, px: np.ndarray, alpha) -> None:
    from PIL import Image

    if px.shape[2] == 1:
        im = Image.fromarray(px[..., 0])
        if alpha is not None:
            im = Image.merge("LA", (im.convert("L"), Image.fromarray(alpha)))
    else:
        im = Image.fromarray(px)
        if alpha is not None:
            im.putalpha(Image.fromarray(alpha))
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        im.save(f, format="PNG")
    os.replace(tmp, path)  # never a half-written PNG under the final name


def restore_image(spec: dict, model, px: np.ndarray) -> np.ndarray:
    t = spec["tiling"]
    kw = {
        "scale": t["scale"],
        "overlap": t["overlap"],
        "margin": t["margin"],
        "value_range": tuple(spec["input"]["value_range"]),
    }
    tile, channels = tuple(t["tile"]), spec["input"]["shape"][3]
    h, w, c = px.shape
    s = t["scale"]
    if c == channels:
        return restore(px, model, tile, out=np.empty((h * s, w * s, c), px.dtype), **kw)
    if c == 1:  # grey image, RGB model: grey on all three channels, the mean saved grey
        y = restore(np.repeat(px, 3, axis=2), model, tile, **kw)
        return from_float(y.mean(axis=2, keepdims=True), px.dtype)
    out = np.empty((h * s, w * s, 3), px.dtype)  # RGB image, grey model: channel by channel
    for k in range(3):
        restore(px[..., k : k + 1], model, tile, out=out[..., k : k + 1], **kw)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Restore images with an edgekit bundle.")
    ap.add_argument("inputs", nargs="+", type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--bundle", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)
    spec, model = load(args.bundle, args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    for src in args.inputs:
        px, alpha = read_image(src)
        y = restore_image(spec, model, px)
        if alpha is not None and y.shape[:2] != alpha.shape:
            from PIL import Image

            a = Image.fromarray(alpha).resize((y.shape[1], y.shape[0]), Image.Resampling.BICUBIC)
            alpha = np.asarray(a)
        dst = args.out / (src.stem + ".png")
        write_png(dst, y, alpha)
        print(f"{dst} ({y.shape[1]}x{y.shape[0]}, {model.api})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
