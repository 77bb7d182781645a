"""Pack the training data for a GPU machine into devdata/ (git-ignored via .git/info/exclude).

    python tools/device/pack_data.py [--shared ../shared] [--sar-only]

Writes devdata/shared/... (train400, BSD68 test001-009: not with --sar-only, which SAR runs
need not carry; the validation references) and
devdata/refs/{lely,marais2}_train_amp16.npy (runs/references/*_train_intensity.npy as float16
amplitude, half the bytes; rebuilt there by tools/device/rebuild_references.py).
"""

import argparse
import shutil
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

parser = argparse.ArgumentParser()
parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
parser.add_argument("--sar-only", action="store_true",
                    help="leave out the natural images (9 MB): the tree the device tool carries is "
                         "limited to 64 MiB, and SAR-CNN runs do not need them")
args = parser.parse_args()
data, out = args.shared / "data", ROOT / "devdata"
exclude = ROOT / ".git" / "info" / "exclude"
if exclude.parent.is_dir() and "/devdata/" not in (exclude.read_text() if exclude.exists() else ""):
    with open(exclude, "a") as handle:
        handle.write("/devdata/\n")
if args.sar_only:
    shutil.rmtree(out / "shared/natural", ignore_errors=True)
else:
    shutil.copytree(data / "natural/train400", out / "shared/natural/train400", dirs_exist_ok=True)
    (out / "shared/natural/bsd68").mkdir(parents=True, exist_ok=True)
    for png in sorted((data / "natural/bsd68").glob("test00?.png")):
        shutil.copy(png, out / "shared/natural/bsd68" / png.name)
truth = out / "shared/sar/references/groundtruth"
truth.mkdir(parents=True, exist_ok=True)
for npy in sorted((data / "sar/references/groundtruth").glob("*.npy")):
    shutil.copy(npy, truth / npy.name)
(out / "refs").mkdir(parents=True, exist_ok=True)
for name in ("lely", "marais2"):
    intensity = np.load(ROOT / "runs/references" / f"{name}_train_intensity.npy")
    np.save(out / "refs" / f"{name}_train_amp16.npy", np.sqrt(intensity).astype(np.float16))
print(f"wrote {out}")
