"""Makes the PyTorch fixtures of tests/onnx/fixtures/ (test_onnx.cpp loads them).

reference_cnn_torch.onnx: the reference CNN trained in PyTorch.

The PyTorch module below is the reference CNN of docs/architecture.md layer for layer (the
one in docs/onnx.md). It is trained for one epoch on Fashion-MNIST (batch 32, Adam 1e-3,
seed 0, one thread), exported with torch.onnx.export (opset 13, symbolic batch) with a
softmax at the end so its output is staticnet's, and its test accuracy (all 10,000 test
images) is written next to it, in reference_cnn_torch.json. test_onnx imports the file with
load_onnx_weights and checks that `evaluate` gives that accuracy within 0.001.

small_torch.onnx: a small network with batch norm (random statistics), a stride-2
convolution and a flatten of a 3x3x6 image (where PyTorch's channels-first order differs
from staticnet's), exported keeping its BatchNormalization; small_torch.json holds inputs
(NHWC) and PyTorch's outputs for them.

    /usr/bin/python3 tests/onnx/make_torch_fixture.py   (Debian: python3-torch, about a minute)
"""
import gzip
import json
import os
import sys

import numpy as np
import torch
from torch import nn

DATA = "/usr/share/datasets/fashion-mnist"
HERE = os.path.dirname(os.path.abspath(__file__))


def reference_cnn():
    """staticnet's reference_cnn (examples/reference_cnn.hpp) in PyTorch. Input NCHW."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(128, 128), nn.ReLU(),
        nn.Linear(128, 10))  # logits: CrossEntropyLoss holds the softmax


def small():
    """sequential<input<5, 5, 1>, conv2d<4, 3, identity, 1, padding::same>, batch_norm<0.9f, 1e-5f>, relu,
    conv2d<6, 3, tanh, 2, padding::same>, flatten, dense<3, softmax>> in PyTorch."""
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.Tanh(),
        nn.Flatten(), nn.Linear(54, 3), nn.Softmax(dim=1))


def make_small():
    torch.manual_seed(1)
    model = small()
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
        model[1].weight.uniform_(0.5, 1.5)
        model[1].bias.uniform_(-0.5, 0.5)
    model.eval()
    inputs = torch.rand(4, 1, 5, 5)
    with torch.no_grad():
        outputs = model(inputs)
    # PyTorch folds a batch norm into the convolution before it unless told to keep the graph.
    torch.onnx.export(model, inputs, os.path.join(HERE, "fixtures", "small_torch.onnx"), opset_version=13,
                      training=torch.onnx.TrainingMode.PRESERVE, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
    with open(os.path.join(HERE, "fixtures", "small_torch.json"), "w") as f:
        json.dump({"inputs_nhwc": inputs.permute(0, 2, 3, 1).flatten().tolist(),
                   "outputs": outputs.flatten().tolist()}, f)
        f.write("\n")


def idx(name):
    with gzip.open(os.path.join(DATA, name)) as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def main():
    make_small()
    if "--small-only" in sys.argv:
        return 0
    torch.manual_seed(0)
    torch.set_num_threads(1)
    train_x = torch.from_numpy(idx("train-images-idx3-ubyte.gz").astype(np.float32) / 255.0).unsqueeze(1)
    train_y = torch.from_numpy(idx("train-labels-idx1-ubyte.gz").astype(np.int64))
    test_x = torch.from_numpy(idx("t10k-images-idx3-ubyte.gz").astype(np.float32) / 255.0).unsqueeze(1)
    test_y = torch.from_numpy(idx("t10k-labels-idx1-ubyte.gz").astype(np.int64))

    model = reference_cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    order = torch.randperm(len(train_x))
    for step, first in enumerate(range(0, len(train_x), 32)):
        batch = order[first:first + 32]
        optimizer.zero_grad()
        loss = loss_fn(model(train_x[batch]), train_y[batch])
        loss.backward()
        optimizer.step()
        if step % 500 == 0:
            print(f"step {step}: loss {loss.item():.4f}", flush=True)

    model.eval()
    exported = nn.Sequential(model, nn.Softmax(dim=1)).eval()
    with torch.no_grad():
        probabilities = torch.cat([exported(test_x[i:i + 1000]) for i in range(0, len(test_x), 1000)])
    accuracy = (probabilities.argmax(1) == test_y).float().mean().item()
    print(f"PyTorch test accuracy: {accuracy:.4f}")

    out = os.path.join(HERE, "fixtures", "reference_cnn_torch.onnx")
    torch.onnx.export(exported, torch.zeros(1, 1, 28, 28), out, opset_version=13,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
    with open(os.path.join(HERE, "fixtures", "reference_cnn_torch.json"), "w") as f:
        json.dump({"test_accuracy": round(accuracy, 6), "epochs": 1, "batch_size": 32, "optimizer": "Adam(lr=1e-3)",
                   "seed": 0, "torch": torch.__version__}, f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
