#!/usr/bin/python3
"""A projection (a model, not a measurement) of data-parallel step time past the ranks measured.

    python3 benchmarks/scaling_model.py MEASURED.jsonl [--strong-batch G] [--link-gbit 10] [--link-us 100]

MEASURED.jsonl is what benchmarks/scaling_projection.sh writes: bench_allreduce lines at 1-4 ranks
and bench_train lines at 1 and 2 ranks (scaling.sh --no-netns, plus deterministic mode).

Model (python3 and numpy only):
- allreduce of n bytes on P ranks, ring: t = 2(P-1) alpha + 2(P-1)/P * n / B. At P = 2 this is
  2 alpha + n / B, which the 2-rank sweep fits (least squares on relative error), in two pieces
  because Open MPI's shared-memory transport changes protocol: messages below 64 KiB and from
  64 KiB up (the gradient arenas). Recursive halving/doubling (Rabenseifner) has the same
  bandwidth term and 2 log2(P) alpha; it is shown for the network, where alpha is large.
- step time t(P) = t(1) + allreduce(P) + c, where t(1) is the measured 1-rank step (compute,
  gradient sync's local part, Adam) and c the calibration: whatever the measured 2-rank step took
  beyond t(1) and the 2-rank allreduce model (waiting for the slower rank, two ranks sharing
  caches and memory, the mode's own costs). So the model reproduces the 2-rank measurement; c is
  held constant for P > 2, while in reality the slowest of P ranks waits longer as P grows.
- weak scaling: 32 images per rank; strong scaling: global batch G fixed, compute = (measured
  compute per image) x G / P, the rest of the step unchanged.
"""
import argparse
import json
import math
import sys

import numpy as np

# Parameter blocks of the reference CNN, in floats (conv1, conv2, conv3, dense 128, dense 10),
# each padded to the arena's alignment as sequential.hpp does: the overlapped mode sends one
# allreduce per block.
REFERENCE_BLOCKS = [320, 18496, 73856, 16512, 1290]
RANKS = [1, 2, 4, 8, 16, 32, 64, 128, 256]
# Device machine (another machine, another session: ../shared/device/README.md, 2026-11-26):
# Open MPI allreduce of 110,000 floats, median us, and its FMA peaks.
DEVICE_ALLREDUCE_US = {2: (115, 115), 4: (160, 160), 8: (225, 257), 16: (245, 270)}
DEVICE_FMA_1CORE, DEVICE_FMA_16CORES, FLOP_PER_IMAGE = 169e9, 1384e9, 18.6e6
HERE_FMA_1CORE = 176e9  # bench_kernels on the 2-core development machine (benchmarks/LOG.md)


def load(path):
    lines = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                lines.append(json.loads(line))
    return lines


def ring(p, nbytes, alpha, bandwidth):
    if p == 1:
        return 0.0
    return 2 * (p - 1) * alpha + 2 * (p - 1) / p * nbytes / bandwidth


def halving_doubling(p, nbytes, alpha, bandwidth):
    if p == 1:
        return 0.0
    return 2 * math.ceil(math.log2(p)) * alpha + 2 * (p - 1) / p * nbytes / bandwidth


SMALL = 65536  # bytes: below, the small-message fit


def local_ring(p, nbytes, fits):
    a, b = fits["small"] if nbytes < SMALL else fits["large"]
    return ring(p, nbytes, a, b)


def fit_two_ranks(points):
    """alpha (s) and B (bytes/s) from 2-rank (bytes, seconds): t = 2 alpha + n / B, relative error."""
    n = np.array([b for b, _ in points], dtype=float)
    t = np.array([s for _, s in points], dtype=float)
    a = np.stack([np.full_like(n, 2.0), n], axis=1) / t[:, None]
    (alpha, inv_b), *_ = np.linalg.lstsq(a, np.ones_like(t), rcond=None)
    resid = (2 * alpha + n * inv_b - t) / t
    return alpha, 1.0 / inv_b, resid


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("measured")
    ap.add_argument("--strong-batch", type=int, default=1024)
    ap.add_argument("--link-gbit", type=float, default=10.0)
    ap.add_argument("--link-us", type=float, default=100.0)
    args = ap.parse_args()
    lines = load(args.measured)
    # Of repeated runs, the fastest per configuration: other jobs on a shared machine only slow one.
    fastest = {}
    for l in lines:
        if l.get("bench") == "allreduce":
            key = (l["ranks"], l["type"], l["message"], l["bytes"])
            if key not in fastest or l["median_us"] < fastest[key]["median_us"]:
                fastest[key] = l
    ar = list(fastest.values())
    runs = sum(1 for l in lines if str(l.get("part", "")).startswith("allreduce"))
    train = [l for l in lines if l.get("bench") == "train"]

    # ---- allreduce fit: the 2-rank sweep and the arena-sized messages (one message each)
    two = [l for l in ar if l["ranks"] == 2 and not l["message"].startswith("layers")]
    print("# Projection (a model, not a measurement)")
    print()
    print(f"inputs: {args.measured}, {max(runs, 1)} run(s), the fastest per configuration")
    print()
    fits = {}
    for piece, keep in (("small", lambda b: b < SMALL), ("large", lambda b: b >= SMALL)):
        pts = [(l["bytes"], l["median_us"] * 1e-6) for l in two if keep(l["bytes"])]
        a, b, resid = fit_two_ranks(pts)
        fits[piece] = (a, b)
        print(f"allreduce fit, 2 ranks, {piece} messages ({len(pts)}, {min(p[0] for p in pts)}-{max(p[0] for p in pts)} "
              f"bytes, medians): alpha = {a * 1e6:.2f} us per message step, B = {b / 1e9:.2f} GB/s; relative residuals "
              f"{resid.min():+.2f} .. {resid.max():+.2f}")
    print()
    print("| ranks | message | bytes | measured median us | model us | note |")
    print("| --- | --- | --- | --- | --- | --- |")
    layer_bytes = [4 * b for b in REFERENCE_BLOCKS]
    for l in ar:
        if l["message"] == "sweep" and l["bytes"] not in (1024, 65536, 1048576, 4194304):
            continue
        p = l["ranks"]
        if l["message"].startswith("layers"):
            model = sum(local_ring(p, b, fits) for b in layer_bytes)
        else:
            model = local_ring(p, l["bytes"], fits)
        note = "oversubscribed: not fitted" if l.get("oversubscribed") else ("fitted" if p == 2 and not l["message"].startswith("layers") else "")
        if p == 1:
            note = "no collective on 1 rank"
        print(f"| {p} | {l['type']} {l['message']} | {l['bytes']} | {l['median_us']:.1f} | {model * 1e6:.1f} | {note} |")
    print()

    # ---- cross-check against the device machine (another machine and session)
    print("cross-check (shared memory, 110,000 floats = 440,000 bytes), ring model from this machine's fit against "
          "the 16-core device machine's Open MPI medians (another machine, 2026-11-26):")
    print()
    print("| ranks | model us | device us | model / model(2) | device / device(2) |")
    print("| --- | --- | --- | --- | --- |")
    m2 = local_ring(2, 440000, fits)
    for p, (lo, hi) in DEVICE_ALLREDUCE_US.items():
        m = local_ring(p, 440000, fits)
        dev = f"{lo}" if lo == hi else f"{lo}-{hi}"
        rel = f"{lo / 115:.2f}" if lo == hi else f"{lo / 115:.2f}-{hi / 115:.2f}"
        print(f"| {p} | {m * 1e6:.0f} | {dev} | {m / m2:.2f} | {rel} |")
    print()

    # ---- step times measured here
    def pick(ranks, scaling="weak", sync="after_backward", det=False):
        c = [l for l in train if l["ranks"] == ranks and l["scaling"] == scaling and l["sync"] == sync
             and l["deterministic"] == det]
        return max(c, key=lambda l: l["images_per_s"]) if c else None  # the fastest run

    def step_ms(l):
        return 1e3 * l["global_batch"] / l["images_per_s"]

    # (name, bench_train's sync flag, deterministic, unused)
    modes = [("after_backward", "after_backward", False, None),
             ("overlapped (per-layer)", "overlapped", False, None),
             ("deterministic (int64)", "after_backward", True, None)]
    arena_floats = next(l["elements"] for l in ar if l["message"] == "reference_cnn" and l["type"] == "float")
    assert abs(sum(REFERENCE_BLOCKS) - arena_floats) < 16, "REFERENCE_BLOCKS no longer match the arena"
    print("measured here, bench_train, reference CNN, 1 thread per rank, batch 32 per rank (median of 5 x 40 steps):")
    print()
    print("| mode | ranks | images/s | step ms | compute ms | sync ms | rest (Adam) ms |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    lines_of = {}
    for name, sync, det, _ in modes:
        lines_of[name] = (pick(1, sync=sync, det=det), pick(2, sync=sync, det=det))
        for l in lines_of[name]:
            if l is None:
                continue
            s = step_ms(l)
            print(f"| {name} | {l['ranks']} | {l['images_per_s']:,.0f} | {s:.2f} | {l['compute_ms_per_step']:.2f} | "
                  f"{l['sync_ms_per_step']:.2f} | {s - l['compute_ms_per_step'] - l['sync_ms_per_step']:.2f} |")
    print()

    def messages(name):
        if name.startswith("overlapped"):
            return layer_bytes
        if name.startswith("deterministic"):
            return [8 * arena_floats]
        return [4 * arena_floats]

    def local_sync(p, name):
        return sum(local_ring(p, m, fits) for m in messages(name))

    def network_sync(algo, a, b):
        return lambda p, name: sum(algo(p, m, a, b) for m in messages(name))

    # On one rank both float modes do the same work, so their fastest 1-rank line is the
    # reference of both.
    float_one = max((l for l in (lines_of["after_backward"][0], lines_of["overlapped (per-layer)"][0]) if l),
                    key=lambda l: l["images_per_s"])
    t1, calib = {}, {}
    for name, _, det, _ in modes:
        one, two_r = (lines_of[name][0] if det else float_one), lines_of[name][1]
        if one is None or two_r is None:
            continue
        t1[name] = step_ms(one) * 1e-3
        c = step_ms(two_r) * 1e-3 - t1[name] - local_sync(2, name)
        calib[name] = c
        sync_part = (two_r["sync_ms_per_step"] - one["sync_ms_per_step"]) * 1e-3 - local_sync(2, name)
        print(f"calibration {name}: 2-rank step {step_ms(two_r):.3f} ms, 1-rank step {t1[name] * 1e3:.3f} ms, "
              f"allreduce model {local_sync(2, name) * 1e3:.3f} ms: c = {c * 1e3:+.3f} ms, of which "
              f"{sync_part * 1e3:+.3f} ms in the sync beyond the allreduce model (waiting for the slower rank) and "
              f"{(c - sync_part) * 1e3:+.3f} ms in compute and update (2-rank compute "
              f"{two_r['compute_ms_per_step']:.2f} ms against {one['compute_ms_per_step']:.2f} on 1 rank)")
    print()
    ips1 = float_one["images_per_s"]
    gflops = ips1 * FLOP_PER_IMAGE / 1e9
    print(f"compute rate per rank assumed: this machine's 1-rank run, {ips1:,.0f} images/s "
          f"(AVX-512, 1 thread; {gflops:.0f} GFLOP/s at {FLOP_PER_IMAGE / 1e6:.1f} MFLOP per image, "
          f"{gflops * 1e9 / HERE_FMA_1CORE:.0%} of the 1-core FMA peak)")
    dev_rate = gflops * 1e9 / HERE_FMA_1CORE * DEVICE_FMA_16CORES / 16 / FLOP_PER_IMAGE
    print(f"the device machine (16 cores, another machine) at the same fraction of its all-core AVX-512 FMA peak "
          f"({DEVICE_FMA_16CORES / 1e9:.0f} GFLOP/s / 16 = {DEVICE_FMA_16CORES / 16e9:.1f} per core, against "
          f"{DEVICE_FMA_1CORE / 1e9:.0f} for one core alone): {dev_rate:,.0f} images/s per rank, "
          f"{16 * dev_rate:,.0f} on 16 ranks before any sync cost")
    print()

    def weak_row(p, name, sync_fn):
        sync = 0.0 if p == 1 else sync_fn(p, name)
        t = t1[name] + (0.0 if p == 1 else sync + calib[name])
        return 32 * p / t, t1[name] / t, sync / t

    def table(title, ranks, sync_fn):
        print(title)
        print()
        names = [n for n, _, _, _ in modes if n in calib]
        print("| ranks | " + " | ".join(f"{n}: images/s, efficiency, allreduce share" for n in names) + " |")
        print("| --- |" + " --- |" * len(names))
        for p in ranks:
            cells = []
            for n in names:
                ips, eff, share = weak_row(p, n, sync_fn)
                cells.append(f"{ips:,.0f}, **{eff:.2f}**, {share:.0%}")
            print(f"| {p} | " + " | ".join(cells) + " |")
        print()

    table("(a) one host, shared memory (the fitted pieces, ring), weak scaling, 32 images per rank "
          "(2 ranks reproduce the measurement by construction):", [p for p in RANKS if p <= 16], local_sync)
    # Sensitivity: the device machine's shared-memory allreduce times instead of the fitted ones.
    print("(a') after_backward with the device machine's measured allreduce of 110,000 floats (another machine; "
          "the slower end of each range) in place of the model:")
    print()
    print("| ranks | images/s | efficiency | allreduce share |")
    print("| --- | --- | --- | --- |")
    for p, (lo, hi) in DEVICE_ALLREDUCE_US.items():
        sync = hi * 1e-6 * arena_floats / 110000
        t = t1["after_backward"] + sync + calib["after_backward"]
        print(f"| {p} | {32 * p / t:,.0f} | **{t1['after_backward'] / t:.2f}** | {sync / t:.0%} |")
    print()
    # Sensitivity: per-rank compute at the device machine's all-core rate (16 ranks busy at once),
    # against one rank there at its 1-core rate: what a weak-scaling measurement there compares.
    frac = gflops * 1e9 / HERE_FMA_1CORE
    dev1_rate = frac * DEVICE_FMA_1CORE / FLOP_PER_IMAGE
    rest = t1["after_backward"] - 32 / ips1
    t_dev1 = 32 / dev1_rate + rest
    t16 = 32 / dev_rate + rest + local_sync(16, "after_backward") + calib["after_backward"]
    print(f"(a'') the device machine's compute rates (another machine) at this machine's fraction of the FMA peak "
          f"({frac:.0%}): 1 rank alone {dev1_rate:,.0f} images/s (1-core peak {DEVICE_FMA_1CORE / 1e9:.0f} GFLOP/s); "
          f"16 ranks, after_backward, each at the all-core rate ({dev_rate:,.0f} images/s): {16 * 32 / t16:,.0f} "
          f"images/s, weak-scaling efficiency {t_dev1 / t16:.2f}")
    print()
    net_a, net_b = args.link_us * 1e-6, args.link_gbit * 1e9 / 8
    table(f"(b) cluster, 1 rank per node, {args.link_gbit:g} Gbit/s, {args.link_us:g} us per message, ring allreduce, "
          f"weak scaling:", RANKS, network_sync(ring, net_a, net_b))
    table("(b') the same link, recursive halving/doubling (2 log2 P latency steps):", RANKS,
          network_sync(halving_doubling, net_a, net_b))

    # ---- strong scaling, after_backward
    s1 = pick(1, scaling="strong")
    if s1 is not None:
        per_image = s1["compute_ms_per_step"] * 1e-3 / s1["global_batch"]
        rest = step_ms(s1) * 1e-3 - s1["compute_ms_per_step"] * 1e-3
        g = args.strong_batch
        print(f"strong scaling, global batch {g} (compute {per_image * 1e6:.1f} us per image measured at 1 rank, "
              f"global batch {s1['global_batch']}; the rest of the step, {rest * 1e3:.2f} ms, per step), after_backward:")
        print()
        print("| ranks | batch per rank | one host: images/s, speed-up | cluster ring: images/s, speed-up | "
              "cluster halving/doubling: images/s, speed-up |")
        print("| --- | --- | --- | --- | --- |")
        t_1 = per_image * g + rest
        for p in RANKS:
            comp = per_image * g / p + rest
            cells = []
            for sync_fn, limit in ((local_sync, 16), (network_sync(ring, net_a, net_b), 256),
                                   (network_sync(halving_doubling, net_a, net_b), 256)):
                if p > limit:
                    cells.append("")
                    continue
                t = comp + (0.0 if p == 1 else sync_fn(p, "after_backward") + calib["after_backward"])
                cells.append(f"{g / t:,.0f}, {t_1 / t:.1f}")
            flag = "" if g // p >= 16 else " (below one 16-sample thread part)"
            print(f"| {p} | {g // p}{flag} | " + " | ".join(cells) + " |")
        print()
    over = [l for l in ar if l.get("oversubscribed")]
    if over:
        print(f"not fitted: {len(over)} allreduce lines at {sorted({l['ranks'] for l in over})} ranks on "
              f"{over[0].get('cores')} cores (oversubscribed: a rank waits for a core, not for the transport)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
