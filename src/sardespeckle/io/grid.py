"""Whether co-registered inputs (channels of a covariance, dates of a stack) lie on one grid.

Commands that combine several rasters pixel by pixel check their shapes; two GeoTIFFs of the
same size may still cover different ground (another CRS, another origin or pixel size), and the
output would silently take the first file's georeferencing. :func:`check_same_grid` refuses
that. Inputs without georeferencing (``.npy``, a GeoTIFF without CRS or transform) are not
compared: nothing says where their pixels lie.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from sardespeckle.errors import InvalidInputError
from sardespeckle.io.base import Georef, Source, _crs_text, file_format

#: Largest shift, in pixels of the first input, of any corner of the grid for two transforms
#: to count as the same: rounding in a processing chain, not another grid.
GRID_TOLERANCE_PIXELS = 1e-3


def check_same_grid(inputs: Sequence[Source | str | os.PathLike], *,
                    what: str = "inputs") -> None:
    """Refuse inputs whose georeferencing disagrees.

    Parameters
    ----------
    inputs : sequence of Source or path-like
        Opened sources (their ``georef`` and ``shape`` are used; closed ones are fine) or paths
        (a GeoTIFF's header is read; other formats, and files that cannot be opened, are left
        to their reader).
    what : str, keyword-only
        What the inputs are, for the message (``"channels"``, ``"dates"``).

    Raises
    ------
    InvalidInputError
        Two inputs that both carry a geotransform have different CRSs (when both have one), or
        transforms that put a corner of the grid more than :data:`GRID_TOLERANCE_PIXELS` pixel
        apart; the message names both files, their CRS and transform, and the remedy.
    """
    first = None
    for item in inputs:
        grid = _grid_of(item)
        if grid is None:
            continue
        if first is None:
            first = grid
            continue
        if not _same_grid(first, grid):
            raise InvalidInputError(
                f"expected {what} on one grid, got {_describe(first)} and {_describe(grid)}; "
                "resample onto one grid first (e.g. gdalwarp -tr/-te, or SNAP's collocation)")


def georeferencing_source(paths: Sequence[str | os.PathLike], *, what: str = "inputs") -> int:
    """Index of the input whose georeferencing an output of ``paths`` takes: the first with a
    geotransform and a CRS, else the first with a geotransform, else 0. Warns (UserWarning)
    about the GeoTIFFs that lack what it has, so that neither the loss nor the borrowing is
    silent (:func:`check_same_grid` has refused inputs that contradict each other)."""
    import warnings

    paths = [os.fspath(path) for path in paths]
    grids = [_grid_of(path) for path in paths]
    ranked = [index for index, grid in enumerate(grids) if grid is not None]
    if not ranked:
        return 0
    full = [index for index in ranked if grids[index][1].crs is not None]
    chosen = (full or ranked)[0]
    lacking = []
    for path, grid in zip(paths, grids):
        if file_format(path) != "geotiff" or not os.path.isfile(path):
            continue  # .npy and the like carry no georeferencing by nature
        if grid is None:
            lacking.append(f"{path} (no georeferencing)")
        elif full and grid[1].crs is None:
            lacking.append(f"{path} (no CRS)")
    if lacking:
        warnings.warn(f"{', '.join(lacking)} among georeferenced {what}: the output takes the "
                      f"georeferencing of {paths[chosen]}", UserWarning, stacklevel=2)
    return chosen


def _grid_of(item) -> tuple[str, Georef, tuple[int, int]] | None:
    """``(path, georef, (rows, cols))`` of an input with a geotransform, else None."""
    if isinstance(item, Source):
        path, georef, shape = item.path, item.georef, item.shape
    else:
        path = os.fspath(item)
        if file_format(path) != "geotiff" or not os.path.isfile(path):
            return None
        found = _read_georef(path)
        if found is None:
            return None
        georef, shape = found
    if georef is None or georef.transform is None:
        return None
    return path, georef, shape


def _read_georef(path: str) -> tuple[Georef, tuple[int, int]] | None:
    """A GeoTIFF's georeferencing and shape without reading pixels (None when it cannot be
    opened: its reader says why)."""
    from sardespeckle.errors import InputFileError
    from sardespeckle.io.geotiff import read_header

    try:
        header = read_header(path)
    except InputFileError:
        return None
    return header.georef, header.shape


def _same_grid(first, other) -> bool:
    from affine import TransformNotInvertibleError

    _, georef, shape = first
    _, other_georef, _ = other
    if georef.crs is not None and other_georef.crs is not None and georef.crs != other_georef.crs:
        return False
    # Where the other grid's corners fall on the first grid, in pixels of the first.
    rows, cols = shape
    try:
        to_first = ~georef.transform @ other_georef.transform
    except TransformNotInvertibleError:  # a degenerate transform: only an equal one matches
        return tuple(georef.transform) == tuple(other_georef.transform)
    for col, row in ((0, 0), (cols, 0), (0, rows), (cols, rows)):
        x, y = to_first @ (col, row)
        if max(abs(x - col), abs(y - row)) > GRID_TOLERANCE_PIXELS:
            return False
    return True


def _describe(grid) -> str:
    path, georef, _ = grid
    crs = _crs_text(georef.crs) or "no CRS"
    transform = tuple(round(value, 9) for value in tuple(georef.transform)[:6])
    return f"{path} ({crs}, transform {transform})"


__all__ = ["GRID_TOLERANCE_PIXELS", "check_same_grid", "georeferencing_source"]
