"""Covariance-field files for MuLoG's multi-channel path: read, build, write, preview, and
:func:`despeckle_covariance_files`, file in → file out (what ``sardespeckle covariance`` runs).

What a user holds, and what :func:`read_covariance_input` accepts:

* a field of covariance matrices: one ``.npy`` of shape ``(rows, cols, D, D)``, complex,
  Hermitian (PolSAR C3 in the lexicographic basis [HH, √2 HV, VV], dual-pol C2 [VV, VH], an
  interferometric pair), of any number of looks;
* ``D`` co-registered single-look complex channels (SLC polarisations, or the two images of an
  interferometric pair): ``D`` files (``.npy`` complex 2-D, or GeoTIFF whose first band is
  complex), one ``.npy`` of shape ``(rows, cols, D)``, or one GeoTIFF of ``D`` complex bands or
  ``2·D`` real bands in (real, imaginary) pairs (SNAP's ``i_VV, q_VV, i_VH, q_VH``). The field
  is then ``k kᴴ`` per pixel (one look);
* a field stored as one GeoTIFF of ``D²`` real bands whose descriptions name the matrix
  elements (:func:`~sardespeckle.io.kinds.matrix_element`): this module's output (``C11``,
  ``Re C12``...) or SNAP's names (``C11``, ``C12_real``, ``C12_imag``...; ``T`` for a coherency matrix), in any
  order, of any number of looks.

:func:`write_covariance` writes ``.npy`` ``(rows, cols, D, D)`` complex64, or a GeoTIFF of ``D²``
float32 bands — the ``D`` diagonal intensities ``C11 … CDD``, then ``Re Cij`` and ``Im Cij`` for
``i < j`` — with the georeferencing of the first input when it is a GeoTIFF. :func:`preview_rgb`
draws a Pauli RGB (``D = 3``) or a dual-pol RGB (``D = 2``, with the phase of ``C12`` from
:func:`phase_rgb`: the interferogram of an InSAR pair) for a person to judge.

Missing pixels (non-finite, or zero in every channel: SLC borders and burst gaps) are found by
:func:`nodata_mask`, filled smoothly from the valid pixels around them for the run
(:func:`fill_nodata`) and written as NaN. The whole field is held in memory (MuLoG's channel PCA and noise levels are
global): :func:`check_memory` refuses a field whose working set would not fit.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from .errors import InputFileError, InvalidInputError, UsageError

#: Bytes MuLoG's covariance path holds per pixel and per real channel: measured ≈ 160 B (peak
#: RSS of ``sardespeckle covariance --denoiser dncnn-sar`` grew by 764 MB from a 256² to a 768²
#: D = 3 field), with a margin.
BYTES_PER_PIXEL_CHANNEL = 250

_GRD_HINT = ("for amplitude or intensity bands (e.g. GRD VV/VH) use 'sardespeckle run' on each "
             "band")


def covariance_from_channels(channels: np.ndarray) -> np.ndarray:
    """Single-look covariance ``k kᴴ`` ``(rows, cols, D, D)`` of channels ``(rows, cols, D)``."""
    channels = np.asarray(channels)
    if channels.ndim != 3 or not 2 <= channels.shape[-1] <= 4:
        raise InvalidInputError(f"expected channels of shape (rows, cols, D) with D in 2..4, got "
                                f"{channels.shape}")
    if not np.iscomplexobj(channels):
        raise InvalidInputError(f"expected complex channels (single-look complex data), got "
                                f"{channels.dtype}; a covariance needs the phases; {_GRD_HINT}")
    problem = _phase_problem(channels)
    if problem is not None:
        raise InvalidInputError(f"{problem}; a covariance needs the phases")
    k = channels.astype(np.complex128)
    return k[..., :, None] * np.conj(k[..., None, :])


def _phase_problem(channels: np.ndarray) -> str | None:
    """:func:`sardespeckle.io.kinds.phase_problem` of the channels of ``(rows, cols, D)``
    (``"channels 1, 2: ..."``) when it holds for more than one of them, else None. One channel
    without phase is normal (an interferometric pair stored as the master's amplitude and the
    slave times the interferometric phase: only relative phases count); two lose the
    relative phase between them."""
    from .io.kinds import phase_problem

    problems = {index + 1: phase_problem(channels[..., index], "complex")
                for index in range(channels.shape[-1])}
    lacking = [index for index, problem in problems.items() if problem is not None]
    if len(lacking) < 2:
        return None
    return (f"channels {', '.join(map(str, lacking))}: {problems[lacking[0]]}; at most one "
            "channel may lack a phase (only relative phases count)")


def _load_npy(path: str) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputFileError(f"{path} is a folder; expected a .npy file") from None
    except (ValueError, OSError) as error:
        from .io.npy import npy_error

        raise npy_error(path, error) from None


def _read_channel(path: str) -> tuple[np.ndarray, object | None]:
    """One complex 2-D channel and, for a GeoTIFF, its Source (for the georeferencing)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        array = _load_npy(path)
        if array.ndim != 2 or not np.iscomplexobj(array):
            raise InvalidInputError(f"{path}: expected a complex 2-D array (one SLC channel), got "
                                    f"{array.dtype} of shape {array.shape}; {_GRD_HINT}")
        return np.asarray(array), None
    if suffix in (".tif", ".tiff"):
        from .io import open_source
        from .window import Window

        from .io.geotiff import read_header
        from .io.kinds import matrix_element

        header = read_header(path)
        count, dtype = header.count, header.dtype
        if any(matrix_element(text) for text in header.descriptions):
            raise InvalidInputError(
                f"{path}: its bands are the elements of a covariance field "
                f"({', '.join(filter(None, header.descriptions))}), not one SLC channel; give "
                "a stored field alone (sardespeckle covariance FIELD.tif -o OUT --looks L)")
        if dtype.kind != "c":
            # Said here rather than by the reader, whose hint names an option (--complex-layout)
            # that this command does not have.
            raise InvalidInputError(
                f"{path}: expected a complex band (one SLC channel), got {dtype.name} "
                f"({count} real band{'s' if count > 1 else ''}); a covariance needs the "
                "phases: for real and imaginary parts stored as bands, give one GeoTIFF "
                "holding every channel's (real, imaginary) pair alone (SNAP's i_VV q_VV i_VH "
                "q_VH); " + _GRD_HINT)
        try:
            source = open_source(path, kind="complex")
        except InvalidInputError as error:
            raise InvalidInputError(f"{path}: expected a complex band (one SLC channel): {error}; "
                                    f"{_GRD_HINT}") from None
        array = source.read(Window(0, 0, *source.shape))
        return array, source
    raise InputFileError(f"{path}: expected a .npy or .tif/.tiff file")


def _read_multiband_channels(path: str) -> tuple[np.ndarray, object]:
    """``(channels (rows, cols, D), Source)`` of one GeoTIFF holding D complex bands, or 2·D real
    bands in (real, imaginary) pairs — SNAP's ``i_VV, q_VV, i_VH, q_VH`` export. Where band
    descriptions name SLC parts (:func:`sardespeckle.io.kinds.slc_parts`) the pairs they name
    are read and the other bands left out (SNAP's ``Intensity_VV``); InvalidInputError when a
    named part has no partner or a pair is not two adjacent bands, real first."""
    from .io import open_source
    from .window import Window

    from .io.geotiff import read_header
    from .io.kinds import iq_reorder_hint, slc_parts

    header = read_header(path)
    count, dtype = header.count, header.dtype
    named = slc_parts(header.descriptions) if not np.issubdtype(dtype, np.complexfloating) else []
    if named:
        # bands described as SLC parts (SNAP: i_VV q_VV Intensity_VV i_VH q_VH Intensity_VH):
        # the pairs they name, other bands (SNAP's virtual intensities) left out
        lone = [pair for pair in named if None in pair[1:]]
        if lone:
            channel, real, imaginary = lone[0]
            band = real or imaginary
            raise InvalidInputError(
                f"{path}: band {band} ({header.descriptions[band - 1]!r}) is the "
                f"{'real' if real else 'imaginary'} part of an SLC channel whose "
                f"{'imaginary' if real else 'real'} part no band description names; name "
                "both parts (e.g. i_VV and q_VV) or give one complex band per channel")
        if any(imaginary != real + 1 for _, real, imaginary in named):
            raise InvalidInputError(
                f"{path}: its band descriptions name SLC parts that are not (real, imaginary) "
                f"pairs of adjacent bands, which is how they are read: "
                f"{iq_reorder_hint(header.descriptions)}")
        starts, layout = [real for _, real, _ in named], "bands"
    elif np.issubdtype(dtype, np.complexfloating):
        starts, layout = list(range(1, count + 1)), None
    elif count % 2 == 0:
        starts, layout = list(range(1, count + 1, 2)), "bands"
    else:
        raise InvalidInputError(
            f"{path}: {count} real band(s); a channel file needs complex bands, or real bands in "
            f"(real, imaginary) pairs (e.g. i_VV q_VV i_VH q_VH); {_GRD_HINT}")
    if not 2 <= len(starts) <= 4:
        raise InvalidInputError(f"{path}: {len(starts)} complex channel(s); expected 2-4 "
                                "(dual-pol, InSAR pair, PolSAR), or one file per channel")
    channels, like = [], None
    for band in starts:
        source = open_source(path, kind="complex", band=band, complex_layout=layout)
        channels.append(source.read(Window(0, 0, *source.shape)))
        if like is None:
            like = source
        else:
            source.close()
    like.close()
    channels = np.stack(channels, axis=-1)
    _check_channels(channels, [f"{path} band {band}" if layout is None
                                       else f"{path} bands {band}-{band + 1}" for band in starts])
    return channels, like


def _read_covariance_geotiff(path: str, header) -> np.ndarray | None:
    """The field of a GeoTIFF whose bands are named covariance elements
    (:func:`~sardespeckle.io.kinds.matrix_element`), None when no band description names
    one; InvalidInputError when some do but they are not one whole field. A pixel is missing
    (NaN) where every band is masked (the nodata value in each: one element equal to a nodata
    value of 0, e.g. Im C13 of a real-valued pixel, is a value) or a band is NaN."""
    from .io.geotiff import read_bands
    from .io.kinds import element_problem, matrix_element

    descriptions = header.descriptions
    elements = [matrix_element(text) for text in descriptions]
    problems = [problem for problem in map(element_problem, descriptions) if problem]
    if not any(elements) and not problems:
        return None
    size = int(round(np.sqrt(header.count)))
    expected = {(i, j, part) for i in range(size) for j in range(i, size)
                for part in (("re",) if i == j else ("re", "im"))}
    found = [element[1:] for element in elements if element]
    letters = sorted({element[0] for element in elements if element})
    unnamed = [f"band {band} ({text!r})" for band, (text, element)
               in enumerate(zip(descriptions, elements), 1)
               if element is None and not element_problem(text)]
    if len(letters) > 1:
        problems.append("C (covariance) and T (coherency) elements mixed")
    if unnamed:
        problems.append(f"unnamed: {', '.join(unnamed)}")
    if size * size != header.count or not 2 <= size <= 4:
        problems.append(f"{header.count} bands, not D² for D = 2..4")
    else:
        duplicates = sorted({item for item in found if found.count(item) > 1})
        missing = sorted(expected - set(found))
        extra = sorted(set(found) - expected)
        for label, items in (("given twice", duplicates), ("missing", missing),
                             ("outside a {0}×{0} matrix".format(size), extra)):
            if items:
                letter = letters[0] if letters else "C"
                problems.append(f"{label}: " + ", ".join(
                    f"{letter}{i + 1}{j + 1}" + ("" if i == j else f" {part}")
                    for i, j, part in items))
    if problems:
        raise InvalidInputError(
            f"{path}: the band descriptions name covariance matrix elements but not one whole "
            f"D×D field ({'; '.join(problems)}); expected D² bands, D = 2..4: C11 … CDD and "
            "the real and imaginary parts of every Cij, i < j (C12_real/C12_imag or "
            "Re C12/Im C12), all C or all T")
    bands = read_bands(path)
    field = np.zeros(header.shape + (size, size), np.complex128)
    for values, (_, i, j, part) in zip(bands, elements):
        if part == "re":
            field[..., i, j] += values
        else:
            field[..., i, j] += 1j * values
    for i in range(size):
        for j in range(i + 1, size):
            field[..., j, i] = np.conj(field[..., i, j])
    return field


def _path_list(paths) -> list[str]:
    """One path (str or path-like) or a sequence of them, as a list of str."""
    if isinstance(paths, (str, os.PathLike)):
        return [os.fspath(paths)]
    return [os.fspath(p) for p in paths]


def read_covariance_input(paths) -> tuple[np.ndarray, object | None, bool]:
    """``(field, like, single_look)`` from a covariance ``.npy`` or GeoTIFF, or ``D`` complex
    channels.

    Parameters
    ----------
    paths : path-like or sequence of path-like
        One covariance ``.npy`` or GeoTIFF of named element bands, one channel stack (``.npy``
        or GeoTIFF), or 2-4 channel files (see the module notes). A single path may be given
        as such.

    Returns
    -------
    field : numpy.ndarray of complex128, shape (rows, cols, D, D)
    like : Source, Header or None
        The first GeoTIFF input's Source (closed) or header: what ``.georef`` to write with.
    single_look : bool
        Whether the field was built from channels (then ``looks`` is 1 unless the data say
        otherwise).

    Raises
    ------
    UsageError
        No path, more than 4 channel files, one file given as two channels, or two channels
        with identical pixels (the same data under two names).
    InvalidInputError
        Channels of different shapes, or GeoTIFF channels on different grids
        (:func:`sardespeckle.io.grid.check_same_grid`), real-valued channels, a bad field.
    """
    paths = _path_list(paths)
    if not paths:
        raise UsageError("expected a covariance .npy or 2-4 complex channel files, got none")
    for path in paths:
        if os.path.isdir(path):
            raise InputFileError(f"{path} is a folder; expected a covariance .npy or GeoTIFF, or "
                                 "2-4 channel files (a shell glob such as folder/*.tif lists them)")
        if not os.path.isfile(path):
            raise InputFileError(f"{path}: no such file")
    if len(paths) == 1 and Path(paths[0]).suffix.lower() in (".tif", ".tiff"):
        from .io.geotiff import read_header

        header = read_header(paths[0])
        field = _read_covariance_geotiff(paths[0], header)
        if field is not None:
            _check_field(field, paths[0])
            return field, header, False
        channels, like = _read_multiband_channels(paths[0])
        field = covariance_from_channels(channels)
        _check_field(field, paths[0])
        return field, like, True
    if len(paths) == 1:
        if Path(paths[0]).suffix.lower() != ".npy":
            raise InputFileError(f"{paths[0]}: expected a .npy or .tif/.tiff file")
        array = _load_npy(paths[0])
        if array.ndim == 4 and array.shape[-1] == array.shape[-2]:
            if not np.iscomplexobj(array):
                raise InvalidInputError(f"{paths[0]}: expected a complex covariance field, got "
                                        f"{array.dtype}")
            field = np.asarray(array, dtype=np.complex128)
            _check_field(field, paths[0])
            return field, None, False
        if array.ndim == 3:
            if 2 <= array.shape[-1] <= 4:
                _check_channels(array, [f"{paths[0]}[..., {index}]"
                                                for index in range(array.shape[-1])])
            field = covariance_from_channels(np.asarray(array))
            _check_field(field, paths[0])
            return field, None, True
        raise InvalidInputError(f"{paths[0]}: expected shape (rows, cols, D, D) or (rows, cols, "
                                f"D), got {array.shape}")
    if len(paths) > 4:
        raise UsageError(f"expected 2-4 channel files, got {len(paths)}")
    _check_distinct_channels(paths)
    from .io.grid import check_same_grid, georeferencing_source

    check_same_grid(paths, what="co-registered channels")
    like_index = georeferencing_source(paths, what="channels")
    channels, like = [], None
    for index, path in enumerate(paths):
        array, source = _read_channel(path)
        if channels and array.shape != channels[0].shape:
            raise InvalidInputError(f"{path}: shape {array.shape} differs from {paths[0]}'s "
                                    f"{channels[0].shape}; the channels must be co-registered")
        if like is None and source is not None and index >= like_index:
            like = source
        if source is not None and source is not like:
            source.close()
        channels.append(array)
    if like is not None:
        like.close()
    channels = np.stack(channels, axis=-1)
    _check_channels(channels, paths)
    field = covariance_from_channels(channels)
    _check_field(field, paths[0], channel_files=[str(path) for path in paths])
    return field, like, True


def _check_distinct_channels(paths: list[str]) -> None:
    """UsageError when one file is given as two channels (same path, or a link to it)."""
    from .io.base import repeated_file

    repeated = repeated_file(paths)
    if repeated is not None:
        first, again = repeated
        raise UsageError(
            f"expected distinct channel files, got the same file twice: {paths[first]} "
            f"(channel {first + 1}) and {paths[again]} (channel {again + 1}); a channel paired "
            "with itself makes a singular covariance (coherence 1 everywhere): give each "
            "channel (e.g. VV VH, or both images of an interferometric pair) once")


#: Whole-image coherence above which two channels count as one image twice (up to a constant
#: complex factor: a rescaled or re-quantised copy). Real pairs stay far below: an
#: interferogram's phase varies over a scene.
SAME_IMAGE_COHERENCE = 0.9999


def _check_channels(channels: np.ndarray, names: list[str]) -> None:
    """InvalidInputError for complex channels of ``(rows, cols, D)`` more than one of which has
    no phase (:func:`_phase_problem`); UsageError
    when two channels hold the same pixels, or the same pixels up to a constant factor
    (whole-image coherence above :data:`SAME_IMAGE_COHERENCE`: a copy of one file under another
    name, rescaled or saved at another precision): the path check of
    :func:`_check_distinct_channels` cannot see it."""
    problem = _phase_problem(channels)
    if problem is not None:
        raise InvalidInputError(f"{', '.join(names)}: {problem}; a covariance needs the phases")
    for first in range(channels.shape[-1]):
        for again in range(first + 1, channels.shape[-1]):
            a, b = channels[..., first], channels[..., again]
            if np.array_equal(a, b, equal_nan=True):
                what = "identical pixels"
            else:
                both = np.isfinite(a) & np.isfinite(b)
                a64, b64 = a[both].astype(np.complex128), b[both].astype(np.complex128)
                power = np.sqrt(np.sum(np.abs(a64) ** 2) * np.sum(np.abs(b64) ** 2))
                coherence = abs(np.vdot(b64, a64)) / power if power > 0 else 0.0
                if coherence <= SAME_IMAGE_COHERENCE:
                    continue
                what = (f"the same pixels up to a constant factor (coherence {coherence:.6f} "
                        "over the whole image)")
            raise UsageError(
                f"expected different data in each channel, got {what} in "
                f"{names[first]} (channel {first + 1}) and {names[again]} (channel "
                f"{again + 1}); the same data under two names makes a singular covariance "
                "(coherence 1 everywhere): give each channel (e.g. VV VH, or both images "
                "of an interferometric pair) once")


def unused_band_notes(paths) -> list[str]:
    """Notes on channel files whose other bands go unused.

    A channel file gives its first band only: a 2-band VV,VH GeoTIFF given as one channel
    among others loses its VH band (``sardespeckle run`` says as much for multi-band input).
    One GeoTIFF given alone is not a channel file: each of its bands is a channel.

    Parameters
    ----------
    paths : path-like or sequence of path-like
        The inputs, as for :func:`read_covariance_input`.

    Returns
    -------
    list of str
        One note per multi-band complex GeoTIFF among two or more inputs (files that cannot be
        read are left to the reader).
    """
    from .io.geotiff import read_header

    paths = _path_list(paths)
    notes = []
    if len(paths) < 2:
        return notes
    for index, path in enumerate(paths):
        if Path(path).suffix.lower() not in (".tif", ".tiff") or not os.path.isfile(path):
            continue
        try:
            header = read_header(path)
        except InputFileError:
            continue
        count = header.count
        if count > 1 and header.dtype.kind == "c":
            described = f" ({header.descriptions[0]})" if header.descriptions[0] else ""
            notes.append(
                f"{path} has {count} bands; band 1{described} is channel {index + 1} and "
                + ("the other band is" if count == 2 else f"the other {count - 1} bands are")
                + " ignored (one band per channel file; a GeoTIFF that holds every channel as "
                "bands is given alone)")
    return notes


def _sidecar_letter(paths) -> str:
    """``"T"`` when one ``.npy`` input's provenance sidecar records a coherency matrix
    (``SARDESPECKLE_MATRIX``, written by this command), else ``"C"``."""
    paths = _path_list(paths)
    if len(paths) != 1 or Path(paths[0]).suffix.lower() != ".npy":
        return "C"
    from .io.raster import stored_tags

    return "T" if stored_tags(paths[0]).get("SARDESPECKLE_MATRIX") == "T" else "C"


def despeckled_input_notes(paths) -> list[str]:
    """Notes on inputs that are already a sardespeckle output (their provenance tags, in a
    GeoTIFF or a ``.npy`` sidecar, name the method): despeckling them again measures
    hundreds of looks and changes little, which a user may not have meant."""
    from .io.raster import stored_tags

    notes = []
    for path in _path_list(paths):
        tags = stored_tags(path)
        method = tags.get("SARDESPECKLE_METHOD")
        if method:
            notes.append(f"{path} is already a sardespeckle output ({method}"
                         + (f", {tags['SARDESPECKLE_LOOKS']} looks"
                            if tags.get("SARDESPECKLE_LOOKS") else "")
                         + "): despeckling it again changes little (its speckle is gone: "
                         "--looks auto measures hundreds of looks); despeckle the original")
    return notes


def _check_field(field: np.ndarray, where: str, channel_files: list[str] | None = None) -> None:
    """Refuse a field too small for MuLoG, with negative diagonal intensities, with a dead
    channel (named by its own file when the channels came from ``channel_files``), or not made
    of covariance matrices (coherence above 1: :func:`sardespeckle.mulog.matrix.check_coherence`)."""
    if min(field.shape[:2]) < 16:
        transposed = field.shape[0] == field.shape[1] <= 4 and min(field.shape[2:]) >= 16
        raise InvalidInputError(
            f"{where}: {field.shape[0]}×{field.shape[1]} pixels is too small for MuLoG (at least "
            f"16×16)" + (f"; the shape {field.shape} looks like (D, D, rows, cols): the field "
                         f"must be (rows, cols, D, D), e.g. numpy.moveaxis(field, (0, 1), (2, 3))"
                         if transposed else ""))
    diagonal = np.einsum("...ii->...i", field).real
    if (diagonal < 0).any():
        raise InvalidInputError(f"{where}: negative intensities on the diagonal; not a "
                                "covariance field")
    for k in range(field.shape[-1]):
        if not (diagonal[..., k] > 0).any():  # NaN compares False: missing counts as none
            own = channel_files[k] if channel_files else where
            raise InvalidInputError(
                f"{own}: channel {k + 1} (C{k + 1}{k + 1}) has no positive intensity (zero "
                "or missing everywhere): a dead or empty channel; leave it out")
    from .mulog.matrix import check_coherence

    try:
        check_coherence(field)
    except InvalidInputError as error:
        raise InvalidInputError(f"{where}: {error}") from None


def nodata_mask(field: np.ndarray) -> np.ndarray:
    """``(rows, cols)`` True where a pixel is missing: a non-finite entry, or no power in any
    channel (the zeros SLC products put outside the swath or between bursts)."""
    finite = np.isfinite(field).all(axis=(-2, -1))
    return ~finite | ~(_power(field) > 0)


def _power(field: np.ndarray) -> np.ndarray:
    """``(rows, cols)`` total power (trace) of a field, non-finite entries counted as 0."""
    return np.einsum("...ii->...", np.where(np.isfinite(field), field, 0)).real


def fill_nodata(field: np.ndarray, invalid: np.ndarray, *, sigma: float = 4.0) -> np.ndarray:
    """The field with its missing pixels filled for the run (the caller writes them as nodata).

    A missing pixel takes the Gaussian-weighted mean (std ``sigma`` px) of the valid matrices
    around it, and pixels farther than that from any valid one take the nearest filled value:
    a smooth fill, so that MuLoG's denoiser sees no false structure next to the valid data
    (filling with the nearest speckled pixel instead changed the valid pixels next to a
    zero-filled border by up to 76 %, the smooth fill by 17 %, and 12 % once MuLoG also takes
    its statistics from the valid pixels only, ``valid=``; tests/test_covariance_cli.py).
    """
    if invalid.all():
        raise InvalidInputError("every pixel of the field is missing (NaN, infinite or zero "
                                "power in all channels)")
    if not invalid.any():
        return field
    from scipy.ndimage import distance_transform_edt, gaussian_filter

    spread = (sigma, sigma) + (0,) * (field.ndim - 2)
    known = np.where(invalid[..., None, None], 0, field)
    weight = gaussian_filter((~invalid).astype(np.float64), sigma)
    mean = (gaussian_filter(known.real, spread) + 1j * gaussian_filter(known.imag, spread)) \
        / np.maximum(weight, 1e-12)[..., None, None]
    out = np.where(invalid[..., None, None], mean, field)
    far = invalid & (weight < 1e-3)
    if far.any():
        _, (rows, cols) = distance_transform_edt(far, return_indices=True)
        out = np.where(far[..., None, None], out[rows, cols], out)
    return out


def check_memory(shape: tuple[int, ...], available: int | None = None) -> int:
    """Bytes the field's MuLoG run needs; InvalidInputError if over 80 % of ``available``
    (default: the machine's available memory, when known)."""
    rows, cols, dim = shape[0], shape[1], shape[-1]
    need = rows * cols * dim * dim * BYTES_PER_PIXEL_CHANNEL
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
            return need
    if need > 0.8 * available:
        raise InvalidInputError(
            f"a {rows}×{cols} field of {dim}×{dim} matrices needs about {need / 2**30:.1f} GiB "
            f"in memory and {available / 2**30:.1f} GiB are available; MuLoG's covariance path "
            "holds the whole field: cut the scene into windows (docs/mulog.md)")
    return need


def covariance_bands(field: np.ndarray, letter: str = "C") -> tuple[np.ndarray, list[str]]:
    """``D²`` float32 bands ``(D², rows, cols)`` and their names (diagonal, then Re/Im Cij;
    ``letter`` ``"T"`` names a coherency matrix's Tij)."""
    dim = field.shape[-1]
    bands, names = [], []
    for i in range(dim):
        bands.append(field[..., i, i].real)
        names.append(f"{letter}{i + 1}{i + 1}")
    for i in range(dim):
        for j in range(i + 1, dim):
            bands += [field[..., i, j].real, field[..., i, j].imag]
            names += [f"Re {letter}{i + 1}{j + 1}", f"Im {letter}{i + 1}{j + 1}"]
    return np.stack(bands).astype(np.float32), names


def matrix_letter(like) -> str:
    """``"T"`` when ``like`` (what :func:`read_covariance_input` returned) is a GeoTIFF of
    coherency-matrix bands (``T11``...), else ``"C"``."""
    from .io.kinds import matrix_element

    for text in getattr(like, "descriptions", None) or ():
        element = matrix_element(text)
        if element is not None:
            return element[0]
    return "C"


def check_sidecar(path, *, overwrite: bool = False) -> None:
    """OutputExistsError when a ``.npy`` output's provenance sidecar (``OUT.npy.json``,
    :func:`sardespeckle.io.npy.sidecar_path`) exists and ``overwrite`` is false, as for
    ``run``'s ``.npy`` outputs; nothing to check for other formats."""
    from .io.npy import check_sidecar as check_npy_sidecar

    if Path(os.fspath(path)).suffix.lower() == ".npy":
        check_npy_sidecar(path, overwrite=overwrite)


def _write_npy_with_provenance(path: str, field: np.ndarray, tags: dict[str, str],
                               overwrite: bool) -> None:
    """The field as ``.npy`` and its provenance in ``OUT.npy.json``: the object ``run``'s
    ``.npy`` outputs get (:class:`sardespeckle.io.npy.NpySink`), published after the array."""
    from .io.npy import publish_with_sidecar, write_npy

    check_sidecar(path, overwrite=overwrite)
    record = {"file": os.path.basename(path), "kind": "covariance", "nodata": "NaN",
              "shape": list(field.shape), "dtype": field.dtype.name, "tags": tags}
    publish_with_sidecar(path, record, lambda: write_npy(path, field, overwrite=overwrite))


def write_covariance(path, field: np.ndarray, *, like=None, tags=None, inputs=(),
                     overwrite: bool = False, letter: str = "C") -> str:
    """Write the field atomically: ``.npy`` complex64 ``(rows, cols, D, D)`` with its
    provenance ``tags`` in ``OUT.npy.json`` (:func:`check_sidecar`), or GeoTIFF bands
    (georeferencing of ``like``, ``tags`` as dataset tags, bands named with ``letter``:
    :func:`covariance_bands`); ``inputs`` are paths the output must not replace."""
    path = os.fspath(path)
    suffix = Path(path).suffix.lower()
    from .io.base import check_output_path
    from .io.raster import provenance_tags

    check_output_path(path, overwrite=overwrite, inputs=tuple(inputs))
    if suffix == ".npy":
        _write_npy_with_provenance(path, field.astype(np.complex64), provenance_tags(tags),
                                   overwrite)
        return path
    if suffix in (".tif", ".tiff"):
        from .io.base import Georef
        from .io.geotiff import write_geotiff

        bands, names = covariance_bands(field, letter)
        georef = like.georef if like is not None else Georef()
        nodata = float("nan") if np.isnan(bands).any() else None
        write_geotiff(path, bands, georef=georef, nodata=nodata, description=names,
                      tags=provenance_tags(tags), overwrite=overwrite)
        return path
    raise UsageError(f"{path}: expected an output ending in .npy, .tif or .tiff")


def _stretch(values: np.ndarray, low: float, high: float) -> np.ndarray:
    scaled = (np.asarray(values, dtype=np.float64) - low) / max(high - low, 1e-12)
    return (255 * np.clip(scaled, 0, 1)).astype(np.uint8)


#: Sizes D of the fields a preview can draw (:func:`preview_rgb`).
PREVIEW_DIMS = (2, 3)


def check_preview_dim(dim: int) -> None:
    """UsageError unless a ``D × D`` field can be previewed (``D`` in :data:`PREVIEW_DIMS`):
    checked before any work, as every other output is."""
    if dim not in PREVIEW_DIMS:
        raise UsageError(
            f"expected a field of 2×2 or 3×3 matrices for a preview (dual-pol/InSAR: RGB and "
            f"phase; PolSAR: Pauli RGB), got {dim}×{dim}; leave --preview out (Python: "
            "preview=None)")


def preview_rgb(field: np.ndarray, stretch=None, *, letter: str = "C"
                ) -> tuple[np.ndarray, object]:
    """``(rgb uint8 (rows, cols, 3), stretch)``: Pauli RGB for ``D = 3`` (R |HH−VV|, G 2|HV|,
    B |HH+VV|, amplitudes up to their 98th percentiles; from C3 in the lexicographic basis, or
    from the diagonal T22, T33, T11 of a coherency matrix, ``letter="T"``), dual-pol RGB for
    ``D = 2`` (R C11, G C22, B C11/C22 in dB between their 2nd and 98th percentiles). Pass the
    returned ``stretch`` to draw another field (the despeckled one) with the same scale."""
    dim = field.shape[-1]
    if dim == 3:
        d11, d22, d33 = (field[..., k, k].real for k in range(3))
        if letter == "T":
            powers = [d22, d33, d11]
        else:
            c13 = field[..., 0, 2].real
            powers = [0.5 * (d11 + d33 - 2 * c13), d22, 0.5 * (d11 + d33 + 2 * c13)]
        rgb = np.sqrt(np.maximum(np.stack(powers, axis=-1), 0))
        if stretch is None:
            stretch = np.maximum(np.percentile(rgb.reshape(-1, 3), 98, axis=0), 1e-12)
        return (255 * np.clip(rgb / stretch, 0, 1)).astype(np.uint8), stretch
    if dim == 2:
        c11 = np.maximum(field[..., 0, 0].real, 1e-12)
        c22 = np.maximum(field[..., 1, 1].real, 1e-12)
        channels = [10 * np.log10(c) for c in (c11, c22, c11 / c22)]
        if stretch is None:
            stretch = [tuple(np.percentile(c, [2, 98])) for c in channels]
        rgb = np.stack([_stretch(c, lo, hi) for c, (lo, hi) in zip(channels, stretch)], axis=-1)
        return rgb, stretch
    raise InvalidInputError(f"expected a field of 2×2 or 3×3 matrices for a preview, got {dim}×{dim}")


def phase_rgb(phase: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """A phase in (−π, π] (e.g. of ``C12``: the interferogram of an InSAR pair) as a cyclic hue,
    uint8 RGB; with ``weight`` in [0, 1] (a coherence), each colour fades to mid-grey as its
    weight falls, so that the phase of incoherent areas (noise) does not look like fringes."""
    hue = (phase + np.pi) / (2 * np.pi) * 6.0
    sector = np.floor(hue).astype(int) % 6
    frac = hue - np.floor(hue)
    one, zero = np.ones_like(phase), np.zeros_like(phase)
    table = [(one, frac, zero), (1 - frac, one, zero), (zero, one, frac),
             (zero, 1 - frac, one), (frac, zero, one), (one, zero, 1 - frac)]
    rgb = np.zeros(phase.shape + (3,))
    for index, channels in enumerate(table):
        mask = sector == index
        rgb[mask] = np.stack([c[mask] for c in channels], axis=-1)
    if weight is not None:
        weight = np.clip(np.nan_to_num(np.asarray(weight, dtype=np.float64)), 0.0, 1.0)
        rgb = 0.5 + weight[..., None] * (rgb - 0.5)
    return np.round(255 * rgb).astype(np.uint8)


def coherence_magnitude(field: np.ndarray, window: int = 1) -> np.ndarray:
    """``|C12| / √(C11 C22)`` of a ``(rows, cols, 2, 2)`` field, each entry first averaged over
    ``window × window`` pixels (a single-look field has coherence 1 at every pixel: its
    coherence only shows over a window)."""
    from scipy import ndimage

    def smooth(values):
        return values if window == 1 else ndimage.uniform_filter(values, window, mode="reflect")

    c11, c22 = smooth(field[..., 0, 0].real), smooth(field[..., 1, 1].real)
    c12 = smooth(field[..., 0, 1].real) + 1j * smooth(field[..., 0, 1].imag)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.clip(np.abs(c12) / np.sqrt(c11 * c22), 0.0, 1.0)


#: Window of the input's coherence in the D = 2 phase preview (its single-look pixels have none).
PREVIEW_COHERENCE_WINDOW = 5


def preview_rows(before: np.ndarray, after: np.ndarray, *, letter: str = "C"
                 ) -> list[list[np.ndarray]]:
    """The preview of a run: rows of ``[input, output]`` panels with one shared stretch —
    :func:`preview_rgb` (``letter`` as there), and for ``D = 2`` also the phase of ``C12``
    (:func:`phase_rgb`), faded by the coherence (the input's over
    :data:`PREVIEW_COHERENCE_WINDOW`² pixels, the output's per pixel)."""
    first, stretch = preview_rgb(before, letter=letter)
    rows = [[first, preview_rgb(after, stretch, letter=letter)[0]]]
    if before.shape[-1] == 2:
        rows.append([
            phase_rgb(np.angle(before[..., 0, 1]),
                      coherence_magnitude(before, PREVIEW_COHERENCE_WINDOW)),
            phase_rgb(np.angle(after[..., 0, 1]), coherence_magnitude(after)),
        ])
    return rows


def save_side_by_side_png(path, panels, *, overwrite: bool = False, gap: int = 4) -> str:
    """Write RGB panels side by side (white gaps) as a PNG, atomically; ``panels`` is a list of
    panels or a list of rows of panels."""
    from .io.preview import check_png_path, write_png

    path = check_png_path(path, overwrite)
    rows = panels if isinstance(panels[0], (list, tuple)) else [panels]
    height = sum(max(p.shape[0] for p in row) for row in rows) + gap * (len(rows) - 1)
    width = max(sum(p.shape[1] for p in row) + gap * (len(row) - 1) for row in rows)
    canvas = np.full((height, width, 3), 255, np.uint8)
    top = 0
    for row in rows:
        left = 0
        for panel in row:
            canvas[top:top + panel.shape[0], left:left + panel.shape[1]] = panel
            left += panel.shape[1] + gap
        top += max(p.shape[0] for p in row) + gap
    return write_png(path, canvas, overwrite=overwrite)


#: ``decorrelate`` values of :func:`despeckle_covariance_files` (``auto`` is resolved per field).
DECORRELATE_CHOICES = ("auto", "none", "subsample")


def choose_covariance_decorrelation(field: np.ndarray, invalid: np.ndarray,
                                    looks: float, *, from_channels: bool = False
                                    ) -> tuple[str, str]:
    """``("subsample" | "none", reason)`` for a covariance field, as ``run`` decides for one
    image (:func:`sardespeckle.decorrelate.choose_decorrelation`): a single-look field whose
    speckle is spatially correlated (the worst speckle correlation of its diagonal channels'
    log-intensity, :func:`~sardespeckle.decorrelate.estimate_speckle_correlation` on the most
    homogeneous windows of the central 1024² pixels, above
    :data:`~sardespeckle.decorrelate.CORRELATION_THRESHOLD`) is subsampled. Whitening, which
    keeps the resolution of single-channel SLC input, is not offered for covariance fields.
    A field built ``from_channels`` (complex SLC channels) has single-look speckle whatever
    ``looks`` says: its correlation is measured even when more looks are given."""
    from .decorrelate import (SINGLE_LOOK_MAX, central_window, choose_decorrelation,
                              estimate_speckle_correlation)

    if looks > SINGLE_LOOK_MAX and not from_channels:
        return choose_decorrelation("intensity", looks, None)
    window = central_window(field.shape[:2])
    part, usable = field[window.slices], ~invalid[window.slices]
    worst = None
    for channel in range(field.shape[-1]):
        intensity = part[..., channel, channel].real
        try:
            measured = estimate_speckle_correlation(intensity, valid=usable & (intensity > 0))
        except InvalidInputError:  # too small or too few homogeneous windows to measure
            continue
        if worst is None or max(measured) > max(worst):
            worst = measured
    return choose_decorrelation("intensity", 1.0 if from_channels else looks, worst)


#: Given looks above this multiple of the measured ones draw a note: MuLoG's log-domain
#: estimate of a field comes out darker when told it has more looks than it has.
LOOKS_NOTE_RATIO = 1.2


def measure_covariance_looks(field: np.ndarray, invalid: np.ndarray) -> float | None:
    """Looks of a covariance field measured as ``run`` measures them on one image
    (:func:`sardespeckle.speckle.estimate_looks` on the most homogeneous windows of the central
    1024² pixels), the median over the diagonal channels; None when it cannot be measured."""
    from .decorrelate import central_window
    from .speckle import estimate_looks

    window = central_window(field.shape[:2])
    part, usable = field[window.slices], ~invalid[window.slices]
    measured = []
    for channel in range(field.shape[-1]):
        intensity = part[..., channel, channel].real
        keep = usable & (intensity > 0)
        if keep.sum() < 64:
            continue
        try:
            measured.append(float(estimate_looks(intensity, valid=keep)))
        except InvalidInputError:
            continue
    return float(np.median(measured)) if measured else None


def subsampled_covariance(field: np.ndarray, valid: np.ndarray, despeckle) -> np.ndarray:
    """Despeckle the four polyphase components ``field[dr::2, dc::2]`` separately
    (``despeckle(component, valid_component)``), put each back where it came from and smooth
    by ``[1, 2, 1]/4`` along rows and columns: the average of the four components brought back
    to the full grid by linear interpolation, as :class:`sardespeckle.decorrelate.Subsampled`
    does for one image. Each output matrix is a convex combination of Hermitian positive
    definite matrices, hence Hermitian positive definite."""
    from .decorrelate import smooth_121

    out = None
    for dr in (0, 1):
        for dc in (0, 1):
            part = np.ascontiguousarray(field[dr::2, dc::2])
            if part.shape[0] == 0 or part.shape[1] == 0:
                continue
            part_valid = valid[dr::2, dc::2]
            result = despeckle(part, part_valid if part_valid.any() else None)
            if out is None:
                out = np.empty(field.shape, result.dtype)
            out[dr::2, dc::2] = result
    return smooth_121(out).astype(out.dtype)


def despeckle_covariance_files(inputs, output, *, looks: float | None = None,
                               denoiser="bm3d", iterations: int = 6, lam: float | None = None,
                               precision: str = "auto", decorrelate: str = "auto", preview=None,
                               overwrite: bool = False, progress=None, device: str = "auto",
                               on_plan=None, keep_targets=None) -> dict:
    """Read a covariance field (:func:`read_covariance_input`; ``inputs`` one path or several),
    despeckle it with :func:`~sardespeckle.mulog.mulog_covariance` and write it
    (:func:`write_covariance`: a ``.npy`` output gets its provenance in ``OUT.npy.json``), with
    an optional input | output ``preview`` PNG (D = 2 or 3 only, :func:`check_preview_dim`).
    Missing pixels are filled for the run, kept out
    of MuLoG's statistics and written as NaN. Every output path is checked before any work;
    ``looks`` is required for a covariance field (1 by default for channels; ``"auto"``:
    measured, :func:`measure_covariance_looks`; a given value well above the measured one is
    reported in ``looks_note``). ``decorrelate``:
    ``subsample`` runs MuLoG on the four polyphase components (:func:`subsampled_covariance`),
    for single-look fields whose speckle is spatially correlated (SLC channels: a denoiser
    trained on white noise leaves worm-like residues otherwise); ``auto`` (default) decides
    from the field (:func:`choose_covariance_decorrelation`). ``progress`` is called with each
    ADMM iterate (numbered across the four components when subsampled). ``device``: where a
    DnCNN denoiser runs (``auto``: CUDA when available; ``cuda`` is refused for BM3D).
    ``on_plan(plan)`` is called once everything is decided, before MuLoG runs, with the summary's
    ``looks``, ``looks_source``, ``looks_note``, ``decorrelate`` and ``decorrelate_reason`` (so
    a command can say them before the work, not after). ``keep_targets``: a false-alarm rate
    (e.g. ``1e-5``) at which strong scatterers keep their input matrix
    (:func:`~sardespeckle.keep_targets.keep_covariance_targets`), or None (default: off).
    Returns a summary (sizes, looks, λ, precision, device, decorrelation and why, missing
    pixels, ``kept_targets`` (pixels kept, or None when off) and ``kept_rank_deficient`` (how
    many of them are rank-deficient input matrices: coherence 1), seconds, paths, and ``notes``:
    :func:`unused_band_notes` and :func:`despeckled_input_notes`)."""
    import time

    from .io.base import check_output_path
    from .io.preview import check_png_path
    from .mulog import mulog_covariance
    from .tiling import weak_zeros
    from .mulog.method import denoiser_weights_id, prepare_mulog_denoiser

    from .keep_targets import false_alarm_rate, keep_covariance_targets

    if decorrelate not in DECORRELATE_CHOICES:
        raise UsageError(f"expected decorrelate in {DECORRELATE_CHOICES}, got {decorrelate!r}")
    false_alarm = false_alarm_rate(keep_targets)
    inputs = _path_list(inputs)
    output = os.fspath(output)
    check_output_path(output, inputs=tuple(inputs), overwrite=overwrite)
    check_sidecar(output, overwrite=overwrite)
    if preview is not None:
        preview = check_png_path(preview, overwrite)
    field, like, single_look = read_covariance_input(inputs)
    if preview is not None:
        check_preview_dim(field.shape[-1])
    notes = unused_band_notes(inputs) + despeckled_input_notes(inputs)
    if looks is None and not single_look:
        raise UsageError("a covariance field's looks are not in the file: pass --looks L, or "
                         "--looks auto to measure them (Python: looks=L or looks='auto')")
    check_memory(field.shape)
    invalid = nodata_mask(field)
    measured_looks = measure_covariance_looks(field, invalid)
    if looks == "auto":
        if measured_looks is None:
            raise InvalidInputError("cannot measure the looks of this field (too few "
                                    "homogeneous valid pixels); pass --looks L (Python: looks=L)")
        looks, looks_source = round(measured_looks, 3), "measured"
    elif looks is None:
        looks, looks_source = 1.0, "single-look channels"
    elif isinstance(looks, (bool, str)) or not isinstance(looks, (int, float)) \
            or not np.isfinite(looks) or looks <= 0:
        raise UsageError(f"expected looks as a number > 0 or 'auto', got {looks!r}")
    else:
        looks, looks_source = float(looks), "given"
    looks_note = None
    if measured_looks is not None and looks > LOOKS_NOTE_RATIO * measured_looks:
        looks_note = (f"the field measures {measured_looks:.2f} looks on its most homogeneous "
                      f"areas, fewer than the {looks:g} it is run with: MuLoG's estimate comes "
                      f"out darker when told too many looks (looks='auto', CLI --looks auto, "
                      f"uses the measured value)")
    prepared = prepare_mulog_denoiser(denoiser, looks=looks, precision=precision, lam=lam,
                                      device=device)
    if decorrelate == "auto":
        decorrelate, reason = choose_covariance_decorrelation(field, invalid, looks,
                                                              from_channels=single_look)
    else:
        reason = "given"
    field_in = field
    field = fill_nodata(field, invalid)
    if on_plan is not None:
        on_plan({"looks": looks, "looks_source": looks_source, "looks_note": looks_note,
                 "decorrelate": decorrelate, "decorrelate_reason": reason})
    started = time.perf_counter()
    if decorrelate == "subsample":
        done = [0]

        def run(part, part_valid):
            def numbered(item):
                if progress is not None:
                    progress(dataclasses.replace(item, k=done[0] * iterations + item.k,
                                                 iterations=4 * iterations))
            result = mulog_covariance(part, looks=looks, denoiser=prepared.function,
                                      iterations=iterations, lam=prepared.lam, callback=numbered,
                                      valid=part_valid)
            done[0] += 1
            return result

        out = subsampled_covariance(field, ~invalid, run)
    else:
        out = mulog_covariance(field, looks=looks, denoiser=prepared.function,
                               iterations=iterations, lam=prepared.lam, callback=progress,
                               valid=~invalid)
    kept = kept_rank_deficient = None
    if false_alarm is not None:
        out, targets = keep_covariance_targets(field, out, looks=looks, false_alarm=false_alarm)
        targets &= ~invalid
        kept = int(targets.sum())
        # single-look matrices (rank one) kept: coherence 1 there by construction
        eigenvalues = np.linalg.eigvalsh(field[targets]) if kept else np.ones((0, 1))
        kept_rank_deficient = int((eigenvalues[:, 0] <= 1e-3 * eigenvalues[:, -1]).sum())
    seconds = time.perf_counter() - started
    # Zero-power pixels inside the data (quantised SLCs: a weak return in every channel) get
    # MuLoG's estimate, as in 'run' (tiling.weak_zeros); blocks and fill regions stay nodata.
    finite = np.isfinite(field_in).all(axis=(-2, -1))  # a NaN pixel is missing, never weak
    holes = invalid & ~weak_zeros(np.where(finite, _power(field_in), np.nan), ~invalid)
    out[holes] = complex(np.nan, np.nan)
    letter = matrix_letter(like) if like is not None else _sidecar_letter(inputs)
    tags = {"method": "mulog-covariance", "matrix": letter, "denoiser": prepared.label,
            "looks": looks,
            "iterations": iterations, "lam": prepared.lam, "precision": prepared.precision,
            "device": prepared.device, "decorrelate": decorrelate,
            "inputs": [os.path.basename(p) for p in inputs]}
    if false_alarm is not None:
        tags["keep_targets"] = false_alarm
    weights = denoiser_weights_id(denoiser)
    if weights is not None:
        tags["weights"] = weights
    write_covariance(output, out, like=like, tags=tags, inputs=inputs, overwrite=overwrite,
                     letter=letter)
    if preview is not None:
        shown = fill_nodata(out, holes) if holes.any() else out  # drawn like their neighbours
        save_side_by_side_png(preview, preview_rows(field, shown, letter=letter),
                              overwrite=overwrite)
    return {"rows": field.shape[0], "cols": field.shape[1], "dim": field.shape[-1],
            "looks": looks, "denoiser": prepared.label, "precision": prepared.precision,
            "device": prepared.device, "looks_source": looks_source,
            "measured_looks": measured_looks, "looks_note": looks_note,
            "lam": prepared.lam, "iterations": iterations, "decorrelate": decorrelate,
            "decorrelate_reason": reason, "missing": int(holes.sum()), "kept_targets": kept,
            "kept_rank_deficient": kept_rank_deficient,
            "seconds": seconds, "output": output, "preview": preview, "notes": notes}
