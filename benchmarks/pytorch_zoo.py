#!/usr/bin/env python3
"""The PyTorch twins of the model zoo (benchmarks/zoo/) and their CPU training throughput,
for compare_pytorch_zoo.sh.

    /usr/bin/python3 benchmarks/pytorch_zoo.py --network KEY [--threads T] [--batch B]
        [--format contiguous|channels_last] [--steps N] [--reps R]
    /usr/bin/python3 benchmarks/pytorch_zoo.py --parameters

Each twin has the staticnet network's layers and parameter count (batch norm's moving
statistics are buffers in PyTorch and state in staticnet; neither counts). Training steps
as bench_zoo takes them: Adam 1e-3, cross-entropy on logits (staticnet's softmax output
with its fused loss is the same computation), random images, 8 distinct batches in memory.
Prints one JSON line: images/s (median of --reps blocks of --steps steps after a warm-up),
the process's peak resident memory and the parameter count.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_reference import reference_cnn  # noqa: E402
from pytorch_resnet import resnet_cnn  # noqa: E402


def bn(c):
    return nn.BatchNorm2d(c)  # staticnet's batch_norm<0.9f, 1e-5f>


class BasicBlock(nn.Module):
    """torchvision's BasicBlock, a 1x1 projection where the shape changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), bn(cout), nn.ReLU(),
                                  nn.Conv2d(cout, cout, 3, 1, 1, bias=False), bn(cout))
        self.projection = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), bn(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x):
        return torch.relu(self.body(x) + (x if self.projection is None else self.projection(x)))


def resnet18():
    """torchvision's resnet18(num_classes=200); where torchvision is missing, the same layout
    written out (same layers, same parameter count)."""
    try:
        import torchvision
        return torchvision.models.resnet18(num_classes=200)
    except ImportError:
        layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), bn(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
        cin = 64
        for width in (64, 128, 256, 512):
            for block in range(2):
                layers.append(BasicBlock(cin, width, 2 if width != 64 and block == 0 else 1))
                cin = width
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 200))


def resnet20():
    layers = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), bn(16), nn.ReLU()]
    cin = 16
    for width in (16, 32, 64):
        for block in range(3):
            layers.append(BasicBlock(cin, width, 2 if width != 16 and block == 0 else 1))
            cin = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def vgg11_bn():
    layers, cin = [], 3
    for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), bn(v), nn.ReLU()]
            cin = v
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(512, 10))


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expansion (t times the channels, none for t = 1), 3x3 depthwise
    convolution (groups = channels), 1x1 projection; the input added back where the shape stays."""

    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hidden = cin * t
        expand = [nn.Conv2d(cin, hidden, 1, bias=False), bn(hidden), nn.ReLU6()] if t != 1 else []
        self.body = nn.Sequential(*expand,
                                  nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), bn(hidden), nn.ReLU6(),
                                  nn.Conv2d(hidden, cout, 1, bias=False), bn(cout))
        self.shortcut = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.shortcut else self.body(x)


def mobilenet():
    """benchmarks/zoo/mobilenet.hpp: MobileNetV2's blocks at 32x32, stages of 16-24-32-64."""
    layers, cin = [nn.Conv2d(3, 32, 3, 1, 1, bias=False), bn(32), nn.ReLU6()], 32
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 2, 2)):
        for i in range(n):
            layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
            cin = c
    return nn.Sequential(*layers, nn.Conv2d(64, 256, 1, bias=False), bn(256), nn.ReLU6(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 10))


# key: (constructor, input shape CHW, classes, batch)
NETWORKS = {
    "reference_cnn": (reference_cnn, (1, 28, 28), 10, 32),
    "resnet_example": (resnet_cnn, (1, 28, 28), 10, 32),
    "resnet18": (resnet18, (3, 64, 64), 200, 32),
    "resnet20": (resnet20, (3, 32, 32), 10, 32),
    "vgg11_bn": (vgg11_bn, (3, 32, 32), 10, 32),
    "mobilenet": (mobilenet, (3, 32, 32), 10, 32),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--network", choices=sorted(NETWORKS))
    ap.add_argument("--parameters", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--format", choices=["contiguous", "channels_last"], default="contiguous")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    if args.parameters:
        for key, (make, _, _, _) in NETWORKS.items():
            print(json.dumps({"network": key, "parameters": sum(p.numel() for p in make().parameters())}))
        return 0
    if args.network is None:
        ap.error("--network or --parameters")
    make, shape, classes, batch = NETWORKS[args.network]
    batch = args.batch or batch
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    memory_format = torch.channels_last if args.format == "channels_last" else torch.contiguous_format
    model = make().to(memory_format=memory_format)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    batches = [(torch.rand(batch, *shape).contiguous(memory_format=memory_format),
                torch.randint(0, classes, (batch,))) for _ in range(8)]

    def steps(n, first=[0]):
        for _ in range(n):
            x, y = batches[first[0] % 8]
            first[0] += 1
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            optimizer.step()

    steps(3)  # warm-up
    rates = []
    for _ in range(args.reps):
        start = time.perf_counter()
        steps(args.steps)
        rates.append(batch * args.steps / (time.perf_counter() - start))
    print(json.dumps({"bench": "zoo", "network": args.network, "framework": "pytorch", "torch": torch.__version__,
                      "format": args.format, "threads": torch.get_num_threads(), "batch": batch,
                      "images_per_s": round(statistics.median(rates), 2),
                      "images_per_s_reps": [round(r, 1) for r in rates],
                      "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "parameters": sum(p.numel() for p in model.parameters())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
