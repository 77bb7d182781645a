"""Level independence of SAR-CNN weights on synthetic flat single-look scenes.

    python tools/flat_levels.py sarcnn-s1-l1-v3 [more weights...]

For each intensity level, the mean despeckled output over the interior (16 px margin) of a
128² flat scene with simulated single-look speckle, divided by the level; mean over 3 draws
(seeds 0, 1, 2), fp32. A network that keeps every scene level prints 1.00 throughout (the
model cards' "Level independence" tables). The network alone is measured (``level=none``: the
intensities as given); ``--level auto`` measures what ``sardespeckle run`` does by default,
which first brings each scene to the level the network was trained at.

``--bands`` measures instead the level under spatially correlated speckle (weights trained with
``speckle_band``): per band fraction (both axes, Hamming 0.75,
``sardespeckle.decorrelate.correlated_speckle``), a 512² flat scene at intensity 100, the mean
output over the mean input inside a 32 px margin, mean over 3 draws (seeds 0, 1, 2), fp32,
``decorrelate=none``::

    python tools/flat_levels.py --bands sarcnn-s1-l1-corr3w sarcnn-s1-l1-corr2

``--looks L`` draws ``L``-look speckle instead (white: Gamma; with ``--bands``: the weighted
mean of ``⌈L⌉`` correlated looks of the band) and gives ``L`` to the method::

    python tools/flat_levels.py --bands --looks 4.4 sarcnn-s1-l4 sarcnn-s1-l4-corr
"""

from __future__ import annotations

import argparse

import numpy as np

from sardespeckle.api import despeckle
from sardespeckle.speckle import add_speckle

LEVELS = (1e-4, 0.01, 1.0, 4.0, 40.0, 160.0, 900.0, 7000.0, 50000.0)
BANDS = (1.0, 0.85, 0.7, 0.55, 0.45, 0.4)


def level_ratio(weights: str, level: float, draws: int = 3, scene_level: str = "none",
                looks: float = 1.0) -> float:
    ratios = []
    for seed in range(draws):
        noisy = add_speckle(np.full((128, 128), level, np.float32), looks, seed=seed)
        out = despeckle(noisy, method="sarcnn", looks=looks, kind="intensity",
                        params={"weights": weights, "precision": "fp32", "decorrelate": "none",
                                "level": scene_level})
        ratios.append(float(np.mean(out[16:-16, 16:-16])) / level)
    return float(np.mean(ratios))


def band_ratio(weights: str, band: float, draws: int = 3, looks: float = 1.0) -> float:
    """Mean output / mean input on a flat 512² scene with correlated speckle of ``band``."""
    from sardespeckle.decorrelate import correlated_speckle

    ratios = []
    for seed in range(draws):
        speckle = correlated_speckle(1, 512, np.array([[band, band]]), np.random.default_rng(seed),
                                     looks=looks)
        noisy = (100.0 * speckle[0]).astype(np.float32)
        out = despeckle(noisy, method="sarcnn", looks=looks, kind="intensity",
                        params={"weights": weights, "precision": "fp32", "decorrelate": "none"})
        ratios.append(float(out[32:-32, 32:-32].mean()) / float(noisy[32:-32, 32:-32].mean()))
    return float(np.mean(ratios))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="+", help="registered names or weights files")
    parser.add_argument("--level", choices=("none", "auto"), default="none",
                        help="SAR-CNN's level parameter (default none: the network alone)")
    parser.add_argument("--bands", action="store_true",
                        help="level under correlated speckle per band fraction instead")
    parser.add_argument("--looks", type=float, default=1.0,
                        help="looks of the simulated speckle, also given to the method (default 1)")
    args = parser.parse_args()
    if args.bands:
        print("| band | " + " | ".join(f"{band:g}" for band in BANDS) + " |")
        print("| --- |" + " --- |" * len(BANDS))
        for weights in args.weights:
            ratios = [f"{band_ratio(weights, band, looks=args.looks):.3f}" for band in BANDS]
            print(f"| {weights} | " + " | ".join(ratios) + " |", flush=True)
        return
    print("| intensity | " + " | ".join(f"{level:g}" for level in LEVELS) + " |")
    print("| --- |" + " --- |" * len(LEVELS))
    for weights in args.weights:
        ratios = [f"{level_ratio(weights, level, scene_level=args.level, looks=args.looks):.2f}"
                  for level in LEVELS]
        print(f"| {weights} (level {args.level}) | " + " | ".join(ratios) + " |")


if __name__ == "__main__":
    main()
