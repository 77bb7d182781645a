"""Where the speckle-correlation estimate separates white speckle from the mildest processor
correlation: the measurement behind ``decorrelate.CORRELATED_NETWORK_THRESHOLD``.

Every 256² tile of the training references ``runs/references/{lely,marais2}_train_intensity.npy``
(made by ``python tools/build_training_references.py`` then
``python tools/prepare_training_references.py``; never the validation references) gets, with
seed = tile index:

* white single-look speckle (``sardespeckle.speckle.add_speckle``), and
* single-look complex speckle through a Hamming 0.75 weighted band of fraction ``--band``
  (``decorrelate.simulate_correlated_slc``; 1 is a processor weighting the band it samples at
  exactly Nyquist: the least correlated speckle an SLC processor makes, lag 1 about 0.06),

and :func:`sardespeckle.decorrelate.estimate_speckle_correlation` (the larger axis, what
``decorrelate=auto`` compares with its thresholds) of each. Prints the percentiles of both and,
per candidate threshold, the share of white tiles above it and of correlated tiles at or below
it. Which network is better on either side is measured separately, on the tuning crops::

    python tools/tuning_crops.py sarcnn-s1-l1-v3 sarcnn-s1-l1-corr3w --correlated 1 1 --decorrelate none
    python tools/tuning_crops.py sarcnn-s1-l1-v3 sarcnn-s1-l1-corr3w --decorrelate none

Usage (from the repository root)::

    python tools/correlation_threshold.py [--band 1.0] [--thresholds 0.03 0.04 0.05 0.1] [--looks 1]

``--looks L`` draws both speckles with ``L`` looks (white Gamma; correlated: the weighted mean
of ``⌈L⌉`` single-look fields of the band), for multilooked products.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sardespeckle.decorrelate import (correlated_speckle, estimate_speckle_correlation,
                                      simulate_correlated_slc)
from sardespeckle.speckle import add_speckle

ROOT = Path(__file__).resolve().parents[1]
REFERENCES = [ROOT / "runs/references" / f"{site}_train_intensity.npy" for site in ("lely", "marais2")]
TILE = 256


def tiles(paths) -> list[np.ndarray]:
    """The valid (finite, positive) non-overlapping TILE² tiles of each reference, in order."""
    found = []
    for path in paths:
        reference = np.load(path).astype(np.float32)
        rows, cols = reference.shape
        for i in range(0, rows - TILE + 1, TILE):
            for j in range(0, cols - TILE + 1, TILE):
                tile = reference[i:i + TILE, j:j + TILE]
                if np.all(np.isfinite(tile)) and tile.min() > 0:
                    found.append(tile)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--band", type=float, default=1.0,
                        help="band fraction (both axes) of the correlated speckle (default 1)")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.03, 0.04, 0.05, 0.1])
    parser.add_argument("--looks", type=float, default=1.0,
                        help="looks of both speckles (default 1): white L-look Gamma speckle, and "
                             "the weighted mean of ceil(L) single-look fields of the band "
                             "(decorrelate.correlated_speckle with looks, as multilooked products)")
    args = parser.parse_args()
    missing = [str(p) for p in REFERENCES if not p.exists()]
    if missing:
        raise SystemExit(f"missing training references {missing}: build them first (see the "
                         "module docstring)")
    white, correlated = [], []
    for seed, tile in enumerate(tiles(REFERENCES)):
        white.append(max(estimate_speckle_correlation(add_speckle(tile, args.looks, seed=seed))))
        if args.looks == 1:
            slc = simulate_correlated_slc(tile.astype(np.float64), band=(args.band, args.band),
                                          seed=seed)
            noisy = np.abs(slc) ** 2
        else:
            noisy = tile * correlated_speckle(1, TILE, np.array([[args.band, args.band]]),
                                              np.random.default_rng(seed), looks=args.looks)[0]
        correlated.append(max(estimate_speckle_correlation(noisy)))
    white, correlated = np.array(white), np.array(correlated)
    print(f"{len(white)} tiles of {TILE}²")
    print(f"looks {args.looks:g}")
    print("white speckle: mean {:.3f}, 95th percentile {:.3f}, 99th {:.3f}, max {:.3f}".format(
        white.mean(), *np.percentile(white, [95, 99]), white.max()))
    print(f"band {args.band:g} (Hamming 0.75): min {{:.3f}}, 1st percentile {{:.3f}}, 5th {{:.3f}}, "
          "mean {:.3f}".format(correlated.min(), *np.percentile(correlated, [1, 5]),
                               correlated.mean()))
    print("| threshold | white above | correlated at or below |")
    print("| --- | --- | --- |")
    for threshold in args.thresholds:
        print(f"| {threshold:g} | {np.mean(white > threshold):.1%} | "
              f"{np.mean(correlated <= threshold):.1%} |")


if __name__ == "__main__":
    main()
