"""PyTorch's side of the multi-rank comparison (benchmarks/device_scaling.sh): the reference
CNN trained data-parallel with DistributedDataParallel over gloo, P processes of one thread,
batch 32 per process (weak scaling), Adam, synthetic inputs of Fashion-MNIST's shape. Both
memory formats are measured (contiguous and channels-last); the comparison takes the faster
("PyTorch at its best"). One JSON line per configuration:

    {"framework": "pytorch", "procs": P, "format": "channels_last", "images_per_s": ...}

Usage: /usr/bin/python3 pytorch_ddp_scaling.py [--procs 1,2,4,8,16] [--steps 60] [--reps 3]
"""
import argparse
import json
import os
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

from pytorch_reference import reference_cnn  # the same network as compare_pytorch.sh's (examples/reference_cnn.hpp)


def worker(rank, world, fmt, batch, steps, reps, port, out):
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(rank)
    memory_format = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
    net = reference_cnn().to(memory_format=memory_format)
    model = nn.parallel.DistributedDataParallel(net)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.rand(batch, 1, 28, 28).to(memory_format=memory_format)
    y = torch.randint(0, 10, (batch,))

    def run(n):
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            opt.step()

    run(10)
    times = []
    for _ in range(reps):
        dist.barrier()
        t = time.perf_counter()
        run(steps)
        dist.barrier()
        times.append(time.perf_counter() - t)
    if rank == 0:
        out.put(world * batch * steps / sorted(times)[len(times) // 2])
    dist.destroy_process_group()


def measure(world, fmt, batch, steps, reps, port):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    mp.start_processes(worker, args=(world, fmt, batch, steps, reps, port, q), nprocs=world, start_method="spawn")
    return q.get()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", default="1,2,4,8,16")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    a = ap.parse_args()
    port = 29500
    for p in map(int, a.procs.split(",")):
        for fmt in ("contiguous", "channels_last"):
            port += 1
            ips = measure(p, fmt, a.batch, a.steps, a.reps, port)
            print(json.dumps({"framework": "pytorch", "version": torch.__version__, "procs": p, "format": fmt,
                              "batch_per_proc": a.batch, "images_per_s": round(ips, 1)}), flush=True)
