"""Device side: the packed references of tools/device/pack_data.py -> float32 intensity .npy.

devdata/refs/*_train_amp16.xz -> runs/references/*_train_intensity.npy (the files the SAR run
configs name), and devdata/natural_refs/*.xz -> the folder named in devdata/natural_refs/FOLDER.
Float16 amplitude: relative rounding <= 0.1 % in intensity.
"""

import lzma
from pathlib import Path

import numpy as np


def unpack(path: Path) -> np.ndarray:
    data = lzma.decompress(path.read_bytes())
    header, shuffled = data.split(b"\n", 1)
    rows, cols = (int(n) for n in header.split())
    amplitude = np.frombuffer(shuffled, np.uint8).reshape(2, -1).T.copy().view(np.float16)
    amplitude = amplitude.reshape(rows, cols).astype(np.float32)
    return amplitude * amplitude


out = Path("runs/references")
out.mkdir(parents=True, exist_ok=True)
for source in sorted(Path("devdata/refs").glob("*_train_amp16.xz")):
    np.save(out / source.name.replace("_amp16.xz", "_intensity.npy"), unpack(source))
natural = Path("devdata/natural_refs")
if natural.is_dir():
    folder = Path((natural / "FOLDER").read_text())
    folder.mkdir(parents=True, exist_ok=True)
    for source in sorted(natural.glob("*.xz")):
        np.save(folder / f"{source.stem}.npy", unpack(source))
print("references rebuilt")
