"""Small sample data shipped with the package (see README.md in this folder)."""

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def sample_path() -> Path:
    """Path of the bundled 500×500 single-look Sentinel-1 amplitude GeoTIFF (Lely, VV)."""
    return _HERE / "sample_s1_lely_amplitude.tif"
