"""How much a deshadowing U-Net brightens inputs that have NO shadow in them.

    .venv/bin/python benchmarks/deshadow_response.py WEIGHTS.h5 [--widths 16,32,64,64,64,64]
    .venv/bin/python benchmarks/deshadow_response.py WEIGHTS.h5 --gain-factor 4 --widths 32,64,64,64,64

A net that has learnt to find shadows leaves a shadow-free image alone (response 1.00). One that
has only learnt "dark things are often shadowed" brightens every smooth dark region by about the
average shadow gain. Prints mean(output) / mean(input) for flat fields, the dusk-sky colour of
held-out photo 12, the shadow-free held-out photos (plain and darkened) and shadow-free open-sky
images (seed 0: the ones a `synthetic_sky` run trains on). Host CPU, float Keras; nothing is
written.
"""

from __future__ import annotations

import argparse

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights")
    ap.add_argument("--widths", default="16,32,64,64,64,64")
    ap.add_argument(
        "--gain-factor",
        type=int,
        default=0,
        help="a zoo.build_gain_unet net pooling by this factor",
    )
    a = ap.parse_args(argv)

    from edgekit.data.synthetic import open_sky_images
    from edgekit.models import train as T
    from edgekit.models import zoo

    widths = tuple(int(w) for w in a.widths.split(","))
    multiple = max(1, a.gain_factor) * 2 ** (len(widths) - 1)
    if a.gain_factor:
        model = zoo.build_gain_unet(name="unet_deshadow", widths=widths, factor=a.gain_factor)
    else:
        model = zoo.build_unet(name="unet_deshadow", widths=widths)
    model.load_weights(a.weights)

    def response(img: np.ndarray) -> float:
        h, w = (img.shape[0] // multiple) * multiple, (img.shape[1] // multiple) * multiple
        x = np.ascontiguousarray(img[:h, :w], np.float32)
        y = np.clip(model.predict(x[None], verbose=0)[0], 0.0, 1.0)
        return float(y.mean() / max(float(x.mean()), 1e-6))

    rows = [(f"flat grey {v}", np.full((256, 256, 3), v, np.float32)) for v in (0.1, 0.2, 0.3, 0.5)]
    _, held_out = T.calibration_split()
    dusk = [im for im in held_out if im.name.startswith("12_")]
    if dusk:
        sky = dusk[0].pixels[20:120, 380:560].mean((0, 1))
        rows.append(("flat dusk-sky colour", np.broadcast_to(sky, (256, 256, 3)).copy()))
    for im in held_out:
        rows.append((f"{im.name} x1", im.pixels))
        rows.append((f"{im.name} x0.6", im.pixels * 0.6))
    for im in open_sky_images(4, seed=0):
        rows.append((f"{im.name} (open sky, seed 0)", im.pixels))
    print("| shadow-free input | mean(out) / mean(in) |\n|---|---:|")
    for name, img in rows:
        print(f"| {name} | {response(img):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
