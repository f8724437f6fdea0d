"""save_onnx's files checked by independent ONNX tools.

Runs EXPORTER (tests/onnx/export_models.cpp) into OUT_DIR, then for each model it wrote:
onnx.checker.check_model, and OpenCV's dnn module on the same 1,000 test images, whose
probabilities must match staticnet's `predict` within 1e-5 absolute.

    /usr/bin/python3 check_interop.py EXPORTER OUT_DIR

Exit status 77 (skipped) when python3-onnx, python3-opencv or the data set is missing.
"""
import subprocess
import sys

SKIP = 77
TOLERANCE = 1e-5


def main():
    exporter, out_dir = sys.argv[1], sys.argv[2]
    try:
        import numpy as np
        import onnx
        import cv2
    except ImportError as e:
        print(f"SKIP: {e} (apt-get install python3-onnx python3-opencv)")
        return SKIP
    run = subprocess.run([exporter, out_dir])
    if run.returncode != 0:
        return run.returncode
    failed = False
    for name in ("reference_cnn", "every_layer", "resnet_layers", "torch_padding", "depthwise", "smooth_activations",
                 "concat_branches", "grouped"):
        path = f"{out_dir}/{name}.onnx"
        model = onnx.load(path)
        onnx.checker.check_model(model, full_check=True)
        images = np.fromfile(f"{out_dir}/{name}.images.f32", dtype="<f4").reshape(1000, 28, 28, 1)
        expected = np.fromfile(f"{out_dir}/{name}.probabilities.f32", dtype="<f4").reshape(1000, 10)
        net = cv2.dnn.readNetFromONNX(path)
        net.setInput(images)
        got = net.forward()
        difference = float(np.max(np.abs(got.reshape(1000, 10) - expected)))
        verdict = "ok" if difference <= TOLERANCE else "FAILED"
        print(f"{name}: onnx.checker ok (opset {model.opset_import[0].version}); OpenCV {cv2.__version__} "
              f"vs predict on 1000 images: max abs difference {difference:.3g} (limit {TOLERANCE}) {verdict}")
        failed |= difference > TOLERANCE
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
