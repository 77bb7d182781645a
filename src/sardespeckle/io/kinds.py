"""Input kinds: what the numbers of a SAR raster mean, and the conversions to and from intensity.

A SAR image reaches us in one of four kinds:

=============  =====================================  ===================
kind           value                                  intensity
=============  =====================================  ===================
``intensity``  power, sigma0/beta0/gamma0 (linear)    ``I``
``amplitude``  magnitude, Sentinel-1 GRD numbers      ``A ** 2``
``db``         ``10 log10(I)``                         ``10 ** (dB / 10)``
``complex``    single-look complex ``z``               ``|z| ** 2``
=============  =====================================  ===================

Everything downstream of the readers works on intensity (``float32``) with a boolean mask of
valid pixels; the writers convert back to the output kind.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import numpy as np

from sardespeckle.errors import InvalidInputError, UnknownKindError, UsageError

KINDS = ("intensity", "amplitude", "db", "complex")
"""Every input kind."""

OUTPUT_KINDS = ("intensity", "amplitude", "db")
"""The kinds a despeckled image can be written as (a despeckled image has no phase)."""

# Words that name a kind in band descriptions, tags and file names. A "db" word wins over the
# others because it names the scale of the quantity the other words name ("Sigma0_VV_db").
_DB_WORDS = frozenset({"db", "decibel", "decibels"})
_AMPLITUDE_WORDS = frozenset({"amplitude", "amp", "ampl", "magnitude", "mag"})
_INTENSITY_WORDS = frozenset(
    {"intensity", "int", "power", "sigma0", "beta0", "gamma0", "sigmanought", "betanought"}
    # the diagonal of a covariance (C) or coherency (T) matrix: powers (SNAP's C2/C3/T3 bands,
    # sardespeckle covariance's GeoTIFF output)
    | {f"{letter}{i}{i}" for letter in "ct" for i in range(1, 5)}
)

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_kind(kind: str, *, allowed: tuple[str, ...] = KINDS, what: str = "kind") -> str:
    """Return ``kind`` if it is one of ``allowed``, else raise :class:`UsageError`."""
    if kind not in allowed:
        raise UsageError(
            f"expected {what} to be one of {', '.join(repr(k) for k in allowed)}, got {kind!r}"
        )
    return kind


def _words(text: str) -> set[str]:
    # Words split on non-alphanumerics, plus those of a camelCase split ("gamma0VV" -> gamma0),
    # both kept because the camelCase split alone would cut "dB" into "d" and "b".
    camel = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text)
    words = set(re.split(r"[^a-z0-9]+", text.lower())) | set(re.split(r"[^a-z0-9]+", camel.lower()))
    words.discard("")
    return words


def polarisation_of(text: str | None) -> str | None:
    """The polarisation (``HH``, ``HV``, ``VH``, ``VV``) a piece of metadata names, if exactly one.

    >>> polarisation_of("Amplitude_VV"), polarisation_of("Sigma0_VH_db"), polarisation_of("band 1")
    ('VV', 'VH', None)
    """
    if not text:
        return None
    found = {word.upper() for word in re.split(r"[^A-Za-z0-9]+", text)
             if word.upper() in ("HH", "HV", "VH", "VV")}
    return found.pop() if len(found) == 1 else None


_ELEMENT = re.compile(r"^\s*(?:(re|im)\s*[_ ]?\s*)?([ct])([1-4])([1-4])"
                      r"(?:\s*[_ ]\s*(real|imag|re|im))?\s*$", re.IGNORECASE)


def _element_parts(description) -> tuple[str, int, int, str, bool] | None:
    """``(letter, i, j, part, both)`` of any text shaped like a matrix element name (0-based
    indices, ``part`` ``""``, ``"re"`` or ``"im"``, ``both``: a part given twice), else None."""
    match = _ELEMENT.match(description or "")
    if match is None:
        return None
    prefix, letter, i, j, suffix = match.groups()
    part = (prefix or suffix or "").lower()[:2]
    return letter.upper(), int(i) - 1, int(j) - 1, part, bool(prefix and suffix)


def matrix_element(description) -> tuple[str, int, int, str] | None:
    """``(letter, i, j, part)`` of a band description naming an element of a covariance
    (``C``) or coherency (``T``) matrix, 0-based ``i ≤ j``, ``part`` ``"re"`` or ``"im"``
    (``"re"`` on the diagonal), else None: ``C11``, ``T22``, ``C12_real``, ``C12_imag`` (the
    names SNAP gives C2/C3/T3 bands), ``Re C12``, ``Im C12`` (``sardespeckle covariance``'s
    GeoTIFF output).

    >>> matrix_element("C11"), matrix_element("Im C12"), matrix_element("T23_real")
    (('C', 0, 0, 're'), ('C', 0, 1, 'im'), ('T', 1, 2, 're'))
    >>> matrix_element("VV"), matrix_element("C21_real"), matrix_element("C12")
    (None, None, None)
    """
    parts = _element_parts(description)
    if parts is None:
        return None
    letter, i, j, part, both = parts
    if both or i > j or (i == j) == bool(part):  # a part on the diagonal, none off it
        return None
    return letter, i, j, part or "re"


def element_problem(description) -> str | None:
    """Why a description shaped like a matrix element name is not one :func:`matrix_element`
    accepts (e.g. ``"C21_real"``: a lower-triangle element), else None."""
    parts = _element_parts(description)
    if parts is None or matrix_element(description) is not None:
        return None
    letter, i, j, part, both = parts
    name = f"{letter}{i + 1}{j + 1}"
    if both:
        return f"{description!r} gives its part twice"
    if i > j:
        return (f"{description!r} is a lower-triangle element; the upper one, "
                f"{letter}{j + 1}{i + 1}, is expected (its conjugate)")
    if i == j:
        return f"{description!r}: the diagonal {name} is real, it has no real/imaginary parts"
    return f"{description!r}: expected {name}_real or {name}_imag (Re {name} or Im {name})"


def kind_from_text(text: str) -> str | None:
    """The kind named by a piece of metadata, or ``None`` when it names none or several.

    >>> kind_from_text("Sigma0_VV_db"), kind_from_text("Amplitude_VV"), kind_from_text("VV")
    ('db', 'amplitude', None)
    >>> kind_from_text("C22"), kind_from_text("C12_real")
    ('intensity', None)
    """
    words = _words(text)
    if words & _DB_WORDS:
        return "db"
    amplitude = bool(words & _AMPLITUDE_WORDS)
    intensity = bool(words & _INTENSITY_WORDS)
    if amplitude != intensity:
        return "amplitude" if amplitude else "intensity"
    return None


_IQ_PART = re.compile(r"^\s*(i|q|re|real|im|imag|imaginary)(?:\s*[_ ]\s*(\S.*?))?\s*$",
                      re.IGNORECASE)


def iq_part(description) -> tuple[str, str] | None:
    """``(part, channel)`` of a band description naming the real (``"re"``) or imaginary
    (``"im"``) part of an SLC channel, else None: SNAP's ``i_VV`` / ``q_VV`` (also with a
    suffix, ``i_VV_slv1_12Jan2020``), ``real`` / ``imag``, ``Re_HH`` / ``Im_HH``. ``channel`` is
    the rest of the name, lower-cased (``"vv"``; ``""`` for a bare ``I``, ``real``...), what the
    two parts of one channel share. Matrix element names (``Im C12``) are not SLC parts.

    >>> iq_part("i_VV"), iq_part("q_VV_slv1_12Jan2020"), iq_part("Imaginary")
    (('re', 'vv'), ('im', 'vv_slv1_12jan2020'), ('im', ''))
    >>> iq_part("Intensity_VV"), iq_part("Im C12"), iq_part(None)
    (None, None, None)
    """
    if not description or matrix_element(description) is not None:
        return None
    match = _IQ_PART.match(str(description))
    if match is None:
        return None
    word, channel = match.groups()
    part = "re" if word.lower() in ("i", "re", "real") else "im"
    return part, (channel or "").lower()


def slc_parts(descriptions) -> list[tuple[str, int | None, int | None]]:
    """``(channel, real band, imaginary band)`` (1-based; None for a part the file does not
    name) of each SLC channel whose parts the band ``descriptions`` name (:func:`iq_part`), in
    the order of their first band. Parts of one channel name pair in their order (``I Q I Q``
    is two channels, whichever part comes first). A bare word (``I``, ``Q``, ``real``,
    ``imag``) counts only beside its partner (alone it may mean intensity, or a real-valued
    product); a name with a channel (``i_VV``) counts alone, its partner None.

    >>> slc_parts(["i_VV", "q_VV", "Intensity_VV", "i_VH", "q_VH"])
    [('vv', 1, 2), ('vh', 4, 5)]
    >>> slc_parts(["I", "Q", "I", "Q"]), slc_parts(["q_HH", "i_HH"]), slc_parts(["I", "i_VV"])
    ([('', 1, 2), ('', 3, 4)], [('hh', 2, 1)], [('vv', 2, None)])
    """
    pairs: list[list] = []
    for band, description in enumerate(descriptions, 1):
        found = iq_part(description)
        if found is None:
            continue
        slot = 1 if found[0] == "re" else 2
        open_pair = next((pair for pair in pairs if pair[0] == found[1] and pair[slot] is None),
                         None)
        if open_pair is None:
            open_pair = [found[1], None, None]
            pairs.append(open_pair)
        open_pair[slot] = band
    return [(channel, real, imaginary) for channel, real, imaginary in pairs
            if channel or None not in (real, imaginary)]


def iq_reorder_hint(descriptions) -> str:
    """Where the (real, imaginary) band pairs of SLC channels start when each real band is
    right before its imaginary band (what ``--complex-layout bands`` and ``covariance`` read),
    else a ``gdal_translate`` command that puts them so; ``""`` when some part has no
    partner."""
    pairs = slc_parts(descriptions)
    if not pairs or any(None in pair for pair in pairs):
        return ""
    if all(imaginary == real + 1 for _, real, imaginary in pairs):
        starts = [real for _, real, _ in pairs]
        return (f"the pairs start at band{'s' if len(starts) > 1 else ''} "
                + ", ".join(str(band) for band in starts) + f" (--band {starts[0]})")
    order = [band for _, real, imaginary in pairs for band in (real, imaginary)]
    return ("gdal_translate " + " ".join(f"-b {band}" for band in order)
            + " in.tif pairs.tif puts each channel's real band before its imaginary band")


def declared_kind(hints: Mapping[str, str] | None) -> tuple[str, str] | None:
    """``(kind, reason)`` from the first metadata hint that names exactly one kind (see
    :func:`detect_kind`, rule 2, without the file name), else ``None``."""
    for where, text in (hints or {}).items():
        if text:
            kind = kind_from_text(str(text))
            if kind is not None:
                return kind, f"{where} {_shorten(str(text))!r} names {kind}"
    return None


#: Share of negative values from which they alone decide dB (:func:`detect_kind`, rule 3);
#: fewer than that are ambiguous (a few negative σ⁰ pixels, or dB mostly above 0).
DB_SIGN_SHARE = 0.1
#: Rule 3 with fewer than :data:`DB_LIKE_SHARE` negative values: when (the 99th percentile
#: of) their magnitudes stay under this, they are not dB (whose negative values of speckled
#: data reach several dB down: single-look speckle alone spreads dB over about 20 dB, 4-look
#: GRD over about 10) but linear σ⁰ whose thermal-noise removal left small negatives
#: (−0.003 and the like).
DB_MIN_DEPTH = 1.0


def detect_kind(
    *,
    dtype: np.dtype | str,
    hints: Mapping[str, str] | None,
    sample: np.ndarray | None,
    path: str | os.PathLike | None = None,
    nodata: float | None = None,
    negative_hint: str | None = None,
) -> tuple[str, str]:
    """Tell which kind of SAR data a raster holds.

    Parameters
    ----------
    dtype : numpy dtype
        The raster's data type (for real/imaginary layouts, the complex type they form).
    hints : mapping of str to str, optional
        Metadata that may name the kind, in order of trust, as ``{where: text}``, e.g.
        ``{"band 1 description": "Amplitude_VV", "dataset tags": "UNITS=dB"}``.
    sample : ndarray or callable, optional
        Some pixels of the raster (a decimated read is enough), or a function returning them,
        called only when the metadata do not decide (reading a large file is not free).
    path : path-like, optional
        The file, whose name is used as the last metadata hint.
    nodata : float, optional
        The raster's nodata value, left out of ``sample``.
    negative_hint : str, optional
        What else negative values could mean in this raster, added to the reason when they
        decide ``"db"`` (the bands of a GeoTIFF may be the real and imaginary parts of an SLC).

    Returns
    -------
    kind : str
        One of ``"intensity"``, ``"amplitude"``, ``"db"``, ``"complex"``.
    reason : str
        Why, in words (for ``info`` and logs).

    Raises
    ------
    InvalidInputError
        For real floating-point data without negative values nor metadata: amplitude and
        intensity cannot be told apart from the numbers alone.

    Notes
    -----
    The rule, first match wins:

    1. a complex dtype is ``"complex"``;
    2. else the first hint, then the file name, that names exactly one kind: a word ``db`` /
       ``decibel`` gives ``"db"`` (it names the scale, so ``Sigma0_VV_db`` is dB);
       ``amplitude`` / ``amp`` / ``magnitude`` gives ``"amplitude"``; ``intensity`` / ``int`` /
       ``power`` / ``sigma0`` / ``beta0`` / ``gamma0`` gives ``"intensity"``. Words are split on
       non-alphanumerics and camelCase; a hint naming both amplitude and intensity is skipped;
    3. else negative finite values in ``sample`` (nodata left out) give ``"db"`` when they are
       at least :data:`DB_SIGN_SHARE` of it, unless fewer than :data:`DB_LIKE_SHARE` are and
       all lie within :data:`DB_MIN_DEPTH` of 0 (linear σ⁰ with thermal-noise negatives;
       judged from :data:`PHASE_SAMPLE` values on); those, and fewer negatives, are
       ambiguous: :class:`UnknownKindError`;
    4. else an integer dtype gives ``"amplitude"`` (Sentinel-1 GRD digital numbers are amplitude);
    5. else :class:`InvalidInputError`: pass the kind explicitly.
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        return "complex", f"complex data type {dtype.name}"
    declared = declared_kind(hints)
    if declared is not None:
        return declared
    if path is not None:
        stem = os.path.basename(os.fspath(path)).rsplit(".", 1)[0]
        kind = kind_from_text(stem)
        if kind is not None:
            return kind, f"file name {stem!r} names {kind}"
    if callable(sample):
        sample = sample()
    if sample is not None and np.asarray(sample).size:
        values = np.asarray(sample)
        if values.dtype.kind in "iuf":
            keep = np.isfinite(values) & ~_nodata_mask(values, nodata)
            negative = float(np.mean(values[keep] < 0)) if np.any(keep) else 0.0
            where = f"{os.fspath(path)}: " if path is not None else ""
            if negative >= DB_SIGN_SHARE:
                kept = values[keep]
                depth = float(np.percentile(-kept[kept < 0], 99))
                if (negative < DB_LIKE_SHARE and depth < DB_MIN_DEPTH
                        and np.count_nonzero(keep) >= PHASE_SAMPLE):
                    raise UnknownKindError(
                        f"{where}{100 * negative:.0f} % of the values are negative, as in dB, "
                        f"but all within {depth:.2g} of 0 (99th percentile of their "
                        "magnitudes), where negative dB values of speckled data reach several dB "
                        "down: linear σ⁰ after thermal-noise removal? pass kind='intensity' or "
                        "kind='amplitude' (its negative pixels become nodata), or kind='db' if "
                        "they are dB (CLI --kind)")
                reason = "negative values (only dB data can be negative)"
                return "db", reason + (f"; {negative_hint}" if negative_hint else "")
            if negative > 0:
                raise UnknownKindError(
                    f"{where}a few values are negative ({100 * negative:.2g} %): dB data with "
                    "mostly positive values, or intensity/amplitude with a few negative pixels "
                    "(σ⁰ after thermal-noise removal; they become nodata)? pass kind='db' or "
                    "kind='intensity' / kind='amplitude' (CLI --kind db, --kind intensity, "
                    "--kind amplitude)")
    if dtype.kind in "iu":
        return "amplitude", (
            f"integer data type {dtype.name} (digital numbers such as Sentinel-1 GRD are amplitude)"
        )
    where = f"{os.fspath(path)}: " if path is not None else ""
    raise UnknownKindError(
        f"{where}cannot tell amplitude from intensity (float data, and no band description, tag "
        "or file name says which); pass kind='amplitude' or kind='intensity' (CLI --kind "
        "amplitude or --kind intensity)" + _db_hint(sample, nodata)
    )


def _db_hint(sample, nodata: float | None = None) -> str:
    """A hint that positive values in a narrow range may be dB (σ⁰ of 5 to 40 dB, say): a
    speckled amplitude or intensity spans a factor 20 or more between its 1st and 99th
    percentiles, and few scenes are uniform enough to stay under 10. Read as dB the values
    must also span a SAR scene's few dB at least (linear data scaled to [0, 1], or σ⁰
    amplitudes of 0.04 to 0.2, would span less than one)."""
    if sample is None:
        return ""
    values = np.asarray(sample)
    if values.dtype.kind != "f":
        return ""
    values = values[np.isfinite(values) & ~_nodata_mask(values, nodata)]
    if values.size == 0:
        return ""
    low, high = (float(v) for v in np.percentile(values, [1, 99]))
    if not (0 < low and high <= DB_HINT_CEILING and high < 10 * low
            and high - low >= DB_HINT_SPREAD):
        return ""
    return (f"; its values (1st-99th percentile {low:.3g} to {high:.3g}) would also fit dB: "
            "if they are, kind='db' (CLI --kind db)")


#: Largest 99th percentile for which positive float values are hinted to be dB.
DB_HINT_CEILING = 60.0
#: Smallest spread (dB) between their 1st and 99th percentiles for that hint.
DB_HINT_SPREAD = 3.0


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _nodata_mask(raw: np.ndarray, nodata: float | None) -> np.ndarray:
    """True where ``raw`` equals ``nodata`` (never for ``nodata`` None or NaN)."""
    if nodata is None or np.isnan(nodata):
        return np.zeros(raw.shape, dtype=bool)
    if raw.dtype.kind == "c":
        # GDAL's nodata is real; a complex pixel is nodata when it is nodata + 0j or has both
        # parts at nodata (tools disagree on which), never when one part merely equals it.
        real, imag = raw.real, raw.imag
        return (real == nodata) & ((imag == 0) | (imag == nodata))
    return raw == nodata


def to_intensity(
    raw: np.ndarray, kind: str, *, nodata: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Convert raw pixels of a given kind to intensity, with the mask of valid pixels.

    Parameters
    ----------
    raw : ndarray
        Pixels as read, any shape; real for ``intensity``/``amplitude``/``db``, complex for
        ``complex``.
    kind : str
        One of :data:`KINDS`.
    nodata : float, optional
        Value marking missing pixels.

    Returns
    -------
    intensity : ndarray of float32
        ``raw``, ``raw**2``, ``10**(raw/10)`` or ``|raw|**2``. Where not valid: 0 for a pixel
        of zero intensity (a sample, see :func:`sardespeckle.tiling.weak_zeros`), NaN for the
        nodata value, anything non-zero (NaN, inf) for non-finite input.
    valid : ndarray of bool
        False where the pixel is non-finite, equal to ``nodata``, of zero intensity, negative
        intensity or amplitude (callers refuse data mostly negative as dB:
        :func:`check_value_shares`), or of an intensity beyond float32.

    Raises
    ------
    InvalidInputError
        Complex data for a real kind or the other way round.

    Notes
    -----
    Computed in float64 then cast to float32; a dB value below about -450 underflows to zero
    intensity and is masked like a zero.
    """
    check_kind(kind)
    raw = np.asarray(raw)
    is_complex = raw.dtype.kind == "c"
    if kind == "complex" and not is_complex:
        raise InvalidInputError(
            f"expected complex data for kind 'complex', got {raw.dtype.name}; "
            "for real/imaginary parts pass complex_layout (CLI --complex-layout)"
        )
    if kind != "complex" and is_complex:
        raise InvalidInputError(
            f"expected real data for kind {kind!r}, got {raw.dtype.name}; leave kind out or "
            "pass kind='complex' (CLI --kind complex)"
        )
    if raw.dtype.kind not in "iufc":
        raise InvalidInputError(f"expected numeric data, got {raw.dtype.name}")

    missing = _nodata_mask(raw, nodata)
    valid = np.isfinite(raw) & ~missing
    if raw.dtype == np.float32 and kind in ("intensity", "amplitude"):
        return _float32_to_intensity(raw, kind, valid, missing)
    with np.errstate(all="ignore"):
        if kind == "complex":
            z = raw.astype(np.complex128, copy=False)
            intensity64 = z.real * z.real + z.imag * z.imag
        else:
            values = raw.astype(np.float64, copy=False)
            if kind != "db":
                valid &= ~(values < 0)
            if kind == "intensity":
                intensity64 = values
            elif kind == "amplitude":
                intensity64 = values * values
            else:
                intensity64 = np.power(10.0, values / 10.0)
    # beyond float32 is nodata, like the infinite intensities of larger values
    valid &= np.isfinite(intensity64) & (intensity64 <= _FLOAT32_MAX)
    with np.errstate(all="ignore"):
        intensity = intensity64.astype(np.float32)
    valid &= intensity > 0
    if missing.any():  # never 0: a zero would read as a zero-intensity sample
        intensity[missing] = np.nan
    return intensity, valid


def _float32_to_intensity(raw: np.ndarray, kind: str, valid: np.ndarray, missing: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`to_intensity` of float32 intensity or amplitude without the float64 detour (the
    common GeoTIFF case; half the memory traffic). Bit-identical: the float64 product of two
    float32 values is exact, so its rounding to float32 is the float32 product's."""
    valid &= ~(raw < 0)  # negative: nodata (see negative_share)
    with np.errstate(all="ignore"):
        intensity = raw * raw if kind == "amplitude" else raw.copy()
    valid &= ~np.isinf(intensity)  # beyond float32 once squared: nodata
    valid &= intensity > 0
    if missing.any():  # never 0: a zero would read as a zero-intensity sample
        intensity[missing] = np.nan
    return intensity, valid


#: Share of negative values above which intensity or amplitude data are refused as dB.
DB_LIKE_SHARE = 0.5


def negative_share(raw: np.ndarray, kind: str, *, nodata: float | None = None) -> float:
    """Share of the negative values among the finite, non-nodata ones of ``raw`` for an
    intensity or amplitude ``kind`` (0 for the other kinds, and for no such value).

    A few negative values are real in intensity data (calibrated σ⁰ after thermal-noise
    removal): :func:`to_intensity` masks them as nodata. Most values negative means dB:
    :func:`check_value_shares` refuses that."""
    if kind not in ("intensity", "amplitude"):
        return 0.0
    values = np.asarray(raw)
    if values.dtype.kind not in "iuf":
        return 0.0
    keep = np.isfinite(values) & ~_nodata_mask(values, nodata)
    count = int(np.count_nonzero(keep))
    return float(np.count_nonzero(values[keep] < 0)) / count if count else 0.0


def overflow_share(raw: np.ndarray, kind: str, *, nodata: float | None = None) -> float:
    """Share of the finite, non-nodata values of ``raw`` whose intensity is beyond float32
    (nodata for :func:`to_intensity`): a few are outliers, many mean a wrong kind or scale."""
    values = np.asarray(raw)
    if values.dtype.kind not in "iufc":
        return 0.0
    keep = np.isfinite(values) & ~_nodata_mask(values, nodata)
    count = int(np.count_nonzero(keep))
    if not count:
        return 0.0
    kept = values[keep].astype(np.complex128 if values.dtype.kind == "c" else np.float64)
    with np.errstate(all="ignore"):
        if kind == "db":
            intensity = np.power(10.0, kept / 10.0)
        elif kind == "complex":
            intensity = kept.real * kept.real + kept.imag * kept.imag
        elif kind == "amplitude":
            intensity = kept * kept
        else:
            intensity = kept
    return float(np.count_nonzero(~(intensity <= _FLOAT32_MAX))) / count


#: Values needed to call complex data phase-less (an SLC's imaginary part is exactly 0 by
#: chance only at a few pixels, even for small integer (CInt16) values).
PHASE_SAMPLE = 64


def phase_problem(raw: np.ndarray, kind: str, *, nodata: float | None = None) -> str | None:
    """What is wrong with complex ``raw`` whose values all lie on one line through 0 (one phase,
    modulo 180°, at every finite, non-nodata, non-zero pixel: an imaginary part of zero, a real
    part of zero, or an amplitude times one complex factor): an amplitude or intensity stored
    as complex, without its phase, not a single-look complex image. None when the phases vary,
    for other kinds, and with fewer than :data:`PHASE_SAMPLE` usable values. Arrays of more
    than 2²⁰ values are judged on an evenly strided sample of them.

    Despeckled as SLC, such an image is mistreated: its "spectrum" is that of an amplitude
    image, and whitening it (``decorrelate="auto"`` on complex input) adds texture."""
    values = np.asarray(raw)
    if kind != "complex" or values.dtype.kind != "c":
        return None
    values = values.ravel()
    if values.size > 1 << 20:
        values = values[:: -(-values.size // (1 << 20))]
    keep = np.isfinite(values) & ~_nodata_mask(values, nodata) & (values != 0)
    count = int(np.count_nonzero(keep))
    if count < PHASE_SAMPLE:
        return None
    kept = values[keep].astype(np.complex128)
    # e^{2iφ} is the same for every value on one line through 0 (φ and φ + 180°)
    alignment = abs(np.mean(kept * kept / (kept.real ** 2 + kept.imag ** 2)))
    if alignment < 1 - 1e-6:
        return None
    return (f"expected single-look complex values, got one phase (modulo 180°) at every one of "
            f"the {count} non-zero values read: an amplitude or intensity stored as complex "
            "(as the real or the imaginary part, or times one complex factor), without its "
            "phase, not an SLC")


#: Share of intensities beyond float32 above which the data are refused (wrong kind or scale).
OVERFLOW_SHARE = 0.01


def check_value_shares(negative: float, overflow: float, kind: str) -> None:
    """Refuse data whose values do not fit their kind: intensity or amplitude more than
    :data:`DB_LIKE_SHARE` negative (dB data), or more than :data:`OVERFLOW_SHARE` of the
    intensities beyond float32 (shares from :func:`negative_share`, :func:`overflow_share`)."""
    if negative > DB_LIKE_SHARE:
        raise InvalidInputError(
            f"expected non-negative {kind} values, got {negative:.0%} negative: this looks like "
            "dB data: pass kind='db' (CLI --kind db)"
        )
    if overflow > OVERFLOW_SHARE:
        raise InvalidInputError(
            f"expected intensities within float32 (at most {_FLOAT32_MAX:.4g}), got "
            f"{overflow:.0%} of the pixels beyond it from {kind} data; check the kind "
            "(CLI --kind) or rescale the input"
        )


def _percent(share: float) -> str:
    return f"{100 * share:.2g} %" if share >= 0.001 else "less than 0.1 %"


def value_notes(negative: float, overflow: float, *, fate: str = "they are nodata in the output"
                ) -> list[str]:
    """The notes of a run on data with these shares of negative values and of intensities
    beyond float32 (both masked as nodata); ``fate`` says what becomes of them."""
    notes = []
    if negative:
        notes.append(f"{_percent(negative)} of the pixels are negative (as in σ⁰ after "
                     f"thermal-noise removal): {fate}; dB data need kind='db' (CLI --kind db)")
    if overflow:
        notes.append(f"{_percent(overflow)} of the pixels are beyond float32 once converted to "
                     f"intensity: {fate}")
    return notes


def from_intensity(
    intensity: np.ndarray,
    valid: np.ndarray,
    kind_out: str,
    *,
    nodata_out: float = float("nan"),
    dtype: np.dtype | str = np.float32,
) -> np.ndarray:
    """Convert intensity to an output kind, writing ``nodata_out`` where not ``valid``.

    Parameters
    ----------
    intensity : ndarray
        Finite, strictly positive where ``valid``; anything elsewhere.
    valid : ndarray of bool
        Same shape as ``intensity``.
    kind_out : str
        ``"intensity"``, ``"amplitude"`` (``sqrt(I)``) or ``"db"`` (``10 log10(I)``). A complex
        output is not possible: despeckling estimates the reflectivity, not the phase.
    nodata_out : float
        Value for the masked pixels (NaN by default).
    dtype : numpy dtype
        ``float32`` (default) or ``float64``.

    Returns
    -------
    ndarray of ``dtype``
        A valid pixel whose value would equal ``nodata_out`` is moved by one unit in the last
        place, so that it is never read back as missing.
    """
    check_kind(kind_out, allowed=OUTPUT_KINDS, what="output kind")
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise UsageError(f"expected an output dtype float32 or float64, got {dtype.name}")
    intensity = np.asarray(intensity)
    valid = np.asarray(valid, dtype=bool)
    if intensity.shape != valid.shape:
        raise InvalidInputError(
            f"expected intensity and valid of the same shape, got {intensity.shape} and "
            f"{valid.shape}"
        )
    # float32 in, float32 amplitude or intensity out: no float64 detour (bit-identical: a
    # float32 square root rounded through float64 is the correctly rounded float32 one).
    native = intensity.dtype == np.float32 and dtype == np.float32 and kind_out != "db"
    values = intensity if native else intensity.astype(np.float64)
    with np.errstate(invalid="ignore"):
        bad = valid & ~(np.isfinite(values) & (values > 0))
    if np.any(bad):
        raise InvalidInputError(
            f"expected finite, strictly positive intensity at valid pixels, got {int(bad.sum())} "
            "pixel(s) that are not"
        )
    safe = np.where(valid, values, values.dtype.type(1))
    if kind_out == "amplitude":
        converted = np.sqrt(safe)
    elif kind_out == "db":
        converted = 10.0 * np.log10(safe)
    else:
        converted = safe
    out = converted.astype(dtype, copy=False)
    if not np.isnan(nodata_out):
        clash = valid & (out == dtype.type(nodata_out))
        if np.any(clash):
            out[clash] = np.nextafter(out[clash], dtype.type(np.inf))
    out[~valid] = nodata_out
    return out
