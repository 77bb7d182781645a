"""PSNR of SAR-CNN weights on the tuning crops: how training experiments are judged before the
validation references are looked at.

Ten crops, one simulated single-look draw each (seed 7), PSNR on amplitude (the paper's
definition, ``sardespeckle.metrics.psnr_amplitude``):

* ``train``: six 256² crops of the training references ``runs/references/{lely,marais2}_train_intensity.npy``
  (made by ``sardespeckle references build`` from the ``shared/data/sar/timeseries`` series, see
  ``training_runs/sarcnn-s1-l1/README.md``), at fixed relative positions;
* ``unseen``: four 256 × 128 crops of marais2 columns 256:384, the temporal mean of the 11
  dates of the series: a strip no training run used (training starts at column 384) and that is
  not the validation references (columns 0:256).

Usage (from the repository root, with ``../shared`` beside it)::

    python tools/tuning_crops.py default runs/mine/mine.pt sarcnn-s1-l1
    python tools/tuning_crops.py default mulog:dncnn-sar     # SAR-CNN against the hybrid

``default`` is the package's default SAR-CNN weights, ``mulog:DENOISER`` MuLoG with that
denoiser; any other argument is SAR-CNN weights (a registered name or a file). Prints, per
entry, the mean PSNR of each group, the mean |log Â − log A| (amplitude; SAR-CNN's training
loss up to the normalisation) of each group, and the ten PSNR values.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from sardespeckle.api import despeckle
from sardespeckle.metrics import psnr_amplitude

ROOT = Path(__file__).resolve().parents[1]
MARAIS2_THRESHOLD = 168.49  # amplitude of grey level 255 (shared/data/README.md)


def tuning_crops(shared: Path) -> list[tuple[str, np.ndarray]]:
    """``(group, intensity)`` for the ten crops."""
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
    for r in (0, 256, 512, 768):
        crops.append(("unseen", np.maximum(strip[r:r + 256], 1e-3)))
    return crops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("weights", nargs="+",
                        help="'default', SAR-CNN weights (a registered name or a .pt file), or "
                             "mulog:DENOISER")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    args = parser.parse_args()

    crops = tuning_crops(args.shared)
    rng = np.random.default_rng(7)
    noisy = [clean * rng.gamma(1.0, 1.0, clean.shape) for _, clean in crops]
    groups = np.array([group for group, _ in crops])
    for entry in args.weights:
        if entry.startswith("mulog:"):
            method, params = "mulog", {"denoiser": entry.split(":", 1)[1]}
        else:
            method, params = "sarcnn", ({} if entry == "default" else {"weights": entry})
        outputs = [despeckle(y.astype(np.float32), method=method, looks=1, params=params)
                   for y in noisy]
        psnr = np.array([psnr_amplitude(np.sqrt(clean), np.sqrt(out))
                         for (_, clean), out in zip(crops, outputs)])
        log_l1 = np.array([np.mean(np.abs(0.5 * np.log(out / clean)))
                           for (_, clean), out in zip(crops, outputs)])
        print(f"{entry:40s} PSNR train {psnr[groups == 'train'].mean():.2f} unseen "
              f"{psnr[groups == 'unseen'].mean():.2f} | |dlog A| train "
              f"{log_l1[groups == 'train'].mean():.4f} unseen {log_l1[groups == 'unseen'].mean():.4f}"
              " | " + " ".join(f"{p:.2f}" for p in psnr), flush=True)


if __name__ == "__main__":
    main()
