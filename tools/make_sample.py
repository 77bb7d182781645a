"""Build the bundled sample GeoTIFF from the shared Sentinel-1 data (run once; output committed).

Source: ../shared/data/sar/s1_stacks/lely.npy (single-look Sentinel-1 IW SLC amplitude, 500×500,
from the SAR2SAR test set of Dalsasso, Denis and Tupin; GPL-3.0; contains modified Copernicus
Sentinel data). The georeferencing written here is illustrative (UTM 31N near Lelystad, 10 m
pixels): the original crop carries none. It lets the demo show that CRS and transform survive.
"""

import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

source = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/sar/s1_stacks/lely.npy")
target = Path(__file__).resolve().parents[1] / "src/sardespeckle/data/sample_s1_lely_amplitude.tif"
amplitude = np.load(source).astype(np.float32)
profile = dict(driver="GTiff", width=amplitude.shape[1], height=amplitude.shape[0], count=1,
               dtype="float32", crs="EPSG:32631", transform=from_origin(660000, 5825000, 10, 10),
               tiled=True, blockxsize=256, blockysize=256, compress="deflate", predictor=3)
with rasterio.open(target, "w", **profile) as dst:
    dst.write(amplitude, 1)
    dst.set_band_description(1, "Amplitude_VV")
    dst.update_tags(SOURCE="SAR2SAR test set (Dalsasso, Denis, Tupin), Sentinel-1 IW SLC, Lely",
                    LICENSE="GPL-3.0; contains modified Copernicus Sentinel data",
                    GEOREFERENCING="illustrative, not the true location")
print(target, target.stat().st_size)
