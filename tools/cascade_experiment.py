"""Experiment: does a second network on top of frozen SAR-CNN gain? (a capacity test).

Four fine-tunes of ``sarcnn-s1-l1-v3`` that reweighted its error (bright targets, bright-patch
oversampling, uncapped clipped structures, the amplitude loss) each traded the brightest pixels
against the rest at equal PSNR: the network looks on a trade-off front for its size. This asks
whether more capacity moves the front, at a cost a CPU can pay: a stage-2 DnCNN (``--depth``
layers) sees the noisy normalised log-amplitude ``x`` and the frozen v3 estimate ``e1`` (debiased)
and returns a correction, ``e2 = e1 − g([x, e1])``, its last layer zero at the start (so step 0
is exactly v3). Loss ℓ1 between ``e2`` and the clean target, patches and gains as v3's training.

Scored on the tuning crops (``tools/tuning_crops.py``: ``train`` and ``unseen`` groups, and
``--set unclipped``), same speckle draws for v3 and the cascade, whole crops with a mirrored halo.

Usage (from the repository root; resumable: rerun the same command)::

    python tools/cascade_experiment.py --run-dir runs/exp/cascade --steps 3000
    python tools/cascade_experiment.py --run-dir runs/exp/cascade --score-only
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sardespeckle.metrics import psnr_amplitude
from sardespeckle.models.dncnn import DnCNN
from sardespeckle.models.sarcnn import cn, denormalize, normalize_log_amplitude
from sardespeckle.models.weights import load_weights
from sardespeckle.training.data import PatchSampler, ReferenceSpec, load_reference

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from tuning_crops import tuning_crops, unclipped_crops  # noqa: E402

OFFSET = cn(1.0)


class Stage2(nn.Module):
    """The DnCNN layout on two channels in (``x``, ``e1``), one out; last convolution zero."""

    def __init__(self, depth: int, features: int = 64):
        super().__init__()
        layers = list(DnCNN(depth=depth, channels=2, features=features).layers)
        last = nn.Conv2d(features, 1, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.body = nn.Sequential(*layers[:-1], last)
        self.depth = depth

    def forward(self, x: torch.Tensor, e1: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([x, e1], dim=1))


def stage1_estimate(stage1, x: torch.Tensor) -> torch.Tensor:
    """Frozen v3, debiased normalised log-amplitude estimate (float32)."""
    with torch.no_grad():
        return x.float() - stage1.forward_mixed(x, torch.bfloat16) - OFFSET


def cascade(stage1, stage2, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    e1 = stage1_estimate(stage1, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        correction = stage2(x, e1)
    return e1, e1 - correction.float()


def score(stage1, stage2, crops, draws: int) -> dict[str, tuple[float, float]]:
    """Mean PSNR per group: ``{group: (v3, cascade)}``; same draws for both."""
    halo = stage1.depth + stage2.depth  # each 3×3 layer widens the support by one pixel
    results: dict[str, list[tuple[float, float]]] = {}
    for index, (group, clean) in enumerate(crops):
        for draw in range(draws):
            rng = np.random.default_rng(7 + 1000 * draw + index)
            noisy = clean * rng.exponential(1.0, clean.shape)
            x = normalize_log_amplitude(np.pad(noisy, halo, mode="reflect"))
            xt = torch.from_numpy(x)[None, None].contiguous(memory_format=torch.channels_last)
            with torch.no_grad():
                e1, e2 = cascade(stage1, stage2, xt)
            pair = []
            for estimate in (e1, e2):
                out = denormalize(estimate[0, 0, halo:-halo, halo:-halo].numpy())
                pair.append(psnr_amplitude(np.sqrt(clean), np.sqrt(out)))
            results.setdefault(group, []).append(tuple(pair))
    return {group: tuple(np.mean(values, axis=0)) for group, values in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--draws", type=int, default=4)
    parser.add_argument("--score-every", type=int, default=1000)
    parser.add_argument("--score-only", action="store_true")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))

    network, _ = load_weights("sarcnn-s1-l1-v3")
    stage1 = network.fold_batchnorm().to(memory_format=torch.channels_last)
    for parameter in stage1.parameters():
        parameter.requires_grad_(False)
    torch.manual_seed(args.seed)  # before the stage-2 weights are drawn
    stage2 = Stage2(args.depth).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(stage2.parameters(), lr=args.learning_rate)
    rng = np.random.default_rng(args.seed)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = args.run_dir / "checkpoint.pt"
    step = 0
    if checkpoint_path.exists():
        state = torch.load(checkpoint_path, weights_only=False)
        stage2.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = json.loads(state["numpy_rng"])
        torch.set_rng_state(state["torch_rng"])
        step = state["step"]
    (args.run_dir / "args.json").write_text(json.dumps({k: str(v) for k, v in vars(args).items()}, indent=1))

    crops = {"clipped": tuning_crops(args.shared), "unclipped": unclipped_crops(args.shared)}

    def report() -> None:
        stage2.eval()
        for name, items in crops.items():
            for group, (base, new) in score(stage1, stage2, items, args.draws).items():
                line = f"step {step} {group}: v3 {base:.3f} cascade {new:.3f} ({new - base:+.3f})"
                print(line, flush=True)
                with open(args.run_dir / "scores.txt", "a") as handle:
                    handle.write(line + "\n")
        stage2.train()

    if args.score_only:
        report()
        return
    sampler = PatchSampler([load_reference(ReferenceSpec(str(ROOT / "runs" / "references" / f"{s}_train_intensity.npy"), "intensity"))
                            for s in ("lely", "marais2")],
                           patch_size=50, looks=1.0, gain_range=(1e-4, 100.0))

    def rate(i: int) -> float:
        if i < args.warmup:
            return args.learning_rate * (i + 1) / args.warmup
        t = (i - args.warmup) / max(1, args.steps - args.warmup)
        return args.learning_rate * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))

    stage2.train()
    started = time.perf_counter()
    while step < args.steps:
        for group in optimizer.param_groups:
            group["lr"] = rate(step)
        noisy, target = sampler.sample(args.batch_size, rng)
        x = torch.from_numpy(noisy).contiguous(memory_format=torch.channels_last)
        _, e2 = cascade(stage1, stage2, x)
        loss = torch.mean(torch.abs(e2 - torch.from_numpy(target)))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if step % 20 == 0:
            print(f"{step} {float(loss.detach()):.6f} {rate(step - 1):.3g} {time.perf_counter() - started:.0f}s", flush=True)
        if step % 100 == 0 or step == args.steps:
            temporary = checkpoint_path.with_suffix(".tmp")
            torch.save({"model": stage2.state_dict(), "optimizer": optimizer.state_dict(),
                        "numpy_rng": json.dumps(rng.bit_generator.state),
                        "torch_rng": torch.get_rng_state(), "step": step}, temporary)
            os.replace(temporary, checkpoint_path)
        if step % args.score_every == 0 or step == args.steps:
            report()


if __name__ == "__main__":
    main()
