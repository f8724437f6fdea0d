#!/usr/bin/env python3
"""PyTorch (CPU) training throughput of staticnet's reference CNN, for compare_pytorch.sh.

Same network (Conv 32/64/128 3x3 + ReLU + MaxPool 2, Dense 128 ReLU, Dense 10), Adam 1e-3,
cross-entropy on logits, batch B, T threads, random images (throughput does not depend on
pixel values), in --format contiguous (NCHW) or channels_last (oneDNN's NHWC kernels, usually
PyTorch's fastest CPU path; compare_pytorch.sh runs both and takes the faster). Prints one JSON line: images/s (median of --reps blocks of --steps steps
after a warm-up), the thread count, and which BLAS/oneDNN libraries the process loaded.
Run it with Debian's interpreter: /usr/bin/python3 (python3-torch).
"""
import argparse
import json
import re
import statistics
import time

import torch
import torch.nn as nn


def reference_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))


def loaded_libraries():
    found = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            if re.search(r"blas|lapack|dnnl|mkl|gomp", line):
                found.add(line.split()[-1].rsplit("/", 1)[-1])
    return sorted(found)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--format", default="contiguous", choices=["contiguous", "channels_last"])
    args = ap.parse_args()
    memory_format = torch.channels_last if args.format == "channels_last" else torch.contiguous_format
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    model = reference_cnn().to(memory_format=memory_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    images = torch.rand(args.batch * 8, 1, 28, 28).contiguous(memory_format=memory_format)
    labels = torch.randint(0, 10, (args.batch * 8,))
    batches = [(images[i * args.batch:(i + 1) * args.batch], labels[i * args.batch:(i + 1) * args.batch])
               for i in range(8)]

    def steps(n):
        for k in range(n):
            x, y = batches[k % 8]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            optimizer.step()

    steps(30)  # warm-up: the first steps of a fresh process are slow (allocator, oneDNN primitives)
    rates = []
    for _ in range(args.reps):
        start = time.perf_counter()
        steps(args.steps)
        rates.append(args.batch * args.steps / (time.perf_counter() - start))
    print(json.dumps({"bench": "train", "framework": "pytorch", "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "batch": args.batch, "format": args.format,
                      "images_per_s": round(statistics.median(rates), 1),
                      "images_per_s_reps": [round(r) for r in rates], "libraries": loaded_libraries()}))


if __name__ == "__main__":
    main()
