"""Plug-and-play ADMM and its MuLoG preset for single-channel intensity images.

:func:`pnp_admm` is the generic loop (a data-fidelity term with a ``prox`` and a Gaussian
denoiser); :func:`mulog_iterates` / :func:`mulog` prepare a log-intensity image for it and map the
result back. The multi-channel preset is :func:`sardespeckle.mulog.mulog_covariance`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np
from scipy import special

from sardespeckle.errors import InvalidInputError, UsageError
from sardespeckle.mulog.denoisers import check_callback, check_denoiser, checked_output
from sardespeckle.mulog.prox import FisherTippett

__all__ = ["MulogIterate", "pnp_admm", "mulog", "mulog_iterates", "default_beta0"]

#: ADMM weight λ of the prior (MuLoG uses 1).
LAMBDA = 1.0
#: β grows by this factor when the iterates stop converging fast enough ...
BETA_GROWTH = 1.05
#: ... i.e. when the change did not drop below this share of the previous change.
STALL_RATIO = 0.95


@dataclass(frozen=True)
class MulogIterate:
    """One ADMM iterate.

    Attributes
    ----------
    k : int
        Iteration number, ``1 .. iterations``.
    iterations : int
        Total number of iterations ``T``.
    x : ndarray
        Data-consistent estimate after the prox of iteration ``k``. For :func:`mulog_iterates`
        a log-intensity image ``(rows, cols)``; for ``mulog_covariance_iterates`` the matrix
        logarithms ``(rows, cols, D, D)``; for :func:`pnp_admm` the normalised variable.
    z : ndarray
        Denoised estimate (same domain); at ``k = T`` the one of iteration ``T − 1``.
    beta : float
        ADMM penalty used in iteration ``k``.
    change : float
        RMS change of ``x`` plus those of ``z`` and of the dual variable during iteration ``k``
        (of ``x`` only at ``k = T``, where ``z`` is not updated), in normalised units.
    """

    k: int
    iterations: int
    x: np.ndarray
    z: np.ndarray
    beta: float
    change: float

    @property
    def intensity(self) -> np.ndarray:
        """``exp(x)``: the current intensity estimate (single-channel iterates only)."""
        if self.x.ndim != 2:
            raise InvalidInputError(
                f"expected a single-channel iterate of shape (rows, cols), got {self.x.shape}; "
                "use sardespeckle.mulog.matrix_exp for covariance iterates"
            )
        return np.exp(self.x)


def default_beta0(looks: float) -> float:
    """MuLoG's initial ADMM penalty ``β₀ = 1 + 2/L``."""
    return 1.0 + 2.0 / float(looks)


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values)))) if values.size else 0.0


def pnp_admm(
    y: np.ndarray,
    fidelity,
    denoise: Callable[[np.ndarray, float], np.ndarray],
    *,
    iterations: int,
    beta0: float,
    lam: float = LAMBDA,
) -> Iterator[MulogIterate]:
    """Plug-and-play ADMM on ``min_x F(x) + λ R(x)`` with ``R`` implicit in a Gaussian denoiser.

    Parameters
    ----------
    y : ndarray
        Initial point, in the normalised domain where the noise has unit variance.
    fidelity : object
        Data term with ``prox(v, gamma, x0=...) = argmin_x ½‖x − v‖² + gamma·F(x)`` (e.g.
        :class:`~sardespeckle.mulog.prox.FisherTippett`).
    denoise : callable
        ``denoise(v, sigma)`` on arrays of ``y``'s shape.
    iterations : int
        Number of iterations ``T`` (of data-prox steps).
    beta0 : float
        Initial penalty ``β₀``.
    lam : float
        Prior weight ``λ``.

    Yields
    ------
    MulogIterate
        One per iteration, in the normalised domain.

    Notes
    -----
    Scaled-form ADMM for ``x = z`` started from ``x₀ = y`` with a zero dual, written with
    ``e = −u`` as in MuLoG::

        z = f(y, 1);  e = z − y
        for k = 1..T:
            x = prox_{F/β}(z + e)
            if k = T: stop
            z = f(x − e, √(λ/β));  e = e + z − x
            if change_k ≥ 0.95 · change_{k−1}: β ← 1.05 β

    The first denoising uses the noise level of ``y`` itself (1). The denoising step is the
    proximal operator of ``λR/β``, i.e. a MAP denoiser at noise variance ``λ/β``. Growing ``β``
    when the iterates stall forces convergence of the plug-and-play scheme (Chan, Wang, Elgendy
    2017). ``change`` is ``rms(Δx) + rms(Δz) + rms(Δe)``.
    """
    if isinstance(iterations, bool) or not isinstance(iterations, numbers.Integral) or iterations < 1:
        raise UsageError(f"expected iterations to be an integer >= 1, got {iterations!r}")
    if isinstance(beta0, bool) or not (isinstance(beta0, numbers.Real) and math.isfinite(beta0)
                                       and beta0 > 0):
        raise UsageError(f"expected beta0 to be a finite number > 0, got {beta0!r}")
    _check_weight(lam)
    iterations = int(iterations)
    beta = float(beta0)
    z = denoise(y, 1.0)
    e = z - y
    x_prev = y
    previous_change = None
    for k in range(1, iterations + 1):
        x = fidelity.prox(z + e, 1.0 / beta, x0=x_prev)
        if k == iterations:
            yield MulogIterate(k, iterations, x, z, beta, _rms(x - x_prev))
            return
        z_new = denoise(x - e, math.sqrt(lam / beta))
        e_new = e + z_new - x
        change = _rms(x - x_prev) + _rms(z_new - z) + _rms(e_new - e)
        used = beta
        if previous_change is not None and change >= STALL_RATIO * previous_change:
            beta *= BETA_GROWTH
        previous_change = change
        z, e, x_prev = z_new, e_new, x
        yield MulogIterate(k, iterations, x, z, used, change)


# --- single-channel MuLoG -------------------------------------------------------------------


def _check_intensity(intensity) -> np.ndarray:
    if np.ma.isMaskedArray(intensity) and np.ma.getmaskarray(intensity).any():
        # np.asarray would hand over the hidden values (fills such as -9999 or 1e12) as data
        raise InvalidInputError(
            "expected a plain array, got a masked array with masked pixels: mulog has no "
            "nodata; sardespeckle.despeckle(..., method='mulog') masks them (filled from their "
            "neighbours, NaN in the output), or fill them yourself")
    array = np.asarray(intensity)
    if array.ndim != 2:
        raise InvalidInputError(f"expected intensity of shape (rows, cols), got shape {array.shape}")
    if np.iscomplexobj(array) or not (
        np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    ) or array.dtype == np.bool_:
        raise InvalidInputError(
            f"expected a real intensity image, got dtype {array.dtype}; "
            "convert complex data with sardespeckle.speckle.complex_to_intensity"
        )
    if array.size == 0:
        raise InvalidInputError(f"expected a non-empty image, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise InvalidInputError(
            "expected finite intensities, got NaN or infinite values; mask or fill them first"
        )
    negative = int(np.count_nonzero(array < 0))
    if negative:
        raise InvalidInputError(
            f"expected non-negative intensities, got {negative} negative value(s) (minimum "
            f"{float(array.min()):g}); dB data are 10·log10 of intensity: convert with "
            "10 ** (db / 10) first"
        )
    return array


def safeguard_intensity(intensity: np.ndarray) -> np.ndarray:
    """Replace non-positive intensities by the smallest positive one (float64 copy)."""
    values = np.asarray(intensity, dtype=np.float64)
    positive = values > 0
    if not positive.any():
        raise InvalidInputError(
            "expected at least one strictly positive intensity, got none; "
            "is this log-intensity or dB?"
        )
    if positive.all():
        return values.copy()
    return np.where(positive, values, values[positive].min())


def _resolve(denoiser):
    if isinstance(denoiser, str):
        from sardespeckle.mulog.method import denoiser_from_name

        return denoiser_from_name(denoiser)
    return check_denoiser(denoiser)


def _is_weight(value) -> bool:
    """Whether ``value`` can be a prior weight: a finite real number > 0."""
    return (not isinstance(value, bool) and isinstance(value, numbers.Real)
            and math.isfinite(value) and value > 0)


def _check_weight(lam) -> float:
    """``lam`` as a float, or the UsageError of a bad prior weight."""
    if not _is_weight(lam):
        raise UsageError(f"expected lam (the prior weight) to be a finite number > 0, got {lam!r}")
    return float(lam)


def resolve_prior_weight(denoiser, looks: float, lam: float | None) -> float:
    """``lam`` checked, or, when None, the prior weight of ``denoiser`` at ``looks``: its
    ``prior_weight(looks)`` when it has one, else :data:`LAMBDA` (MuLoG's 1)."""
    if lam is not None:
        return _check_weight(lam)
    stated = getattr(denoiser, "prior_weight", None)
    if stated is None:
        return LAMBDA
    value = stated(looks)
    if not _is_weight(value):
        raise InvalidInputError(f"denoiser's prior_weight({looks!r}) returned {value!r}, "
                                "expected a finite number > 0")
    return float(value)


def _checked_denoiser(denoise, shape):
    # A copy: a callable that works in place would otherwise overwrite MuLoG's own iterates
    # (the first call gets the observation itself), silently changing the result.
    def run(v, sigma):
        return checked_output(denoise(v.copy(), sigma), shape)

    return run


def mulog_iterates(
    intensity,
    *,
    looks: float,
    denoiser,
    iterations: int = 6,
    beta0: float | None = None,
    lam: float | None = None,
) -> Iterator[MulogIterate]:
    """MuLoG on an intensity image, one ADMM iterate at a time.

    Same parameters as :func:`mulog`. Yields ``iterations`` :class:`MulogIterate` whose ``x``
    and ``z`` are log-intensity images; ``exp(x)`` of the last one is :func:`mulog`'s result.
    Nothing runs until the first iterate is asked for.
    """
    from sardespeckle.speckle import _check_looks

    array = _check_intensity(intensity)
    looks = _check_looks(looks)
    resolved = _resolve(denoiser)
    lam = resolve_prior_weight(resolved, looks, lam)
    denoise = _checked_denoiser(resolved, array.shape)
    beta0 = default_beta0(looks) if beta0 is None else beta0

    observed = safeguard_intensity(array)
    log_intensity = np.log(observed)
    # Debiased initialisation C₀ = C·L/e^{ψ(L)}: E[log S] = ψ(L) − log L is removed.
    initial = log_intensity + math.log(looks) - float(special.digamma(looks))
    sigma = math.sqrt(float(special.polygamma(1, looks)))  # std of log-speckle, ψ₁(L)
    # No data-dependent offset (e.g. the image mean): a tile would get another one than the
    # whole image, and a denoiser that is not exactly shift-equivariant would then treat them
    # differently everywhere (BM3D's block matching turns that into O(σ) changes).
    offset = 0.0
    fidelity = FisherTippett(log_intensity, looks, scale=sigma, offset=offset)
    start = (initial - offset) / sigma
    for item in pnp_admm(start, fidelity, denoise, iterations=iterations, beta0=beta0, lam=lam):
        yield replace(item, x=sigma * item.x + offset, z=sigma * item.z + offset)


def mulog(
    intensity,
    *,
    looks: float,
    denoiser,
    iterations: int = 6,
    beta0: float | None = None,
    lam: float | None = None,
    callback: Callable[[MulogIterate], None] | None = None,
) -> np.ndarray:
    """Despeckle an intensity image with MuLoG and a Gaussian denoiser.

    Parameters
    ----------
    intensity : array_like of real, shape ``(rows, cols)``
        Speckled intensity, finite and non-negative (negative values are refused: dB data must
        be converted first); zeros are replaced by the smallest positive value.
    looks : float, keyword-only
        Number of looks ``L > 0`` (need not be an integer).
    denoiser : callable or str, keyword-only
        A Gaussian denoiser ``f(v, sigma)`` (:mod:`sardespeckle.mulog.denoisers`) or a name
        accepted by :func:`sardespeckle.mulog.make_mulog_method` (``"bm3d"``...).
    iterations : int, keyword-only
        ADMM iterations ``T`` (6 in the paper); the denoiser runs ``T`` times.
    beta0 : float, optional, keyword-only
        Initial ADMM penalty; ``1 + 2/L`` by default.
    lam : float, optional, keyword-only
        Prior weight λ > 0: after the first iteration the denoiser is asked to remove noise of
        std ``√(λ/β)`` (normalised units). By default the denoiser's own
        ``prior_weight(looks)`` when it has one (the fixed-σ DnCNNs:
        :func:`~sardespeckle.mulog.denoisers.fixed_sigma_prior_weight`), else 1 (MuLoG's
        value, used with BM3D).
    callback : callable, optional, keyword-only
        Called with each :class:`MulogIterate` (e.g. to report progress, ``k`` of
        ``iterations``).

    Returns
    -------
    numpy.ndarray
        Despeckled intensity, shape of the input, ``float32`` for ``float32`` input and
        ``float64`` otherwise, strictly positive.

    Raises
    ------
    InvalidInputError
        If the image is not 2-D, real, finite and non-negative, has no positive value, or
        ``looks`` is not a number > 0, or the denoiser returns an array of another shape.
    UsageError
        If ``iterations`` or ``beta0`` are out of range, the denoiser is not callable as
        ``f(v, sigma)``, or ``callback`` is not callable.

    Notes
    -----
    Steps (Deledalle et al. 2017):

    1. Safeguard: zero intensities → the smallest positive one.
    2. ``y = log I``; debiased start ``y₀ = y + log L − ψ(L)`` (``E[log S] = ψ(L) − log L``).
    3. Normalise to unit noise: ``ỹ = y₀/σ`` with ``σ = √ψ₁(L)`` (the std of log-speckle,
       1.2825 for ``L = 1``). Unlike the PCA of the multi-channel case, no mean is removed:
       the result must not depend on statistics of the tile being processed.
    4. :func:`pnp_admm` with ``T`` iterations, ``β₀ = 1 + 2/L``, ``λ`` (see ``lam``), and the
       Fisher–Tippett data term of :class:`~sardespeckle.mulog.prox.FisherTippett` on the
       *non-debiased* ``y``: the likelihood models the bias itself.
    5. Output ``exp(σx̃)`` of the last prox: no further debiasing (the data term keeps the
       estimate consistent with the mean of the intensities).

    The output at a pixel depends on a neighbourhood that grows with every denoising step,
    and BM3D's block matching is discontinuous, so tiled and whole-image results are not
    bit-identical; see ``docs/mulog.md`` for the halo and the measured differences.

    References
    ----------
    C.-A. Deledalle, L. Denis, S. Tabti, F. Tupin, "MuLoG, or how to apply Gaussian denoisers
    to multi-channel SAR speckle reduction?", IEEE TIP 26(9), 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from sardespeckle.speckle import add_speckle
    >>> from sardespeckle.mulog import gaussian_filter_denoiser
    >>> clean = np.full((64, 64), 10.0)
    >>> noisy = add_speckle(clean, 1, seed=0)
    >>> out = mulog(noisy, looks=1, denoiser=gaussian_filter_denoiser(width=3))
    >>> bool(np.std(out / clean) < 0.3 * np.std(noisy / clean))
    True
    """
    check_callback(callback)
    array = np.asarray(intensity)
    last = None
    for item in mulog_iterates(intensity, looks=looks, denoiser=denoiser, iterations=iterations,
                               beta0=beta0, lam=lam):
        last = item
        if callback is not None:
            callback(item)
    # float32 in, float32 out (whatever its byte order: '>f4' too)
    single = array.dtype.kind == "f" and array.dtype.itemsize == 4
    with np.errstate(over="ignore"):
        out = np.exp(last.x).astype(np.float32 if single else np.float64)
    if not np.all(np.isfinite(out)):
        raise InvalidInputError(
            f"mulog's estimate overflows {out.dtype} at {int(np.count_nonzero(~np.isfinite(out)))} "
            f"pixel(s) (log-intensity up to {float(np.max(last.x)):.4g}): the denoiser returned "
            "values far outside its input's range; check that it returns a denoised version of "
            "the log-image it is given")
    return out
