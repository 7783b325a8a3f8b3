"""Per conv shape: int8 plain vs int8 on 2x2 blocks vs fp32 (LiteRT/XNNPACK), and ONNX Runtime's
int8 conv with 3 vs padded channels: the measurements behind edgekit.export.rewrites' block_conv
and pad_channels gates.

    .venv/bin/python benchmarks/bench_conv_shapes.py [--repeats 30] [--threads 2]

Each shape is one Conv2D (3x3 unless said, stride 1, 'same', fused ReLU) on random data, converted
to full-int8 TFLite (int8 I/O, so only the conv and its block ops are timed) in two forms:
  plain   the conv as it is
  blocks  SPACE_TO_DEPTH(2) -> the conv on 2x2 blocks (rewrites.block_weights) -> DEPTH_TO_SPACE(2)
and to fp32 TFLite. For ONNX Runtime: one QDQ int8 conv (edgekit's ORT recipe: uint8 activations,
per-channel int8 weights) with 3 outputs / 3 inputs vs padded to 16 outputs / 4 inputs.
All variants of a table are timed interleaved in one run on this host's CPU. Host numbers only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

TFLITE_SHAPES = [  # (tile, cin, cout, k)
    (256, 3, 16, 3),
    (256, 16, 16, 3),
    (256, 16, 3, 3),
    (256, 32, 16, 3),
    (256, 16, 32, 3),
    (256, 24, 24, 3),
    (256, 32, 32, 3),
    (256, 48, 12, 3),
    (256, 3, 64, 3),
    (256, 64, 64, 3),
    (144, 3, 64, 5),
    (144, 32, 12, 3),
    (96, 32, 27, 3),
]
ORT_SHAPES = [(256, 48, 3, "outputs"), (256, 3, 48, "inputs")]  # (tile, cin, cout, padded side)


def _keras_conv(keras, tf, tile, cin, cout, k, blocks, rng):
    from edgekit.export.rewrites import block_weights

    w = (rng.normal(size=(k, k, cin, cout)) * 0.1).astype(np.float32)
    b = np.zeros(cout, np.float32)
    inp = keras.Input((tile, tile, cin))
    if not blocks:
        conv = keras.layers.Conv2D(cout, k, padding="same", activation="relu")
        y = conv(inp)
        conv.set_weights([w, b])
        return keras.Model(inp, y)
    wb, (before, after) = block_weights(w)
    x = tf.nn.space_to_depth(inp, 2)
    x = keras.layers.ZeroPadding2D(((before, after), (before, after)))(x)
    conv = keras.layers.Conv2D(4 * cout, wb.shape[0], padding="valid", activation="relu")
    y = conv(x)
    conv.set_weights([wb, np.tile(b, 4)])
    return keras.Model(inp, tf.nn.depth_to_space(y, 2))


def _tflite(tf, model, int8: bool, cin: int, tile: int, rng) -> bytes:
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: (
            [rng.random((1, tile, tile, cin), dtype=np.float32)] for _ in range(3)
        )
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv.convert()


def _time_interleaved(runners: dict, repeats: int) -> dict:
    for run in runners.values():
        run()
        run()
    times = {k: [] for k in runners}
    for i in range(repeats):
        print(f"\r  round {i + 1}/{repeats}", end="", file=sys.stderr)
        for k, run in runners.items():
            t0 = time.perf_counter()
            run()
            times[k].append(time.perf_counter() - t0)
    print(file=sys.stderr)
    return {k: 1e3 * float(np.median(v)) for k, v in times.items()}


def tflite_table(tmp: Path, repeats: int, threads: int) -> list[str]:
    from ai_edge_litert.interpreter import Interpreter

    from edgekit.tfcompat import import_tf

    tf, keras = import_tf()
    rng = np.random.default_rng(0)
    runners = {}
    for tile, cin, cout, k in TFLITE_SHAPES:
        print(f"converting {cin}->{cout} {k}x{k} at {tile} px", file=sys.stderr)
        for form in ("plain", "blocks", "fp32"):
            model = _keras_conv(keras, tf, tile, cin, cout, k, form == "blocks", rng)
            path = tmp / f"{tile}-{cin}-{cout}-{k}-{form}.tflite"
            path.write_bytes(_tflite(tf, model, form != "fp32", cin, tile, rng))
            it = Interpreter(model_path=str(path), num_threads=threads)
            it.allocate_tensors()
            d = it.get_input_details()[0]
            x = (
                rng.random(d["shape"], dtype=np.float32)
                if d["dtype"] == np.float32
                else rng.integers(-128, 127, d["shape"]).astype(d["dtype"])
            )
            it.set_tensor(d["index"], x)
            runners[(tile, cin, cout, k, form)] = it.invoke
    ms = _time_interleaved(runners, repeats)
    out = [
        "| tile | conv | int8 plain ms | int8 blocks ms | fp32 ms | blocks / plain | "
        "rewrites.block_conv applies |",
        "|---|---|---|---|---|---|---|",
    ]
    from edgekit.export.rewrites import BLOCK_CONV_MAX_IN, BLOCK_CONV_MAX_OUT, NARROW_MIN_KERNEL

    for tile, cin, cout, k in TFLITE_SHAPES:
        p, b, f = (ms[(tile, cin, cout, k, form)] for form in ("plain", "blocks", "fp32"))
        gate = (cin <= BLOCK_CONV_MAX_IN and cout <= BLOCK_CONV_MAX_OUT) or (
            cin <= 4 and k >= NARROW_MIN_KERNEL
        )
        out.append(
            f"| {tile} | {cin}->{cout} {k}x{k} | {p:.3f} | {b:.3f} | {f:.3f} | {b / p:.2f} | "
            f"{'yes' if gate else 'no'} |"
        )
    return out


def _ort_conv(path: Path, tile, cin, cout, cin_p, cout_p, rng):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.zeros((cout_p, cin_p, 3, 3), np.float32)
    w[:cout, :cin] = rng.normal(size=(cout, cin, 3, 3)) * 0.1
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(
        nodes,
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin_p, tile, tile])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout_p, tile, tile])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)


def ort_table(tmp: Path, repeats: int, threads: int) -> list[str]:
    import onnxruntime as ort
    import onnxruntime.quantization as q

    rng = np.random.default_rng(1)
    runners = {}
    for tile, cin, cout, side in ORT_SHAPES:
        for padded in (False, True):
            cin_p = 4 if (padded and side == "inputs") else cin
            cout_p = 16 if (padded and side == "outputs") else cout
            fp32 = tmp / f"ort-{cin}-{cout}-{padded}.onnx"
            _ort_conv(fp32, tile, cin, cout, cin_p, cout_p, rng)
            calib = [rng.random((1, cin_p, tile, tile), dtype=np.float32) for _ in range(3)]

            class Reader(q.CalibrationDataReader):
                def __init__(self, xs=calib):
                    self.xs = iter(xs)

                def get_next(self):
                    x = next(self.xs, None)
                    return None if x is None else {"x": x}

            int8 = tmp / f"ort-{cin}-{cout}-{padded}-int8.onnx"
            q.quantize_static(
                str(fp32), str(int8), Reader(), per_channel=True,
                activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                extra_options={"WeightSymmetric": True},
            )  # fmt: skip
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            for kind, path in (("int8", int8), ("fp32", fp32)):
                s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
                x = calib[0]
                runners[(cin, cout, padded, kind)] = lambda s=s, x=x: s.run(None, {"x": x})
    ms = _time_interleaved(runners, repeats)
    out = [
        "| tile | conv | ORT int8 ms | ORT int8 padded ms | ORT fp32 ms | padded / plain |",
        "|---|---|---|---|---|---|",
    ]
    for tile, cin, cout, side in ORT_SHAPES:
        p, b = ms[(cin, cout, False, "int8")], ms[(cin, cout, True, "int8")]
        f = ms[(cin, cout, False, "fp32")]
        label = f"{cin}->{cout} ({side} padded to {16 if side == 'outputs' else 4})"
        out.append(f"| {tile} | {label} | {p:.3f} | {b:.3f} | {f:.3f} | {b / p:.2f} |")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    from edgekit.config import host_label
    from edgekit.export.fastpath import host_int8_tiles

    with tempfile.TemporaryDirectory(prefix="edgekit-conv-shapes-") as tmp:
        load0 = os.getloadavg()[0]
        t1 = tflite_table(Path(tmp), args.repeats, args.threads)
        t2 = ort_table(Path(tmp), args.repeats, args.threads)
        load1 = os.getloadavg()[0]
    print(
        f"Command: `.venv/bin/python benchmarks/bench_conv_shapes.py --repeats {args.repeats} "
        f"--threads {args.threads}`  \nMeasured on: {host_label()}; AMX int8 tiles: "
        f"{'yes' if host_int8_tiles() else 'no'}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {args.threads} threads; "
        f"median of {args.repeats} interleaved rounds; load {load0:.1f} -> {load1:.1f}\n"
    )
    print("\n".join(t1))
    print()
    print("\n".join(t2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
