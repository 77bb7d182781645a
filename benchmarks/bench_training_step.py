"""Seconds per training step of SAR-CNN in fp32 and in bf16 autocast on this machine.

One step is what ``sardespeckle.training.trainer.train`` does per batch: forward pass of the
network (channels-last, as in training), ℓ1 loss, backward pass and an Adam update, on random
patches (the speed does not depend on their values). fp32 and bf16 alternate, after a warm-up
step each, so that both see the same machine load. It is the number behind the training
``precision: "auto"`` choice (bf16 where the device computes it natively); print-only::

    python benchmarks/bench_training_step.py                        # 32 × 40², depth 19, 2 threads
    python benchmarks/bench_training_step.py --batch 64 --patch 50  # the shipped weights' batches
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from sardespeckle.models.dncnn import DnCNN
from sardespeckle.models.inference import cpu_has_fast_bf16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--patch", type=int, default=40)
    parser.add_argument("--depth", type=int, default=19)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=4, help="timed rounds per precision")
    parser.add_argument("--steps", type=int, default=3, help="steps per timed round")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = DnCNN(depth=args.depth).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    noisy = torch.rand(args.batch, 1, args.patch, args.patch).to(memory_format=torch.channels_last)
    target = torch.rand(args.batch, 1, args.patch, args.patch)

    def step(precision: str) -> None:
        optimizer.zero_grad(set_to_none=True)
        autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16"
                    else contextlib.nullcontext())
        with autocast:
            estimate = noisy - model(noisy)
        loss = torch.mean(torch.abs(estimate.float() - target))
        loss.backward()
        optimizer.step()

    seconds: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for precision in seconds:
        step(precision)  # warm-up
    for _ in range(args.repeats):
        for precision, times in seconds.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step(precision)
            times.append((time.perf_counter() - start) / args.steps)

    print(f"# SAR-CNN training step, depth {args.depth}, batch {args.batch} × {args.patch}², "
          f"{args.threads} threads, torch {torch.__version__}, native CPU bf16: {cpu_has_fast_bf16()}")
    for precision, times in seconds.items():
        print(f"{precision}: median {statistics.median(times):.2f} s/step "
              f"(rounds: {' '.join(f'{t:.2f}' for t in times)})")
    ratio = statistics.median(seconds["fp32"]) / statistics.median(seconds["bf16"])
    print(f"bf16 is {ratio:.2f}× the speed of fp32")


if __name__ == "__main__":
    main()
