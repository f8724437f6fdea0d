"""PyTorch's ResNets into staticnet and back out (CTest: onnx:import_pytorch_resnets).

For each network: PyTorch trains it 20 Adam steps on random images and exports it
(opset 13, `training=TrainingMode.PRESERVE`, a dynamic batch axis); staticnet-onnx writes
its staticnet type; that header is compiled with tests/onnx/import_check.cpp, which loads
the file with load_onnx_weights, compares `predict` with PyTorch's float64 eval-mode
probabilities on 64 images, trains a few epochs (the loss must fall) and writes save_onnx's
file, which must load back bitwise and pass onnx.checker, and OpenCV's dnn must compute what
staticnet does (where it can read the file: OpenCV 4.6 has no `Clip` with input bounds, relu6).

- resnet18: torchvision's `resnet18(num_classes=10)` on 64x64x3 images (tolerance 1e-4);
- shortcut_first: a small ResNet whose blocks compute the projection before the body, the
  projection's parameters shaped as the body's first layers (1e-5): never swapped;
- padded: PyTorch's symmetric padding on even images, a stride-2 3x3 convolution and
  `MaxPool2d(3, 2, 1)`, with `LeakyReLU` and `ReLU6` (1e-5);
- inception: an Inception module (1x1, 1x1 then 3x3, and pooled branches, the pooled one
  computed first) and two DenseNet layers, `torch.cat(dim=1)` as staticnet's `concat` (1e-5).
Then an export with folded batch norms (eval mode, the default) must be refused, naming
`TrainingMode.PRESERVE`.

    /usr/bin/python3 import_pytorch_resnets.py --tool STATICNET_ONNX --cxx CXX --flags "FLAGS" \
        --checker import_check.cpp --work DIR

Exit status 77 (skipped) where python3-torch, python3-torchvision, python3-onnx or
python3-opencv is missing.
"""
import argparse
import os
import shlex
import subprocess
import sys
import time

SKIP = 77


def log(text):
    print(text, flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tool", required=True)
    parser.add_argument("--cxx", required=True)
    parser.add_argument("--flags", default="")
    parser.add_argument("--checker", required=True)
    parser.add_argument("--work", required=True)
    args = parser.parse_args()
    try:
        import numpy as np
        import torch
        import torchvision
        import onnx
        import cv2
    except ImportError as e:
        log(f"SKIP: {e} (apt-get install python3-torch python3-torchvision python3-onnx python3-opencv)")
        return SKIP
    from torch import nn

    os.makedirs(args.work, exist_ok=True)
    torch.set_num_threads(2)

    class ShortcutFirst(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            # The projection has the shapes of the body's first two layers.
            self.projection = nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                                            nn.BatchNorm2d(cout))
            self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                                      nn.BatchNorm2d(cout), nn.ReLU(),
                                      nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            shortcut = self.projection(x)
            return torch.relu(self.body(x) + shortcut)

    def shortcut_first():
        return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                             ShortcutFirst(16, 32, 2), ShortcutFirst(32, 32, 1), ShortcutFirst(32, 64, 2),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))

    def padded():  # with LeakyReLU and ReLU6 (staticnet's leaky_relu<0.1f> and relu6)
        return nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.LeakyReLU(0.1),
                             nn.MaxPool2d(3, stride=2, padding=1),
                             nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU6(),
                             nn.Flatten(), nn.Linear(32 * 4 * 4, 10))

    def conv_bn_relu(cin, cout, k, stride=1):
        return [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    class Inception(nn.Module):
        def __init__(self, cin):
            super().__init__()
            self.b1 = nn.Sequential(*conv_bn_relu(cin, 8, 1))
            self.b2 = nn.Sequential(*conv_bn_relu(cin, 8, 1), *conv_bn_relu(8, 12, 3))
            self.b3 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), *conv_bn_relu(cin, 8, 1))

        def forward(self, x):
            pooled = self.b3(x)  # first: exported first
            return torch.cat([self.b1(x), self.b2(x), pooled], dim=1)

    class DenseLayer(nn.Module):
        def __init__(self, cin, growth):
            super().__init__()
            self.body = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, growth, 3, padding=1, bias=False))

        def forward(self, x):
            return torch.cat([x, self.body(x)], dim=1)

    def inception():
        return nn.Sequential(*conv_bn_relu(3, 16, 3, 2), Inception(16), nn.MaxPool2d(2),
                             DenseLayer(28, 12), DenseLayer(40, 12),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(52, 10))

    networks = [("resnet18", lambda: torchvision.models.resnet18(num_classes=10), 64, 1e-4),
                ("shortcut_first", shortcut_first, 32, 1e-5),
                ("padded", padded, 32, 1e-5),
                ("inception", inception, 32, 1e-5)]
    headers = []
    images = {}
    for name, make, size, tolerance in networks:
        torch.manual_seed(1)
        model = make()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.train()
        for _ in range(20):
            x = torch.rand(16, 3, size, size)
            y = torch.randint(0, 10, (16,))
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        exported = nn.Sequential(model, nn.Softmax(dim=1)).eval()
        x = torch.rand(64, 3, size, size)
        labels = torch.randint(0, 10, (64,), dtype=torch.int32)
        with torch.no_grad():
            reference = exported.double()(x.double()).numpy()
        exported.float()
        path = os.path.join(args.work, name + ".onnx")
        torch.onnx.export(exported, x[:1], path, opset_version=13, training=torch.onnx.TrainingMode.PRESERVE,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
        x.permute(0, 2, 3, 1).contiguous().numpy().astype(np.float32).tofile(os.path.join(args.work, name + ".images.f32"))
        reference.astype(np.float64).tofile(os.path.join(args.work, name + ".reference.f64"))
        labels.numpy().astype(np.int32).tofile(os.path.join(args.work, name + ".labels.i32"))
        images[name] = x.numpy()
        header = os.path.join(args.work, name + ".hpp")
        run = subprocess.run([args.tool, path, "--name", name, "--output", header])
        if run.returncode != 0:
            log(f"FAIL: staticnet-onnx could not type {name}.onnx")
            return 1
        headers.append(header)
        log(f"{name}: exported and typed by staticnet-onnx")
        if name == "resnet18":  # the same network exported the default way, batch norms folded
            torch.onnx.export(exported, x[:1], os.path.join(args.work, "resnet18_folded.onnx"), opset_version=13,
                              input_names=["input"], output_names=["output"])

    with open(os.path.join(args.work, "generated.hpp"), "w") as f:
        f.write("#pragma once\n" + "".join(f'#include "{os.path.basename(h)}"\n' for h in headers))
    checker = os.path.join(args.work, "import_check")
    start = time.time()
    compile_command = [args.cxx, "-std=c++20", "-O2", *shlex.split(args.flags), "-I", args.work, args.checker,
                       "-o", checker, "-pthread"]
    run = subprocess.run(compile_command)
    if run.returncode != 0:
        log("FAIL: the generated headers do not compile: " + " ".join(compile_command))
        return 1
    log(f"the generated headers compiled with the checker in {time.time() - start:.0f} s")

    failed = False
    for name, _, _, tolerance in networks:
        run = subprocess.run([checker, name, args.work, str(tolerance)])
        if run.returncode != 0:
            log(f"FAIL: {name} in staticnet")
            failed = True
            continue
        saved = os.path.join(args.work, name + ".staticnet.onnx")
        onnx.checker.check_model(saved, full_check=True)
        ours = np.fromfile(os.path.join(args.work, name + ".staticnet.f32"), dtype=np.float32).reshape(64, 10)
        if any(n.op_type == "Clip" for n in onnx.load(saved).graph.node):
            # OpenCV 4.6 has no Clip with its bounds as inputs (opset 11 and later): the checker
            # program's round trip through load_onnx_weights covers this file instead.
            log(f"{name}: save_onnx's file passes onnx.checker; OpenCV 4.6 cannot read its Clip (relu6), "
                "the round trip through load_onnx_weights checked it")
            continue
        net = cv2.dnn.readNetFromONNX(saved)
        # save_onnx's input is NHWC, as staticnet takes it.
        net.setInput(np.ascontiguousarray(images[name].transpose(0, 2, 3, 1)))
        theirs = net.forward()
        difference = float(np.abs(theirs - ours).max())
        log(f"{name}: save_onnx's file passes onnx.checker; OpenCV's dnn differs from staticnet by {difference:.3g}")
        if difference > 1e-4:
            log(f"FAIL: {name}: OpenCV and staticnet differ by more than 1e-4")
            failed = True

    folded = subprocess.run([args.tool, os.path.join(args.work, "resnet18_folded.onnx")], capture_output=True, text=True)
    # The folded file is a different network: staticnet-onnx types it with biased convolutions
    # and no batch norms, and loading it into the real ResNet-18 type must be refused.
    probe = os.path.join(args.work, "folded_probe.cpp")
    with open(probe, "w") as f:
        f.write('#include <staticnet/io/onnx.hpp>\n#include <staticnet/staticnet.hpp>\n#include <cstdio>\n'
                '#include "resnet18.hpp"\nint main(int, char** argv) {\n'
                '    auto net = std::make_unique<resnet18>();\n'
                '    try { staticnet::load_onnx_weights(*net, argv[1]); }\n'
                '    catch (const std::exception& e) { std::puts(e.what()); return 0; }\n'
                '    std::puts("loaded"); return 1;\n}\n')
    run = subprocess.run([args.cxx, "-std=c++20", "-O1", *shlex.split(args.flags), "-I", args.work, probe,
                          "-o", probe[:-4], "-pthread"])
    if run.returncode != 0:
        log("FAIL: the folded-export probe does not compile")
        return 1
    run = subprocess.run([probe[:-4], os.path.join(args.work, "resnet18_folded.onnx")], capture_output=True, text=True)
    log("folded batch norms: " + run.stdout.strip())
    if run.returncode != 0 or "TrainingMode.PRESERVE" not in run.stdout:
        log("FAIL: a folded export was not refused with a message naming TrainingMode.PRESERVE")
        failed = True
    if folded.returncode != 0 or "staticnet::batch_norm" in folded.stdout:
        log("FAIL: staticnet-onnx should type the folded file as convolutions with a bias and no batch norm")
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
