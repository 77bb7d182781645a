"""The tiled processing engine: windows with a halo, masked-pixel fill, crop and reassembly.

The engine runs a method (a callable ``intensity -> intensity`` on a ``(rows, cols)`` float32
array) over a raster tile by tile so that memory stays bounded whatever the raster size. It
knows nothing about files: it reads and writes through two callables.

Seam-free by construction: every tile is processed with ``halo`` pixels of context on each side
(clipped at the raster border, exactly as the whole image would be) and only its core is kept.
For a method whose output at a pixel depends only on inputs within ``halo`` pixels, the tiled
result equals the whole-image result up to floating-point rounding.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .errors import InvalidInputError, UsageError
from .window import Window

ReadFn = Callable[[Window], tuple[np.ndarray, np.ndarray]]
WriteFn = Callable[[Window, np.ndarray, np.ndarray], None]
ProgressFn = Callable[[int, int], None]

#: Value given to masked pixels that have no valid pixel within the fill radius. Such pixels are
#: farther than ``halo`` from every valid pixel, so they cannot influence a valid output.
FAR_FILL_VALUE = 1.0

#: A masked pixel of zero intensity with at least this many valid pixels among its 8 neighbours
#: is a weak sample, not missing data: it gets the method's estimate (see :func:`weak_zeros`).
WEAK_ZERO_NEIGHBOURS = 6


@dataclass(frozen=True)
class _Prepared:
    core: Window
    intensity: np.ndarray | None  # None when the whole core is masked: nothing to compute
    valid_core: np.ndarray  # the core pixels that get an output value (valid or weak zeros)
    inner: tuple[slice, slice]  # the core within ``intensity`` (and within the method's output)


def check_tile(tile) -> int:
    """``tile`` as an int after checking it is an integer ≥ 1 (a tile side in pixels)."""
    if isinstance(tile, bool) or not isinstance(tile, numbers.Integral) or tile < 1:
        raise UsageError(f"expected a tile size as an integer >= 1 (pixels), got {tile!r}")
    return int(tile)


def aligned_tile(tile: int, align: int | None) -> int:
    """The core tile side :func:`plan_tiles` uses: ``tile`` rounded up to a multiple of
    ``align`` (the block size of a tiled output file), or ``tile`` itself without one."""
    return -(-int(tile) // int(align)) * int(align) if align else int(tile)


def plan_tiles(shape: tuple[int, int], *, tile: int, align: int | None = None) -> list[Window]:
    """Cut a raster of ``shape`` into core windows of at most ``tile × tile`` pixels.

    Without ``align``, tiles are made as even as possible (a 1030-px side with ``tile=512`` gives
    344+343+343, not 512+512+6), which keeps batches of equal shape and avoids slivers. With
    ``align`` (the block size of a tiled output file), ``tile`` is rounded up to a multiple of
    ``align`` and tiles start on multiples of it, so that each output block is written exactly
    once (rewriting a compressed GeoTIFF block wastes space and time).
    """
    rows, cols = (int(s) for s in shape)
    if rows < 1 or cols < 1:
        raise InvalidInputError(f"expected a raster of at least 1×1 pixels, got {rows}×{cols}")
    tile = check_tile(tile)
    if align:
        step = aligned_tile(tile, align)
        row_edges = list(range(0, rows, step)) + [rows]
        col_edges = list(range(0, cols, step)) + [cols]
    else:
        row_edges = _even_edges(rows, int(tile))
        col_edges = _even_edges(cols, int(tile))
    return [
        Window(r0, c0, r1 - r0, c1 - c0)
        for r0, r1 in zip(row_edges[:-1], row_edges[1:])
        for c0, c1 in zip(col_edges[:-1], col_edges[1:])
    ]


def _even_edges(length: int, tile: int) -> list[int]:
    count = -(-length // tile)
    return [round(i * length / count) for i in range(count + 1)]


def fill_masked(intensity: np.ndarray, valid: np.ndarray, *, radius: int) -> np.ndarray:
    """Replace masked pixels by the mean of the valid intensities within ``radius`` pixels.

    Masked pixels with no valid pixel in their ``(2·radius+1)²`` box get :data:`FAR_FILL_VALUE`.
    The box is truncated at the array border, so the result at a pixel depends only on the
    pixels within ``radius`` of it: this is what keeps tiled and whole-image runs identical.
    """
    size = 2 * max(int(radius), 1) + 1
    weight = valid.astype(np.float64)
    values = np.where(valid, intensity, 0.0).astype(np.float64)
    # Direct box sums (zero outside the array): each output is the same sum of the same terms
    # wherever the array starts, unlike running sums, so tiles and whole image agree exactly.
    sums = _box_sum(values, size)
    counts = _box_sum(weight, size)
    enough = counts > 0.5
    local_mean = np.divide(sums, counts, out=np.full_like(sums, FAR_FILL_VALUE), where=enough)
    local_mean = np.where(local_mean > 0, local_mean, FAR_FILL_VALUE)
    out = np.where(valid, intensity, local_mean).astype(np.float32)
    return out


def weak_zeros(intensity: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The masked pixels of zero intensity that are samples, not missing data.

    ``read`` functions give exactly 0 as the intensity of a masked pixel whose intensity *is*
    zero (and NaN for missing data: non-finite input, the file's nodata value). A zero can be
    either: single-look data quantised to integers (SLC I/Q, some amplitude products) give an
    exact zero where the return is weak, a few pixels here and there (14 of 65536 in the
    TerraSAR-X SLC of ``shared/data/sar/tsx_slc``); fill regions (swath edges, gaps between
    bursts) are solid blocks of zeros. A zero pixel with at least
    :data:`WEAK_ZERO_NEIGHBOURS` valid pixels among its 8 neighbours (outside the array
    counts as not valid) is taken for a weak sample: the method still never sees its zero (it
    is filled like any masked pixel, ``log 0`` being undefined) but its output is the method's
    estimate instead of nodata. Isolated zeros, pairs and thin lines inside the data qualify;
    blocks of 2×2 and more, and fill regions with their borders, do not. The rule looks one
    pixel around, so tiles read with at least one pixel of context classify their core as the
    whole image would.
    """
    zero = ~valid & (intensity == 0)
    if not zero.any():
        return zero
    neighbours = _box_sum(valid.astype(np.float64), 3)  # the pixel itself is not valid
    return zero & (neighbours > WEAK_ZERO_NEIGHBOURS - 0.5)


def _box_sum(values: np.ndarray, size: int) -> np.ndarray:
    from scipy.ndimage import correlate1d

    ones = np.ones(size)
    out = correlate1d(values, ones, axis=0, mode="constant", cval=0.0)
    return correlate1d(out, ones, axis=1, mode="constant", cval=0.0)


def run_tiled(
    shape: tuple[int, int],
    read: ReadFn,
    write: WriteFn,
    method: Callable[[np.ndarray], np.ndarray],
    *,
    halo: int,
    tile: int = 512,
    batch_size: int = 1,
    progress: ProgressFn | None = None,
    prefetch: bool = True,
    align: int | None = None,
) -> None:
    """Run ``method`` over a raster of ``shape`` tile by tile.

    Parameters
    ----------
    shape : (rows, cols)
        Size of the raster.
    read : callable
        ``read(window) -> (intensity float32, valid bool)`` for any window inside the raster;
        where ``valid`` is false the intensity is 0 for a zero-intensity sample and anything
        else (NaN) for missing data (see :func:`weak_zeros`).
    write : callable
        ``write(window, intensity float32, valid bool)`` for each core window, once; ``valid``
        marks the pixels that got an output value.
    method : callable
        ``method(intensity) -> intensity`` on finite, strictly positive float32 arrays. If it has a
        ``batch`` attribute, ``method.batch(list_of_arrays) -> list_of_arrays`` is called with up
        to ``batch_size`` tiles of equal shape at once.
    halo : int
        Context (pixels) read around each tile; must cover the method's support radius.
    tile : int
        Side of the core tiles in pixels.
    batch_size : int
        Tiles handed to ``method.batch`` at once.
    progress : callable, optional
        ``progress(done_tiles, total_tiles)`` after each batch is written.
    prefetch : bool
        Read (and fill) the next tiles in a background thread while the method runs.
    align : int, optional
        Align tiles on this block size (see :func:`plan_tiles`).

    Notes
    -----
    Masked pixels (``valid`` false) are filled by :func:`fill_masked` with radius ``halo``
    before the method runs; tiles containing masked pixels are then read with ``2·halo`` of
    context (at least 1) so that the fill of every pixel that can influence the core is the
    same as in a whole-image run. Masked pixels are written as missing, except the weak
    zero-intensity samples of :func:`weak_zeros`, which get the method's estimate. Tiles whose
    core has nothing to estimate are written without computing.

    A method with a ``batch_with_context`` attribute gets every tile with ``halo`` pixels of
    context on *every* side: where the raster ends, the tile is mirrored (``reflect``) by the
    missing amount (see :func:`prepare_tile`), so that the method need not pad the tile itself
    (a network then runs on ``(tile + 2·halo)²`` pixels instead of ``(tile + 4·halo)²``).
    ``method.batch_with_context(list_of_arrays) -> list_of_arrays`` returns same-shaped
    outputs of which only the pixels at least ``halo`` from the tile edges are kept.
    """
    halo = int(halo)
    if halo < 0:
        raise UsageError(f"expected a halo ≥ 0, got {halo}")
    if progress is not None and not callable(progress):
        raise UsageError(f"expected progress as a function (done, total) or None, got {progress!r}")
    batch_size = max(int(batch_size), 1)
    cores = plan_tiles(shape, tile=tile, align=align)
    total = len(cores)
    shape = (int(shape[0]), int(shape[1]))

    mirror = _with_context(method) is not None

    def prepare(core: Window) -> _Prepared:
        return prepare_tile(core, shape, read, halo=halo, mirror=mirror)

    batches = list(_batches(cores, batch_size))
    done = 0
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = None
        if prefetch and batches:
            pending = pool.submit(lambda b=batches[0]: [prepare(c) for c in b])
        for index, batch in enumerate(batches):
            if prefetch:
                prepared = pending.result()
                if index + 1 < len(batches):
                    pending = pool.submit(lambda b=batches[index + 1]: [prepare(c) for c in b])
            else:
                prepared = [prepare(c) for c in batch]
            for item, result in zip(prepared, _run_method(method, prepared)):
                write(item.core, *_core_output(item, result))
            done += len(batch)
            if progress is not None:
                progress(done, total)


def prepare_tile(core: Window, shape: tuple[int, int], read: ReadFn, *, halo: int,
                 mirror: bool = False) -> _Prepared:
    """Read ``core`` with its context and fill its masked pixels, as :func:`run_tiled` does.

    The context is ``halo`` pixels, or ``max(2·halo, 1)`` when some pixel read is masked (see
    the Notes of :func:`run_tiled`); ``read`` is only asked for windows inside
    ``core.expand(max(2·halo, 1))``.
    With ``mirror``, the sides where the raster ends are then extended by mirroring
    (``numpy.pad`` ``reflect``, about the raster's edge pixel) so that the core has ``halo``
    pixels of context on every side: the same values as mirroring the whole raster.
    """
    outer = core.expand(halo, shape)
    intensity, valid = read(outer)
    valid_core = valid[core.relative_to(outer).slices]
    if not (valid_core.any() or (intensity[core.relative_to(outer).slices] == 0).any()):
        return _Prepared(core, None, valid_core, core.relative_to(outer).slices)
    if not valid.all():
        outer = core.expand(max(2 * halo, 1), shape)
        intensity, valid = read(outer)
        valid_core = (valid | weak_zeros(intensity, valid))[core.relative_to(outer).slices]
        if not valid_core.any():
            return _Prepared(core, None, valid_core, core.relative_to(outer).slices)
        intensity = fill_masked(intensity, valid, radius=halo)
    intensity = np.ascontiguousarray(intensity, dtype=np.float32)
    inner = core.relative_to(outer)
    if mirror:
        top, left = max(halo - core.row, 0), max(halo - core.col, 0)
        bottom = max(core.row + core.height + halo - shape[0], 0)
        right = max(core.col + core.width + halo - shape[1], 0)
        if top or left or bottom or right:
            intensity = np.pad(intensity, ((top, bottom), (left, right)), mode="reflect")
            inner = Window(inner.row + top, inner.col + left, inner.height, inner.width)
    return _Prepared(core, intensity, valid_core, inner.slices)


def process_tile(
    core: Window,
    shape: tuple[int, int],
    read: ReadFn,
    method: Callable[[np.ndarray], np.ndarray],
    *,
    halo: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``method`` on one core window of a raster of ``shape``, exactly as :func:`run_tiled`.

    For workers that each process some of the tiles of one raster: with the same core windows,
    the result is the one :func:`run_tiled` writes, bit for bit (a method with a ``batch``
    attribute gets a batch of one tile here, which a network may round differently).

    Returns
    -------
    (intensity, valid)
        ``float32`` and ``bool`` arrays of ``core.shape``: what :func:`run_tiled` hands to
        ``write`` (intensity is NaN where the whole core is masked).
    """
    halo = int(halo)
    if halo < 0:
        raise UsageError(f"expected a halo ≥ 0, got {halo}")
    shape = (int(shape[0]), int(shape[1]))
    prepared = prepare_tile(core, shape, read, halo=halo, mirror=_with_context(method) is not None)
    (result,) = _run_method(method, [prepared])
    return _core_output(prepared, result)


def _core_output(item: _Prepared, result: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    if result is None:
        return np.full(item.core.shape, np.nan, np.float32), item.valid_core
    cropped = result[item.inner]
    return np.ascontiguousarray(cropped, dtype=np.float32), item.valid_core


def _batches(cores: Sequence[Window], batch_size: int) -> Iterator[list[Window]]:
    for start in range(0, len(cores), batch_size):
        yield list(cores[start : start + batch_size])


def _with_context(method):
    """The method's ``batch_with_context`` (tiles carry the halo on every side), or None."""
    batch = getattr(method, "batch_with_context", None)
    return batch if callable(batch) else None


def _run_method(method, prepared: list[_Prepared]) -> list[np.ndarray | None]:
    """Apply the method to each prepared tile, grouping tiles of equal shape into batches."""
    results: list[np.ndarray | None] = [None] * len(prepared)
    todo = [i for i, p in enumerate(prepared) if p.intensity is not None]
    batch_fn = _with_context(method) or getattr(method, "batch", None)
    if batch_fn is None:
        for i in todo:
            results[i] = _checked(method(prepared[i].intensity), prepared[i].intensity.shape)
        return results
    groups: dict[tuple[int, int], list[int]] = {}
    for i in todo:
        groups.setdefault(prepared[i].intensity.shape, []).append(i)
    for shape, members in groups.items():
        outputs = batch_fn([prepared[i].intensity for i in members])
        for i, out in zip(members, outputs):
            results[i] = _checked(out, shape)
    return results


def _checked(result: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    result = np.asarray(result)
    if result.shape != tuple(shape):
        raise InvalidInputError(
            f"method returned an array of shape {result.shape}, expected {tuple(shape)}"
        )
    return result


def process_array(
    intensity: np.ndarray,
    method: Callable[[np.ndarray], np.ndarray],
    *,
    halo: int,
    valid: np.ndarray | None = None,
    tile: int | None = 512,
    batch_size: int = 1,
    progress: ProgressFn | None = None,
) -> np.ndarray:
    """Run ``method`` tile by tile on an in-memory intensity array.

    ``tile=None`` processes the whole array as one tile. Masked pixels (``valid`` false: missing
    data; or non-finite or non-positive intensity) come back as NaN, except isolated zero
    intensities (:func:`weak_zeros`) that ``valid`` does not mark missing: those get the
    method's estimate.
    """
    intensity = np.asarray(intensity)
    if intensity.ndim != 2:
        raise InvalidInputError(f"expected a 2-D array (rows, cols), got shape {intensity.shape}")
    # NaN compares false and inf is not < inf: no np.isfinite pass needed.
    auto_valid = (intensity > 0) & (intensity < np.inf)
    zero_sample = intensity == 0
    if valid is not None:
        present = np.asarray(valid, bool)
        auto_valid &= present
        zero_sample &= present
    valid = auto_valid
    out = np.full(intensity.shape, np.nan, dtype=np.float32)
    source = intensity.astype(np.float32)  # a copy: the masked pixels are written next
    source[~(valid | zero_sample)] = np.nan
    source[zero_sample] = 0  # -0.0 too

    def read(window: Window) -> tuple[np.ndarray, np.ndarray]:
        return source[window.slices], valid[window.slices]

    def write(window: Window, values: np.ndarray, valid_core: np.ndarray) -> None:
        out[window.slices] = np.where(valid_core, values, np.nan)

    side = max(intensity.shape) if tile is None else tile
    run_tiled(intensity.shape, read, write, method, halo=halo, tile=side,
              batch_size=batch_size, progress=progress, prefetch=False)
    return out
