"""Makes the PyTorch ResNet fixtures of tests/onnx/fixtures/ (test_onnx.cpp, onnx:import_pytorch_resnets).

Each network is written the way PyTorch users write ResNets, exported with torch.onnx.export
(opset 13, symbolic batch, `training=TrainingMode.PRESERVE` so batch norms stay nodes, a
softmax at the end so the output is staticnet's), with random batch-norm statistics, and
next to it a JSON file with two inputs (NHWC) and PyTorch's outputs for them:

- resnet18_narrow: torchvision's ResNet-18 layout (7x7 stride-2 stem padded 3, max pooling
  3/2 padded 1, BasicBlocks with 1x1 stride-2 projections, global average pooling) at
  widths 8-16-32-64 on 32x32x3 images, 10 classes. Its stride-2 convolutions on even sizes
  pad 1 and 1: staticnet's `padding::symmetric<1>`.
- shortcut_first: a block whose `forward` computes the projection before the body, so the
  export lists it first; projection and body both start with a 3x3 stride-2 convolution and
  a batch norm of the same shapes, so only the graph tells them apart.
- zero_pad: TensorFlow's padding written in PyTorch: `ZeroPad2d((0, 1, 0, 1))` before an
  unpadded stride-2 convolution (staticnet's `padding::same`) and `ZeroPad2d(1)` before an
  unpadded 3x3 one (`padding::symmetric<1>`).
- inverted_residual: MobileNetV2's inverted residual block (depthwise 3x3 convolution with
  groups = channels, ReLU6 exported as Clip) and a strided depthwise convolution with a
  channel multiplier of 2 (`depthwise_conv2d`).
- grouped_dilated: grouped (ResNeXt's) and dilated (atrous) convolutions, and both at once.
- smooth_activations: SiLU, GELU (exact and tanh) and Hardswish, which torch.onnx.export
  writes at opset 13 as groups of operators (x * Sigmoid(x), x * (1 + Erf(x / sqrt 2)) / 2,
  ..., x * HardSigmoid(x)) that staticnet-onnx types as `silu`, `gelu<...>`, `hard_swish`.
- inception: an Inception module (a 1x1 branch, 1x1 then 3x3, 3x3 max pooling then 1x1;
  its `forward` runs the pooled branch first, so the export lists it first) and a DenseNet
  layer (the input concatenated with batch norm, ReLU and a 3x3 convolution of it):
  `torch.cat(dim=1)` exported as `Concat` (axis 1), staticnet's `concat<branch<...>...>`.
- resnet18_folded.onnx: resnet18_narrow exported in eval mode with the default
  `training=EVAL`, which folds every batch norm into the convolution before it; the import
  must refuse it and say how to export.

    /usr/bin/python3 tests/onnx/make_torch_resnets.py   (Debian: python3-torch, a few seconds)
"""
import json
import os

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")


def bn(c):
    return nn.BatchNorm2d(c)  # eps 1e-5, momentum 0.1: staticnet's batch_norm<0.9f, 1e-5f>


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: two 3x3 convolutions, a 1x1 projection where the shape changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = bn(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = bn(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), bn(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + identity)


def resnet18_narrow():
    widths = [8, 16, 32, 64]
    layers = [nn.Conv2d(3, widths[0], 7, stride=2, padding=3, bias=False), bn(widths[0]), nn.ReLU(),
              nn.MaxPool2d(3, stride=2, padding=1)]
    cin = widths[0]
    for stage, width in enumerate(widths):
        for block in range(2):
            layers.append(BasicBlock(cin, width, 2 if stage > 0 and block == 0 else 1))
            cin = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10), nn.Softmax(dim=1)]
    return nn.Sequential(*layers)


class ShortcutFirst(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.projection = nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), bn(cout))
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), bn(cout), nn.ReLU(),
                                  nn.Conv2d(cout, cout, 3, padding=1, bias=False), bn(cout))

    def forward(self, x):
        shortcut = self.projection(x)  # first: exported first
        return torch.relu(self.body(x) + shortcut)


def shortcut_first():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), bn(8), nn.ReLU(), ShortcutFirst(8, 16),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5), nn.Softmax(dim=1))


def zero_pad():
    return nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(),
                         nn.ZeroPad2d(1), nn.Conv2d(8, 8, 3), bn(8), nn.ReLU(),
                         nn.Flatten(), nn.Linear(8 * 6 * 6, 4), nn.Softmax(dim=1))


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expansion, 3x3 depthwise (groups = channels), 1x1 projection,
    ReLU6 after the first two, the input added back."""

    def __init__(self, c, expand):
        super().__init__()
        hidden = c * expand
        self.body = nn.Sequential(nn.Conv2d(c, hidden, 1, bias=False), bn(hidden), nn.ReLU6(),
                                  nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False), bn(hidden), nn.ReLU6(),
                                  nn.Conv2d(hidden, c, 1, bias=False), bn(c))

    def forward(self, x):
        return x + self.body(x)


def inverted_residual():
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), bn(8), nn.ReLU6(),
                         InvertedResidual(8, 4),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=8), nn.ReLU6(),  # a channel multiplier of 2
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5), nn.Softmax(dim=1))


def smooth_activations():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), bn(8), nn.SiLU(),
                         nn.Conv2d(8, 8, 3, padding=1), nn.GELU(),
                         nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.GELU(approximate="tanh"),
                         nn.Conv2d(8, 8, 1), nn.Hardswish(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5), nn.Softmax(dim=1))


class Inception(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.b1 = nn.Sequential(nn.Conv2d(cin, 4, 1, bias=False), bn(4), nn.ReLU())
        self.b2 = nn.Sequential(nn.Conv2d(cin, 4, 1, bias=False), bn(4), nn.ReLU(),
                                nn.Conv2d(4, 6, 3, padding=1, bias=False), bn(6), nn.ReLU())
        self.b3 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(cin, 4, 1))

    def forward(self, x):
        pooled = self.b3(x)  # first: exported first
        return torch.cat([self.b1(x), self.b2(x), pooled], dim=1)


class DenseLayer(nn.Module):
    def __init__(self, cin, growth):
        super().__init__()
        self.body = nn.Sequential(bn(cin), nn.ReLU(), nn.Conv2d(cin, growth, 3, padding=1, bias=False))

    def forward(self, x):
        return torch.cat([x, self.body(x)], dim=1)


def inception():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), bn(8), nn.ReLU(),
                         Inception(8), DenseLayer(14, 6),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(20, 5), nn.Softmax(dim=1))


def grouped_dilated():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), bn(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1, groups=4, bias=False), bn(8), nn.ReLU(),  # ResNeXt's grouped 3x3
                         nn.Conv2d(8, 8, 3, padding=2, dilation=2), nn.ReLU(),                   # atrous, the size kept
                         nn.Conv2d(8, 16, 3, stride=2, padding=2, dilation=2, groups=2),         # both, strided
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5), nn.Softmax(dim=1))


def randomize(model):
    """Batch-norm statistics and affine parameters away from their fresh values, so a wrong
    assignment shows."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    model.eval()
    return model


def export(model, name, shape, training=torch.onnx.TrainingMode.PRESERVE, outputs_file=True):
    inputs = torch.rand(2, *shape) * 2 - 1
    with torch.no_grad():
        outputs = model(inputs)
    torch.onnx.export(model, inputs, os.path.join(FIXTURES, name + ".onnx"), opset_version=13, training=training,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
    if outputs_file:
        with open(os.path.join(FIXTURES, name + ".json"), "w") as f:
            json.dump({"inputs_nhwc": inputs.permute(0, 2, 3, 1).flatten().tolist(),
                       "outputs": outputs.flatten().tolist(), "torch": torch.__version__}, f)
            f.write("\n")
    print("wrote", name)


def main():
    torch.manual_seed(18)
    resnet = randomize(resnet18_narrow())
    export(resnet, "resnet18_narrow", (3, 32, 32))
    export(resnet, "resnet18_folded", (3, 32, 32), training=torch.onnx.TrainingMode.EVAL, outputs_file=False)
    torch.manual_seed(19)
    export(randomize(shortcut_first()), "shortcut_first", (3, 8, 8))
    torch.manual_seed(20)
    export(randomize(zero_pad()), "zero_pad", (3, 12, 12))
    torch.manual_seed(21)
    export(randomize(inverted_residual()), "inverted_residual", (3, 16, 16))
    torch.manual_seed(22)
    net = randomize(smooth_activations())
    with torch.no_grad():
        net[7].weight.mul_(4.0)  # Hardswish's input past its kinks at -3 and 3 too
    export(net, "smooth_activations", (3, 8, 8))
    torch.manual_seed(23)
    export(randomize(inception()), "inception", (3, 8, 8))
    torch.manual_seed(24)
    export(randomize(grouped_dilated()), "grouped_dilated", (3, 12, 12))


if __name__ == "__main__":
    main()
