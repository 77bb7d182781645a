"""PSNR of SAR-CNN weights on the tuning crops: how training experiments are judged before the
validation references are looked at.

Ten crops, one simulated single-look draw each (seed 7; ``--draws N`` adds more, the first
unchanged, and averages over them; ``--looks L`` draws L-look Gamma speckle instead and gives L
to the methods), PSNR on amplitude (the paper's definition,
``sardespeckle.metrics.psnr_amplitude``):

* ``train``: six 256² crops of the training references ``runs/references/{lely,marais2}_train_intensity.npy``
  (made by ``sardespeckle references build`` from the ``shared/data/sar/timeseries`` series, see
  ``training_runs/sarcnn-s1-l1/README.md``), at fixed relative positions;
* ``unseen``: four 256 × 128 crops of marais2 columns 256:384 (rows 0:256, 256:512, 512:768
  and 752:1008, the last overlapping the third by 16 rows), the temporal mean of the 11 dates
  of the series: a strip no training run used (training starts at column 384) and that is not
  the validation references (columns 0:256).

The series' last 16 rows and columns are not scene: the unknown despeckler that made them left
border artefacts there (a saturated row, zero rows, alternating dark and bright lines; see
``SERIES_BORDER``). Until 2026-11-27 the fourth unseen crop was rows 768:1024 and held the
bottom ones (a 2-row line at the 8-bit ceiling): every ``unseen`` number quoted before then
includes them, and ``--with-border`` reproduces those crops. They cost SAR-CNN about 1 dB on that
crop against MuLoG (SAR-CNN dims the thin saturated line), so they understated its lead.

Both groups come from the clipped 8-bit series: their brightest pixels are capped (marais2 at
1.18 × its 99th percentile). ``--set unclipped`` uses instead four crops whose bright targets are
real: the 5-date means of the single-look stacks ``shared/data/sar/s1_stacks/{lely,limagne,
marais1,ramb}_{1..5}.npy`` (256², residual speckle ENL ≈ 5, so the PSNR values are lower and
only differences between entries count; marais2 is left out, its area may overlap the
validation references). Group ``unclipped``.

``--correlated AZIMUTH RANGE`` simulates single-look complex data with spatially correlated
speckle instead (``sardespeckle.decorrelate.simulate_correlated_slc``: that band fraction per
axis, Hamming 0.75; 0.7 0.8 gives a lag-1 log-intensity correlation of about 0.16 / 0.23, as
Sentinel-1 SLC on homogeneous windows) and despeckles its intensity; with ``--looks L`` it
draws multilooked speckle instead, the weighted mean of ``⌈L⌉`` correlated looks of the band
(``sardespeckle.decorrelate.correlated_speckle`` with ``looks``; the default GRD-like case);
``--decorrelate MODE``
gives SAR-CNN entries that ``decorrelate`` parameter (``subsample`` for the shipped weights,
``none`` for weights trained with ``speckle_band``).

Usage (from the repository root, with ``../shared`` beside it)::

    python tools/tuning_crops.py default runs/mine/mine.pt sarcnn-s1-l1
    python tools/tuning_crops.py default mulog:dncnn-sar     # SAR-CNN against the hybrid

``default`` is the package's default SAR-CNN weights, ``mulog:DENOISER`` MuLoG with that
denoiser, ``method:NAME`` any registered method with its defaults (``method:kuan``); any other
argument is SAR-CNN weights (a registered name or a file); entries joined
by ``+`` are averaged in the log domain (an ensemble of weights). Prints, per entry, the mean
PSNR of each group, the mean |log Â − log A| (amplitude; SAR-CNN's training loss up to the
normalisation) of each group, and the ten PSNR values. ``--breakdown`` adds, per entry, the
squared amplitude error (divided by the squared 99th percentile of the crop's reference, summed
over the ten crops) in classes of reference brightness (percentiles of each crop) and of
distance to the nearest edge (the top 20 % of the gradient magnitude of the σ = 1 smoothed
log-amplitude), with the mean ratio Â / A in each brightness class.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from sardespeckle.api import despeckle
from sardespeckle.decorrelate import correlated_speckle, simulate_correlated_slc
from sardespeckle.metrics import psnr_amplitude

ROOT = Path(__file__).resolve().parents[1]
MARAIS2_THRESHOLD = 168.49  # amplitude of grey level 255 (shared/data/README.md)
SERIES_BORDER = 16  # last rows and columns of the timeseries PNGs holding border artefacts


UNCLIPPED_SITES = ("lely", "limagne", "marais1", "ramb")


def unclipped_crops(shared: Path) -> list[tuple[str, np.ndarray]]:
    """``(group, intensity)`` for the four 5-date means of ``--set unclipped``."""
    stacks = shared / "data" / "sar" / "s1_stacks"
    return [("unclipped", np.mean([np.load(stacks / f"{site}_{d}.npy") ** 2 for d in range(1, 6)],
                                  axis=0))
            for site in UNCLIPPED_SITES]


def tuning_crops(shared: Path, *, with_border: bool = False) -> list[tuple[str, np.ndarray]]:
    """``(group, intensity)`` for the ten crops (``with_border``: the fourth unseen crop as it
    was until 2026-11-27, rows 768:1024 with the series' bottom border artefacts)."""
    crops = []
    for site in ("lely", "marais2"):
        reference = np.load(ROOT / "runs" / "references" / f"{site}_train_intensity.npy")
        rows, cols = reference.shape
        for fr, fc in ((0.2, 0.3), (0.5, 0.6), (0.7, 0.2)):
            r, c = int(fr * (rows - 256)), int(fc * (cols - 256))
            crops.append(("train", reference[r:r + 256, c:c + 256].astype(np.float64)))
    dates = [np.asarray(Image.open(shared / "data" / "sar" / "timeseries" / f"marais2_{d}.png"))[:, 256:384]
             for d in range(20, 31)]
    amplitude = np.stack(dates).astype(np.float64) / 255 * MARAIS2_THRESHOLD
    strip = np.mean(amplitude ** 2, axis=0)
    last = strip.shape[0] - (0 if with_border else SERIES_BORDER) - 256
    for r in (0, 256, 512, last):
        crops.append(("unseen", np.maximum(strip[r:r + 256], 1e-3)))
    return crops


BRIGHTNESS = (0, 50, 90, 99, 100)  # percentiles of each crop's reference amplitude
EDGE_DISTANCE = (0, 2, 5, 10, 20, np.inf)  # pixels to the nearest edge pixel


def despeckle_entry(entry: str, noisy: np.ndarray, looks: float = 1.0,
                    decorrelate: str | None = None) -> np.ndarray:
    """Intensity estimate of one entry (``+`` joins entries into a log-domain mean);
    ``decorrelate`` is given to SAR-CNN entries when set."""
    if "+" in entry:
        return np.exp(np.mean([np.log(despeckle_entry(part, noisy, looks, decorrelate))
                               for part in entry.split("+")], axis=0))
    if entry.startswith("mulog:"):
        method, params = "mulog", {"denoiser": entry.split(":", 1)[1]}
    elif entry.startswith("method:"):
        method, params = entry.split(":", 1)[1], {}
    else:
        method, params = "sarcnn", ({} if entry == "default" else {"weights": entry})
        if decorrelate is not None:
            params["decorrelate"] = decorrelate
    with warnings.catch_warnings():  # weights trained for other looks: the point of --looks
        warnings.simplefilter("ignore", UserWarning)
        return despeckle(noisy.astype(np.float32), method=method, looks=looks, kind="intensity", params=params)


def class_maps(clean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Brightness class and edge-distance class of every pixel of one reference crop."""
    amplitude = np.sqrt(clean)
    bounds = np.percentile(amplitude, BRIGHTNESS)
    brightness = np.clip(np.searchsorted(bounds, amplitude, side="right") - 1, 0, len(BRIGHTNESS) - 2)
    smooth = ndimage.gaussian_filter(np.log(amplitude), 1.0)
    gradient = np.hypot(ndimage.sobel(smooth, 0), ndimage.sobel(smooth, 1))
    distance = ndimage.distance_transform_edt(gradient <= np.percentile(gradient, 80))
    return brightness, np.searchsorted(EDGE_DISTANCE, distance, side="right") - 1


def print_breakdown(crops, outputs) -> None:
    """Squared error per brightness and edge-distance class (see the module docstring);
    ``crops`` and ``outputs`` may repeat crops (one entry per crop and draw)."""
    error = {"brightness": np.zeros(len(BRIGHTNESS) - 1), "edge": np.zeros(len(EDGE_DISTANCE) - 1)}
    ratio = np.zeros(len(BRIGHTNESS) - 1)
    count = {key: np.zeros_like(value) for key, value in error.items()}
    for (_, clean), out in zip(crops, outputs):
        amplitude, estimate = np.sqrt(clean), np.sqrt(out)
        squared = (estimate - amplitude) ** 2 / np.percentile(amplitude, 99) ** 2
        brightness, edge = class_maps(clean)
        for key, classes in (("brightness", brightness), ("edge", edge)):
            error[key] += np.bincount(classes.ravel(), squared.ravel(), len(error[key]))
            count[key] += np.bincount(classes.ravel(), minlength=len(error[key]))
        ratio += np.bincount(brightness.ravel(), (estimate / amplitude).ravel(), len(ratio))
    labels = [f"p{a}-{b}" for a, b in zip(BRIGHTNESS, BRIGHTNESS[1:])]
    print("    brightness " + " ".join(
        f"{label}: {e / n:.5f} (x{r / n:.3f})" for label, e, n, r in
        zip(labels, error["brightness"], count["brightness"], ratio)))
    labels = [f"{a:g}-{b:g}px" for a, b in zip(EDGE_DISTANCE, EDGE_DISTANCE[1:])]
    print("    edge dist  " + " ".join(
        f"{label}: " + (f"{e / n:.5f}" if n else "-") + f" ({n / count['edge'].sum():.0%})"
        for label, e, n in zip(labels, error["edge"], count["edge"])), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("weights", nargs="+",
                        help="'default', SAR-CNN weights (a registered name or a .pt file), "
                             "mulog:DENOISER, or entries joined by '+' (log-domain ensemble)")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--breakdown", action="store_true",
                        help="also print the error per brightness and edge-distance class")
    parser.add_argument("--set", choices=("clipped", "unclipped"), default="clipped",
                        help="the ten crops of the clipped series (default) or the four "
                             "unclipped 5-date means")
    parser.add_argument("--looks", type=float, default=1.0,
                        help="looks of the simulated speckle (default 1; Gamma draws), also "
                             "given to the methods")
    parser.add_argument("--with-border", action="store_true",
                        help="the fourth unseen crop as before 2026-11-27 (rows 768:1024, with "
                             "the series' bottom border artefacts), to reproduce older numbers")
    parser.add_argument("--draws", type=int, default=1,
                        help="speckle draws per crop (default 1; the first is always the same)")
    parser.add_argument("--correlated", type=float, nargs=2, metavar=("AZIMUTH", "RANGE"),
                        help="simulate single-look complex data with spatially correlated speckle "
                             "instead (sardespeckle.decorrelate.simulate_correlated_slc, this band "
                             "fraction per axis, Hamming 0.75) and despeckle its intensity; with "
                             "--looks L, L-look speckle made of ceil(L) correlated looks of the band "
                             "(decorrelate.correlated_speckle)")
    parser.add_argument("--decorrelate", choices=("none", "subsample", "auto"), default=None,
                        help="decorrelate parameter given to SAR-CNN entries (default: theirs)")
    args = parser.parse_args()
    if args.draws < 1:
        parser.error(f"--draws must be at least 1, got {args.draws}")

    crops = (tuning_crops(args.shared, with_border=args.with_border) if args.set == "clipped"
             else unclipped_crops(args.shared))
    rng = np.random.default_rng(7)
    if args.correlated is None:
        noisy = [[clean * rng.gamma(args.looks, 1.0 / args.looks, clean.shape) for _, clean in crops]
                 for _ in range(args.draws)]
    elif args.looks == 1:
        noisy = [[np.abs(simulate_correlated_slc(clean, band=tuple(args.correlated),
                                                 seed=int(rng.integers(2**31)))) ** 2
                  for _, clean in crops] for _ in range(args.draws)]
    else:  # multilooked: the weighted mean of ceil(L) correlated looks of the band
        side = max(max(clean.shape) for _, clean in crops)
        noisy = [[clean * correlated_speckle(1, side, np.array([args.correlated]), rng,
                                             looks=args.looks)[0][:clean.shape[0], :clean.shape[1]]
                  for _, clean in crops] for _ in range(args.draws)]
    groups = np.array([group for group, _ in crops])
    for entry in args.weights:
        outputs = [[despeckle_entry(entry, y, args.looks, args.decorrelate) for y in draw]
                   for draw in noisy]
        psnr = np.mean([[psnr_amplitude(np.sqrt(clean), np.sqrt(out))
                         for (_, clean), out in zip(crops, draw)] for draw in outputs], axis=0)
        log_l1 = np.mean([[np.mean(np.abs(0.5 * np.log(out / clean)))
                           for (_, clean), out in zip(crops, draw)] for draw in outputs], axis=0)
        names = list(dict.fromkeys(groups))
        print(f"{entry:40s} PSNR " + " ".join(f"{g} {psnr[groups == g].mean():.2f}" for g in names)
              + " | |dlog A| " + " ".join(f"{g} {log_l1[groups == g].mean():.4f}" for g in names)
              + " | " + " ".join(f"{p:.2f}" for p in psnr), flush=True)
        if args.breakdown:
            print_breakdown(crops * args.draws, [out for draw in outputs for out in draw])


if __name__ == "__main__":
    main()
