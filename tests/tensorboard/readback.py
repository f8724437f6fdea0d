#!/usr/bin/env python3
"""Reads an example's TensorBoard event file back with independent readers.

    readback.py PROGRAM WORKDIR PROTO_DIR

Trains PROGRAM (fashion_mnist) for 2 epochs on 1,000 images with --tensorboard, --json and
--history, then reads the event file with Debian's python3-crc32c (the TFRecord framing and
its masked CRC-32Cs) and python3-protobuf (the Event and Summary messages, decoded with
classes that protoc compiles from PROTO_DIR's event.proto and summary.proto, which carry
TensorBoard's published field numbers). It checks every scalar of the run, step by step
and epoch by epoch (the epoch scalars against the --json lines and, bit for bit as float32,
against the history CSV), the histograms of every layer's weights and gradients, and the
hyper-parameter text. Exit status 77 (skipped) when a reader or the data set is missing.
"""
import csv
import importlib
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

EPOCHS, LIMIT, BATCH = 2, 1000, 32
STEPS_PER_EPOCH = math.ceil(LIMIT / BATCH)
DATA = "/usr/share/datasets/fashion-mnist"
# The reference CNN's layers with parameters: (name in the summary, kernel size, bias size).
LAYERS = [("conv2d_1", 3 * 3 * 1 * 32, 32), ("conv2d_3", 3 * 3 * 32 * 64, 64), ("conv2d_5", 3 * 3 * 64 * 128, 128),
          ("dense_8", 128 * 128, 128), ("dense_9", 128 * 10, 10)]


def skip(why):
    print(f"SKIPPED: {why}")
    sys.exit(77)


failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print(f"FAILED: {what}")


def f32(x):
    """x rounded to float32, as a scalar's simple_value holds it."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def masked(crc):
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def records(path, crc32c):
    """The data of each TFRecord, after checking both masked CRC-32Cs."""
    with open(path, "rb") as f:
        data = f.read()
    at, out = 0, []
    while at < len(data):
        assert len(data) - at >= 12, f"a record header is cut short at byte {at}"
        header = data[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[at + 8:at + 12])
        check(length_crc == masked(crc32c(header)), f"record at byte {at}: the length's CRC")
        body = data[at + 12:at + 12 + length]
        assert len(body) == length and len(data) >= at + 16 + length, f"the record at byte {at} is cut short"
        (body_crc,) = struct.unpack("<I", data[at + 12 + length:at + 16 + length])
        check(body_crc == masked(crc32c(body)), f"record at byte {at}: the data's CRC")
        out.append(body)
        at += 16 + length
    return out


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    program, workdir, proto_dir = sys.argv[1:]
    try:
        import crc32c
        import google.protobuf  # noqa: F401
    except ImportError as e:
        skip(f"{e.name} is missing (Debian: python3-crc32c, python3-protobuf)")
    if shutil.which("protoc") is None:
        skip("protoc is missing (Debian: protobuf-compiler)")
    if not os.path.isdir(DATA):
        skip(f"{DATA} is missing (Debian: dataset-fashion-mnist)")

    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    runs = os.path.join(workdir, "runs")
    history_csv = os.path.join(workdir, "history.csv")
    started = time.time()
    result = subprocess.run([program, "--epochs", str(EPOCHS), "--limit", str(LIMIT), "--batch-size", str(BATCH),
                             "--threads", "2", "--json", "--history", history_csv, "--tensorboard", runs],
                            capture_output=True, text=True, timeout=600)
    ended = time.time()
    if result.returncode != 0:
        sys.exit(f"{program} failed ({result.returncode}):\n{result.stderr}")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    json_epochs = {e["epoch"]: e for e in lines if "epoch" in e}
    with open(history_csv, newline="") as f:
        csv_epochs = {int(row["epoch"]): row for row in csv.DictReader(f)}
    check(sorted(json_epochs) == list(range(1, EPOCHS + 1)) == sorted(csv_epochs), "one history entry per epoch")

    # Classes compiled from the .proto files, by the protoc found here.
    generated = tempfile.mkdtemp(prefix="staticnet_tensorboard_proto_")
    try:
        subprocess.run(["protoc", f"--proto_path={proto_dir}", f"--python_out={generated}", "event.proto",
                        "summary.proto"], check=True)
        sys.path.insert(0, generated)
        event_pb2 = importlib.import_module("event_pb2")
        summary_pb2 = importlib.import_module("summary_pb2")
    finally:
        shutil.rmtree(generated, ignore_errors=True)

    files = os.listdir(runs)
    check(len(files) == 1, f"one event file per run, found {files}")
    check(re.fullmatch(r"events\.out\.tfevents\.\d{10}\..+", files[0]) is not None, f"the file name {files[0]}")
    events = [event_pb2.Event.FromString(r) for r in records(os.path.join(runs, files[0]), crc32c.crc32c)]
    print(f"{files[0]}: {len(events)} events")
    check(events[0].WhichOneof("what") == "file_version" and events[0].file_version == "brain.Event:2",
          "the first event is the file version brain.Event:2")
    times = [e.wall_time for e in events]
    check(times == sorted(times) and started - 1 <= times[0] and times[-1] <= ended + 1,
          "wall times rise within the run's time")

    scalars, histograms, texts = {}, {}, {}
    for e in events[1:]:
        check(e.WhichOneof("what") == "summary", f"event at step {e.step} holds a summary")
        for v in e.summary.value:
            kind = v.WhichOneof("value")
            table = {"simple_value": scalars, "histo": histograms, "tensor": texts}[kind]
            series = table.setdefault(v.tag, {})
            check(e.step not in series, f"{v.tag} is written once at step {e.step}")
            series[e.step] = v.simple_value if kind == "simple_value" else (v.histo if kind == "histo" else v)

    # Step scalars: every global step, once.
    steps = list(range(1, EPOCHS * STEPS_PER_EPOCH + 1))
    step_tags = ["batch/loss", "batch/accuracy", "batch/learning_rate", "batch/images_per_second"]
    epoch_tags = ["epoch/loss", "epoch/accuracy", "epoch/val_loss", "epoch/val_accuracy", "epoch/learning_rate",
                  "epoch/images_per_second", "epoch/seconds"]
    check(sorted(scalars) == sorted(step_tags + epoch_tags), f"the scalar tags: {sorted(scalars)}")
    for tag in step_tags:
        check(sorted(scalars.get(tag, {})) == steps, f"{tag} at steps 1..{steps[-1]}")
    for tag in epoch_tags:  # epoch scalars at the epoch number
        check(sorted(scalars.get(tag, {})) == list(range(1, EPOCHS + 1)), f"{tag} at steps 1..{EPOCHS}")
    for epoch in range(1, EPOCHS + 1):
        row, line = csv_epochs[epoch], json_epochs[epoch]
        last = epoch * STEPS_PER_EPOCH
        # One process: the running means at an epoch's last step are the epoch's.
        check(scalars["batch/loss"].get(last) == f32(float(row["loss"])), f"batch/loss at step {last} is epoch {epoch}'s")
        check(scalars["batch/accuracy"].get(last) == f32(float(row["accuracy"])),
              f"batch/accuracy at step {last} is epoch {epoch}'s")
        for step in range((epoch - 1) * STEPS_PER_EPOCH + 1, last + 1):
            check(scalars["batch/learning_rate"].get(step) == f32(float(row["learning_rate"])),
                  f"batch/learning_rate at step {step}")
            check(scalars["batch/images_per_second"].get(step, 0) > 0, f"batch/images_per_second at step {step}")
            check(0 <= scalars["batch/accuracy"].get(step, -1) <= 1, f"batch/accuracy at step {step} is a share")
        for name in ["loss", "accuracy", "val_loss", "val_accuracy"]:
            value = scalars[f"epoch/{name}"].get(epoch)
            check(value == f32(float(row[name])), f"epoch/{name} at step {epoch} equals the history CSV bit for bit")
            check(value is not None and abs(value - line[name]) <= 5e-7 + 1e-6 * abs(line[name]),
                  f"epoch/{name} at step {epoch}: {value} against --json's {line[name]}")
        check(scalars["epoch/learning_rate"].get(epoch) == f32(float(row["learning_rate"])),
              f"epoch/learning_rate at step {epoch}")
        check(abs(scalars["epoch/seconds"].get(epoch, -1) - line["seconds"]) <= 6e-4, f"epoch/seconds at step {epoch}")
        check(scalars["epoch/images_per_second"].get(epoch, 0) > 0, f"epoch/images_per_second at step {epoch}")

    # Histograms of every layer's kernel and bias, weights and gradients, after every epoch.
    expected = {}
    for name, kernel, bias in LAYERS:
        for kind in ["weights", "gradients"]:
            expected[f"{kind}/{name}/kernel"] = kernel
            expected[f"{kind}/{name}/bias"] = bias
    check(sorted(histograms) == sorted(expected), f"the histogram tags: {sorted(histograms)}")
    for tag, count in expected.items():
        series = histograms.get(tag, {})
        check(sorted(series) == list(range(1, EPOCHS + 1)), f"{tag} after every epoch")
        for epoch, h in series.items():
            where = f"{tag} at step {epoch}"
            check(h.num == count, f"{where}: {h.num} values, the layer has {count}")
            check(sum(h.bucket) == h.num and len(h.bucket) == len(h.bucket_limit) > 0, f"{where}: the buckets hold them all")
            check(list(h.bucket_limit) == sorted(h.bucket_limit) and h.bucket_limit[-1] == h.max, f"{where}: bucket limits")
            check(h.min <= h.sum / h.num <= h.max, f"{where}: the mean lies between min and max")
            check(h.sum_squares >= h.sum * h.sum / h.num * (1 - 1e-9), f"{where}: sum of squares >= sum^2 / n")
        if tag.startswith("weights/") and len(series) == EPOCHS:
            check(series[1].sum != series[EPOCHS].sum, f"{tag}: training changed the weights")

    # The hyper-parameters, as text for TensorBoard's text plugin.
    check(sorted(texts) == ["hyperparameters"], f"the text tags: {sorted(texts)}")
    value = next(iter(texts.get("hyperparameters", {None: None}).values()))
    if value is not None:
        check(value.metadata.plugin_data.plugin_name == "text", "the text plugin's name")
        check(value.tensor.dtype == summary_pb2.DataType.DT_STRING, "a DT_STRING tensor")
        text = value.tensor.string_val[0].decode()
        for row in [f"| epochs | {EPOCHS} |", f"| batch_size | {BATCH} |", f"| limit | {LIMIT} |",
                    "| optimizer | adam |", "| program | fashion_mnist |"]:
            check(row in text, f"the hyper-parameters hold '{row}'")

    n_scalars = sum(len(s) for s in scalars.values())
    n_histograms = sum(len(s) for s in histograms.values())
    if failures:
        sys.exit(f"{len(failures)} checks failed")
    print(f"OK: {n_scalars} scalars, {n_histograms} histograms and the hyper-parameter text read back, "
          f"every record's CRC-32C right")


if __name__ == "__main__":
    main()
