#!/usr/bin/python3
"""Writes a small colour image set as class folders, the kind a new user brings:
3 classes (circle, square, stripes: told apart in grey too), RGB PNG and JPEG files of 40 to
72 pixels a side, a third of each class in a sub-folder of its class folder.

    make_colour_folders.py OUT [--train N] [--test N] [--seed S]

writes OUT/train/<class>/... and OUT/test/<class>/... (N images per class). Needs numpy and
PIL (Debian: python3-numpy python3-pil)."""
import argparse
import os

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "stripes")


def image(kind, rng):
    size = int(rng.integers(40, 73))
    background = tuple(int(v) for v in rng.integers(0, 90, 3))
    colour = tuple(int(v) for v in rng.integers(150, 256, 3))
    img = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(img)
    m = size // 5 + int(rng.integers(0, size // 8 + 1))
    if kind == "circle":
        draw.ellipse((m, m, size - m, size - m), fill=colour)
    elif kind == "square":
        draw.rectangle((m, m, size - m, size - m), fill=colour)
    else:
        step = max(4, size // 6)
        for x in range(0, size, step):
            draw.rectangle((x, 0, x + step // 2, size), fill=colour)
    noise = rng.integers(-20, 21, (size, size, 3))
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.int16) + noise, 0, 255).astype(np.uint8))


def write(root, per_class, rng):
    for kind in CLASSES:
        for i in range(per_class):
            folder = os.path.join(root, kind, "more") if i % 3 == 2 else os.path.join(root, kind)
            os.makedirs(folder, exist_ok=True)
            ext = "png" if i % 2 == 0 else "jpg"
            image(kind, rng).save(os.path.join(folder, f"{kind}_{i:04d}.{ext}"))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--train", type=int, default=200)
    p.add_argument("--test", type=int, default=60)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    write(os.path.join(a.out, "train"), a.train, rng)
    write(os.path.join(a.out, "test"), a.test, rng)


if __name__ == "__main__":
    main()
