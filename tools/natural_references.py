"""Natural images as extra speckle-free "references" for SAR-CNN training (an experiment).

Writes one float32 intensity ``.npy`` per image of ``shared/data/natural/train400`` (or the
first ``--count``), for the ``references`` list of a training config. A grey level ``g`` becomes
the amplitude ``((g + u) / 256) ** gamma`` with ``u`` uniform in [0, 1) (undoes the 8-bit
steps, which the log would magnify in the dark) and one ``gamma`` per image, log-uniform in
``--gamma`` (natural images span ≈ 48 dB of amplitude at ``gamma = 1``, SAR scenes more); the
intensity is its square. The training gains then set the level.

Usage (from the repository root)::

    python tools/natural_references.py --out runs/natural_refs --count 100
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--gamma", type=float, nargs=2, default=(1.0, 2.5))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    paths = sorted((args.shared / "data" / "natural" / "train400").glob("*.png"))[:args.count]
    if not paths:
        raise SystemExit(f"no PNG images in {args.shared / 'data' / 'natural' / 'train400'}")
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    low, high = np.log(args.gamma[0]), np.log(args.gamma[1])
    entries = []
    for path in paths:
        grey = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
        gamma = float(np.exp(rng.uniform(low, high)))
        amplitude = ((grey + rng.random(grey.shape)) / 256.0) ** gamma
        target = args.out / f"{path.stem}.npy"
        np.save(target, (amplitude ** 2).astype(np.float32))
        entries.append({"path": str(target), "kind": "intensity", "window": None})
    (args.out / "references.json").write_text(json.dumps(entries, indent=1) + "\n")
    print(f"wrote {len(entries)} intensity references to {args.out} "
          f"({sum(np.load(e['path']).size for e in entries) / 1e6:.1f} MP)")


if __name__ == "__main__":
    main()
