#!/usr/bin/env python3
"""PyTorch (CPU) training throughput of the ResNet-style network of examples/resnet_cnn.hpp,
for compare_pytorch_resnet.sh.

The same network: 3x3 stem (32, no bias) + batch_norm + ReLU + MaxPool 2, a basic block
(32), a block to 64 channels with stride 2 and a 1x1 projection, a basic block (64), global
average pooling, Linear(64, 10). batch_norm with Keras's eps 1e-3 and momentum 0.99 (PyTorch
0.01); Adam 1e-3; cross-entropy on logits; batch B; T threads; random images. (TensorFlow's
`same` padding of the stride-2 3x3 convolution pads 0 before and 1 after a 14-pixel row,
PyTorch's padding=1 pads 1 and 1: the same cost, the same output size.) Prints one JSON line:
images/s (median of --reps blocks of --steps steps after a warm-up), in --format (contiguous
or channels_last: compare_pytorch_resnet.sh takes the faster, PyTorch at its best). Run it with Debian's
interpreter: /usr/bin/python3 (python3-torch).
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn


def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def bn(c):
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(conv3x3(cin, cout, stride), bn(cout), nn.ReLU(), conv3x3(cout, cout), bn(cout))
        self.projection = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), bn(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x):
        return torch.relu(self.body(x) + (self.projection(x) if self.projection is not None else x))


def resnet_cnn(width=32):
    return nn.Sequential(conv3x3(1, width), bn(width), nn.ReLU(), nn.MaxPool2d(2),
                         Block(width, width, 1), Block(width, 2 * width, 2), Block(2 * width, 2 * width, 1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, 10))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--format", choices=["contiguous", "channels_last"], default="contiguous")
    args = ap.parse_args()
    memory_format = torch.channels_last if args.format == "channels_last" else torch.contiguous_format
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    model = resnet_cnn().to(memory_format=memory_format)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    images = torch.rand(args.batch * 8, 1, 28, 28)
    labels = torch.randint(0, 10, (args.batch * 8,))
    batches = [(images[i * args.batch:(i + 1) * args.batch].contiguous(memory_format=memory_format),
                labels[i * args.batch:(i + 1) * args.batch]) for i in range(8)]

    def steps(n):
        for k in range(n):
            x, y = batches[k % 8]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            optimizer.step()

    steps(10)  # warm-up
    rates = []
    for _ in range(args.reps):
        start = time.perf_counter()
        steps(args.steps)
        rates.append(args.batch * args.steps / (time.perf_counter() - start))
    print(json.dumps({"bench": "train", "model": "resnet_cnn", "framework": "pytorch", "torch": torch.__version__,
                      "format": args.format,
                      "threads": torch.get_num_threads(), "batch": args.batch,
                      "images_per_s": round(statistics.median(rates), 1),
                      "images_per_s_reps": [round(r) for r in rates],
                      "parameters": sum(p.numel() for p in model.parameters())}))


if __name__ == "__main__":
    main()
