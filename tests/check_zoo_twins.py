"""The model zoo's networks and their PyTorch twins have the same parameter counts
(CTest: zoo:twins_have_equal_parameter_counts).

    /usr/bin/python3 check_zoo_twins.py ZOO_PARAMETERS PYTORCH_ZOO_PY

Exit status 77 (skipped) where python3-torch or python3-torchvision is missing.
"""
import json
import subprocess
import sys


def counts(lines):
    return {row["network"]: row["parameters"] for row in map(json.loads, lines.strip().splitlines())}


def main():
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError as e:
        print(f"SKIP: {e} (apt-get install python3-torch python3-torchvision)")
        return 77
    ours = counts(subprocess.run([sys.argv[1]], check=True, capture_output=True, text=True).stdout)
    theirs = counts(subprocess.run([sys.executable, sys.argv[2], "--parameters"], check=True, capture_output=True,
                                   text=True).stdout)
    failed = sorted(ours) != sorted(theirs)
    for key in sorted(ours):
        same = ours[key] == theirs.get(key)
        failed |= not same
        print(f"{key}: staticnet {ours[key]:,} parameters, PyTorch {theirs.get(key, 0):,}{'' if same else '  DIFFERENT'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
