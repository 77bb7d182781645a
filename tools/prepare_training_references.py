"""Training references for SAR-CNN run B: the change-aware references with bright targets kept.

Input: runs/references/{lely,marais2}_reference.tif from tools/build_training_references.py
(change-aware temporal average of the despeckled 8-bit series; marais2 columns 384: only).
The builder masks pixels saturated (255) in the series; where a pixel is saturated in every
date it has no value. Such pixels are strong scatterers: dropping them would keep every patch
with a bright target out of training, so here they get the clipping level thr² (a lower bound
of their true intensity). Pixels that are zero in every date stay NaN (never sampled).
Output: runs/references/{site}_train_intensity.npy (float32 intensity), and
runs/references/{site}_train_intensity_trimmed.npy: the same without the series' last 16 rows and
16 columns, where the unknown despeckler of the 8-bit series left border artefacts (a row at the
8-bit ceiling, zero rows, alternating dark and bright lines and columns; the temporal test keeps
them, every date has them). Every network trained up to 2026-11-27 (sarcnn-s1-l1-v3 included)
used the untrimmed files: about 5 % of their 50² patches touch that border.
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from sardespeckle.io import open_source, write_array
from sardespeckle.window import Window

SERIES = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/sar/timeseries")
REFS = Path("runs/references")
BORDER = 16  # last rows and columns of the series that hold border artefacts, not scene
SITES = [("lely", range(21, 31), 235.90, 0), ("marais2", range(20, 31), 168.49, 384)]

for site, dates, threshold, first_col in SITES:
    with open_source(REFS / f"{site}_reference.tif") as source:
        intensity, valid = source.read_intensity(Window.full(source.shape))
    stack = np.stack([np.array(Image.open(SERIES / f"{site}_{d}.png"))[:, first_col:] for d in dates])
    saturated = (~valid) & ((stack == 255).sum(0) >= (stack > 0).sum(0)) & (stack == 255).any(0)
    out = np.where(valid, intensity, np.nan)
    out[saturated] = threshold**2
    write_array(REFS / f"{site}_train_intensity.npy", out.astype(np.float32), kind="intensity",
                overwrite=True)
    write_array(REFS / f"{site}_train_intensity_trimmed.npy",
                out[:-BORDER, :-BORDER].astype(np.float32), kind="intensity", overwrite=True)
    print(site, out.shape, f"restored {saturated.sum()} saturated pixels, "
          f"NaN {np.isnan(out).sum()}")
