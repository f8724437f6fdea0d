#!/usr/bin/python3
"""The README table checker must fail, naming the table and the line, on a README whose
table was edited by hand and on a result file that changed without the README (CTest:
docs:readme_tables_detects_changes). Without this, a checker that always passes would pass."""

import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "readme_tables.py"
sys.path.insert(0, str(SCRIPT.parent))
import readme_tables  # noqa: E402  (the list of tables and the files they come from)

FILES = [readme_tables.REFERENCE_HISTORY, readme_tables.RESNET_HISTORY, readme_tables.PYTORCH_COMPARISONS]


def check(root):
    run = subprocess.run([sys.executable, str(SCRIPT), "--check", "--root", str(root), "--readme",
                          str(root / "README.md")], capture_output=True, text=True)
    return run.returncode, run.stdout + run.stderr


def copy_tree(into):
    for name in ["README.md"] + FILES:
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, into / name)


def expect_failure(root, what, *needles):
    code, out = check(root)
    missing = [n for n in needles if n not in out]
    if code == 0 or missing:
        sys.exit(f"FAIL: {what}: exit {code}, missing {missing} in:\n{out}")
    print(f"ok: {what}")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        copy_tree(root)
        code, out = check(root)
        if code != 0:
            sys.exit(f"FAIL: the unaltered copy does not pass:\n{out}")

        # Every table: change one cell by hand, the checker names that table and line.
        original = (root / "README.md").read_text()
        for name in readme_tables.TABLES:
            start = original.index(f"<!-- table:{name} -->")
            row_start = original.index("\n| ", original.index("| --- |", start)) + 1
            row_end = original.index("\n", row_start)
            row = original[row_start:row_end]
            altered = row.replace("|", "| 9", 2).replace("| 9", "|", 1)  # a 9 before the second cell
            (root / "README.md").write_text(original[:row_start] + altered + original[row_end:])
            expect_failure(root, f"hand-edited table {name}", f"table {name}, line 3", altered)
        (root / "README.md").write_text(original)

        # A result file changed: the table built from it no longer agrees.
        history = root / readme_tables.REFERENCE_HISTORY
        history.write_text(history.read_text().replace("\n1,0.5642729810220042,", "\n1,0.6642729810220042,"))
        expect_failure(root, "changed result file", "table reference_cnn_epochs, line 3", "0.6643")
        shutil.copy(ROOT / readme_tables.REFERENCE_HISTORY, history)

        # A ratio that does not follow from its two measurements.
        comparisons = root / readme_tables.PYTORCH_COMPARISONS
        comparisons.write_text(comparisons.read_text().replace(",10.22,21.83,s,2.14,", ",10.22,21.83,s,2.41,"))
        expect_failure(root, "inconsistent ratio", "ratio 2.41")
        shutil.copy(ROOT / readme_tables.PYTORCH_COMPARISONS, comparisons)

        # A table whose markers were lost.
        (root / "README.md").write_text(original.replace("<!-- /table:resnet_epochs -->\n", ""))
        expect_failure(root, "missing closing marker", "table resnet_epochs: no closing")


if __name__ == "__main__":
    main()
