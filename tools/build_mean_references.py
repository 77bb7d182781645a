"""Temporal-mean training references from the despeckled 8-bit Sentinel-1 series (run A).

Writes runs/refs_mean/{lely,marais2}_mean_intensity.npy: the per-pixel mean intensity over the
dates of ../shared/data/sar/timeseries (lely 10 dates, marais2 11 dates), amplitude = png/255·thr.
Saturated pixels (255, clipped at thr) are kept as thr so bright targets stay bright in training;
zeros are masked; pixels with fewer than 3 valid dates are NaN (never sampled).
marais2 columns 0:384 are left out: the validation references
../shared/data/sar/references/groundtruth/marais2_10_{0,1}.npy are crops of this series at rows
0:256 and 256:512, columns 0:256 (found by normalised cross-correlation, 0.79 and 0.60).
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from sardespeckle.io import write_array

SERIES = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/sar/timeseries")
OUT = Path("runs/refs_mean")
SITES = [("lely", range(21, 31), 235.90, 0), ("marais2", range(20, 31), 168.49, 384)]

OUT.mkdir(parents=True, exist_ok=True)
for site, dates, threshold, first_col in SITES:
    stack = np.stack([np.array(Image.open(SERIES / f"{site}_{d}.png")) for d in dates]).astype(np.float32)
    valid = stack > 0
    intensity = np.where(valid, (stack / 255 * threshold) ** 2, 0)
    count = valid.sum(0)
    mean = np.where(count >= 3, intensity.sum(0) / np.maximum(count, 1), np.nan)[:, first_col:]
    write_array(OUT / f"{site}_mean_intensity.npy", mean.astype(np.float32), kind="intensity",
                overwrite=True)
    print(site, mean.shape, f"NaN fraction {np.isnan(mean).mean():.4f}")
