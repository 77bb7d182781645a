"""The command line on a real Sentinel-1 single-look crop (skipped without ../shared/data).

``sar/s1_stacks/marais1_{1..5}.npy`` are five co-registered dates (float64 amplitude, 256²) of a
marsh in western France, single-look, from the SAR2SAR test set. Date 1 is despeckled here;
dates 2-5 only serve to find homogeneous areas with speckle independent of date 1's.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine

from sardespeckle.api import DEFAULT_METHOD
from sardespeckle.cli.main import main

STACK = "sar/s1_stacks"
CRS = "EPSG:32630"
TRANSFORM = Affine(10.0, 0.0, 620000.0, 0.0, -10.0, 5140000.0)  # UTM 30N, 10 m pixels, north up
WINDOW = 16


@pytest.fixture
def marais(shared_data, tmp_path):
    """Date 1 of the marais1 stack as a float32 amplitude GeoTIFF, plus the array itself."""
    amplitude = np.load(shared_data / STACK / "marais1_1.npy")
    assert amplitude.shape == (256, 256) and np.isfinite(amplitude).all() and (amplitude > 0).all()
    path = tmp_path / "marais1_1.tif"
    profile = dict(driver="GTiff", width=256, height=256, count=1, dtype="float32", crs=CRS,
                   transform=TRANSFORM)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(amplitude.astype(np.float32), 1)
        dst.set_band_description(1, "Amplitude_VV")
    return path, amplitude.astype(np.float32).astype(np.float64)


def window_blocks(image: np.ndarray, size: int = WINDOW) -> np.ndarray:
    """Non-overlapping size×size windows as rows of a (windows, size²) array."""
    rows, cols = image.shape[0] // size, image.shape[1] // size
    cropped = image[: rows * size, : cols * size]
    return cropped.reshape(rows, size, cols, size).swapaxes(1, 2).reshape(rows * cols, size * size)


def window_enl(intensity: np.ndarray) -> np.ndarray:
    """ENL (mean² / unbiased variance of intensity) of every window."""
    blocks = window_blocks(intensity)
    return blocks.mean(axis=1) ** 2 / blocks.var(axis=1, ddof=1)


def most_homogeneous(shared_data, fraction: float = 0.1) -> np.ndarray:
    """Indices of the ``fraction`` of windows with the lowest coefficient of variation in the
    temporal mean intensity of dates 2-5.

    Selecting on the image being measured would favour windows that look smooth by chance and
    bias its ENL upward (the input's more than the output's, or the other way round depending on
    which one is used). Dates 2-5 have speckle independent of date 1, and their mean has less of
    it, so the selection finds the truly homogeneous areas without favouring either image.
    """
    others = np.mean([np.load(shared_data / STACK / f"marais1_{d}.npy") ** 2 for d in range(2, 6)],
                     axis=0)
    blocks = window_blocks(others)
    cv = blocks.std(axis=1, ddof=1) / blocks.mean(axis=1)
    keep = int(np.ceil(fraction * len(cv)))
    return np.argsort(cv)[:keep]


def test_run_default_method_on_real_sentinel1(shared_data, marais, tmp_path, capsys):
    source, amplitude_in = marais
    out = tmp_path / "marais1_1_despeckled.tif"
    png = tmp_path / "marais1_1_preview.png"
    assert main(["run", str(source), "-o", str(out), "--looks", "1", "--preview", str(png)]) == 0
    err = capsys.readouterr().err
    assert "input kind: amplitude" in err and "looks: 1 (given)" in err

    with rasterio.open(source) as src, rasterio.open(out) as dst:
        assert dst.crs == src.crs and dst.crs.to_epsg() == 32630
        assert dst.transform == src.transform == TRANSFORM
        assert dst.shape == src.shape == (256, 256) and dst.count == 1
        tags = dst.tags()
        amplitude_out = dst.read(1).astype(np.float64)
    assert tags["SARDESPECKLE_METHOD"] == DEFAULT_METHOD
    assert tags["SARDESPECKLE_LOOKS"] == "1"
    assert tags["SARDESPECKLE_OUTPUT_KIND"] == "amplitude"
    assert tags["SARDESPECKLE_INPUT_KIND"] == "amplitude"
    assert "SARDESPECKLE_VERSION" in tags
    assert isinstance(json.loads(tags["SARDESPECKLE_PARAMETERS"]), dict)
    assert np.isfinite(amplitude_out).all() and (amplitude_out > 0).all()

    # Radiometry. The default method (Kuan) is a linear MMSE estimate of the *intensity*,
    # mean + W·(I - mean), which keeps the mean intensity: the right check is the output's RMS
    # amplitude, sqrt(mean(Â²)), against the input's, sqrt(mean(A²)) (measured: 0.999).
    # Comparing mean amplitudes would be wrong: single-look amplitude is Rayleigh, whose mean is
    # sqrt(pi/4) ≈ 0.886 of its RMS (measured 0.869 here), while a despeckled amplitude has
    # little speckle left, so its mean sits near the RMS level of the input, not near its mean
    # amplitude. The output's mean amplitude is below its RMS by Jensen's gap, which grows with
    # the scene's contrast and the residual speckle (measured 0.979 of the input RMS): within
    # 10% of the input's RMS amplitude, the bound asked for.
    rms_in = np.sqrt(np.mean(amplitude_in**2))
    rms_out = np.sqrt(np.mean(amplitude_out**2))
    assert abs(rms_out / rms_in - 1) < 0.02
    assert abs(amplitude_out.mean() / rms_in - 1) < 0.10

    # Speckle reduction on the 10% most homogeneous 16×16 windows (26 of 256), chosen on the
    # other dates. Measured: input ENL ≈ 0.97 (single look), output ≈ 17.7 (Kuan 7×7; less than
    # 49 because the SLC speckle is correlated, so a 7×7 window holds fewer independent looks).
    chosen = most_homogeneous(shared_data)
    enl_in = window_enl(amplitude_in**2)[chosen].mean()
    enl_out = window_enl(amplitude_out**2)[chosen].mean()
    assert 0.7 < enl_in < 1.4, enl_in
    assert enl_out > 3 * enl_in, (enl_in, enl_out)

    from PIL import Image

    assert png.exists()
    with Image.open(png) as image:
        assert image.format == "PNG"
        assert image.width >= 2 * 256 and image.height >= 256


def test_info_estimates_single_look(marais, capsys):
    # Measured on the 25 crops of sar/s1_stacks (5 sites × 5 dates): 0.80-1.11, marais1_1 1.09.
    # The estimate is slightly above 1 on most crops: the SLC is oversampled, so the speckle is
    # spatially correlated (lag-1 correlation of log-intensity 0.25-0.44) and the checkerboard
    # halves used to select and to estimate are no longer independent, so windows chosen as
    # smooth are also smoother in the estimating half (subsampling by 2 gives 1.05). It drops
    # below 1 where texture survives in the selected windows (limagne_1: 0.80). Bounds
    # 0.6-1.6 hold the nominal single look with margin for both effects, and still exclude a
    # multilooked (L ≥ 2) or already filtered image.
    source, _ = marais
    assert main(["info", str(source), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "amplitude"
    assert "32630" in json.dumps(info)
    looks = float(info["estimated_looks"])
    assert 0.6 < looks < 1.6, looks
