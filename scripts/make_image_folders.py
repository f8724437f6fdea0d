#!/usr/bin/python3
"""Writes Fashion-MNIST (IDX files, raw or .gz) out as PNG class folders, the layout that
`fashion_mnist --train-dir DIR --test-dir DIR` and `staticnet-shard --image-dir DIR` read:

    OUT/train/0_t-shirt_top/00000.png ... OUT/test/9_ankle_boot/09999.png

Class folders are named "<label>_<name>" so that their sorted order is the label order.
Needs Debian's python3 with python3-numpy and python3-pil (hence /usr/bin/python3).

    scripts/make_image_folders.py OUT [--data DIR] [--train N] [--test N]
"""
import argparse
import gzip
import os
import struct
import sys

import numpy as np
from PIL import Image

CLASSES = ["t-shirt_top", "trouser", "pullover", "dress", "coat",
           "sandal", "shirt", "sneaker", "bag", "ankle_boot"]


def read_idx(path):
    for candidate in (path + ".gz", path):
        if os.path.exists(candidate):
            opener = gzip.open if candidate.endswith(".gz") else open
            with opener(candidate, "rb") as f:
                data = f.read()
            break
    else:
        sys.exit(f"make_image_folders: neither {path}.gz nor {path} exists")
    if data[0] != 0 or data[1] != 0 or data[2] != 8:
        sys.exit(f"make_image_folders: {path}: not an unsigned-byte IDX file")
    rank = data[3]
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def write(images, labels, out, limit):
    n = len(labels) if limit is None else min(limit, len(labels))
    for k, name in enumerate(CLASSES):
        os.makedirs(os.path.join(out, f"{k}_{name}"), exist_ok=True)
    for i in range(n):
        label = int(labels[i])
        Image.fromarray(images[i]).save(os.path.join(out, f"{label}_{CLASSES[label]}", f"{i:05d}.png"))
    return n


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="folder to write train/ and test/ into")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist", help="folder of the IDX files")
    p.add_argument("--train", type=int, default=None, help="only the first N training images")
    p.add_argument("--test", type=int, default=None, help="only the first N test images")
    a = p.parse_args()
    for part, prefix, limit in (("train", "train", a.train), ("test", "t10k", a.test)):
        images = read_idx(os.path.join(a.data, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(os.path.join(a.data, f"{prefix}-labels-idx1-ubyte"))
        n = write(images, labels, os.path.join(a.out, part), limit)
        print(f"{os.path.join(a.out, part)}: {n} images in {len(CLASSES)} class folders")


if __name__ == "__main__":
    main()
