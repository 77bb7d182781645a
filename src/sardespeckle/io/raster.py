"""Open an input, create an output: the file-level entry points of :mod:`sardespeckle.io`.

The file extension decides the format: ``.tif``/``.tiff`` (GeoTIFF through rasterio) or
``.npy`` (NumPy, memory-mapped).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from sardespeckle.errors import InputFileError, InvalidInputError, UsageError
from sardespeckle.io.base import Georef, Sink, Source, check_output_path, file_format
from sardespeckle.io.kinds import OUTPUT_KINDS, check_kind

TAG_PREFIX = "SARDESPECKLE_"


def open_source(
    path: str | os.PathLike,
    *,
    kind: str | None = None,
    band: int = 1,
    complex_layout: str | None = None,
    nodata: float | None = None,
) -> Source:
    """Open a raster for reading, read-only.

    Parameters
    ----------
    path : path-like
        A ``.tif``/``.tiff`` GeoTIFF or a ``.npy`` array.
    kind : str, optional
        ``"intensity"``, ``"amplitude"``, ``"db"`` or ``"complex"``; detected when left out
        (see :func:`sardespeckle.io.detect_kind` for the rule).
    band : int
        The GeoTIFF band to read, from 1.
    complex_layout : str, optional
        Real and imaginary parts stored as real numbers: ``"bands"`` (GeoTIFF bands ``band`` and
        ``band + 1``), ``"last"`` (``.npy`` of shape ``(rows, cols, 2)``) or ``"first"``
        (``(2, rows, cols)``).
    nodata : float, optional
        Value of missing pixels, replacing the file's own (a ``.npy`` file has none).

    Returns
    -------
    Source
        Use it as a context manager, or call ``close()``.

    Raises
    ------
    InputFileError
        The file is missing, not a file, or unreadable.
    InvalidInputError
        Unsupported extension or data type, empty raster, wrong shape, undetectable kind.
    UsageError
        Inconsistent options (band out of range, layout for the wrong format, unknown kind).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise UsageError(f"expected a file path, got {path!r}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputFileError(f"no such file: {path}")
    if not os.path.isfile(path):
        raise InputFileError(f"expected a file, got the folder {path}")
    fmt = file_format(path)
    if fmt is None:
        raise InvalidInputError(
            f"expected a .tif, .tiff or .npy file, got {os.path.basename(path)!r}"
        )
    if kind is not None:
        check_kind(kind)
        if complex_layout is not None and kind != "complex":
            raise UsageError(
                f"expected kind 'complex' (or none) with complex_layout={complex_layout!r} "
                f"(CLI --kind complex with --complex-layout {complex_layout}), got {kind!r}"
            )
    if not os.access(path, os.R_OK):
        raise InputFileError(f"cannot read {path}: permission denied")
    if fmt == "geotiff":
        from sardespeckle.io.geotiff import GeoTiffSource

        return GeoTiffSource(
            path, kind=kind, band=band, complex_layout=complex_layout, nodata=nodata
        )
    from sardespeckle.io.npy import NpySource

    if band != 1:
        raise UsageError(f"expected band 1 for a .npy file (it has one), got {band}")
    return NpySource(path, kind=kind, complex_layout=complex_layout, nodata=nodata)


def stored_tags(path: str | os.PathLike) -> dict[str, str]:
    """The provenance tags a GeoTIFF or a ``.npy`` sidecar holds, ``{}`` when there are none
    or the file cannot be read (left to the reader)."""
    from sardespeckle.io.geotiff import read_header
    from sardespeckle.io.npy import sidecar_tags

    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npy":
        return sidecar_tags(path)
    if suffix in (".tif", ".tiff") and os.path.isfile(path):
        try:
            return read_header(path).tags
        except InputFileError:
            return {}
    return {}


def provenance_tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
    """Tags as written into outputs: keys upper-cased and prefixed ``SARDESPECKLE_``, values
    kept when strings and JSON-encoded otherwise, plus ``SARDESPECKLE_VERSION``.

    >>> tags = provenance_tags({"method": "lee", "parameters": {"window_size": 7}})
    >>> tags["SARDESPECKLE_METHOD"], tags["SARDESPECKLE_PARAMETERS"]
    ('lee', '{"window_size": 7}')
    """
    from sardespeckle import __version__

    written = {f"{TAG_PREFIX}VERSION": __version__}
    for key, value in (tags or {}).items():
        name = str(key).upper()
        if not name.startswith(TAG_PREFIX):
            name = TAG_PREFIX + name
        written[name] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return written


# Every dB value an intensity can give, from the smallest positive float64 to the largest
# (about -3233 to 3083 dB): a nodata value inside would mark a value the data can take.
_DB_RANGE = (10 * np.log10(np.finfo(np.float64).smallest_subnormal),
             10 * np.log10(np.finfo(np.float64).max))


def output_nodata(
    nodata: float | None, dtype: np.dtype | str = np.float32, *, kind_out: str | None = None
) -> float:
    """The nodata value of an output: the input's when ``dtype`` holds it exactly and, for a
    ``kind_out`` of ``"db"``, when no dB value can equal it (-9999 is kept, 0 is not: 0 dB is
    an intensity of 1); else NaN.

    >>> output_nodata(0.0, kind_out="amplitude"), output_nodata(0.0, kind_out="db")
    (0.0, nan)
    """
    if nodata is None:
        return float("nan")
    nodata = float(nodata)
    if np.isnan(nodata):
        return nodata
    if kind_out == "db" and _DB_RANGE[0] <= nodata <= _DB_RANGE[1]:
        return float("nan")
    with np.errstate(over="ignore"):
        converted = np.dtype(dtype).type(nodata)
    return nodata if float(converted) == nodata else float("nan")


def _output_description(kind_out: str, input_description: str | None) -> str:
    """``"<kind_out> (despeckled)"``, with the input band's polarisation when it names one
    (``"amplitude VV (despeckled)"``): the bands of a multi-band output stay apart, and the
    description still names the output's kind only."""
    from sardespeckle.io.kinds import polarisation_of

    polarisation = polarisation_of(input_description)
    return f"{kind_out} {polarisation} (despeckled)" if polarisation else f"{kind_out} (despeckled)"


def create_sink(
    path: str | os.PathLike,
    source: Source,
    *,
    kind_out: str,
    dtype: str | np.dtype = "float32",
    tags: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    block_size: int = 256,
    description: str | None = None,
) -> Sink:
    """Create the output of a run on ``source``, written window by window.

    Parameters
    ----------
    path : path-like
        ``.tif``/``.tiff`` or ``.npy``; the extension decides the format, whatever the input's.
    source : Source
        The input: its shape, georeferencing (CRS + transform, or GCPs with their CRS, RPCs),
        nodata, kind and dataset tags are carried over.
    kind_out : str
        ``"intensity"``, ``"amplitude"`` or ``"db"``.
    dtype : str or numpy dtype
        ``"float32"`` (default) or ``"float64"``.
    tags : mapping, optional
        Provenance, e.g. ``{"method": "lee", "parameters": {...}, "looks": 1}``; written as
        GeoTIFF dataset tags ``SARDESPECKLE_METHOD``, ... (see :func:`provenance_tags`) with
        ``SARDESPECKLE_VERSION``, ``SARDESPECKLE_INPUT_KIND`` and ``SARDESPECKLE_OUTPUT_KIND``.
        A ``.npy`` output cannot hold them (they stay on ``sink.tags``).
    overwrite : bool
        Replace an existing output (never the input).
    block_size : int
        GeoTIFF tile size (a multiple of 16). Write windows aligned on it, each tile once:
        a compressed tile written again is appended, and the file grows.
    description : str, optional
        GeoTIFF band description; by default ``"<kind_out> (despeckled)"``, with the input
        band's polarisation when its description names one (``"amplitude VV (despeckled)"``).

    Returns
    -------
    Sink
        Use it as a context manager (commit on success, abort on error), or call
        ``commit()`` / ``abort()``.

    Notes
    -----
    GeoTIFF outputs are tiled, deflate-compressed with the floating-point predictor, BigTIFF when
    needed. The output nodata is the input's when set, exactly representable in ``dtype`` and,
    for a dB output, not a value dB data can take (see :func:`output_nodata`), else NaN; a
    ``.npy`` output always uses NaN. Other input dataset tags are kept, except those
    naming a kind (e.g. ``UNITS=dB``), which describe the input, not the output.
    """
    path, fmt = check_output_path(path, inputs=(source.path,), overwrite=overwrite)
    check_kind(kind_out, allowed=OUTPUT_KINDS, what="output kind")
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise UsageError(f"expected an output dtype float32 or float64, got {dtype.name}")
    written = provenance_tags(
        {"input_kind": source.kind, "output_kind": kind_out, **dict(tags or {})}
    )
    if fmt == "npy":
        from sardespeckle.io.npy import NpySink

        return NpySink(
            path, shape=source.shape, kind_out=kind_out, dtype=dtype, overwrite=overwrite,
            tags=written,
        )
    from sardespeckle.io.geotiff import GeoTiffSink, inherited_tags

    if source.description:
        written.setdefault(f"{TAG_PREFIX}INPUT_DESCRIPTION", source.description)
    return GeoTiffSink(
        path,
        shape=source.shape,
        kind_out=kind_out,
        nodata=output_nodata(source.nodata, dtype, kind_out=kind_out),
        dtype=dtype,
        tags={**inherited_tags(source), **written},
        georef=source.georef,
        description=description or _output_description(kind_out, source.description),
        overwrite=overwrite,
        block_size=block_size,
    )


def write_array(
    path: str | os.PathLike,
    array: np.ndarray,
    *,
    like: Source | None = None,
    kind: str | None = None,
    nodata: float | None = None,
    description: str | None = None,
    tags: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    block_size: int = 256,
    sidecar: bool = True,
) -> str:
    """Write a whole 2-D array as it is (values and dtype kept), atomically.

    For small arrays: simulated images, test fixtures, references.

    Parameters
    ----------
    path : path-like
        ``.tif``/``.tiff`` or ``.npy``.
    array : ndarray
        ``(rows, cols)``, integer, floating-point or complex.
    like : Source, optional
        Georeferencing to copy (GeoTIFF output only); ``path`` must differ from ``like.path``.
    kind : str, optional
        What the values are; becomes the band description unless ``description`` is given (a
        ``.npy`` gets it, with ``tags``, in its ``OUT.npy.json`` sidecar), so that
        :func:`open_source` detects it back.
    nodata : float, optional
        GeoTIFF nodata value.
    description : str, optional
        GeoTIFF band description.
    tags : mapping, optional
        Provenance tags, prefixed as in :func:`provenance_tags`.
    overwrite : bool
        Replace an existing file.
    block_size : int
        GeoTIFF tile size.
    sidecar : bool
        For a ``.npy`` with a ``kind`` or ``tags``: write them into its ``OUT.npy.json`` (a
        caller publishing several files together writes its own and passes False).

    Returns
    -------
    str
        The path written.
    """
    path, fmt = check_output_path(
        path, inputs=(like.path,) if like is not None else (), overwrite=overwrite
    )
    array = np.asarray(array)
    if array.ndim != 2:
        raise InvalidInputError(f"expected a 2-D array (rows, cols), got shape {array.shape}")
    if array.size == 0:
        raise InvalidInputError(f"expected a non-empty array, got shape {array.shape}")
    if array.dtype.kind not in "iufc" or array.dtype == np.float16:
        raise InvalidInputError(
            f"expected integer, float32/float64 or complex values, got {array.dtype.name}"
        )
    if kind is not None:
        check_kind(kind)
    if fmt == "npy":
        from sardespeckle.io.npy import (check_sidecar, publish_with_sidecar, sidecar_record,
                                         write_npy)

        if not sidecar or (kind is None and not tags):
            write_npy(path, array, overwrite=overwrite)
            return path
        # the kind and tags go to OUT.npy.json, as for every .npy output: read back, the
        # array is known for what it is (no --kind needed)
        check_sidecar(path, overwrite=overwrite)
        record = sidecar_record(path, shape=array.shape, dtype=array.dtype, kind=kind,
                                tags=provenance_tags({"kind": kind, **dict(tags or {})}
                                                     if kind else tags))
        publish_with_sidecar(path, record, lambda: write_npy(path, array, overwrite=overwrite))
        return path
    from sardespeckle.io.geotiff import write_geotiff

    written = provenance_tags({"kind": kind, **dict(tags or {})} if kind else tags)
    write_geotiff(
        path,
        array,
        georef=like.georef if like is not None else Georef(),
        nodata=nodata,
        description=description or kind,
        tags=written,
        overwrite=overwrite,
        block_size=block_size,
    )
    return path


__all__ = [
    "create_sink",
    "open_source",
    "output_nodata",
    "provenance_tags",
    "stored_tags",
    "write_array",
]
