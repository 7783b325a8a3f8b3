"""bench/crops.py: the crop box lands on the detail, on small and on big photos."""

import numpy as np

from edgekit.bench.crops import choose_box


def _with_patch(h, w, y, x):
    img = np.zeros((h, w, 3), np.float32)
    img[y : y + 96, x : x + 96] = np.random.default_rng(0).random((96, 96, 3))
    return img


def test_box_covers_the_textured_patch():
    for h, w, y, x in [(300, 400, 100, 200), (3000, 4000, 1000, 2000)]:
        by, bx, bh, bw = choose_box(_with_patch(h, w, y, x))
        assert (bh, bw) == (96, 96)
        assert abs(by - y) <= 16 and abs(bx - x) <= 16, (by, bx)


def test_small_photo_gets_a_box_inside_it():
    assert choose_box(np.zeros((50, 60, 3), np.float32)) == (0, 0, 50, 50)
