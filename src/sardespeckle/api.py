"""The public functions: despeckle an array or a file with any registered method.

This module glues the three layers together — io (readers and writers), tiling (the engine) and
methods (the registry) — and is the only one that knows all three.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import numbers
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InvalidInputError, UnknownKindError, UsageError
from .methods import BuiltMethod, build_method, get_method
from .tiling import ProgressFn, ReadFn, check_tile, process_array, run_tiled
from .window import Window

#: Method used when none is named.
DEFAULT_METHOD = "sarcnn"
#: Default core tile side (pixels).
DEFAULT_TILE = 512
#: Largest central window used to estimate the number of looks of an input.
LOOKS_SAMPLE = 1024
#: GDAL block cache (MB) while a file is processed. GDAL's default (5 % of RAM) grows with the
#: scene, since every block read or written passes through it; the engine reads each block
#: about once, so a small cache costs no speed and keeps peak memory flat whatever the size.
GDAL_CACHE_MB = 64


@dataclass
class RunReport:
    """What :func:`despeckle_file` did, for the CLI and for provenance."""

    input: str
    output: str
    method: str
    parameters: dict[str, Any]
    looks: float
    looks_source: str
    input_kind: str
    kind_reason: str
    output_kind: str
    shape: tuple[int, int]
    tile: int
    halo: int
    seconds: float = 0.0
    weights: str | None = None
    notes: list[str] = field(default_factory=list)
    #: With ``band="all"``: the report of each band's run (this one is band 1's).
    band_reports: list[RunReport] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def despeckle(
    data: np.ndarray,
    *,
    method: str = DEFAULT_METHOD,
    looks: float,
    kind: str | None = None,
    tile: int | None = DEFAULT_TILE,
    params: dict[str, Any] | None = None,
    progress: ProgressFn | None = None,
) -> np.ndarray:
    """Despeckle an in-memory SAR image.

    Parameters
    ----------
    data : ndarray, shape (rows, cols)
        The image, as intensity, amplitude, dB or complex values (``kind``).
    method : str
        A registered method name (see ``sardespeckle methods``).
    looks : float
        Number of looks of ``data`` (1 for single-look complex data).
    kind : {"intensity", "amplitude", "db", "complex"}, optional
        What ``data`` holds. The result has the same kind (complex input gives intensity).
        Required for real floating-point data (amplitude and intensity cannot be told apart
        from the numbers); otherwise detected as for files: a complex dtype is complex,
        negative values are dB, an integer dtype is amplitude (digital numbers).
    tile : int or None
        Core tile side for the tiled engine; ``None`` runs the whole image as one tile.
    params : dict, optional
        Method parameters overriding its defaults.
    progress : callable, optional
        ``progress(done_tiles, total_tiles)``.

    Returns
    -------
    ndarray, float32, shape (rows, cols)
        The despeckled image; masked pixels (NaN, inf, zero intensity, and the mask of a
        ``numpy.ma`` array) come back as NaN, except isolated zero intensities, which are weak
        samples rather than missing data and get an estimate
        (:func:`sardespeckle.tiling.weak_zeros`).

    Examples
    --------
    >>> import numpy as np
    >>> from sardespeckle.speckle import add_speckle
    >>> noisy = add_speckle(np.full((64, 64), 100.0), looks=1, seed=0)
    >>> clean = despeckle(noisy, method="boxcar", looks=1, kind="intensity",
    ...                   params={"window_size": 7})
    >>> bool(abs(np.mean(clean) / 100 - 1) < 0.05)
    True
    """
    from .decorrelate import (central_window, check_whitening_input, correlated_network_for,
                              estimate_whitening_filter, resolve_decorrelation)
    from .io.kinds import (check_value_shares, from_intensity, negative_share, overflow_share,
                           phase_problem, to_intensity, value_notes)

    masked = np.ma.getmaskarray(data) if np.ma.isMaskedArray(data) else None
    data = np.asarray(np.ma.getdata(data))
    if data.ndim != 2:
        several = np.iscomplexobj(data) and (
            (data.ndim == 4 and data.shape[2] == data.shape[3] and 2 <= data.shape[2] <= 4)
            or (data.ndim == 3 and (2 <= data.shape[2] <= 4 or 2 <= data.shape[0] <= 4)))
        first = data.ndim == 3 and not 2 <= data.shape[-1] <= 4
        raise InvalidInputError(
            f"expected a 2-D array (rows, cols), got shape {data.shape}"
            + ("; several channels (dual-pol, InSAR, PolSAR) are despeckled together by "
               "sardespeckle.mulog.mulog_covariance on their covariance field (rows, cols, D, D): "
               "sardespeckle.covariance.covariance_from_channels(channels) makes it from "
               "complex channels (rows, cols, D)"
               + (" (yours are stacked first: numpy.moveaxis(array, 0, -1))" if first else "")
               if several else ""),
        )
    if 0 in data.shape:
        raise InvalidInputError(f"expected a raster of at least 1×1 pixels, got "
                                f"{data.shape[0]}×{data.shape[1]}")
    hidden = masked is not None and masked.any()
    # the kind from the values that are not masked, in their own dtype (integers: amplitude)
    kind = _array_kind(data, kind, exclude=masked if hidden else None)
    if kind == "complex" and not np.iscomplexobj(data):
        raise InvalidInputError(
            f"expected complex data for kind 'complex', got {data.dtype.name}; real and "
            "imaginary parts held apart make one complex array as re + 1j * im (e.g. "
            "parts[..., 0] + 1j * parts[..., 1])")
    if hidden:
        # A masked array's mask marks nodata whatever the hidden values are (rasterio's
        # read(masked=True) hides -9999 or 1e30 fills): blank them before anything reads them.
        data = data.astype(np.result_type(data.dtype, np.float32), copy=True)
        data[masked] = np.nan
    problem = phase_problem(data, kind)
    if problem is not None:
        raise InvalidInputError(f"{problem}; pass the magnitudes (numpy.abs) with their kind")
    shares = negative_share(data, kind), overflow_share(data, kind)
    check_value_shares(*shares, kind)
    if any(shares):
        import warnings

        for note in value_notes(*shares):
            warnings.warn(f"despeckle: {note}", UserWarning, stacklevel=2)
    intensity, valid = to_intensity(data, kind)
    if not valid.any():
        import warnings

        with np.errstate(all="ignore"):  # valid values whose intensity is below float32's least
            usable = np.isfinite(data) & ((np.abs(data) > 0) if kind == "complex" else
                                          (data > 0) if kind != "db" else True)
            tiny = bool(np.any(usable & ~(masked if hidden else False)))
        why = ("their intensities are too small for float32 (below about 1e-45): rescale the "
               "input" if tiny
               else "every pixel is NaN, infinite, zero or negative, or masked")
        warnings.warn(f"despeckle: the input has no valid pixel ({why}): the result is all NaN",
                      UserWarning, stacklevel=2)
    looks_value = _check_looks(looks)
    slc = slc_looks_caution(looks_value) if kind == "complex" else None
    if slc:
        import warnings

        warnings.warn(f"despeckle: {slc}", UserWarning, stacklevel=2)
    defaults = get_method(method).defaults
    # Measured on the central window, as despeckle_file does: an array and the same array
    # written to a file get the same decorrelation and level.
    center = central_window(data.shape).slices
    params, _ = resolve_decorrelation(defaults, params, kind=kind, looks=looks_value,
                                      sample=lambda: (intensity[center], valid[center]),
                                      correlated_network=correlated_network_for(method, looks_value))
    params = resolve_level(defaults, params, sample=lambda: (intensity[center], valid[center]))
    built = build_method(method, looks=looks_value, params=params)
    mismatch = looks_mismatch(built, looks_value)
    if mismatch:
        import warnings

        warnings.warn(f"despeckle: {mismatch}", UserWarning, stacklevel=2)
    # Zero intensities (not masked by the array's mask) are samples, not missing data: the
    # engine estimates the isolated ones (sardespeckle.tiling.weak_zeros).
    zero = intensity == 0  # masked pixels are NaN by now
    if built.decorrelate == "whiten":
        check_whitening_input(kind)
        whitening = estimate_whitening_filter(data[center], valid=valid[center])
        intensity = np.where(zero, 0, whitening.whitened_intensity(data, valid))
    out = process_array(intensity, built.function, halo=built.halo, valid=valid | zero, tile=tile,
                        batch_size=built.batch_size, progress=progress)
    kind_out = "intensity" if kind == "complex" else kind
    return from_intensity(out, np.isfinite(out), kind_out, nodata_out=np.nan)


def _array_kind(data: np.ndarray, kind: str | None, *, exclude: np.ndarray | None = None
                ) -> str:
    """``kind`` checked, or when None detected from the array as for files
    (:func:`sardespeckle.io.kinds.detect_kind`: complex dtype, negative values, integer
    dtype; real floating-point data without a kind are refused), from the values not in
    ``exclude`` (a mask of hidden fills)."""
    from .io.kinds import check_kind, detect_kind

    if kind is not None:
        return check_kind(kind)
    if data.dtype.kind not in "iufc":
        raise InvalidInputError(f"expected numbers (intensity, amplitude, dB or complex), got "
                                f"an array of {data.dtype.name}")
    values = data if exclude is None else data[~exclude]
    values = values[np.isfinite(values)]
    if data.dtype.kind == "f" and not np.any(values < 0):
        raise UnknownKindError(
            "cannot tell amplitude from intensity in an array of real floating-point values: "
            "pass kind='intensity' or kind='amplitude' (or kind='db' for decibels)"
        )
    detected, _ = detect_kind(dtype=data.dtype, hints=None, sample=values)
    return detected


#: The end of the note of a one-band run on a file of several bands (not for ``band="all"``).
_ONE_BAND_NOTE = "is despeckled (one output band"


def _despeckle_every_band(input_path, output_path, *, overwrite: bool, progress, **options
                          ) -> RunReport:
    """``despeckle_file(band="all")``: each band into a hidden single-band GeoTIFF beside the
    output, then stacked into the output (:func:`sardespeckle.io.geotiff.stack_bands`); the
    hidden files go whatever happens. Returns band 1's report, with every band's in
    ``band_reports``."""
    from .io import open_source
    from .io.base import check_output_path, remove_if_exists, temporary_path
    from .io.geotiff import stack_bands

    input_path, output_path = str(input_path), str(output_path)
    _, fmt = check_output_path(output_path, inputs=(input_path,), overwrite=overwrite)
    if options.get("complex_layout") == "bands":
        raise UsageError("expected one band or a band number with complex_layout='bands', got "
                         "band='all'; pick the real, imaginary pair with band=N (CLI --band N)")
    with open_source(input_path, kind=options.get("kind"),
                     complex_layout=options.get("complex_layout")) as source:
        count, input_format = source.band_count, source.format
    if input_format != "geotiff" or fmt != "geotiff":
        raise UsageError(f"expected a GeoTIFF input and a .tif output for band='all' (every band "
                         f"into one multi-band GeoTIFF), got {os.path.basename(input_path)} → "
                         f"{os.path.basename(output_path)}")
    for band in range(2, count + 1):  # a band that cannot be read is refused before any work
        open_source(input_path, kind=options.get("kind"), band=band).close()
    started = time.perf_counter()
    stale = _stale_partials_note(output_path)
    parts: list[str] = []
    reports: list[RunReport] = []
    try:
        for band in range(1, count + 1):
            parts.append(temporary_path(output_path))

            def band_progress(done, total, band=band):
                if progress is not None:
                    progress((band - 1) * total + done, count * total)

            reports.append(despeckle_file(input_path, parts[-1], band=band, overwrite=True,
                                          progress=band_progress, **options))
        stack_bands(parts, output_path, overwrite=overwrite)
    finally:
        for part in parts:
            remove_if_exists(part)
    report = dataclasses.replace(reports[0], output=output_path, band_reports=reports,
                                 notes=_every_band_notes(reports))
    looks = ", ".join(f"{r.looks:g}" for r in reports)
    report.notes.append(f"every band despeckled on its own: {count} output bands (looks {looks})")
    if stale:
        report.notes.append(stale)
    report.seconds = time.perf_counter() - started
    return report


def _every_band_notes(reports: list[RunReport]) -> list[str]:
    """The notes of a ``band="all"`` run, from each band's report: a note every band gave
    once; one that only some bands gave, or that differs in its measured numbers, named by
    band (``band 2: ...``), those alike but for their numbers grouped on the first's line
    (``bands 1, 3, 4 (band 1's numbers): ...``; each band's own are in its band tags)."""
    import re

    def shape(note: str) -> str:
        return re.sub(r"[-+]?\d[\d.,eE+-]*", "#", note)

    groups: dict[str, list[tuple[int, str]]] = {}
    for band, band_report in enumerate(reports, start=1):
        for note in band_report.notes:
            if _ONE_BAND_NOTE not in note:
                groups.setdefault(shape(note), []).append((band, note))
    notes = []
    for group in groups.values():
        bands = [band for band, _ in group]
        texts = {note for _, note in group}
        if len(bands) == len(reports) and len(texts) == 1:
            notes.append(group[0][1])  # every band, word for word
        elif len(bands) == 1:
            notes.append(f"band {bands[0]}: {group[0][1]}")
        else:
            numbers = f" (band {bands[0]}'s numbers)" if len(texts) > 1 else ""
            notes.append(f"bands {', '.join(map(str, bands))}{numbers}: {group[0][1]}")
    return notes


def _stale_partials_note(output_path) -> str | None:
    """Remove the hidden partial files of ``output_path`` that runs killed outright left
    (:func:`sardespeckle.io.base.remove_stale_partials`: a live writer's are left alone), and
    say so."""
    from .io.base import remove_stale_partials

    removed = remove_stale_partials([output_path])
    if not removed:
        return None
    return (f"removed {len(removed)} hidden partial file(s) of {output_path} left by an earlier "
            "run killed outright: " + ", ".join(os.path.basename(p) for p in removed))


def looks_mismatch(built: BuiltMethod, looks: float) -> str | None:
    """A note when a network trained for one speckle is given data of clearly more looks (1.5×
    or more; single-look data measure about 1–1.3): it removes speckle as for its own looks, so
    it smooths more than the data need."""
    trained = built.trained_looks
    if trained is None or trained / 1.5 < looks < 1.5 * trained:
        return None
    effect = "more than these data need" if looks > trained else "leaving some of its speckle"
    return (f"the {built.name} weights were trained for {trained:g}-look speckle and this input "
            f"has {looks:g} looks: the network smooths as for {trained:g} look(s), {effect}; "
            "MuLoG works at any looks (method 'mulog' with denoiser 'dncnn-sar'; CLI --method "
            "mulog --denoiser dncnn-sar), or train weights "
            "for these looks")


def slc_looks_caution(looks: float) -> str | None:
    """A caution when complex (SLC) data, single look by nature, are given other looks."""
    if 1 / SLC_LOOKS_TOLERANCE <= looks <= SLC_LOOKS_TOLERANCE:
        return None
    return (f"complex (SLC) input has single-look speckle, but runs as {looks:g} looks: "
            "methods that use the looks assume that many; SLC input is one look (looks=1; "
            "CLI: leave --looks out)")


def _check_looks(looks: Any) -> float:
    if isinstance(looks, bool) or not isinstance(looks, numbers.Real):
        raise UsageError(f"expected a number of looks > 0, got {looks!r} ({type(looks).__name__})")
    value = float(looks)
    if not np.isfinite(value) or value <= 0:
        raise UsageError(f"expected a number of looks > 0, got {looks!r}")
    return value


def resolve_level(defaults: Mapping[str, Any], params: Mapping[str, Any] | None, *,
                  sample: Callable[[], tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Replace SAR-CNN's ``level="auto"`` by the input's scene level: the median intensity of
    ``sample() -> (intensity, valid)``, the central window (at most 1024²) of the input
    (:func:`sardespeckle.models.sarcnn.scene_level`), or ``"none"`` when that window holds no
    valid pixel (nothing to measure: the intensities are taken as given). Methods without
    ``level`` pass through."""
    params = dict(params or {})
    if "level" not in defaults or params.get("level", defaults["level"]) != "auto":
        return params
    from .models.sarcnn import scene_level

    intensity, valid = sample()
    try:
        params["level"] = scene_level(intensity, valid)
    except InvalidInputError:
        params["level"] = "none"
    return params


def estimate_source_looks(source) -> float:
    """Number of looks estimated on a central window of an opened source (at most 1024²)."""
    return estimate_source_looks_why(source)[0]


def estimate_source_looks_why(source) -> tuple[float, str]:
    """:func:`estimate_source_looks`, and how it was estimated (for the notes): correlated
    speckle is measured on ×2 polyphase grids
    (:func:`~sardespeckle.decorrelate.estimate_looks_of_speckle`)."""
    from .decorrelate import estimate_looks_of_speckle

    rows, cols = source.shape
    height, width = min(rows, LOOKS_SAMPLE), min(cols, LOOKS_SAMPLE)
    window = Window((rows - height) // 2, (cols - width) // 2, height, width)
    intensity, valid = source.read_intensity(window)
    if valid.sum() < 64:
        raise InvalidInputError(
            "cannot estimate the number of looks: fewer than 64 valid pixels in the central "
            f"{height}×{width} window; pass looks explicitly (CLI --looks)"
        )
    looks, correlated = estimate_looks_of_speckle(intensity, valid=valid)
    if not math.isfinite(looks):
        raise InvalidInputError(
            "cannot estimate the number of looks: the most homogeneous windows of the central "
            f"{height}×{width} window are constant (no speckle to measure: a synthetic or "
            "already despeckled image?); pass looks explicitly (CLI --looks)"
        )
    how = "estimated from the most homogeneous windows"
    if correlated:
        how += " on every other row and column (the speckle is spatially correlated)"
    return looks, how


def _output_notes(source, output: str, kind_out: str) -> list[str]:
    """What the output will not carry over from the input, said before the work: the
    georeferencing in a ``.npy``, the nodata value of a dB output when it is a valid dB."""
    from .io.raster import output_nodata

    notes = []
    georef = getattr(source, "georef", None)
    if output.lower().endswith(".npy") and georef is not None and not georef.is_empty:
        notes.append("a .npy output holds no georeferencing (the input's CRS, transform, GCPs "
                     "or RPCs): write a .tif to keep it")
    nodata = getattr(source, "nodata", None)
    # a file output keeps the input's nodata where it can; an array output (no path) is NaN
    if (kind_out == "db" and output and not output.lower().endswith(".npy")
            and nodata is not None and not math.isnan(nodata)
            and math.isnan(output_nodata(nodata, kind_out="db"))):
        notes.append(f"the input's nodata value {nodata:g} is a valid dB value: the dB "
                     "output's nodata is NaN")
    return notes


#: Given looks for complex (SLC) input beyond this factor of 1 are noted (SLC is single look).
SLC_LOOKS_TOLERANCE = 1.2
#: Estimated looks below this are noted as implausible (a wrong kind most often).
IMPLAUSIBLE_LOOKS = 0.5
#: Estimated looks above this are noted: nearly no speckle as read (an already despeckled or
#: averaged product, or a wrong kind: linear values read as dB measure 10⁵ looks and more).
SPECKLE_FREE_LOOKS = 1000.0


def _has_valid_pixel(source) -> bool:
    """Whether ``source`` holds at least one valid pixel (read in bands of rows; asked only
    when the looks could not be estimated on its central window)."""
    rows, cols = source.shape
    step = max(1, (1 << 22) // max(cols, 1))  # about 4 Mpx per read
    return any(source.read_intensity(Window(row, 0, min(step, rows - row), cols))[1].any()
               for row in range(0, rows, step))


@dataclass
class RunPlan:
    """Everything a run on one opened source decides before any pixel is processed.

    ``built.parameters`` are the parameters actually used (defaults, ``decorrelate`` and the
    network's precision and device resolved): building the method again with them, in another
    process, gives the same method. ``whitening`` is the filter to read the input through when
    the method wants whitened speckle, else ``None``.
    """

    built: BuiltMethod
    report: RunReport
    tags: dict[str, str]
    whitening: Any = None
    #: The notes of ``report.notes`` that flag a possible problem with the input or the choice
    #: of method (not the information notes: decorrelation, weights chosen): what the Python
    #: entry points without a report (:func:`despeckle`, ``despeckle_dataarray``) warn about.
    cautions: list[str] = field(default_factory=list)

    def reader(self, source) -> ReadFn:
        """The engine's ``read`` for ``source``: its intensity, whitened when the plan says so."""
        return intensity_reader(source, self.whitening)


def intensity_reader(source, whitening=None) -> ReadFn:
    """``read(window) -> (intensity, valid)`` of ``source``, through ``whitening`` when given
    (a :class:`sardespeckle.decorrelate.WhiteningFilter` for a complex source)."""
    if whitening is None:
        return source.read_intensity
    from .decorrelate import WhitenedSource

    return WhitenedSource(source, whitening).read_intensity


def plan_run(
    source,
    *,
    output: str | Path = "",
    method: str = DEFAULT_METHOD,
    looks: float | None = None,
    output_kind: str | None = None,
    tile: int | None = None,
    params: dict[str, Any] | None = None,
) -> RunPlan:
    """Decide looks, decorrelation, method, output kind, tile and provenance for ``source``.

    ``source`` is an opened :class:`sardespeckle.io.Source` (or any object with ``path``,
    ``shape``, ``kind``, ``kind_reason``, ``read_intensity``, ``read`` and ``value_shares``;
    ``georef`` and ``nodata`` when it has them); the arguments mean
    what they mean for :func:`despeckle_file`. The method is built here, so that bad parameters
    and missing weights fail before any output exists.
    """
    from .decorrelate import (central_window, correlated_network_for, resolve_decorrelation,
                              whitened_source)
    from .io.kinds import value_notes

    shares = source.value_shares()  # values that do not fit the kind: refused if common
    if looks is None:
        if source.kind == "complex":
            looks_value, looks_source = 1.0, "complex input: single look"
        else:
            try:
                looks_value, looks_source = estimate_source_looks_why(source)
            except InvalidInputError:
                if _has_valid_pixel(source):
                    raise
                # nothing to despeckle: the output is all nodata (a note says so), whatever L is
                looks_value, looks_source = 1.0, "assumed: no valid pixel to estimate them from"
    else:
        looks_value, looks_source = _check_looks(looks), "given"
    defaults = get_method(method).defaults
    sample = functools.cache(lambda: source.read_intensity(central_window(source.shape)))
    params, decorrelation = resolve_decorrelation(
        defaults, params, kind=source.kind, looks=looks_value, sample=sample,
        correlated_network=correlated_network_for(method, looks_value))
    params = resolve_level(defaults, params, sample=sample)
    built = build_method(method, looks=looks_value, params=params)
    whitening = whitened_source(source).whitening if built.decorrelate == "whiten" else None
    kind_out = output_kind or ("intensity" if source.kind == "complex" else source.kind)
    if kind_out not in {"intensity", "amplitude", "db"}:
        raise UsageError(
            f"expected an output kind among intensity, amplitude, db, got {kind_out!r}"
        )
    tile_side = check_tile(tile) if tile is not None else int(built.tile or DEFAULT_TILE)
    report = RunReport(
        input=str(source.path), output=str(output), method=built.name,
        parameters=built.parameters, looks=looks_value, looks_source=looks_source,
        input_kind=source.kind, kind_reason=source.kind_reason, output_kind=kind_out,
        shape=tuple(source.shape), tile=tile_side, halo=built.halo, weights=built.weights,
    )
    tags = {
        "SARDESPECKLE_METHOD": built.name,
        "SARDESPECKLE_PARAMETERS": json.dumps(built.parameters, sort_keys=True, default=repr),
        "SARDESPECKLE_LOOKS": f"{looks_value:g}",
        "SARDESPECKLE_LOOKS_SOURCE": looks_source,
        "SARDESPECKLE_INPUT_KIND": source.kind,
        "SARDESPECKLE_OUTPUT_KIND": kind_out,
        "SARDESPECKLE_TILE": str(tile_side),
        "SARDESPECKLE_HALO": str(built.halo),
    }
    if built.weights:
        tags["SARDESPECKLE_WEIGHTS"] = built.weights
    cautions = [*value_notes(*shares), *_output_notes(source, str(output), kind_out)]
    slc = slc_looks_caution(looks_value) if (source.kind == "complex"
                                             and looks_source == "given") else None
    if slc:
        cautions.append(slc)
    if looks_source.startswith("estimated") and looks_value < IMPLAUSIBLE_LOOKS:
        cautions.append(
            f"{looks_value:.3g} looks is implausible for speckle (single-look data measure "
            f"about 1): check the input kind ({source.kind}: {source.kind_reason}), or give "
            "the looks (looks=L; CLI --looks L)")
    if looks_source.startswith("estimated") and looks_value > SPECKLE_FREE_LOOKS:
        cautions.append(
            f"{looks_value:.3g} looks: as read, the input has nearly no speckle (an already "
            f"despeckled or temporally averaged product?); check the input kind ({source.kind}: "
            f"{source.kind_reason})")
    report.notes.extend(cautions)
    if decorrelation:
        tags["SARDESPECKLE_DECORRELATE"] = decorrelation
        report.notes.append(decorrelation)
    chosen = built.parameters.get("weights")
    if (built.trained_looks is not None and not (params or {}).get("weights")
            and chosen != _default_sarcnn()):  # (filters never import torch)
        report.notes.append(f"weights {chosen} (trained for {built.trained_looks:g}-look "
                            f"speckle) chosen for the input's {looks_value:g} looks")
    mismatch = looks_mismatch(built, looks_value)
    if mismatch:
        report.notes.append(mismatch)
        cautions.append(mismatch)
    used = 2 if getattr(source, "complex_layout", None) == "bands" else 1
    if source.band_count > used:
        described = f" ({source.description})" if getattr(source, "description", None) else ""
        tags["SARDESPECKLE_INPUT_BAND"] = f"{source.band}{described}"
        report.notes.append(
            f"the input has {source.band_count} bands; band {source.band}{described}"
            + (f" (with {source.band + 1}: real, imaginary)" if used == 2 else "")
            + f" {_ONE_BAND_NOTE}; band=N (CLI --band N) picks another)")
    return RunPlan(built=built, report=report, tags=tags, whitening=whitening, cautions=cautions)


def _default_sarcnn() -> str:
    from .models import weights as registry  # imports torch

    return registry.DEFAULT_SARCNN


#: Block side of the GeoTIFFs :func:`despeckle_file` writes; tiles are aligned on it.
OUTPUT_BLOCK = 256


def _align_tile(plan: "RunPlan", output_path) -> None:
    """Round the plan's tile up to the output GeoTIFF's blocks, as the tiling will
    (:func:`sardespeckle.tiling.plan_tiles` with ``align``), so that the report and the
    ``SARDESPECKLE_TILE`` tag give the tile the run uses, with a note when it changed."""
    from .io.base import file_format
    from .tiling import aligned_tile

    if file_format(output_path) != "geotiff":
        return
    effective = aligned_tile(plan.report.tile, OUTPUT_BLOCK)
    if effective != plan.report.tile:
        plan.report.notes.append(
            f"tile {plan.report.tile} rounded up to {effective}, a multiple of the output "
            f"GeoTIFF's {OUTPUT_BLOCK}-pixel blocks (write a .npy for other tile sides)")
        plan.report.tile = effective
        plan.tags["SARDESPECKLE_TILE"] = str(effective)


def despeckle_file(
    input_path: str | Path,
    output_path: str | Path,
    *,
    method: str = DEFAULT_METHOD,
    looks: float | None = None,
    kind: str | None = None,
    output_kind: str | None = None,
    complex_layout: str | None = None,
    tile: int | None = None,
    params: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    client=None,
    band: int | str = 1,
) -> RunReport:
    """Despeckle a GeoTIFF or .npy file into a new file, tile by tile, in bounded memory.

    The output is written to a temporary file beside ``output_path`` and renamed onto it only
    when complete; the input is opened read-only. GeoTIFF outputs keep the input's CRS,
    transform, GCPs and nodata, and carry provenance tags (method, parameters, looks, version).

    ``looks=None`` means 1 for complex (single-look) input, else an estimate from the most
    homogeneous windows of the image (reported in the returned :class:`RunReport`).
    ``kind=None`` detects the input kind (see :func:`sardespeckle.io.kinds.detect_kind`);
    ``output_kind=None`` keeps the input kind (complex input gives intensity).
    ``band`` picks the GeoTIFF band to despeckle (from 1; with ``complex_layout="bands"`` the
    first of the real, imaginary pair); the output has one band. ``band="all"`` despeckles
    every band of a GeoTIFF, each on its own (kind, looks and decorrelation decided per band),
    into a GeoTIFF of as many bands (:func:`_despeckle_every_band`).
    ``client`` (a ``distributed.Client``) computes the tiles on its Dask cluster, whose workers
    must read ``input_path`` (and a weights file) at the same path; this process plans the run
    and writes the output, which is the same as without a client (see ``docs/distributed.md``).

    Nothing is warned: what :func:`despeckle` and ``despeckle_dataarray`` warn about (negative
    values masked, implausible looks, weights trained for other looks...) is in the returned
    report's ``notes``, with the information notes (decorrelation chosen, weights picked), as
    the command line prints them.
    """
    from .io import create_sink, open_source

    import rasterio

    if band == "all":
        return _despeckle_every_band(
            input_path, output_path, method=method, looks=looks, kind=kind,
            output_kind=output_kind, complex_layout=complex_layout, tile=tile, params=params,
            overwrite=overwrite, progress=progress, client=client)
    started = time.perf_counter()
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), \
            open_source(input_path, kind=kind, complex_layout=complex_layout,
                        band=band) as source:
        plan = plan_run(source, output=output_path, method=method, looks=looks,
                        output_kind=output_kind, tile=tile, params=params)
        built = plan.built
        _align_tile(plan, output_path)
        stale = _stale_partials_note(output_path)
        if stale:
            plan.report.notes.append(stale)
        with create_sink(output_path, source, kind_out=plan.report.output_kind, tags=plan.tags,
                         overwrite=overwrite, block_size=OUTPUT_BLOCK) as sink:
            if client is not None:
                from .scale.files import run_on_cluster

                run_on_cluster(client, source, plan, sink, complex_layout=complex_layout,
                               progress=progress)
            else:
                run_tiled(source.shape, plan.reader(source), sink.write, built.function,
                          halo=built.halo, tile=plan.report.tile, batch_size=built.batch_size,
                          progress=progress, align=getattr(sink, "block_size", None))
            valid_pixels = sink.valid_pixels
    report = plan.report
    if valid_pixels == 0:
        report.notes.append(
            "the input has no valid pixel (every pixel is nodata, NaN, zero or negative, or "
            "outside float32's range once squared to intensity): the output is all nodata")
    report.seconds = time.perf_counter() - started
    return report
