"""Speckle statistics: seeded simulation, log-domain moments, conversions, ENL, looks estimate.

Everything here follows the multiplicative model of fully developed speckle: an observed
intensity is ``I = R · S`` with ``R`` the reflectivity and ``S ~ Gamma(looks, 1 / looks)``.
Arrays are numpy arrays; 2-D images are ``(rows, cols)``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from scipy import optimize, special

from sardespeckle.errors import InvalidInputError

__all__ = [
    "KINDS",
    "simulate_speckle",
    "add_speckle",
    "log_speckle_mean",
    "log_speckle_var",
    "log_speckle_std",
    "looks_from_log_speckle_var",
    "complex_to_intensity",
    "intensity_to_amplitude",
    "amplitude_to_intensity",
    "intensity_to_db",
    "db_to_intensity",
    "amplitude_to_db",
    "db_to_amplitude",
    "enl",
    "coefficient_of_variation",
    "estimate_looks",
    "speckle_lag_correlation",
]

#: The radiometric kinds a real-valued SAR image can be given in.
KINDS = ("intensity", "amplitude")


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def _check_looks(looks) -> float:
    if isinstance(looks, bool) or not isinstance(looks, numbers.Real):
        raise InvalidInputError(
            f"expected looks to be a real number > 0, got {looks!r} ({type(looks).__name__})"
        )
    value = float(looks)
    if not math.isfinite(value) or value <= 0:
        raise InvalidInputError(
            f"expected looks to be a finite number > 0, got {value!r}; "
            "use 1 for single-look complex data"
        )
    return value


def _check_kind(kind) -> str:
    if kind not in KINDS:
        raise InvalidInputError(f"expected kind to be one of {KINDS}, got {kind!r}")
    return kind


def _make_rng(seed, rng) -> np.random.Generator:
    if rng is not None:
        if seed is not None:
            raise InvalidInputError(
                f"expected either seed or rng, got both (seed={seed!r}); pass only one"
            )
        if not isinstance(rng, np.random.Generator):
            raise InvalidInputError(
                f"expected rng to be a numpy.random.Generator, got {type(rng).__name__}; "
                "build one with numpy.random.default_rng(seed)"
            )
        return rng
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                             or seed < 0):
        raise InvalidInputError(f"expected seed to be an integer >= 0 or None, got {seed!r}")
    return np.random.default_rng(seed)


def _check_shape(shape) -> tuple[int, ...]:
    items = (shape,) if isinstance(shape, numbers.Integral) else shape
    try:
        items = tuple(items)
    except TypeError:
        raise InvalidInputError(
            f"expected shape to be an int or a tuple of ints, got {shape!r}"
        ) from None
    for item in items:
        if isinstance(item, bool) or not isinstance(item, numbers.Integral) or item < 0:
            raise InvalidInputError(
                f"expected shape to hold non-negative integers, got {shape!r}"
            )
    return tuple(int(item) for item in items)


def refuse_masked(values, name: str) -> None:
    """InvalidInputError for a ``numpy.ma`` array with masked pixels: ``np.asarray`` would hand
    over the values hidden under its mask (fills such as -9999) as data."""
    if np.ma.isMaskedArray(values) and np.ma.getmaskarray(values).any():
        raise InvalidInputError(
            f"expected {name} as a plain array, got a masked array with masked pixels: their "
            "hidden values would be used as data; pass the valid pixels with the function's "
            "mask/valid argument where it has one, or select them (a[~np.ma.getmaskarray(a)])")


def _as_real_array(values, name: str) -> np.ndarray:
    refuse_masked(values, name)
    array = np.asarray(values)
    if np.issubdtype(array.dtype, np.complexfloating):
        raise InvalidInputError(
            f"expected {name} to be a real array, got dtype {array.dtype}; "
            "convert complex data with complex_to_intensity first"
        )
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise InvalidInputError(
            f"expected {name} to be a real numeric array, got dtype {array.dtype}"
        )
    return array


def _float_dtype(array: np.ndarray) -> type:
    # float32 is the working precision of the engine: keep it. Everything else widens.
    return np.float32 if array.dtype == np.float32 else np.float64


def _as_float_array(values, name: str) -> np.ndarray:
    array = _as_real_array(values, name)
    return array.astype(_float_dtype(array), copy=False)


def _check_image(values, name: str) -> np.ndarray:
    array = _as_real_array(values, name)
    if array.ndim != 2:
        raise InvalidInputError(f"expected {name} of shape (rows, cols), got shape {array.shape}")
    return array


def _check_mask(mask, shape: tuple[int, ...], name: str) -> np.ndarray:
    array = np.asarray(mask)
    if array.dtype != np.bool_:
        raise InvalidInputError(f"expected {name} to be a boolean array, got dtype {array.dtype}")
    if array.shape != shape:
        raise InvalidInputError(
            f"expected {name} of the image's shape {shape}, got shape {array.shape}"
        )
    return array


def _usable_pixels(intensity: np.ndarray, valid) -> np.ndarray:
    """Pixels that are valid, finite and strictly positive; negative intensities are an error."""
    usable = np.isfinite(intensity)
    if valid is not None:
        usable &= _check_mask(valid, intensity.shape, "valid")
    if np.any(intensity[usable] < 0):
        raise InvalidInputError(
            "expected non-negative intensities, got negative values; "
            "is this log-intensity, dB, or a nodata value that should be masked by valid?"
        )
    usable &= intensity > 0
    return usable


def _check_positive_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise InvalidInputError(f"expected {name} to be an integer >= {minimum}, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------------------------
# simulation
# --------------------------------------------------------------------------------------------


def simulate_speckle(
    shape, looks: float, *, kind: str = "intensity", seed: int | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Draw fully developed multiplicative speckle of unit mean intensity.

    Parameters
    ----------
    shape : int or tuple of int
        Shape of the array to draw, e.g. ``(rows, cols)``.
    looks : float
        Number of looks ``L > 0``; need not be an integer.
    kind : {"intensity", "amplitude"}, keyword-only
        Draw intensity speckle ``S`` or amplitude speckle ``√S``.
    seed : int, optional, keyword-only
        Seed of a fresh ``numpy.random.default_rng``; the same seed gives the same draw.
    rng : numpy.random.Generator, optional, keyword-only
        Generator to draw from instead of ``seed`` (not both).

    Returns
    -------
    numpy.ndarray
        ``float64`` array of ``shape``.

    Raises
    ------
    InvalidInputError
        If ``looks`` is not a finite number > 0, ``kind`` is unknown, ``shape`` is not a shape,
        or both ``seed`` and ``rng`` are given.

    Notes
    -----
    Intensity speckle is drawn with a true Gamma sampler, so that non-integer looks (multilooked
    or GRD products) are not rounded:

    .. math:: S \\sim \\Gamma(L, 1/L), \\quad p(s) = \\frac{L^L s^{L-1} e^{-L s}}{\\Gamma(L)},
              \\quad E[S] = 1, \\quad \\mathrm{Var}[S] = 1/L.

    ``L = 1`` is the exponential law of single-look intensity. Amplitude speckle ``A = √S`` is
    Nakagami distributed (Rayleigh for ``L = 1``) with ``E[A²] = 1`` and
    ``E[A] = Γ(L + ½) / (Γ(L) √L)``.

    Examples
    --------
    >>> speckle = simulate_speckle((256, 256), 4, seed=0)
    >>> speckle.shape, speckle.dtype
    ((256, 256), dtype('float64'))
    >>> bool(abs(speckle.mean() - 1) < 0.01)
    True
    """
    size = _check_shape(shape)
    looks = _check_looks(looks)
    kind = _check_kind(kind)
    generator = _make_rng(seed, rng)
    speckle = generator.gamma(shape=looks, scale=1.0 / looks, size=size)
    if kind == "amplitude":
        np.sqrt(speckle, out=speckle)
    return speckle


def check_speckle_underflow(noisy: np.ndarray, valid: np.ndarray | None, looks: float,
                            what: str) -> None:
    """Refuse simulated speckle that underflowed to 0 at valid pixels of ``what`` (very few
    looks: the Gamma law puts too much weight near 0 for float32): a UsageError naming the
    count and the remedy."""
    from sardespeckle.errors import UsageError

    zero = noisy == 0 if valid is None else valid & (noisy == 0)
    underflow = int(np.count_nonzero(zero))
    if underflow:
        raise UsageError(
            f"expected simulated speckle of positive intensity, got {underflow} pixel(s) of "
            f"{what} at 0: {looks:g}-look speckle underflows float32 (its law puts too much "
            "weight near 0); use looks >= 0.5 (a SAR image has at least 1)"
        )


def add_speckle(
    clean, looks: float, *, kind: str = "intensity", seed: int | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Multiply a clean image by simulated speckle.

    Parameters
    ----------
    clean : array_like
        Noise-free reflectivity, finite and non-negative, given as an intensity or an amplitude
        according to ``kind``. Any shape.
    looks : float
        Number of looks ``L > 0``; need not be an integer.
    kind : {"intensity", "amplitude"}, keyword-only
        What ``clean`` holds; the speckle of the same kind is applied.
    seed : int, optional, keyword-only
        Seed of a fresh ``numpy.random.default_rng``.
    rng : numpy.random.Generator, optional, keyword-only
        Generator to draw from instead of ``seed`` (not both).

    Returns
    -------
    numpy.ndarray
        Speckled image of ``clean``'s shape: ``float32`` when ``clean`` is ``float32`` (the
        engine's working precision), ``float64`` for any other real dtype. The speckle is always
        drawn in ``float64``, so a seed gives the same field whatever the dtype.

    Raises
    ------
    InvalidInputError
        If ``clean`` is not a real array, holds non-finite or negative values, or if ``looks``,
        ``kind``, ``seed`` or ``rng`` are invalid.

    Notes
    -----
    Intensity: ``I = R · S``; amplitude: ``A = √R · √S``, with ``S ~ Gamma(L, 1/L)`` as in
    :func:`simulate_speckle`. Since ``E[S] = 1`` the speckled intensity is unbiased:
    ``E[I] = R``.

    Examples
    --------
    >>> import numpy as np
    >>> noisy = add_speckle(np.full((64, 64), 2.0, dtype=np.float32), 1, seed=3)
    >>> noisy.dtype
    dtype('float32')
    """
    array = _as_real_array(clean, "clean")
    if not np.all(np.isfinite(array)):
        raise InvalidInputError(
            "expected a finite clean image, got NaN or infinite values; fill masked pixels first"
        )
    if np.any(array < 0):
        raise InvalidInputError(
            f"expected a non-negative clean {kind if kind in KINDS else 'image'}, "
            f"got a minimum of {float(array.min()):g}"
        )
    speckle = simulate_speckle(array.shape, looks, kind=kind, seed=seed, rng=rng)
    return (array * speckle).astype(_float_dtype(array), copy=False)


# --------------------------------------------------------------------------------------------
# log-domain moments
# --------------------------------------------------------------------------------------------


def log_speckle_mean(looks: float, *, kind: str = "intensity") -> float:
    """Mean of log-speckle: the bias of averaging SAR data in the log domain.

    Parameters
    ----------
    looks : float
        Number of looks ``L > 0``.
    kind : {"intensity", "amplitude"}, keyword-only
        Log of intensity speckle ``S`` or of amplitude speckle ``√S``.

    Returns
    -------
    float
        ``E[log S]`` (intensity) or ``E[log √S]`` (amplitude), always negative.

    Notes
    -----
    ``log S`` follows a Fisher–Tippett law whose cumulants are polygamma functions:

    .. math:: E[\\log S] = \\psi(L) - \\ln L, \\qquad
              E[\\log \\sqrt{S}] = \\tfrac{1}{2}(\\psi(L) - \\ln L),

    with ``ψ`` the digamma function. For ``L = 1`` this is ``−γ = −0.5772`` (intensity) and
    ``−0.2886`` (amplitude). Subtracting it debiases a log-domain estimate.

    Examples
    --------
    >>> round(log_speckle_mean(1), 4), round(log_speckle_mean(1, kind="amplitude"), 4)
    (-0.5772, -0.2886)
    """
    looks = _check_looks(looks)
    scale = 1.0 if _check_kind(kind) == "intensity" else 0.5
    return scale * float(special.digamma(looks) - math.log(looks))


def log_speckle_var(looks: float, *, kind: str = "intensity") -> float:
    """Variance of log-speckle.

    Parameters
    ----------
    looks : float
        Number of looks ``L > 0``.
    kind : {"intensity", "amplitude"}, keyword-only
        Log of intensity speckle ``S`` or of amplitude speckle ``√S``.

    Returns
    -------
    float
        ``Var[log S]`` or ``Var[log √S]``.

    Notes
    -----
    .. math:: \\mathrm{Var}[\\log S] = \\psi_1(L), \\qquad
              \\mathrm{Var}[\\log \\sqrt{S}] = \\tfrac{1}{4}\\psi_1(L),

    with ``ψ₁`` the trigamma function; ``ψ₁(1) = π²/6 = 1.6449``. The variance does not depend
    on the reflectivity, which makes it a looks estimator (:func:`looks_from_log_speckle_var`).

    Examples
    --------
    >>> round(log_speckle_var(1), 4)
    1.6449
    """
    looks = _check_looks(looks)
    scale = 1.0 if _check_kind(kind) == "intensity" else 0.25
    return scale * float(special.polygamma(1, looks))


def log_speckle_std(looks: float, *, kind: str = "intensity") -> float:
    """Standard deviation of log-speckle, ``√ψ₁(L)`` (intensity) or ``½√ψ₁(L)`` (amplitude).

    Parameters
    ----------
    looks : float
        Number of looks ``L > 0``.
    kind : {"intensity", "amplitude"}, keyword-only
        Log of intensity speckle ``S`` or of amplitude speckle ``√S``.

    Returns
    -------
    float
        The square root of :func:`log_speckle_var`.

    Notes
    -----
    For ``L = 1``: ``π/√6 = 1.2825`` (intensity), ``0.6413`` (amplitude).

    Examples
    --------
    >>> round(log_speckle_std(1), 4), round(log_speckle_std(1, kind="amplitude"), 4)
    (1.2825, 0.6413)
    """
    return math.sqrt(log_speckle_var(looks, kind=kind))


def looks_from_log_speckle_var(log_var: float, *, kind: str = "intensity") -> float:
    """Number of looks whose log-speckle has the given variance (inverse of the trigamma).

    Parameters
    ----------
    log_var : float
        Variance of log-intensity (or of log-amplitude, with ``kind="amplitude"``) of pure
        speckle, ``>= 0``.
    kind : {"intensity", "amplitude"}, keyword-only
        Domain ``log_var`` was measured in.

    Returns
    -------
    float
        ``L`` with ``ψ₁(L) = log_var`` (``4 · log_var`` for amplitude); ``inf`` when
        ``log_var`` is 0.

    Raises
    ------
    InvalidInputError
        If ``log_var`` is negative or not finite.

    Notes
    -----
    ``ψ₁`` is strictly decreasing on ``(0, ∞)`` and bounded by
    ``1/L + 1/(2L²) < ψ₁(L) < 1/L + 1/L²``. Solving each bound for ``v = ψ₁(L)`` gives a
    bracket of the root,

    .. math:: \\frac{1 + \\sqrt{1 + 2v}}{2v} < L < \\frac{1 + \\sqrt{1 + 4v}}{2v},

    which Brent's method then refines.

    Examples
    --------
    >>> round(looks_from_log_speckle_var(log_speckle_var(2.5)), 6)
    2.5
    """
    if isinstance(log_var, bool) or not isinstance(log_var, numbers.Real):
        raise InvalidInputError(f"expected log_var to be a real number, got {log_var!r}")
    value = float(log_var)
    if not math.isfinite(value) or value < 0:
        raise InvalidInputError(f"expected log_var to be a finite number >= 0, got {value!r}")
    if _check_kind(kind) == "amplitude":
        value *= 4.0
    if value == 0.0:
        return math.inf
    low = (1.0 + math.sqrt(1.0 + 2.0 * value)) / (2.0 * value)
    high = (1.0 + math.sqrt(1.0 + 4.0 * value)) / (2.0 * value)
    # Rounding can put the root exactly on a bound: widen the bracket a hair.
    low, high = low * (1 - 1e-9), high * (1 + 1e-9)
    return float(
        optimize.brentq(
            lambda looks: special.polygamma(1, looks) - value, low, high, xtol=1e-14, rtol=1e-12
        )
    )


# --------------------------------------------------------------------------------------------
# conversions
# --------------------------------------------------------------------------------------------


def complex_to_intensity(z) -> np.ndarray:
    """Intensity ``|z|²`` of complex (SLC) data.

    Parameters
    ----------
    z : array_like of complex
        Complex pixels; ``complex64`` or ``complex128``.

    Returns
    -------
    numpy.ndarray
        ``float32`` for ``complex64`` input, ``float64`` otherwise, same shape as ``z``.

    Raises
    ------
    InvalidInputError
        If ``z`` is not of a complex dtype.

    Notes
    -----
    ``I = Re(z)² + Im(z)²``, computed without the square root of ``abs``.

    Examples
    --------
    >>> import numpy as np
    >>> complex_to_intensity(np.array([3 + 4j]))
    array([25.])
    """
    array = np.asarray(z)
    if not np.issubdtype(array.dtype, np.complexfloating):
        raise InvalidInputError(
            f"expected complex data (complex64 or complex128), got dtype {array.dtype}; "
            "real data is already an intensity or an amplitude"
        )
    out_dtype = np.float32 if array.dtype == np.complex64 else np.float64
    real, imag = array.real.astype(out_dtype), array.imag.astype(out_dtype)
    return real * real + imag * imag


def intensity_to_amplitude(intensity) -> np.ndarray:
    """Amplitude ``√I``.

    Parameters
    ----------
    intensity : array_like of real
        Intensities.

    Returns
    -------
    numpy.ndarray
        ``float32`` for ``float32`` input, ``float64`` otherwise.

    Notes
    -----
    Values are not checked, so nodata values pass through: NaN stays NaN and a negative
    intensity gives NaN, silently.

    Examples
    --------
    >>> intensity_to_amplitude([4.0, 9.0])
    array([2., 3.])
    """
    array = _as_float_array(intensity, "intensity")
    with np.errstate(invalid="ignore"):
        return np.sqrt(array)


def amplitude_to_intensity(amplitude) -> np.ndarray:
    """Intensity ``A²``.

    Parameters
    ----------
    amplitude : array_like of real
        Amplitudes.

    Returns
    -------
    numpy.ndarray
        ``float32`` for ``float32`` input, ``float64`` otherwise.

    Examples
    --------
    >>> amplitude_to_intensity([2.0, 3.0])
    array([4., 9.])
    """
    array = _as_float_array(amplitude, "amplitude")
    return array * array


def intensity_to_db(intensity) -> np.ndarray:
    """Decibels ``10 · log10(I)``.

    Parameters
    ----------
    intensity : array_like of real
        Intensities.

    Returns
    -------
    numpy.ndarray
        ``float32`` for ``float32`` input, ``float64`` otherwise.

    Notes
    -----
    Values are not checked: 0 gives ``-inf`` and a negative intensity gives NaN, silently.

    Examples
    --------
    >>> intensity_to_db([1.0, 100.0])
    array([ 0., 20.])
    """
    array = _as_float_array(intensity, "intensity")
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10.0 * np.log10(array)


def db_to_intensity(db) -> np.ndarray:
    """Intensity ``10^(dB / 10)``, the inverse of :func:`intensity_to_db`.

    Parameters
    ----------
    db : array_like of real
        Decibels.

    Returns
    -------
    numpy.ndarray
        ``float32`` for ``float32`` input, ``float64`` otherwise.

    Examples
    --------
    >>> db_to_intensity([0.0, 20.0])
    array([  1., 100.])
    """
    array = _as_float_array(db, "db")
    return np.power(array.dtype.type(10.0), array / 10.0)


def amplitude_to_db(amplitude) -> np.ndarray:
    """Decibels ``20 · log10(A)``: the same dB value as the matching intensity.

    Parameters
    ----------
    amplitude : array_like of real
        Amplitudes.

    Returns
    -------
    numpy.ndarray
        ``float32`` for ``float32`` input, ``float64`` otherwise.

    Notes
    -----
    Values are not checked: 0 gives ``-inf`` and a negative amplitude gives NaN, silently.

    Examples
    --------
    >>> amplitude_to_db([1.0, 10.0])
    array([ 0., 20.])
    """
    array = _as_float_array(amplitude, "amplitude")
    with np.errstate(divide="ignore", invalid="ignore"):
        return 20.0 * np.log10(array)


def db_to_amplitude(db) -> np.ndarray:
    """Amplitude ``10^(dB / 20)``, the inverse of :func:`amplitude_to_db`.

    Parameters
    ----------
    db : array_like of real
        Decibels.

    Returns
    -------
    numpy.ndarray
        ``float32`` for ``float32`` input, ``float64`` otherwise.

    Examples
    --------
    >>> db_to_amplitude([0.0, 20.0])
    array([ 1., 10.])
    """
    array = _as_float_array(db, "db")
    return np.power(array.dtype.type(10.0), array / 20.0)


# --------------------------------------------------------------------------------------------
# region statistics
# --------------------------------------------------------------------------------------------


def _region_mean_var(intensity, mask) -> tuple[float, float]:
    array = _as_real_array(intensity, "intensity")
    if mask is not None:
        array = array[_check_mask(mask, array.shape, "mask")]
    values = array.astype(np.float64, copy=False).ravel()
    if values.size < 2:
        raise InvalidInputError(
            f"expected at least 2 pixels in the region, got {values.size}; "
            "enlarge the region or the mask"
        )
    if not np.all(np.isfinite(values)):
        raise InvalidInputError(
            "expected finite intensities in the region, got NaN or infinite values; "
            "exclude them with mask"
        )
    if np.any(values < 0):
        raise InvalidInputError(
            f"expected non-negative intensities, got a minimum of {float(values.min()):g}"
        )
    mean = float(values.mean())
    if mean == 0:
        raise InvalidInputError("expected a region of positive mean intensity, got all zeros")
    return mean, float(values.var(ddof=1))


def enl(intensity, *, mask=None) -> float:
    """Equivalent number of looks of a homogeneous region: ``mean² / variance``.

    Parameters
    ----------
    intensity : array_like of real
        Non-negative intensities, any shape.
    mask : array_like of bool, optional, keyword-only
        The region to measure (``True`` = inside), of ``intensity``'s shape; the whole array
        when omitted. Pixels outside it may hold anything, including NaN.

    Returns
    -------
    float
        The ENL; ``inf`` for a constant region (no speckle left at all).

    Raises
    ------
    InvalidInputError
        If the region has fewer than 2 pixels, holds non-finite or negative values, or is all
        zeros.

    Notes
    -----
    .. math:: \\mathrm{ENL} = \\frac{\\bar I^2}{\\hat\\sigma_I^2},

    with the unbiased sample variance (``ddof=1``). On pure speckle ``I = R · S`` of a constant
    reflectivity it estimates ``L``, since ``E[S]² / Var[S] = L``; on a despeckled output it
    measures how much smoothing happened. It assumes the region is homogeneous: any texture or
    edge lowers it.

    Examples
    --------
    >>> speckle = simulate_speckle((512, 512), 4, seed=1)
    >>> bool(abs(enl(speckle) - 4) < 0.2)
    True
    """
    mean, var = _region_mean_var(intensity, mask)
    return math.inf if var == 0 else mean * mean / var


def coefficient_of_variation(intensity, *, mask=None) -> float:
    """Coefficient of variation ``std / mean`` of a region of an intensity image.

    Parameters
    ----------
    intensity : array_like of real
        Non-negative intensities, any shape.
    mask : array_like of bool, optional, keyword-only
        The region to measure (``True`` = inside); the whole array when omitted.

    Returns
    -------
    float
        ``σ̂ / Ī`` with the unbiased sample variance; ``1 / √ENL``.

    Raises
    ------
    InvalidInputError
        As :func:`enl`.

    Notes
    -----
    Pure intensity speckle of ``L`` looks has ``CV = 1 / √L``, whatever the reflectivity; a
    larger value flags texture or edges (the statistic behind the Lee and Frost filters).

    Examples
    --------
    >>> speckle = simulate_speckle((512, 512), 1, seed=2)
    >>> bool(abs(coefficient_of_variation(speckle) - 1) < 0.02)
    True
    """
    mean, var = _region_mean_var(intensity, mask)
    return math.sqrt(var) / mean


# What to do when the looks cannot be estimated. A run estimates them with the default
# window_size, which neither the CLI nor despeckle_file can change (the method's --window-size
# is another window): there, giving the looks is the remedy.
_GIVE_LOOKS = "pass looks explicitly (CLI --looks) instead of estimating them"


def estimate_looks(
    intensity, *, window_size: int = 7, fraction: float = 0.05, valid=None
) -> float:
    """Estimate the number of looks of an intensity image from its most homogeneous windows.

    Parameters
    ----------
    intensity : array_like of real
        Intensity image, shape ``(rows, cols)``.
    window_size : int, keyword-only
        Side of the square, non-overlapping windows tiling the image (at least 3).
    fraction : float, keyword-only
        Share of the windows, in ``(0, 1]``, kept as homogeneous (at least one window).
    valid : array_like of bool, optional, keyword-only
        Pixels to use (``True``), of the image's shape. Non-finite and zero intensities are
        left out in any case; a window is used only if all its pixels are usable.

    Returns
    -------
    float
        Estimated ``L``; ``inf`` if the selected windows are constant.

    Raises
    ------
    InvalidInputError
        If the image is not 2-D and real, holds negative values among the usable pixels, has no
        whole window of usable pixels, or if an option is out of range.

    Notes
    -----
    Each window's pixels are split by a checkerboard into two interleaved halves ``A``
    (``(i + j)`` even) and ``B`` (odd).

    1. *Selection* on ``A`` only: the windows are ranked by the coefficient of variation of
       their ``A`` intensities, and the ``fraction`` with the lowest one are kept. Windows on
       edges or texture have a high CV and are left out.
    2. *Estimation* on ``B`` only: the unbiased sample variance of ``log I`` over the ``B``
       pixels of each kept window, averaged over the windows, gives ``v̂``, and
       ``L̂ = ψ₁⁻¹(v̂)`` (:func:`looks_from_log_speckle_var`).

    Ranking windows by the very variance used to estimate ``L`` would keep the windows that
    look smooth by chance and bias ``L`` upward, badly for small windows. With white speckle
    the ``B`` pixels are independent of the ``A`` pixels, so given that a window is homogeneous,
    its ``B`` variance is unbiased whatever the selection did. In a homogeneous window
    ``log I = log R + log S`` has variance ``ψ₁(L)`` whatever ``R``, so windows of different
    reflectivity can be averaged, and the log domain's sample variance, unlike the ratio
    ``mean² / var``, is unbiased for few pixels. The only remaining bias is the small one of
    inverting the convex ``ψ₁`` at a noisy ``v̂`` (Jensen), which shrinks as
    ``1 / (number of kept pixels)``.

    The model is Gamma-distributed speckle (fully developed, white). On spatially correlated
    speckle (real SLC) the halves are no longer independent and the result is an effective
    number of looks: decorrelate the data first to estimate the nominal one.

    Examples
    --------
    >>> intensity = 5.0 * simulate_speckle((512, 512), 2.5, seed=4)
    >>> bool(abs(estimate_looks(intensity) - 2.5) < 0.25)
    True
    """
    array = _check_image(intensity, "intensity")
    window_size = _check_positive_int(window_size, "window_size", 3)
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, numbers.Real)
        or not 0 < float(fraction) <= 1
    ):
        raise InvalidInputError(f"expected fraction in (0, 1], got {fraction!r}")
    usable = _usable_pixels(array, valid)

    rows, cols = array.shape
    n_rows, n_cols = rows // window_size, cols // window_size
    if n_rows == 0 or n_cols == 0:
        raise InvalidInputError(
            "cannot estimate the number of looks on so small an image: expected at least "
            f"window_size × window_size = {window_size} × {window_size} pixels (the "
            f"estimator's windows), got shape {array.shape}; {_GIVE_LOOKS} (Python: or "
            "estimate with a smaller window_size)"
        )

    def windows(image: np.ndarray) -> np.ndarray:
        cropped = image[: n_rows * window_size, : n_cols * window_size]
        blocks = cropped.reshape(n_rows, window_size, n_cols, window_size).swapaxes(1, 2)
        return blocks.reshape(n_rows * n_cols, window_size * window_size)

    whole = windows(usable).all(axis=1)
    if not whole.any():
        raise InvalidInputError(
            f"cannot estimate the number of looks: expected at least one {window_size} × "
            f"{window_size} window of valid, finite, positive intensities, got none; "
            f"{_GIVE_LOOKS} (Python: or check the valid mask, or estimate with a smaller "
            "window_size)"
        )
    pixels = windows(array)[whole].astype(np.float64)

    checker = (np.add.outer(np.arange(window_size), np.arange(window_size)) % 2).ravel()
    select, estimate = pixels[:, checker == 0], pixels[:, checker == 1]

    cv = select.std(axis=1, ddof=1) / select.mean(axis=1)
    keep = max(1, math.ceil(float(fraction) * len(cv)))
    chosen = np.argpartition(cv, keep - 1)[:keep]
    log_var = float(np.log(estimate[chosen]).var(axis=1, ddof=1).mean())
    return looks_from_log_speckle_var(log_var)


def speckle_lag_correlation(intensity, *, lag: int = 1, valid=None) -> tuple[float, float]:
    """Correlation of log-intensity between pixels ``lag`` apart, along rows and along columns.

    Parameters
    ----------
    intensity : array_like of real
        Intensity image, shape ``(rows, cols)``; best a homogeneous area, or a ratio image
        (noisy / despeckled), so that scene structure does not add to the correlation.
    lag : int, keyword-only
        Distance in pixels, at least 1.
    valid : array_like of bool, optional, keyword-only
        Pixels to use (``True``). Non-finite and zero intensities are left out in any case.

    Returns
    -------
    row_corr : float
        Correlation between ``log I[r, c]`` and ``log I[r, c + lag]`` (horizontal neighbours,
        along a row).
    col_corr : float
        Correlation between ``log I[r, c]`` and ``log I[r + lag, c]`` (vertical neighbours,
        along a column).

    Raises
    ------
    InvalidInputError
        If the image is not 2-D and real, holds negative values, ``lag`` is not a positive
        integer, fewer than 3 usable pairs exist in a direction, or log-intensity is constant.

    Notes
    -----
    Pearson correlation over all pairs whose two pixels are usable,

    .. math:: \\rho = \\frac{\\sum (x - \\bar x)(y - \\bar y)}
                           {\\sqrt{\\sum (x - \\bar x)^2 \\sum (y - \\bar y)^2}},

    with ``x = log I[p]``, ``y = log I[p + lag]``. White speckle gives 0 up to
    ``≈ 1/√(number of pairs)``; Sentinel-1 SLC speckle gives 0.25–0.44 at lag 1, which a
    network trained on white speckle must not be fed.

    Examples
    --------
    >>> speckle = simulate_speckle((256, 256), 1, seed=5)
    >>> [bool(abs(rho) < 0.02) for rho in speckle_lag_correlation(speckle)]
    [True, True]
    """
    array = _check_image(intensity, "intensity")
    lag = _check_positive_int(lag, "lag", 1)
    usable = _usable_pixels(array, valid)
    log_intensity = np.zeros(array.shape, dtype=np.float64)
    log_intensity[usable] = np.log(array[usable].astype(np.float64))

    def correlation(first, second, ok, direction: str) -> float:
        x, y = first[ok], second[ok]
        if x.size < 3:
            raise InvalidInputError(
                f"expected at least 3 pairs of usable pixels {lag} apart {direction}, "
                f"got {x.size}; the image or its valid area is too small for lag={lag}"
            )
        x = x - x.mean()
        y = y - y.mean()
        denominator = math.sqrt(float(np.dot(x, x)) * float(np.dot(y, y)))
        if denominator == 0:
            raise InvalidInputError(
                f"expected log-intensity that varies {direction}, got a constant image"
            )
        return float(np.dot(x, y)) / denominator

    row_corr = correlation(
        log_intensity[:, :-lag], log_intensity[:, lag:],
        usable[:, :-lag] & usable[:, lag:], "along rows",
    )
    col_corr = correlation(
        log_intensity[:-lag, :], log_intensity[lag:, :],
        usable[:-lag, :] & usable[lag:, :], "along columns",
    )
    return row_corr, col_corr
