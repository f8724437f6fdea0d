#!/usr/bin/python3
"""The augmentation grid (examples/augmentation_grid.cpp) read back by OpenCV: its size, its
first column equal to the tinted Fashion-MNIST images computed here from the IDX file, every
other cell changed, and docs/images/augmentations.png equal to what the program writes now.

    check_augmentation_grid.py PROGRAM OUTPUT_DIR DOCS_PNG [DATA_DIR]

Exit 77 (skipped) without python3-opencv, numpy or the data set."""
import gzip
import os
import subprocess
import sys

try:
    import cv2
    import numpy as np
except ImportError as e:
    print(f"skipped: {e}")
    sys.exit(77)

program, out_dir, docs_png = sys.argv[1:4]
data_dir = sys.argv[4] if len(sys.argv) > 4 else "/usr/share/datasets/fashion-mnist"
images_file = os.path.join(data_dir, "t10k-images-idx3-ubyte.gz")
labels_file = os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz")
if not os.path.exists(images_file):
    print(f"skipped: no {images_file}")
    sys.exit(77)

os.makedirs(out_dir, exist_ok=True)
grid_file = os.path.join(out_dir, "augmentations.png")
subprocess.run([program, "--data", data_dir, "--output", grid_file], check=True)

SIDE, ZOOM, GAP, ROWS, COLUMNS = 28, 3, 4, 6, 8
CELL = SIDE * ZOOM
grid = cv2.imread(grid_file, cv2.IMREAD_UNCHANGED)
assert grid is not None, f"OpenCV cannot read {grid_file}"
grid = cv2.cvtColor(grid, cv2.COLOR_BGR2RGB).astype(np.float64) / 255.0
expected_shape = (GAP + ROWS * (CELL + GAP), GAP + COLUMNS * (CELL + GAP), 3)
assert grid.shape == expected_shape, f"grid of shape {grid.shape}, expected {expected_shape}"

docs = cv2.imread(docs_png, cv2.IMREAD_UNCHANGED)
assert docs is not None, f"OpenCV cannot read {docs_png}"
assert np.array_equal(cv2.cvtColor(docs, cv2.COLOR_BGR2RGB).astype(np.float64) / 255.0, grid), \
    f"{docs_png} is not what augmentation_grid writes now: rerun it (docs/data.md says how)"

with gzip.open(images_file) as f:
    images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, SIDE, SIDE).astype(np.float32) / np.float32(255)
with gzip.open(labels_file) as f:
    labels = np.frombuffer(f.read(), np.uint8, offset=8)
TINTS = [
    (0.95, 0.55, 0.20, 0.10, 0.20, 0.35), (0.30, 0.75, 0.95, 0.25, 0.10, 0.10),
    (0.90, 0.85, 0.30, 0.15, 0.25, 0.15), (0.85, 0.30, 0.55, 0.10, 0.25, 0.25),
    (0.45, 0.90, 0.45, 0.30, 0.15, 0.30), (0.95, 0.35, 0.30, 0.15, 0.15, 0.30),
]


def cell(r, k):
    y, x = GAP + r * (CELL + GAP), GAP + k * (CELL + GAP)
    return grid[y:y + CELL, x:x + CELL]


for r in range(ROWS):
    grey = images[np.argmax(labels == r)][:, :, None]
    tint = np.array(TINTS[r], np.float32)
    original = tint[3:] * (1 - grey) + tint[:3] * grey
    zoomed = np.repeat(np.repeat(original, ZOOM, axis=0), ZOOM, axis=1)
    error = np.abs(cell(r, 0) - zoomed).max()
    assert error <= 0.5 / 255 + 1e-6, f"row {r}: the original differs from the tinted image by {error}"
    for k in range(1, COLUMNS):
        change = np.abs(cell(r, k) - cell(r, 0)).mean()
        assert change > 0.01, f"row {r}, column {k}: the augmented image is (almost) the original ({change})"
print(f"{grid_file}: {grid.shape[1]}x{grid.shape[0]}, the originals match the tinted images, "
      f"every augmented cell differs, {docs_png} is current")
