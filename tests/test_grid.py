"""``sardespeckle.io.grid``: inputs combined pixel by pixel must lie on one grid."""

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from sardespeckle.errors import InvalidInputError
from sardespeckle.io import open_source
from sardespeckle.io.grid import check_same_grid


def write_tif(path, *, crs="EPSG:32631", transform=from_origin(600000, 5000000, 10, 10),
              shape=(16, 16)):
    profile = dict(driver="GTiff", width=shape[1], height=shape[0], count=1, dtype="float32",
                   crs=crs, transform=transform)
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.write(np.ones(shape, np.float32), 1)
    return path


def test_one_grid_passes_and_inputs_without_georeferencing_are_not_compared(tmp_path):
    first = write_tif(tmp_path / "a.tif")
    second = write_tif(tmp_path / "b.tif")
    np.save(tmp_path / "c.npy", np.ones((16, 16), np.float32))
    # A GeoTIFF without CRS or transform says nothing about where its pixels lie.
    plain = tmp_path / "plain.tif"
    with rasterio.open(plain, "w", driver="GTiff", width=16, height=16, count=1,
                       dtype="float32") as dataset:
        dataset.write(np.ones((16, 16), np.float32), 1)
    check_same_grid([first, second, tmp_path / "c.npy", plain])
    check_same_grid([str(first)])
    check_same_grid([])
    # Rounding in a processing chain (a billionth of a pixel) is the same grid.
    rounded = write_tif(tmp_path / "r.tif", transform=from_origin(600000 + 1e-8, 5000000, 10, 10))
    check_same_grid([first, rounded])


@pytest.mark.parametrize(
    ("crs", "transform", "shown"),
    [
        ("EPSG:4326", from_origin(5.0, 45.0, 0.001, 0.001), "EPSG:4326"),  # another CRS
        ("EPSG:32631", from_origin(600010, 5000000, 10, 10), "600010.0"),  # shifted a pixel
        ("EPSG:32631", from_origin(600000, 5000000, 20, 20), "20.0"),  # another pixel size
    ],
)
def test_another_grid_is_refused_naming_both_files(tmp_path, crs, transform, shown):
    first = write_tif(tmp_path / "a.tif")
    other = write_tif(tmp_path / "other.tif", crs=crs, transform=transform)
    with pytest.raises(InvalidInputError) as error:
        check_same_grid([first, other], what="dates")
    message = str(error.value)
    assert message.startswith("expected dates on one grid")
    assert f"{first} (EPSG:32631, transform (10.0, 0.0, 600000.0" in message
    assert str(other) in message and shown in message
    assert message.endswith("resample onto one grid first (e.g. gdalwarp -tr/-te, or SNAP's "
                            "collocation)")


def test_opened_sources_are_compared_like_paths(tmp_path):
    first = write_tif(tmp_path / "a.tif")
    other = write_tif(tmp_path / "b.tif", crs="EPSG:4326",
                      transform=from_origin(5.0, 45.0, 0.001, 0.001))
    np.save(tmp_path / "c.npy", np.ones((16, 16), np.float32))
    sources = [open_source(path, kind="amplitude") for path in (first, tmp_path / "c.npy", other)]
    for source in sources:
        source.close()  # closed sources keep their georeferencing
    check_same_grid(sources[:2])
    with pytest.raises(InvalidInputError, match="EPSG:4326"):
        check_same_grid(sources)


def test_a_missing_crs_is_not_a_contradiction(tmp_path):
    # Same transform, one file without CRS: nothing says they differ (only the shapes and the
    # transforms can be compared).
    first = write_tif(tmp_path / "a.tif")
    no_crs = write_tif(tmp_path / "b.tif", crs=None)
    check_same_grid([first, no_crs])
    shifted = write_tif(tmp_path / "c.tif", crs=None,
                        transform=from_origin(600100, 5000000, 10, 10))
    with pytest.raises(InvalidInputError, match="no CRS"):
        check_same_grid([first, shifted])
