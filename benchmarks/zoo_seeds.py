"""A zoo model's held-out gain over its degraded input for several degradation draws.

    .venv/bin/python benchmarks/zoo_seeds.py unet_deshadow [--weights W.weights.h5] [--seeds 0,1,2,3,4]

`edgekit zoo train` records one draw (seed 0) per held-out photo. With four held-out photos one
unlucky or lucky draw moves the mean a lot; this re-degrades the same photos with other seeds
(other shadow shapes, moire phases, ...) and prints the gain per photo and seed, with the mean
per seed and overall. Same evaluation as the zoo table (whole photos, float Keras, host CPU);
nothing is written.
"""

from __future__ import annotations

import argparse

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name")
    ap.add_argument("--weights", help="weights to evaluate (default: the shipped ones)")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    a = ap.parse_args(argv)

    from edgekit.models import train as T
    from edgekit.models import zoo
    from edgekit.models.info import LoadedModel

    entry = zoo.get(a.name)
    model = zoo.build(a.name)
    model.load_weights(a.weights or str(entry.weights_path))
    loaded = LoadedModel(model, T._zoo_info(entry))
    _, held_out = T.calibration_split()
    seeds = [int(s) for s in a.seeds.split(",")]
    names = [im.name.split("_")[0] for im in held_out]
    print(f"{a.name} ({a.weights or 'shipped weights'}): gain over the degraded input, dB\n")
    print("| seed | " + " | ".join(names) + " | mean |")
    print("|---:|" + "---:|" * (len(names) + 1))
    means = []
    for seed in seeds:
        r = T.evaluate(loaded, held_out, seed=seed)
        gains = [p["psnr_db"] - p["degraded_psnr_db"] for p in r["per_image"]]
        means.append(float(np.mean(gains)))
        cells = " | ".join(f"{g:+.2f}" for g in gains)
        print(f"| {seed} | {cells} | {means[-1]:+.2f} |", flush=True)
    print(f"\nmean over {len(seeds)} seeds: {np.mean(means):+.2f} dB (min {min(means):+.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
