"""Device side: devdata/refs/*_train_amp16.npy (float16 amplitude) -> runs/references/*_train_intensity.npy.

The float32 intensity files the SAR run configs name, rebuilt from the half-size copies that
tools/device/pack_data.py wrote (relative rounding <= 0.1 % in intensity).
"""

from pathlib import Path

import numpy as np

out = Path("runs/references")
out.mkdir(parents=True, exist_ok=True)
for source in sorted(Path("devdata/refs").glob("*_train_amp16.npy")):
    amplitude = np.load(source).astype(np.float32)
    np.save(out / source.name.replace("_amp16", "_intensity"), amplitude * amplitude)
print("references rebuilt")
