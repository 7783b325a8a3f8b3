"""How much smaller can gzip make a 50 %-sparse fp32 .tflite? (issue 5, magnitude pruning)

    .venv/bin/python benchmarks/bench_gzip_sparsity.py [--sparsity 0.5]

Takes the zoo DnCNN, zeroes `--sparsity` of every conv kernel by magnitude, in blocks of B
consecutive input channels (B = 1 is unstructured; input channels are the contiguous axis of a
TFLite conv filter, OHWI), converts to fp32 TFLite and gzips it (level 9). No fine-tuning: the
file size depends on where the zeros are, not on the surviving values. Also prints the bound
for an ideal coder: 1 bit of mask per weight plus the surviving weights at the entropy gzip
reaches on the dense file. Host-only numbers (file sizes); nothing is timed.
"""

from __future__ import annotations

import argparse
import gzip
import math

import numpy as np


def block_prune(kernel: np.ndarray, sparsity: float, block: int) -> np.ndarray:
    """Zero the `sparsity` fraction of blocks with the smallest L2 norm (Keras HWIO kernel)."""
    kh, kw, cin, cout = kernel.shape
    if cin % block:
        return kernel
    blocks = kernel.reshape(kh, kw, cin // block, block, cout)
    norms = np.sqrt((blocks**2).sum(axis=3))
    keep = norms > np.quantile(norms, sparsity)
    return (blocks * keep[:, :, :, None, :]).reshape(kernel.shape)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sparsity", type=float, default=0.5)
    ap.add_argument("--blocks", default="1,2,4,8,16,48")
    a = ap.parse_args(argv)

    from edgekit.models.loading import load_model
    from edgekit.tfcompat import import_tf

    tf, _ = import_tf()
    model = load_model("zoo:dncnn").model
    dense = model.get_weights()

    def tflite_bytes() -> bytes:
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()

    base = tflite_bytes()
    base_gz = len(gzip.compress(base, 9))
    n_kernel = sum(w.size for w in dense if w.ndim == 4)
    # ideal: 1 bit of mask per kernel weight + surviving weights at gzip's dense bytes-per-weight
    other = len(base) - 4 * n_kernel
    dense_bpw = (base_gz - other) / n_kernel
    ideal = other + n_kernel / 8 + (1 - a.sparsity) * n_kernel * dense_bpw
    rows = [("dense", len(base), base_gz, 1.0)]
    for block in (int(b) for b in a.blocks.split(",")):
        model.set_weights([block_prune(w, a.sparsity, block) if w.ndim == 4 else w for w in dense])
        data = tflite_bytes()
        gz = len(gzip.compress(data, 9))
        rows.append((f"{a.sparsity:.0%} in 1x{block} blocks", len(data), gz, base_gz / gz))
    model.set_weights(dense)
    print("| file | bytes | gzip bytes | gzip smaller by |")
    print("|---|---:|---:|---:|")
    for name, size, gz, ratio in rows:
        print(f"| {name} | {size} | {gz} | {ratio:.3f}x |")
    print(
        f"| bound: 1-bit mask + surviving weights | | {math.ceil(ideal)} | {base_gz / ideal:.3f}x |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
