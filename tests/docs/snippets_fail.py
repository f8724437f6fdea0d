#!/usr/bin/python3
"""scripts/doc_snippets.py must fail on a copy of the docs with a broken snippet (naming its
Markdown file and line) and on a ```cpp block that is neither a program nor marked
(CTest: docs:snippets_detects_errors). Arguments: the compiler flags docs:snippets uses."""

import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "doc_snippets.py"


def run(root, *args):
    done = subprocess.run([sys.executable, str(SCRIPT), "--root", str(root), *args], capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr


def main():
    cxx, flags = sys.argv[1], sys.argv[2:]
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        shutil.copy(ROOT / "README.md", root / "README.md")
        shutil.copytree(ROOT / "docs", root / "docs", ignore=shutil.ignore_patterns("images"))
        page = root / "docs" / "training.md"
        original = page.read_text()

        # A statement that names nothing real, in the early_stopping block.
        anchor = "auto h = model.fit(train, {.epochs = 100, .validation = &test}, stop);\n"
        line = original[:original.index(anchor)].count("\n") + 1
        page.write_text(original.replace(anchor, anchor + "sn::no_such_callback broken;\n"))
        code, out = run(root, "--cxx", cxx, "--only", "docs/training.md", "--", *flags)
        if code == 0 or f"docs/training.md:{line + 1}" not in out or "no_such_callback" not in out:
            sys.exit(f"FAIL: a broken snippet was not reported at docs/training.md:{line + 1} (exit {code}):\n{out}")
        print(f"ok: the broken snippet is reported at docs/training.md:{line + 1}")

        # A block that is not a program and says nothing about how to compile it.
        page.write_text(original + "\n```cpp\nmodel.fit(train);\n```\n")
        code, out = run(root, "--list")
        if code == 0 or "has no '<!-- snippet:" not in out:
            sys.exit(f"FAIL: an unmarked fragment was accepted (exit {code}):\n{out}")
        print("ok: an unmarked fragment is refused")


if __name__ == "__main__":
    main()
