"""GeoTIFF through rasterio: windowed reads of one band, tiled and compressed output.

rasterio is imported inside the functions, so that importing :mod:`sardespeckle.io` stays cheap.
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from sardespeckle.errors import (
    InputFileError,
    InvalidInputError,
    OutputFileError,
    UnknownKindError,
    UsageError,
)
from sardespeckle.io.base import (Georef, Sink, Source, free_space, publish, remove_if_exists,
                                  temporary_path, visible_name)
from sardespeckle.io.kinds import (
    check_kind,
    declared_kind,
    detect_kind,
    iq_reorder_hint,
    kind_from_text,
    matrix_element,
    slc_parts,
)
from sardespeckle.window import Window

SAMPLE_SIZE = 512
"""Longest side of the decimated read used to look for negative values (kind detection)."""


@contextlib.contextmanager
def _quiet():
    """Silence rasterio's warning about rasters without georeferencing (a normal case here)."""
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


def check_dtype(dtype: np.dtype, where: str) -> np.dtype:
    """Accept integer, floating-point and complex pixels; refuse the rest."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "iufc":
        raise InvalidInputError(
            f"expected integer, floating-point or complex pixels in {where}, got {dtype.name}"
        )
    return dtype


def numpy_dtype(name: str) -> np.dtype:
    """The numpy type rasterio reads a GDAL band type as (GDAL's CInt16, which numpy lacks, as
    complex64, exactly)."""
    return np.dtype("complex64" if name == "complex_int16" else name)


def georef_of(dataset) -> Georef:
    """The georeferencing of an open rasterio dataset; no transform when it has neither a CRS
    nor a non-identity transform (GDAL's default for an ungeoreferenced file)."""
    transform = dataset.transform
    has_transform = dataset.crs is not None or not transform.is_identity
    gcps, gcps_crs = dataset.gcps
    return Georef(crs=dataset.crs, transform=transform if has_transform else None,
                  gcps=tuple(gcps), gcps_crs=gcps_crs if gcps else None, rpcs=dataset.rpcs)


@dataclass(frozen=True)
class Header:
    """What a GeoTIFF's header says, read without its pixels (:func:`read_header`)."""

    count: int
    dtype: np.dtype  # of band 1
    descriptions: tuple
    shape: tuple[int, int]
    georef: Georef
    tags: dict = field(default_factory=dict)  # the dataset tags


def read_header(path: str) -> Header:
    """The header of the GeoTIFF ``path``; :class:`InputFileError` when it is not readable."""
    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        with _quiet(), rasterio.open(path) as dataset:
            return Header(count=dataset.count, dtype=numpy_dtype(dataset.dtypes[0]),
                          descriptions=tuple(dataset.descriptions),
                          shape=(dataset.height, dataset.width), georef=georef_of(dataset),
                          tags=dict(dataset.tags()))
    except RasterioIOError as error:
        raise InputFileError(f"cannot read {path} as a GeoTIFF: {error}") from None


def read_bands(path: str) -> np.ndarray:
    """Every band of the GeoTIFF ``path`` as float64 ``(count, rows, cols)``, NaN in every
    band where every band is masked (the nodata value, or the file's mask); a value equal to
    the nodata value in some bands only is kept (for small multi-band rasters held whole:
    covariance fields, whose off-diagonal elements may be exactly 0)."""
    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        with _quiet(), rasterio.open(path) as dataset:
            data = dataset.read(masked=True)
    except RasterioIOError as error:
        raise InputFileError(f"cannot read {path} as a GeoTIFF: {error}") from None
    values = np.asarray(data.data, dtype=np.float64)
    values[:, np.ma.getmaskarray(data).all(axis=0)] = np.nan
    return values


def _gdal_reason(error: BaseException) -> str:
    """rasterio's message, with GDAL's own reason in place of its "See previous exception for
    details" (that exception is not shown to a user, nor sent back by a Dask worker)."""
    text = str(error)
    cause = error.__cause__ or error.__context__
    if "previous exception" in text and cause is not None and str(cause):
        return f"{text.split('. See previous exception')[0]}: {cause}"
    return text


#: GDAL block cache (MiB) while a whole raster is read decimated (previews, kind samples):
#: each block is decoded once, strip by strip, so a cache the size of a strip is enough.
DECIMATED_READ_CACHE_MB = 64


def _rio_window(window: Window):
    from rasterio.windows import Window as RioWindow

    return RioWindow(window.col, window.row, window.width, window.height)


def _described(description: str | None) -> str:
    return repr(description) if description else "no description"


def _complex_of(real_dtype: np.dtype) -> np.dtype:
    return np.dtype(np.complex128 if np.dtype(real_dtype) == np.float64 else np.complex64)


class GeoTiffSource(Source):
    """One band of a GeoTIFF (or, with ``complex_layout="bands"``, two real bands ``band`` and
    ``band + 1`` holding the real and imaginary parts)."""

    format = "geotiff"

    def __init__(
        self,
        path: str,
        *,
        kind: str | None = None,
        band: int = 1,
        complex_layout: str | None = None,
        nodata: float | None = None,
    ) -> None:
        import rasterio
        from rasterio.enums import MaskFlags
        from rasterio.errors import RasterioIOError

        if complex_layout not in (None, "bands"):
            raise UsageError(
                f"expected complex_layout None or 'bands' for a GeoTIFF (CLI --complex-layout "
                f"bands), got {complex_layout!r}"
            )
        try:
            with _quiet():
                self._dataset = rasterio.open(path, "r")
        except RasterioIOError as error:
            raise InputFileError(f"cannot read {path} as a GeoTIFF: {error}") from error
        try:
            self._setup(path, kind, band, complex_layout, nodata, MaskFlags)
        except BaseException:
            self._dataset.close()
            raise

    def _setup(self, path, kind, band, complex_layout, nodata, MaskFlags) -> None:
        dataset = self._dataset
        bands = 2 if complex_layout == "bands" else 1
        if isinstance(band, bool) or not isinstance(band, (int, np.integer)):
            raise UsageError(f"expected band as an integer from 1 (or 'all' where every band can "
                             f"be despeckled), got {band!r} ({type(band).__name__})")
        if band < 1 or band + bands - 1 > dataset.count:
            if dataset.count < bands:
                raise UsageError(f"expected real and imaginary bands (complex layout 'bands'), "
                                 f"got {dataset.count} band in {path}")
            raise UsageError(
                f"expected a band in 1..{dataset.count - bands + 1} ({dataset.count} band(s) in "
                f"{path}{', real and imaginary bands' if bands == 2 else ''}), got {band}"
            )
        self.path = path
        self.band = int(band)
        self.complex_layout = complex_layout
        self.shape = (dataset.height, dataset.width)
        if 0 in self.shape:
            raise InvalidInputError(f"expected a non-empty raster, got shape {self.shape}")
        raw_dtype = check_dtype(numpy_dtype(dataset.dtypes[self.band - 1]), path)
        if complex_layout == "bands":
            if raw_dtype.kind == "c":
                raise InvalidInputError(
                    f"expected real bands for complex_layout='bands', got {raw_dtype.name}; "
                    "leave complex_layout (CLI --complex-layout) out"
                )
            self.dtype = _complex_of(raw_dtype)
        else:
            self.dtype = raw_dtype
        self.nodata = nodata if nodata is not None else dataset.nodatavals[self.band - 1]
        # GDAL's per-band scale and offset (physical = raw · scale + offset) are applied on
        # reading, so that a run sees (and writes) physical values, not packed integers
        used = range(self.band, self.band + bands)
        self._scaling = [(dataset.scales[b - 1], dataset.offsets[b - 1]) for b in used]
        if all(pair == (1.0, 0.0) for pair in self._scaling):
            self._scaling = None
        else:
            self.dtype = np.dtype(np.complex128 if self.dtype.kind == "c" else np.float64)
        self.description = dataset.descriptions[self.band - 1]
        self._refuse_matrix_element(path, dataset)
        slc_bands = {band for pair in slc_parts(dataset.descriptions) for band in pair[1:]}
        if complex_layout == "bands":
            for part in (self.band, self.band + 1):
                named = declared_kind({"": dataset.descriptions[part - 1] or ""})
                if named is not None and part not in slc_bands:  # i_Sigma0_VV is an SLC part
                    raise UsageError(
                        f"band {part} of {path} is described as "
                        f"{dataset.descriptions[part - 1]!r} ({named[0]}), not as the real or "
                        "imaginary part of an SLC; --complex-layout bands pairs two bands as "
                        "real and imaginary parts: leave it out (--band N picks one image)"
                    )
        self._check_iq_bands(path, dataset, given_kind=kind)
        self.tags = dataset.tags()
        self._band_tags = dataset.tags(self.band)
        self.georef = georef_of(dataset)
        self.block_shape = tuple(dataset.block_shapes[self.band - 1])
        flags = dataset.mask_flag_enums[self.band - 1]
        self._has_mask = MaskFlags.per_dataset in flags or MaskFlags.alpha in flags
        if kind is not None:
            self.kind = check_kind(kind)
            self.kind_reason = "given"
            self._check_kind_matches_dtype()
            declared = declared_kind(self._hints())
            if declared is not None and declared[0] != self.kind:
                warnings.warn(f"{path}: read as {self.kind} as asked, although its {declared[1]}",
                              UserWarning, stacklevel=2)
        else:
            sample = None
            if self.dtype.kind != "c":
                # read only if needed, and once (the kind and the I/Q test below share it)
                sample = functools.cache(lambda: self.read_decimated(SAMPLE_SIZE))
            parts = self._parts_hint(dataset)
            self.kind, self.kind_reason = detect_kind(
                dtype=self.dtype,
                hints=self._hints(),
                sample=sample,
                path=path,
                nodata=self.nodata,
                negative_hint=parts,
            )
            if (self.kind == "db" and raw_dtype.kind == "i" and parts
                    and "negative" in self.kind_reason and _balanced_signs(sample())):
                # signed integers beside a band like them, negative as often as not: the
                # parts of an SLC (int16 I/Q) far more often than dB, which is rarely integer
                # (scaled or not) and whose values mostly share one sign
                raise UnknownKindError(
                    f"{path}: band {self.band} holds negative integers, which dB data rarely "
                    f"are; {parts}; if they are dB, pass kind='db' (CLI --kind db)"
                )

    def _refuse_matrix_element(self, path, dataset) -> None:
        """InvalidInputError for a band that is a part of an off-diagonal covariance matrix
        element (``C12_real``, ``Im C12``...): not an image of one channel, whatever the kind
        (the diagonal bands, ``C11``..., are intensities and are read as such)."""
        used = range(self.band, self.band + (2 if self.complex_layout == "bands" else 1))
        for band in used:
            element = matrix_element(dataset.descriptions[band - 1])
            if element is not None and element[1] != element[2]:
                letter, i, j, part = element
                diagonal = ", ".join(
                    f"{number} ({text})" for number, text in enumerate(dataset.descriptions, 1)
                    if (found := matrix_element(text)) is not None and found[1] == found[2])
                raise InvalidInputError(
                    f"{path}: band {band} ({dataset.descriptions[band - 1]!r}) is the "
                    f"{'real' if part == 're' else 'imaginary'} part of the matrix element "
                    f"{letter}{i + 1}{j + 1}, not an image of one channel; despeckle the whole "
                    f"field with 'sardespeckle covariance {path}'"
                    + (f", or pick a diagonal band, an intensity: --band {diagonal}"
                       if diagonal else ""))

    def _check_iq_bands(self, path, dataset, *, given_kind) -> None:
        """Bands whose descriptions name the real or imaginary part of an SLC channel
        (:func:`~sardespeckle.io.kinds.slc_parts`: SNAP's ``i_VV`` and ``q_VV``, a bare ``I``
        or ``Q`` beside its partner): with ``complex_layout="bands"`` the two bands read must
        be one channel's parts, real first (UsageError otherwise; a named real part whose
        partner the file does not name may be followed by an undescribed band); without it
        such a band is not an image: UnknownKindError when no kind is given, a warning when
        one is."""
        descriptions = list(dataset.descriptions)
        pairs = {band: pair for pair in slc_parts(descriptions) for band in pair[1:] if band}
        if self.complex_layout == "bands":
            first, second = pairs.get(self.band), pairs.get(self.band + 1)
            if first is None and second is None:
                return
            if first is not None and first[1:] == (self.band, self.band + 1):
                return
            if (first is not None and first[1:] == (self.band, None) and second is None
                    and not descriptions[self.band]):
                return  # i_VV, then a band without description: taken as its imaginary part
            shown = ", ".join(f"{b} ({_described(descriptions[b - 1])})"
                              for b in (self.band, self.band + 1))
            reorder = iq_reorder_hint(descriptions)
            raise UsageError(
                f"{path}: bands {shown} are not the real and imaginary parts of one SLC "
                "channel, real first, as their descriptions say; (real, imaginary) pairs are "
                "read from adjacent bands" + (f": {reorder}" if reorder else ""))
        pair = pairs.get(self.band)
        if pair is None or self.dtype.kind == "c":
            return
        what = (f"band {self.band} of {path} is described as {self.description!r}, the "
                f"{'real' if pair[1] == self.band else 'imaginary'} part of an SLC channel")
        _, real, imaginary = pair
        if real is not None and imaginary == real + 1:
            advice = (f"pass --complex-layout bands --band {real} (Python: "
                      f"complex_layout='bands', band={real})")
        elif real is None or imaginary is None:
            advice = (f"the file names no band as its {'imaginary' if imaginary is None else 'real'}"
                      " part; read the two parts together with complex_layout='bands', band=N"
                      " (CLI --complex-layout bands --band N; N: the real part, the imaginary "
                      "part right after it)")
        else:
            reorder = iq_reorder_hint(descriptions)
            advice = ("its parts are read as a pair from adjacent bands, real first"
                      + (f": {reorder}" if reorder else ""))
        if given_kind is None:
            raise UnknownKindError(f"{what}, not an image: {advice}")
        warnings.warn(f"{what}; read as {given_kind} as asked ({advice})", UserWarning,
                      stacklevel=3)

    def _parts_hint(self, dataset) -> str | None:
        """For a band of real numbers beside another of the same type: they may be the real
        and imaginary parts of an SLC, which are negative as often as positive."""
        if self.complex_layout is not None or self.dtype.kind not in "if" or dataset.count < 2:
            return None
        first = self.band if self.band < dataset.count else self.band - 1
        if dataset.dtypes[first - 1] != dataset.dtypes[first]:
            return None
        pick = "" if first == self.band else f" --band {first}"
        return (f"if bands {first} and {first + 1} are the real and imaginary parts of an SLC, "
                f"pass --complex-layout bands{pick} (Python: complex_layout='bands'"
                f"{f', band={first}' if pick else ''})")

    def _hints(self) -> dict[str, str]:
        hints: dict[str, str] = {}
        if self.description:
            hints[f"band {self.band} description"] = self.description
        written_kind = self.tags.get("SARDESPECKLE_OUTPUT_KIND")
        if written_kind:
            hints["tag SARDESPECKLE_OUTPUT_KIND"] = written_kind
        hints[f"band {self.band} tags"] = _tags_text(self._band_tags)
        hints["dataset tags"] = _tags_text(self.tags)
        return hints

    def _read(self, window: Window) -> np.ndarray:
        from rasterio.errors import RasterioIOError

        try:
            if self.complex_layout == "bands":
                parts = self._dataset.read(
                    [self.band, self.band + 1], window=_rio_window(window)
                )
                return _combine(*self._unpacked(parts), self.dtype)
            return self._unpacked(self._dataset.read(self.band, window=_rio_window(window)))
        except RasterioIOError as error:
            raise InputFileError(f"cannot read {window} of {self.path}: {_gdal_reason(error)}"
                                 ) from error

    def _unpacked(self, raw: np.ndarray):
        """``raw`` (one band, or the two parts stacked) with the bands' scale and offset
        applied, the nodata value NaN; ``raw`` itself when the file has none."""
        if self._scaling is None:
            return raw
        parts = [raw] if raw.ndim == 2 else list(raw)
        out = []
        for part, (scale, offset) in zip(parts, self._scaling):
            value = part.astype(np.result_type(part.dtype, np.float64)) * scale + offset
            if self.nodata is not None and not np.isnan(self.nodata):
                value[part == self.nodata] = np.nan
            out.append(value)
        return out[0] if raw.ndim == 2 else out

    def _read_mask(self, window: Window) -> np.ndarray | None:
        if not self._has_mask:
            return None
        return self._dataset.read_masks(self.band, window=_rio_window(window)) != 0

    def _read_decimated(self, step: int) -> np.ndarray:
        """Every ``step``-th row and column, read one strip of block rows at a time with a
        small GDAL block cache: memory is about one strip, not the raster (GDAL's cache keeps
        every block it decodes, up to 5 % of the machine's memory by default)."""
        rows, cols = self.shape
        if step == 1:
            return self._read(Window(0, 0, rows, cols))
        if self._dataset.overviews(self.band):
            return self._read_overview(step)  # GDAL reads a small overview: far cheaper
        wanted = np.arange(0, rows, step)
        out = np.empty((wanted.size, -(-cols // step)), dtype=self.dtype)
        strip = max(int(self.block_shape[0]), 1)
        strip = -(-max(strip, step) // strip) * strip  # whole blocks, at least one wanted row
        import rasterio

        with rasterio.Env(GDAL_CACHEMAX=DECIMATED_READ_CACHE_MB):
            for start in range(0, rows, strip):
                stop = min(rows, start + strip)
                inside = (wanted >= start) & (wanted < stop)
                if inside.any():
                    first, last = int(wanted[inside][0]), int(wanted[inside][-1])
                    part = self._read(Window(first, 0, last - first + 1, cols))
                    out[inside] = part[::step, ::step]
        return out

    def _read_overview(self, step: int) -> np.ndarray:
        """The decimated raster through GDAL, which reads it from the file's overviews (their
        resampling, not every ``step``-th pixel) when it has some."""
        from rasterio.errors import RasterioIOError

        out_shape = (-(-self.shape[0] // step), -(-self.shape[1] // step))
        try:
            if self.complex_layout == "bands":
                parts = self._dataset.read([self.band, self.band + 1], out_shape=(2, *out_shape))
                return _combine(*self._unpacked(parts), self.dtype)
            return self._unpacked(self._dataset.read(self.band, out_shape=out_shape))
        except RasterioIOError as error:
            raise InputFileError(f"cannot read {self.path}: {_gdal_reason(error)}") from error

    @property
    def band_count(self) -> int:
        return self._dataset.count

    def _band_descriptions(self) -> list[str | None]:
        return list(self._dataset.descriptions)

    def info(self) -> dict:
        summary = super().info()
        summary["bands"] = self.band_count
        summary["band"] = self.band
        # the file's own type (dtype is what it is read as: CInt16 as complex64, scaled
        # integers as float64)
        summary["stored_dtype"] = self._dataset.dtypes[self.band - 1]
        summary["complex_layout"] = self.complex_layout
        summary["band_tags"] = dict(self._band_tags)
        # (scale, offset) per band read, applied to every read (None: the file has none)
        summary["scale_offset"] = None if self._scaling is None else [list(pair) for pair
                                                                       in self._scaling]
        return summary

    def close(self) -> None:
        self._dataset.close()


def _tags_text(tags: dict[str, str]) -> str:
    """Tags as one piece of text for kind detection; sardespeckle's own provenance tags are left
    out (their parameters could contain any word)."""
    return " ".join(
        f"{key}={value}" for key, value in tags.items() if not key.startswith("SARDESPECKLE_")
    )


def _balanced_signs(sample: np.ndarray) -> bool:
    """Whether the finite values of ``sample`` are negative as often as positive (between 30
    and 70 % negative): the real or imaginary part of an SLC, not dB values."""
    values = np.asarray(sample)
    values = values[np.isfinite(values) & (values != 0)]
    return bool(values.size) and 0.3 <= float(np.mean(values < 0)) <= 0.7


def _combine(real: np.ndarray, imag: np.ndarray, dtype: np.dtype) -> np.ndarray:
    out = np.empty(real.shape, dtype=dtype)
    out.real = real
    out.imag = imag
    return out


def _check_block_size(block_size: int) -> int:
    if not isinstance(block_size, (int, np.integer)) or block_size < 16 or block_size % 16:
        raise UsageError(f"expected a block size that is a multiple of 16, got {block_size}")
    return int(block_size)


def _georef_profile(georef: Georef) -> dict:
    """rasterio creation options that carry the georeferencing over."""
    profile: dict = {}
    if georef.transform is not None:
        profile["crs"] = georef.crs
        profile["transform"] = georef.transform
    elif georef.gcps:
        profile["gcps"] = list(georef.gcps)
        profile["crs"] = georef.gcps_crs
    if georef.rpcs is not None:
        profile["rpcs"] = georef.rpcs
    return profile


def inherited_tags(source: Source | None) -> dict[str, str]:
    """The input's dataset tags worth keeping on an output: all but sardespeckle's own (replaced)
    and those naming a kind (units of the input, wrong for the output)."""
    if source is None:
        return {}
    kept = {}
    for key, value in source.tags.items():
        if key.startswith("SARDESPECKLE_") or kind_from_text(f"{key} {value}") is not None:
            continue
        kept[key] = value
    return kept


#: Free space (bytes) on the output's device under which :func:`check_written` also decodes
#: every block: a write that failed on a nearly full disk can record a short block that lies
#: within the file, which only decoding reveals.
READBACK_FREE = 256 << 20


class LowWater:
    """The least free space seen on the device of a file being written, sampled at each
    :meth:`sample` (a ``statvfs``, about a microsecond): a write that failed on a full disk
    is checked as such at the end, even when space came back before (a log rotated, a
    temporary file removed)."""

    def __init__(self, path: str) -> None:
        self._folder = os.path.dirname(os.path.abspath(path))
        self.free: int | None = None

    def sample(self) -> None:
        import shutil

        free = shutil.disk_usage(self._folder).free
        self.free = free if self.free is None else min(self.free, free)


def check_written(temp: str, path: str, *, lowest_free: int | None = None) -> None:
    """OutputFileError unless the GeoTIFF ``temp`` just closed is whole: every block lies
    within the file, and, when the disk is or was nearly full (less than
    :data:`READBACK_FREE` plus the file's size free now, or at ``lowest_free``, the least
    seen while it was written: :class:`LowWater`), every block decodes. GDAL reports a failed
    block write (a full disk, a quota) on stderr only and closes the file as if complete;
    publishing it would replace ``path`` by a file that cannot be read."""
    import shutil

    import rasterio
    from rasterio.errors import RasterioIOError

    shown = visible_name(path)
    size = os.path.getsize(temp)
    free = shutil.disk_usage(os.path.dirname(os.path.abspath(temp))).free
    space = free_space(temp)  # what the messages say: now, and the least seen when less
    if lowest_free is not None and lowest_free < free:
        free = lowest_free
        space += f", {lowest_free / 2**20:.1f} MiB at the lowest while it was written"
    missing = total = 0
    try:
        with _quiet(), rasterio.open(temp) as dataset:
            for band in range(1, dataset.count + 1):
                height, width = dataset.block_shapes[band - 1]
                for i in range(-(-dataset.height // height)):
                    for j in range(-(-dataset.width // width)):
                        total += 1
                        offset = dataset.get_tag_item(f"BLOCK_OFFSET_{j}_{i}", "TIFF", bidx=band)
                        length = dataset.get_tag_item(f"BLOCK_SIZE_{j}_{i}", "TIFF", bidx=band)
                        if offset is None or length is None or int(offset) + int(length) > size:
                            missing += 1
            if not missing and free < READBACK_FREE + size:
                with rasterio.Env(GDAL_CACHEMAX=64):
                    for band in range(1, dataset.count + 1):
                        step = dataset.block_shapes[band - 1][0]
                        for row in range(0, dataset.height, step):
                            dataset.read(band, window=((row, min(row + step, dataset.height)),
                                                       (0, dataset.width)))
    except RasterioIOError as error:
        raise OutputFileError(
            f"cannot write {shown}: the file written is unreadable ({_gdal_reason(error)}; "
            f"{space}: full?); nothing was written") from None
    if missing:
        raise OutputFileError(
            f"cannot write {shown}: {missing} of its {total} blocks did not reach the disk "
            f"({space}: full?); nothing was written")


def _open_for_writing(temp: str, profile: dict):
    import rasterio

    with _quiet():
        return rasterio.open(temp, "w", **profile, **_compression_threads())


def _compression_threads() -> dict:
    """GDAL's ``NUM_THREADS`` creation option: compress the blocks of each written window on
    every core (``ALL_CPUS``), or as many as the ``GDAL_NUM_THREADS`` environment variable says
    when it is set (GDAL reads it itself then). Deflating a 4096² float32 output took 1.24 s on
    one core of the 2-core CPU and 0.65 s on both, for the same bytes: most of a fast filter's
    file → file time, and all that a GPU run waits on once the network is fast."""
    return {} if os.environ.get("GDAL_NUM_THREADS") else {"num_threads": "ALL_CPUS"}


class GeoTiffSink(Sink):
    """A single-band, tiled, deflate-compressed GeoTIFF built from the input's profile."""

    format = "geotiff"

    def __init__(
        self,
        path: str,
        *,
        shape: tuple[int, int],
        kind_out: str,
        nodata: float,
        dtype: np.dtype,
        tags: dict[str, str],
        georef: Georef,
        description: str,
        overwrite: bool,
        block_size: int = 256,
    ) -> None:
        block_size = _check_block_size(block_size)
        profile = {
            "driver": "GTiff",
            "height": int(shape[0]),
            "width": int(shape[1]),
            "count": 1,
            "dtype": np.dtype(dtype).name,
            "nodata": nodata,
            "tiled": True,
            "blockxsize": block_size,
            "blockysize": block_size,
            "compress": "deflate",
            "predictor": 3,
            "BIGTIFF": "IF_SAFER",
            **_georef_profile(georef),
        }
        temp = temporary_path(path)
        self._space = LowWater(temp)
        try:
            self._dataset = _open_for_writing(temp, profile)
            self._dataset.update_tags(**tags)
            self._dataset.set_band_description(1, description)
        except BaseException:
            if getattr(self, "_dataset", None) is not None:
                self._dataset.close()
            remove_if_exists(temp)
            raise
        super().__init__(
            path=path,
            temp_path=temp,
            shape=shape,
            kind_out=kind_out,
            nodata=nodata,
            dtype=dtype,
            overwrite=overwrite,
            tags=tags,
            block_size=block_size,
        )

    def _closer(self):
        return self._dataset.close

    def _verify(self) -> None:
        self._space.sample()
        check_written(self.temp_path, self.path, lowest_free=self._space.free)

    def _write(self, window: Window, values: np.ndarray) -> None:
        self._dataset.write(values, 1, window=_rio_window(window))
        self._space.sample()


def write_geotiff(
    path: str,
    array: np.ndarray,
    *,
    georef: Georef,
    nodata: float | None,
    description: str | list[str] | None,
    tags: dict[str, str],
    overwrite: bool,
    block_size: int = 256,
) -> None:
    """Write a whole 2-D array as a single-band GeoTIFF, or a ``(bands, rows, cols)`` array as
    a multi-band one (``description`` then one name per band), atomically (see
    ``write_array``)."""
    block_size = _check_block_size(block_size)
    dtype = np.dtype(array.dtype)
    predictor = {"f": 3, "i": 2, "u": 2}.get(dtype.kind, 1)
    bands = array[None] if array.ndim == 2 else array
    descriptions = [description] if isinstance(description, str) or description is None \
        else list(description)
    if len(descriptions) != bands.shape[0] and description is not None:
        raise ValueError(f"expected {bands.shape[0]} band descriptions, got {len(descriptions)}")
    profile = {
        "driver": "GTiff",
        "height": bands.shape[1],
        "width": bands.shape[2],
        "count": bands.shape[0],
        "dtype": dtype.name,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": block_size,
        "blockysize": block_size,
        "compress": "deflate",
        "predictor": predictor,
        "BIGTIFF": "IF_SAFER",
        **_georef_profile(georef),
    }
    temp = temporary_path(path)
    try:
        with _open_for_writing(temp, profile) as dataset:
            dataset.write(bands)
            if tags:
                dataset.update_tags(**tags)
            for index, text in enumerate(descriptions, start=1):
                if text:
                    dataset.set_band_description(index, text)
        check_written(temp, path)
        publish(temp, path, overwrite=overwrite)
    except BaseException:
        remove_if_exists(temp)
        raise


def stack_bands(paths: list[str], path: str, *, overwrite: bool) -> None:
    """Write the single-band GeoTIFFs ``paths`` (same grid, as despeckled band by band) as the
    bands of one GeoTIFF ``path``, atomically, one block at a time (memory stays that of a
    block). Band descriptions follow; provenance tags that every input shares go to the
    dataset, those that differ (the looks of each band, its input band) to their band.
    The output is band-interleaved, so that each compressed block is written once."""
    import rasterio

    with _quiet(), rasterio.open(paths[0]) as first:
        profile = first.profile.copy()
        # a profile carries CRS and transform, not GCPs nor RPCs (Sentinel-1 GRD/SLC are
        # georeferenced by GCPs): those are carried over explicitly
        profile.update(_georef_profile(georef_of(first)))
    tags = []
    for source_path in paths:
        with _quiet(), rasterio.open(source_path) as source:
            tags.append(source.tags())
    shared = {key: value for key, value in tags[0].items()
              if all(other.get(key) == value for other in tags[1:])}
    profile.update(count=len(paths), interleave="band")
    temp = temporary_path(path)
    space = LowWater(temp)
    try:
        with _open_for_writing(temp, profile) as dataset:
            dataset.update_tags(**shared)
            for index, (source_path, own) in enumerate(zip(paths, tags), start=1):
                with _quiet(), rasterio.open(source_path) as source:
                    if source.shape != (dataset.height, dataset.width):
                        raise InvalidInputError(
                            f"expected bands of one shape {dataset.shape}, got {source.shape} "
                            f"in {source_path}")
                    for _, window in source.block_windows(1):
                        dataset.write(source.read(1, window=window), index, window=window)
                        space.sample()
                    dataset.set_band_description(index, source.descriptions[0])
                    dataset.update_tags(index, **{key: value for key, value in own.items()
                                                  if key not in shared})
        space.sample()
        check_written(temp, path, lowest_free=space.free)
        publish(temp, path, overwrite=overwrite)
    except BaseException:
        remove_if_exists(temp)
        raise
