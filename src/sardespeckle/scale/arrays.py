"""Despeckle an ``xarray.DataArray`` lazily: one Dask task per chunk, the halo by map_overlap.

Each chunk is a core tile of the engine. ``dask.array.map_overlap`` hands the task its chunk
grown by ``depth`` pixels on each side (clipped at the raster border, ``boundary="none"``), and
the task runs :func:`sardespeckle.tiling.process_tile` on it: the same reads, the same fill of
masked pixels and the same crop as the single-process engine with these tiles. The depth is
``2·halo`` (masked pixels need twice the halo, and at least one pixel, see
:func:`sardespeckle.tiling.run_tiled`), plus the whitening filter's radius when the method reads
whitened complex data.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from sardespeckle.api import DEFAULT_METHOD, DEFAULT_TILE, plan_run
from sardespeckle.errors import InvalidInputError
from sardespeckle.io.base import Georef, Source
from sardespeckle.io.kinds import check_kind, detect_kind, from_intensity, kind_from_text
from sardespeckle.io.raster import TAG_PREFIX, provenance_tags
from sardespeckle.scale.cluster import require_dask
from sardespeckle.scale.workers import MethodRecipe, TileJob
from sardespeckle.window import Window

#: Attributes describing the input's encoding or meaning that are wrong on the output.
_DROPPED_ATTRS = frozenset({"_FillValue", "missing_value", "scale_factor", "add_offset",
                            "long_name", "units"})
#: Longest side of the decimated read used to detect the kind (as for files).
_SAMPLE_SIZE = 512


class ArraySource(Source):
    """A 2-D array (numpy or dask) seen as a :class:`sardespeckle.io.Source`.

    ``origin`` places the array in a larger raster of shape ``shape``: windows are given in the
    raster's coordinates and must lie inside the array. Reading a window of a dask array
    computes that window only.
    """

    format = "array"

    def __init__(self, raw, *, kind: str, nodata: float | None,
                 shape: tuple[int, int] | None = None, origin: tuple[int, int] = (0, 0),
                 name: str = "<array>", kind_reason: str = "given") -> None:
        self._raw = raw
        self._origin = (int(origin[0]), int(origin[1]))
        self.path = name
        self.shape = tuple(int(s) for s in (shape or raw.shape))
        self.dtype = np.dtype(raw.dtype)
        self.kind = kind
        self.kind_reason = kind_reason
        self.nodata = nodata
        self.georef = Georef()
        self.description = None
        self.tags = {}
        self.block_shape = None

    def _read(self, window: Window) -> np.ndarray:
        local = Window(window.row - self._origin[0], window.col - self._origin[1],
                       window.height, window.width)
        return np.asarray(self._raw[local.slices])

    def _read_decimated(self, step: int) -> np.ndarray:
        return np.asarray(self._raw[::step, ::step])

    def value_shares(self) -> tuple[float, float]:
        """As for files, except for a lazy (dask) array whose kind was given: its values are
        not read at call time (the shares of negative and overflowing values are then not
        measured, nor refused when common; such pixels are still masked, tile by tile). A
        detected kind read a decimated copy already: the shares come from one such copy."""
        if isinstance(self._raw, np.ndarray):
            return super().value_shares()
        if self.kind_reason == "given":
            return 0.0, 0.0
        from sardespeckle.io.kinds import check_value_shares, negative_share, overflow_share

        raw = self.read_decimated(1024)
        negative = negative_share(raw, self.kind, nodata=self.nodata)
        overflow = overflow_share(raw, self.kind, nodata=self.nodata)
        with self._kind_context():
            check_value_shares(negative, overflow, self.kind)
        return negative, overflow


def despeckle_dataarray(
    data,
    *,
    method: str = DEFAULT_METHOD,
    looks: float | None = None,
    kind: str | None = None,
    output_kind: str | None = None,
    tile: int | None = None,
    params: dict[str, Any] | None = None,
):
    """Despeckle a SAR image held in an ``xarray.DataArray``, lazily, chunk by chunk.

    Parameters
    ----------
    data : xarray.DataArray, shape (y, x) or (1, y, x)
        Amplitude, intensity, dB or complex values, numpy- or dask-backed, for instance
        ``rioxarray.open_rasterio(path, chunks=(1, 2048, 2048))``. Pixels that are NaN/inf,
        equal to the ``_FillValue`` attribute (else ``nodata``, else ``missing_value``) or of
        zero intensity are masked.
    method : str
        A registered method (``sardespeckle methods``).
    looks : float, optional
        Number of looks; by default 1 for complex data, else estimated on the central
        1024 × 1024 window (which is computed now).
    kind : {"intensity", "amplitude", "db", "complex"}, optional
        By default detected from the ``long_name``/``units`` attributes, the other attributes,
        the name, then the values, as for files.
    output_kind : {"intensity", "amplitude", "db"}, optional
        By default the input kind (complex gives intensity).
    tile : int, optional
        Rechunk to ``tile × tile`` chunks; by default a dask-backed input keeps its chunks and a
        numpy-backed one gets the method's tile (512; 1024 for sarcnn).
    params : dict, optional
        Method parameters overriding its defaults.

    Returns
    -------
    xarray.DataArray
        float32, dask-backed (nothing computed yet), same dims, coordinates (CRS in
        ``spatial_ref`` included) and attributes as ``data``, except those describing the input's
        encoding or units; ``long_name`` says the output kind, masked pixels are NaN
        (``_FillValue`` NaN) and the ``SARDESPECKLE_*`` provenance attributes are those a GeoTIFF
        output carries.

    Warns
    -----
    UserWarning
        What :func:`sardespeckle.api.despeckle` warns about, and what a file run notes as a
        possible problem: negative or overflowing values (masked), estimated looks implausible
        for speckle, weights trained for other looks, complex data given looks.

    Notes
    -----
    The method is built now, in this process (bad parameters fail at once), and again at most
    once per worker process when the result is computed (:mod:`sardespeckle.scale.workers`).
    Chunks narrower than the overlap depth (``2·halo``) are merged with a neighbour. With chunks
    equal to the tiles of :func:`sardespeckle.api.despeckle`, the values are those it returns.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from sardespeckle.speckle import add_speckle
    >>> noisy = xr.DataArray(add_speckle(np.full((64, 64), 100.0), looks=1, seed=0),
    ...                      dims=("y", "x"))
    >>> clean = despeckle_dataarray(noisy, method="boxcar", looks=1, kind="intensity", tile=32)
    >>> bool(abs(float(clean.mean()) / 100 - 1) < 0.05), clean.attrs["SARDESPECKLE_METHOD"]
    (True, 'boxcar')
    """
    require_dask("despeckle_dataarray")
    import dask.array as da
    import xarray as xr

    if not isinstance(data, xr.DataArray):
        raise InvalidInputError(f"expected an xarray.DataArray, got {type(data).__name__}")
    raw = _as_2d(data)
    _check_encoding(data.attrs)
    # the fill value under any of the names xarray, rioxarray and CF give it
    nodata = next((data.attrs[key] for key in ("_FillValue", "nodata", "missing_value")
                   if data.attrs.get(key) is not None), None)
    nodata = None if nodata is None else float(np.ravel(nodata)[0])
    source = _array_source(data, raw, kind=kind, nodata=nodata)
    plan = plan_run(source, method=method, looks=looks, output_kind=output_kind, tile=tile,
                    params=params)
    for caution in plan.cautions:  # as despeckle() warns them (no report to hold them)
        warnings.warn(f"despeckle_dataarray: {caution}", UserWarning, stacklevel=2)
    built = plan.built
    radius = 0 if plan.whitening is None else int(plan.whitening.radius)
    depth = max(2 * built.halo, 1) + radius  # what prepare_tile may read around a core
    if isinstance(raw, da.Array) and tile is None:
        chunks = raw.chunks
    else:
        side = int(tile or built.tile or DEFAULT_TILE)
        chunks = da.core.normalize_chunks((side, side), raw.shape)
    chunks = tuple(_merge_small(axis, depth) for axis in chunks)
    raw = da.asarray(raw).rechunk(chunks)
    job = ChunkJob(recipe=MethodRecipe.of(built), kind=source.kind, nodata=nodata,
                   shape=tuple(raw.shape), halo=built.halo, depth=depth,
                   kind_out=plan.report.output_kind, whitening=plan.whitening)
    out = raw.map_overlap(despeckle_chunk, job=job, depth={0: _axis_depth(chunks[0], depth),
                                         1: _axis_depth(chunks[1], depth)},
                          boundary="none", trim=False, chunks=chunks, dtype=np.float32,
                          meta=np.empty((0, 0), np.float32))
    if data.ndim == 3:
        out = out[None]
    result = data.copy(data=out)
    result.encoding = {k: v for k, v in data.encoding.items() if k == "grid_mapping"}
    result.attrs = _output_attrs(data.attrs, plan, tile=max(chunks[0][0], chunks[1][0]))
    return result


@dataclass(frozen=True, kw_only=True)
class ChunkJob(TileJob):
    """A :class:`TileJob` on chunks of raw values grown by ``depth``, written as ``kind_out``."""

    nodata: float | None
    depth: int
    kind_out: str


def despeckle_chunk(block: np.ndarray, *, job: ChunkJob, block_info=None) -> np.ndarray:
    """The map_overlap task: a chunk grown by ``job.depth`` (raw values) → its core, despeckled,
    in the output kind with NaN at masked pixels."""
    (r0, r1), (c0, c1) = block_info[None]["array-location"]
    core = Window(r0, c0, r1 - r0, c1 - c0)
    outer = core.expand(job.depth, job.shape)
    if block.shape != outer.shape:
        raise InvalidInputError(
            f"expected a chunk with its overlap of shape {outer.shape} for {core}, got "
            f"{block.shape}"
        )
    source = ArraySource(block, kind=job.kind, nodata=job.nodata, shape=job.shape,
                         origin=(outer.row, outer.col))
    intensity, valid = job.run(core, source)
    return from_intensity(intensity, valid, job.kind_out, nodata_out=np.nan)


def _as_2d(data):
    if data.ndim == 2:
        return data.data
    if data.ndim == 3 and data.shape[0] == 1:
        return data.data[0]
    raise InvalidInputError(
        f"expected a DataArray of shape (y, x) or (1, y, x), got dims {data.dims} of shape "
        f"{data.shape}; select one band first, e.g. data.sel(band=1)"
    )


def _check_encoding(attrs) -> None:
    scale, offset = attrs.get("scale_factor", 1), attrs.get("add_offset", 0)
    if scale != 1 or offset != 0:
        raise InvalidInputError(
            f"expected decoded values, got scale_factor={scale} and add_offset={offset} still "
            "to apply; open with rioxarray.open_rasterio(..., mask_and_scale=True)"
        )


def _array_source(data, raw, *, kind: str | None, nodata: float | None) -> ArraySource:
    """An :class:`ArraySource` over ``raw`` with its kind given or detected as for files."""
    name = str(data.name) if data.name is not None else "<DataArray>"
    if kind is not None:
        check_kind(kind)
        if (kind == "complex") != (np.dtype(raw.dtype).kind == "c"):
            raise InvalidInputError(
                f"expected {'complex' if kind == 'complex' else 'real'} data for kind {kind!r}, "
                f"got {np.dtype(raw.dtype).name}"
            )
        return ArraySource(raw, kind=kind, nodata=nodata, name=name)
    attrs = data.attrs
    hints = {f"attribute {key}": str(attrs[key]) for key in ("long_name", "units") if key in attrs}
    hints["attributes"] = " ".join(f"{k}={v}" for k, v in attrs.items()
                                   if not str(k).startswith(TAG_PREFIX) and k not in _DROPPED_ATTRS)
    hints["name"] = name if data.name is not None else ""
    probe = ArraySource(raw, kind="intensity", nodata=nodata, name=name)
    detected, reason = detect_kind(dtype=raw.dtype, hints=hints, nodata=nodata,
                                   sample=lambda: probe.read_decimated(_SAMPLE_SIZE))
    return ArraySource(raw, kind=detected, nodata=nodata, name=name, kind_reason=reason)


def _merge_small(sizes: tuple[int, ...], minimum: int) -> tuple[int, ...]:
    """Chunk sizes where every chunk but a lone one is at least ``minimum`` (a small chunk is
    merged into its neighbour), so that map_overlap never rechunks behind our back."""
    merged: list[int] = []
    for size in sizes:
        if merged and merged[-1] < minimum:  # grow a small chunk until it is big enough
            merged[-1] += size
        else:
            merged.append(size)
    if len(merged) > 1 and merged[-1] < minimum:  # a small last one joins its neighbour
        merged[-2] += merged.pop()
    return tuple(merged)


def _axis_depth(sizes: tuple[int, ...], depth: int) -> int:
    # A lone chunk spans the axis: there is nothing to overlap with.
    return depth if len(sizes) > 1 else 0


def _output_attrs(attrs, plan, *, tile: int) -> dict[str, Any]:
    """The input's attributes that still hold, the output's meaning and the provenance."""
    kept = {}
    for key, value in attrs.items():
        if str(key).startswith(TAG_PREFIX) or key in _DROPPED_ATTRS:
            continue
        if kind_from_text(f"{key} {value}") is not None:
            continue
        kept[key] = value
    report = plan.report
    tags = dict(plan.tags, SARDESPECKLE_TILE=str(tile))
    provenance = provenance_tags({"input_kind": report.input_kind,
                                  "output_kind": report.output_kind, **tags})
    if attrs.get("long_name"):
        provenance[f"{TAG_PREFIX}INPUT_DESCRIPTION"] = str(attrs["long_name"])
    return {**kept, **provenance, "long_name": f"{report.output_kind} (despeckled)",
            "_FillValue": np.float32(np.nan)}

