"""PSNR of a Gaussian DnCNN on Set12 at σ = 15, 25, 50 (8-bit scale), next to DnCNN's figures.

Usage (from the repository root)::

    python tools/eval_dncnn_set12.py WEIGHTS [--set12 DIR] [--seed N] [--threads N]

WEIGHTS is a weights file (``training_runs/dncnn-natural/dncnn-natural.pt``, or the latest
checkpoint of an unfinished run exported with ``sardespeckle train --run-dir DIR --export
partial.pt``) or a registered name (``sardespeckle weights``). Its domain must be a Gaussian
denoiser's (``gaussian-01``).

Protocol: ``clean = png / 255``; ``noisy = clean + (σ/255)·N(0, 1)`` drawn from
``numpy.random.default_rng([seed, σ, i])`` for the ``i``-th image in name order, **not clipped**
(as in DnCNN's test code); the network (batch norm folded) denoises the ``[0, 1]`` image and its
output is **clipped to [0, 1]**, not quantised; PSNR = ``10 log10(1 / MSE)`` on ``[0, 1]`` (the
8-bit PSNR, peak 255 on 0..255), averaged over the 12 images.

Published Set12 averages (Zhang et al., IEEE TIP 2017, Table II): DnCNN-S (one network per σ)
32.86 / 30.44 / 27.18 dB, DnCNN-B (blind, σ ∈ [0, 55]) 32.68 / 30.36 / 27.21 dB. A blind network
trained on CPU for fewer steps than the paper's is expected below them.

Exit codes: 0 done, 1 runtime error (unreadable or corrupt weights), 2 usage error.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

SIGMAS = (15, 25, 50)
PUBLISHED = {"DnCNN-S": (32.86, 30.44, 27.18), "DnCNN-B": (32.68, 30.36, 27.21)}


def evaluate(weights: str, set12: str, *, seed: int = 0) -> tuple[dict[int, float], dict[int, float], int]:
    """``({σ: mean PSNR of the estimate}, {σ: mean PSNR of the noisy input}, images)``."""
    from sardespeckle.errors import UsageError
    from sardespeckle.models.weights import GAUSSIAN_DOMAINS, load_weights
    from sardespeckle.training.data import ReferenceSpec
    from sardespeckle.training.gaussian import denoise_unit_images, load_unit_images, noisy_draw, unit_psnr

    network, meta = load_weights(weights)
    if meta.get("domain") not in GAUSSIAN_DOMAINS:
        raise UsageError(f"expected Gaussian-denoiser weights (domain in {GAUSSIAN_DOMAINS}), got "
                         f"domain {meta.get('domain')!r} in {weights}")
    images = [image.values for image in load_unit_images(ReferenceSpec(set12, "grey"), span=0.8)]
    denoised, noisy_scores = {}, {}
    for sigma in SIGMAS:
        noisy = [noisy_draw(clean, sigma=sigma / 255, seed=(seed, sigma, index))
                 for index, clean in enumerate(images)]
        estimates = denoise_unit_images(network, noisy)
        denoised[sigma] = float(np.mean([unit_psnr(clean, np.clip(estimate, 0.0, 1.0))
                                         for clean, estimate in zip(images, estimates)]))
        noisy_scores[sigma] = float(np.mean([unit_psnr(c, n) for c, n in zip(images, noisy)]))
    return denoised, noisy_scores, len(images)


def report(weights: str, denoised: dict[int, float], noisy: dict[int, float], count: int) -> str:
    lines = [f"Set12 ({count} images), PSNR in dB on the 8-bit scale, seeded unclipped noise, "
             f"output clipped to [0, 1]: {weights}",
             f"{'sigma':>5} {'noisy':>7} {'this':>7} " + " ".join(f"{name:>8}" for name in PUBLISHED)]
    for column, sigma in enumerate(SIGMAS):
        published = " ".join(f"{values[column]:8.2f}" for values in PUBLISHED.values())
        lines.append(f"{sigma:5d} {noisy[sigma]:7.2f} {denoised[sigma]:7.2f} {published}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("weights", help="weights file or registered name")
    parser.add_argument("--set12", default="../shared/data/natural/set12", help="folder of the 12 PNGs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise draws")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)

    from sardespeckle.errors import SardespeckleError, UsageError

    try:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        denoised, noisy, count = evaluate(args.weights, args.set12, seed=args.seed)
    except SardespeckleError as error:
        sys.stderr.write(f"eval_dncnn_set12: error: {error}\n")
        return 2 if isinstance(error, UsageError) else 1
    print(report(args.weights, denoised, noisy, count))
    return 0


if __name__ == "__main__":
    sys.exit(main())
