"""Pack the training data for a GPU machine into devdata/ (git-ignored via .git/info/exclude).

    python tools/device/pack_data.py [--shared ../shared] [--sar-only] [--natural-refs DIR]

Writes devdata/shared/... (train400, BSD68 test001-009: not with --sar-only, which SAR runs
need not carry; the validation references) and
devdata/refs/{lely,marais2}_train_amp16.xz (runs/references/*_train_intensity.npy as float16
amplitude, bytes shuffled (all low bytes, then all high bytes) and xz-compressed: a third of the
float32 bytes; rebuilt there by tools/device/rebuild_references.py). ``--natural-refs DIR``
packs the natural-image references of tools/natural_references.py the same way
(devdata/natural_refs/NAME.xz, rebuilt as DIR/NAME.npy).
"""

import argparse
import lzma
import shutil
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

parser = argparse.ArgumentParser()
parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
parser.add_argument("--sar-only", action="store_true",
                    help="leave out the natural images (9 MB): the tree the device tool carries is "
                         "limited to 64 MiB, and SAR-CNN runs do not need them")
parser.add_argument("--natural-refs", type=Path, default=None,
                    help="a folder of natural-image references (tools/natural_references.py) the "
                         "run configs name, packed too")
args = parser.parse_args()


def pack(intensity: np.ndarray, path: Path) -> None:
    """Float16 amplitude, byte-shuffled, xz: the format rebuild_references.py reads."""
    amplitude = np.ascontiguousarray(np.sqrt(intensity).astype(np.float16))
    shuffled = amplitude.view(np.uint8).reshape(-1, 2).T.tobytes()
    header = f"{amplitude.shape[0]} {amplitude.shape[1]}\n".encode()
    path.write_bytes(lzma.compress(header + shuffled))



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
shutil.rmtree(out / "refs", ignore_errors=True)
(out / "refs").mkdir(parents=True)
for name in ("lely", "marais2"):
    pack(np.load(ROOT / "runs/references" / f"{name}_train_intensity.npy"),
         out / "refs" / f"{name}_train_amp16.xz")
shutil.rmtree(out / "natural_refs", ignore_errors=True)
if args.natural_refs is not None:
    (out / "natural_refs").mkdir(parents=True)
    (out / "natural_refs" / "FOLDER").write_text(str(args.natural_refs))
    for npy in sorted(args.natural_refs.glob("*.npy")):
        pack(np.load(npy), out / "natural_refs" / f"{npy.stem}.xz")
print(f"wrote {out}")
