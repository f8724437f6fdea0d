#!/usr/bin/python3
"""The README's results and speed tables, generated from the committed result files.

    scripts/readme_tables.py            # rewrites the tables in README.md
    scripts/readme_tables.py --check    # fails (exit 1) when a table differs from its file

A table lives between `<!-- table:NAME -->` and `<!-- /table:NAME -->`; NAME is one of
TABLES below, each built from one file (benchmarks/results/README.md says where every
number was measured). The numbers are only ever edited in the result files, so the README
cannot drift from what was measured. Standard library only (run by CTest as docs:readme_tables).
"""

import argparse
import csv
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

REFERENCE_HISTORY = "docs/images/fashion_mnist_10_epochs.csv"
RESNET_HISTORY = "docs/images/fashion_mnist_resnet_24_epochs.jsonl"
PYTORCH_COMPARISONS = "benchmarks/results/pytorch_comparisons.csv"

# Epochs the README shows of each run (all of them are in the files).
REFERENCE_EPOCHS = [1, 2, 3, 5, 10]
RESNET_EPOCHS = [1, 3, 5, 7, 10, 13, 16, 18, 19, 20, 22, 23, 24]


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def reference_history(root):
    with open(root / REFERENCE_HISTORY, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def resnet_history(root):
    """The run's epochs, its wall time and the machine train_resnet.sh recorded."""
    epochs, wall, machine = [], None, None
    for line in (root / RESNET_HISTORY).read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if "epoch" in record:
            epochs.append(record)
        elif "wall_seconds" in record:
            wall, machine = record["wall_seconds"], record.get("machine")
    return epochs, wall, machine


def machine_name(recorded):
    """'Intel(R) Xeon(R) Processor (2 cores)' -> '2-core Intel Xeon', as the tables name machines."""
    cores = re.search(r"\((\d+) cores\)", recorded)
    name = re.sub(r"\(R\)|\(TM\)|Processor|\(\d+ cores\)", "", recorded)
    name = " ".join(name.split())
    return f"{cores.group(1)}-core {name}" if cores else name


def by_epoch(history, wanted, source):
    rows = {int(r["epoch"]): r for r in history}
    missing = [e for e in wanted if e not in rows]
    if missing:
        raise SystemExit(f"readme_tables: {source} has no epoch {missing[0]}")
    return [rows[e] for e in wanted]


def seconds_range(history, digits):
    low, high = min(r["seconds"] for r in history), max(r["seconds"] for r in history)
    return f"{low:.{digits}f}-{high:.{digits}f}"


def table_reference_cnn_epochs(root):
    rows = by_epoch(reference_history(root), REFERENCE_EPOCHS, REFERENCE_HISTORY)
    keys = ["loss", "accuracy", "val_loss", "val_accuracy"]
    return markdown_table(["epoch"] + keys, [[str(int(r["epoch"]))] + [f"{r[k]:.4f}" for k in keys] for r in rows])


def table_resnet_summary(root):
    reference = reference_history(root)
    last, best = reference[-1], max(reference, key=lambda r: r["val_accuracy"])
    resnet, wall, machine = resnet_history(root)
    return markdown_table(
        ["network", "epochs", "test accuracy", "wall time"],
        [["reference CNN (`fashion_mnist`, its 10-epoch run above)", str(int(last["epoch"])),
          f"{last['val_accuracy']:.4f} (best {best['val_accuracy']:.4f}, epoch {int(best['epoch'])})",
          f"{seconds_range(reference, 1)} s per epoch (2-core Intel Xeon, AVX-512, busy host)"],
         ["ResNet (`fashion_mnist_resnet`, its 24-epoch run below)", str(len(resnet)),
          f"**{resnet[-1]['val_accuracy']:.4f}**",
          f"**{wall / 60:.1f} min** ({wall} s) with its defaults (2 threads), "
          f"{seconds_range(resnet, 0)} s per epoch ({machine_name(machine)}, quiet host)"]])


def table_resnet_epochs(root):
    rows = by_epoch(resnet_history(root)[0], RESNET_EPOCHS, RESNET_HISTORY)
    accuracy = [f"{r['val_accuracy']:.4f}" for r in rows]
    accuracy[-1] = f"**{accuracy[-1]}**"  # the result of the run
    return markdown_table(["epoch"] + [str(r["epoch"]) for r in rows],
                          [["val_accuracy"] + accuracy, ["seconds"] + [f"{r['seconds']:.0f}" for r in rows]])


def pytorch_comparisons(root, network):
    with open(root / PYTORCH_COMPARISONS, newline="") as f:
        rows = [row for row in csv.DictReader(f) if row["network"] == network]
    for row in rows:  # the ratio as reported must follow from the two measurements
        ours, theirs = float(row["staticnet"]), float(row["pytorch"])
        lead = theirs / ours if row["unit"] == "s" else ours / theirs
        if abs(lead - float(row["ratio"])) > 0.006:
            raise SystemExit(f"readme_tables: {PYTORCH_COMPARISONS}: {network}, {row['time_utc']}, "
                             f"{row['threads']} thread(s): ratio {row['ratio']} but the values give {lead:.3f}")
    return rows


def thousands(text):
    value = float(text)
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def comparison_rows(rows, first_column):
    return [[first_column(r), r["threads"], thousands(r["staticnet"]) + " " + r["unit"],
             thousands(r["pytorch"]) + " " + r["unit"], f"**{float(r['ratio']):.2f}x**"] for r in rows]


def table_reference_cnn_pytorch(root):
    rows = pytorch_comparisons(root, "reference_cnn")
    return markdown_table(["measurement (run)", "threads", "staticnet", "PyTorch", "staticnet's lead"],
                          comparison_rows(rows, lambda r: f"{r['measure']} ({r['run']})"))


def table_resnet_pytorch(root):
    rows = pytorch_comparisons(root, "resnet")
    return markdown_table(["run (2026-11-30, UTC)", "threads", "staticnet", "PyTorch", "staticnet's lead"],
                          comparison_rows(rows, lambda r: f"{r['time_utc']} ({r['code']}, {r['run']})"))


TABLES = {
    "reference_cnn_epochs": table_reference_cnn_epochs,
    "reference_cnn_pytorch": table_reference_cnn_pytorch,
    "resnet_summary": table_resnet_summary,
    "resnet_epochs": table_resnet_epochs,
    "resnet_pytorch": table_resnet_pytorch,
}

OPEN = re.compile(r"^<!-- table:([a-z0-9_]+) -->$")


def rewrite(text, root):
    """The README with every table regenerated, and the problems found (each a line)."""
    lines, out, problems, seen = text.split("\n"), [], [], set()
    i = 0
    while i < len(lines):
        out.append(lines[i])
        match = OPEN.match(lines[i].strip())
        i += 1
        if not match:
            continue
        name = match.group(1)
        close = f"<!-- /table:{name} -->"
        end = next((j for j in range(i, len(lines)) if lines[j].strip() == close), None)
        if name not in TABLES:
            problems.append(f"table {name}: no such table (known: {', '.join(TABLES)})")
            continue
        if end is None:
            problems.append(f"table {name}: no closing '{close}'")
            continue
        seen.add(name)
        old, new = lines[i:end], TABLES[name](root)
        for k in range(max(len(old), len(new))):
            have = old[k] if k < len(old) else "(nothing)"
            want = new[k] if k < len(new) else "(nothing)"
            if have != want:
                problems.append(f"table {name}, line {k + 1} differs from its result file:\n"
                                f"  README:    {have}\n  generated: {want}")
                break
        out += new
        out.append(lines[end])
        i = end + 1
    for name in TABLES:
        if name not in seen:
            problems.append(f"table {name}: no '<!-- table:{name} -->' ... '<!-- /table:{name} -->' in the README")
    return "\n".join(out), problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on a difference")
    parser.add_argument("--readme", type=pathlib.Path, default=ROOT / "README.md")
    parser.add_argument("--root", type=pathlib.Path, default=ROOT, help="where the result files are")
    args = parser.parse_args()
    text = args.readme.read_text()
    new, problems = rewrite(text, args.root)
    if args.check:
        for p in problems:
            print(f"{args.readme}: {p}", file=sys.stderr)
        if problems:
            print("(regenerate with scripts/readme_tables.py after editing the result files)", file=sys.stderr)
            return 1
        print(f"{args.readme}: {len(TABLES)} tables agree with their result files")
        return 0
    structural = [p for p in problems if "differs" not in p]
    for p in structural:
        print(f"{args.readme}: {p}", file=sys.stderr)
    if new != text:
        args.readme.write_text(new)
        print(f"{args.readme}: tables rewritten")
    return 1 if structural else 0


if __name__ == "__main__":
    sys.exit(main())
