"""Strong scatterers keep their input value: a wrapper around any despeckling method.

Despeckling networks trained on references without bright point targets dim them (the shipped
SAR-CNN keeps about a fifth of a stable target's energy); :class:`KeepTargets` restores the input
where a pixel is brighter than speckle allows over its despeckled surroundings. The method
registry applies it to any method given ``keep_targets`` (:func:`sardespeckle.methods.build_method`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .errors import UsageError

#: Parameter every method accepts: keep strong scatterers (see :class:`KeepTargets`).
KEEP_TARGETS = "keep_targets"


def false_alarm_rate(value) -> float | None:
    """``keep_targets`` as a false-alarm rate, or None (off)."""
    if value is None or (isinstance(value, str) and value.lower() in ("none", "off")):
        return None
    try:
        rate = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        rate = math.nan
    if not 0 <= rate <= 0.01:
        raise UsageError(f"expected keep_targets as a false-alarm rate in (0, 0.01] (e.g. 1e-5), "
                         f"or 0 for off, got {value!r}")
    return rate or None


class KeepTargets:
    """A method whose output keeps the input where a strong scatterer stands out of its
    surroundings: despeckling networks trained on scenes without such targets dim them.

    A pixel keeps its input intensity ``I`` where ``I > t · B`` and ``I > 2 · Î``: ``Î`` is the
    method's output, ``B`` the median of ``Î`` over the ``(2r + 1)²`` window around the pixel
    (the surroundings, r = :attr:`radius`), ``t`` the ``1 − false_alarm`` quantile of ``L``-look
    speckle (``Gamma(L, 1/L)``; ``−ln α`` for ``L = 1``). Under fully developed speckle over a
    homogeneous area ``B`` is the reflectivity, so about ``false_alarm`` of the pixels pass by
    chance; a point target tens of times brighter than its surroundings passes whatever the
    method made of it. The second condition leaves alone what the method already kept. The
    halo grows by ``r`` (the median's window); tiled and whole-image results stay equal.
    """

    radius = 3

    def __init__(self, method: Callable, *, looks: float, false_alarm: float) -> None:
        from scipy.stats import gamma

        self.method = method
        self.threshold = float(gamma.isf(false_alarm, looks, scale=1.0 / looks))
        for name in ("batch", "batch_with_context"):
            inner = getattr(method, name, None)
            if callable(inner):
                setattr(self, name, self._batched(inner))

    def __repr__(self) -> str:
        return f"KeepTargets({self.method!r}, threshold={self.threshold:.3g})"

    def __call__(self, intensity):
        return self.keep(intensity, self.method(intensity))

    def _batched(self, inner):
        def run(tiles):
            return [self.keep(tile, out) for tile, out in zip(tiles, inner(tiles))]
        return run

    def keep(self, intensity, out):
        """``out`` with the input restored at the strong scatterers of ``intensity``."""
        intensity, out = np.asarray(intensity), np.asarray(out)
        target = strong_scatterers(intensity, out, self.threshold, self.radius)
        return np.where(target, intensity, out).astype(out.dtype)


def strong_scatterers(intensity: np.ndarray, out: np.ndarray, threshold: float,
                      radius: int) -> np.ndarray:
    """The test of :class:`KeepTargets`: ``I > t · median(Î)`` over the ``(2r + 1)²`` window
    and ``I > 2 · Î``, as a boolean mask."""
    from scipy.ndimage import median_filter

    surroundings = median_filter(out, size=2 * radius + 1, mode="mirror")
    return (intensity > threshold * surroundings) & (intensity > 2 * out)


def keep_covariance_targets(field, out, *, looks: float, false_alarm: float,
                            radius: int = KeepTargets.radius) -> tuple[np.ndarray, np.ndarray]:
    """:class:`KeepTargets` for covariance fields: ``out`` with the input matrix restored at
    the strong scatterers, and the mask of those pixels.

    Parameters
    ----------
    field, out : ndarray, shape ``(rows, cols, D, D)``
        The input covariance field (finite: nodata filled) and the despeckled one.
    looks : float
        Looks of ``field``.
    false_alarm : float
        Rate of pixels kept by chance over a homogeneous area, all channels together.
    radius : int
        Half-side of the median window of the surroundings.

    Notes
    -----
    Each diagonal channel ``C_ii`` is tested as one image is by :class:`KeepTargets`, at the
    rate ``false_alarm / D`` (so that about ``false_alarm`` of the pixels pass by chance in
    all): ``C_ii > t · median(Ĉ_ii)`` over the ``(2r + 1)²`` window and ``C_ii > 2 · Ĉ_ii``.
    A pixel where any channel passes keeps its whole input matrix (coherences and phases
    included), conditioned like MuLoG's data (``λ_min/λ_max ≥ 10⁻⁴``) so that the output stays
    positive definite: a single-look matrix has rank one.
    """
    from scipy.stats import gamma

    from .mulog.hermitian import condition_field
    from .mulog.matrix import MIN_INVERSE_CONDITION

    field, out = np.asarray(field), np.asarray(out)
    size = field.shape[-1]
    threshold = float(gamma.isf(false_alarm / size, looks, scale=1.0 / looks))
    mask = np.zeros(field.shape[:2], bool)
    for k in range(size):
        mask |= strong_scatterers(field[..., k, k].real, out[..., k, k].real, threshold,
                                  radius)
    if not mask.any():
        return out, mask
    result = out.copy()
    kept = condition_field(field[mask].astype(np.complex128),
                           min_inverse_condition=MIN_INVERSE_CONDITION)
    result[mask] = kept.astype(out.dtype)
    return result, mask
