#!/usr/bin/env python3
"""One full training epoch of staticnet's reference CNN in PyTorch, for compare_pytorch_epoch.sh.

What `fashion_mnist --epochs 1` does, written to be fast in PyTorch: the Fashion-MNIST IDX
files read into tensors once (not timed, as the example's loading is not), then the timed
epoch: a shuffled pass over the 60,000 training images in batches of --batch (index the
in-memory tensor, no DataLoader, no per-sample Python), Adam 1e-3, cross-entropy on logits,
then the test pass over the 10,000 test images (no_grad, eval mode, batches of 256 like
staticnet's evaluate). Each --format is a fresh model and optimizer:

  contiguous     NCHW tensors, PyTorch's default
  channels_last  model and inputs in torch.channels_last (oneDNN's NHWC kernels, usually
                 PyTorch's fastest CPU path)

Prints one JSON line: per format the epoch seconds (train + test), the train-only seconds,
the test accuracy, plus the thread count and the BLAS/oneDNN libraries loaded. Run with
Debian's interpreter: /usr/bin/python3 (python3-torch).
"""
import argparse
import gzip
import json
import os
import time

import numpy as np
import torch
import torch.nn as nn

from pytorch_reference import loaded_libraries, reference_cnn


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def find(directory, stem):
    for name in (stem, stem + ".gz"):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    raise SystemExit(f"pytorch_epoch.py: no {stem}[.gz] in {directory}")


def load(directory, split):
    images = read_idx(find(directory, f"{split}-images-idx3-ubyte"))
    labels = read_idx(find(directory, f"{split}-labels-idx1-ubyte"))
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)  # N, 1, 28, 28
    return x, torch.from_numpy(labels.astype(np.int64))


def epoch(fmt, train, test, batch, seed):
    torch.manual_seed(seed)
    memory_format = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
    model = reference_cnn().to(memory_format=memory_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    x_train = train[0].contiguous(memory_format=memory_format)
    x_test = test[0].contiguous(memory_format=memory_format)
    y_train, y_test = train[1], test[1]
    n = x_train.shape[0]

    start = time.perf_counter()
    model.train()
    order = torch.randperm(n)
    for first in range(0, n, batch):
        index = order[first:first + batch]
        x = x_train[index].contiguous(memory_format=memory_format)
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y_train[index]).backward()
        optimizer.step()
    trained = time.perf_counter()
    model.eval()
    correct = 0
    with torch.no_grad():
        for first in range(0, x_test.shape[0], 256):
            logits = model(x_test[first:first + 256])
            correct += int((logits.argmax(1) == y_test[first:first + 256]).sum())
    end = time.perf_counter()
    return {"seconds": round(end - start, 3), "train_seconds": round(trained - start, 3),
            "test_accuracy": correct / x_test.shape[0]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--format", nargs="+", default=["contiguous", "channels_last"],
                    choices=["contiguous", "channels_last"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train, test = load(args.data, "train"), load(args.data, "t10k")
    result = {"bench": "epoch", "framework": "pytorch", "torch": torch.__version__,
              "threads": torch.get_num_threads(), "batch": args.batch}
    for fmt in args.format:
        result[fmt] = epoch(fmt, train, test, args.batch, args.seed)
    result["libraries"] = loaded_libraries()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
