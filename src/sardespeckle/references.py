"""Speckle-free references from co-registered multitemporal stacks (temporal multilooking).

Averaging ``T`` co-registered dates of ``L``-look intensities divides the speckle variance by
``T``: the reference has an equivalent number of looks ``T · L``. Where the scene changed (crops,
water, construction) a plain average smears the dates together, so :func:`build_reference`
tests every date of every pixel against the stable estimate made of the other dates and averages
only the consistent ones.

Arrays are numpy arrays: a stack is ``(dates, rows, cols)``, an image ``(rows, cols)``.

The test (see :func:`build_reference`, Notes, and ``docs/references.md``): for a ``k × k``
window ``w`` around the pixel, the mean intensity of date ``t`` over ``w`` and the mean of the
other retained dates over ``w`` are two independent Gamma means of the same reflectivity under
the no-change hypothesis; their ratio is then Fisher–Snedecor ``F(2 L n_t, 2 L n_o)`` distributed
(``n_t``, ``n_o`` = valid pixels of each side), whose exact quantiles give the thresholds for a
chosen false-alarm rate.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sardespeckle.errors import InputFileError, InvalidInputError, UsageError
from sardespeckle.io.base import OVERWRITE_HINT, remove_if_exists, repeated_file, without_layout_hint

__all__ = [
    "METHODS",
    "ReferenceResult",
    "Stack",
    "build_reference",
    "build_reference_files",
    "change_thresholds",
    "estimate_stack_looks",
    "estimate_temporal_looks",
    "expand_dates",
    "load_stack",
    "read_png_series",
    "side_paths",
    "write_reference",
]

#: Ways of combining the dates: the change-aware test, or the plain temporal mean of valid dates.
METHODS = ("change-aware", "mean")

#: Codes of the change-mask side file (one ``uint8`` layer per date).
CHANGE_CONSISTENT, CHANGE_REJECTED, CHANGE_INVALID = 0, 1, 255

_STRIP_ROWS = 128  # rows processed at once: bounds the float64 work arrays to ~T × 128 × cols


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------


@dataclass
class ReferenceResult:
    """What :func:`build_reference` returns.

    Attributes
    ----------
    reflectivity : numpy.ndarray of float32, shape (rows, cols)
        The reference **intensity**; NaN where no date is valid.
    dates_used : numpy.ndarray of uint16, shape (rows, cols)
        How many dates were averaged at each pixel.
    change_mask : numpy.ndarray of bool, shape (dates, rows, cols)
        ``True`` where a valid date was found inconsistent with the stable estimate and left out.
        Invalid (masked) dates are ``False`` here: see ``valid``.
    valid : numpy.ndarray of bool, shape (dates, rows, cols)
        The dates' usable pixels (given mask, finite, strictly positive).
    report : dict
        JSON-friendly summary: dates, looks, method, test parameters and thresholds, expected and
        measured ENL, fraction of dates rejected, iterations, fallback pixels.
    """

    reflectivity: np.ndarray
    dates_used: np.ndarray
    change_mask: np.ndarray
    valid: np.ndarray
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def amplitude(self) -> np.ndarray:
        """The reference as amplitude ``√I`` (``float32``, NaN where no date is valid)."""
        return np.sqrt(self.reflectivity)


@dataclass
class Stack:
    """A co-registered stack read by :func:`load_stack`.

    Attributes
    ----------
    intensity : numpy.ndarray of float32, shape (dates, rows, cols)
        Intensities; the values of invalid pixels are arbitrary.
    valid : numpy.ndarray of bool, shape (dates, rows, cols)
    paths : list of str
        One per date, in the order given.
    kinds : list of str
        Input kind of each file (``"intensity"``, ``"amplitude"``, ``"db"``, ``"complex"``, or
        ``"png"`` for 8-bit series).
    """

    intensity: np.ndarray
    valid: np.ndarray
    paths: list[str]
    kinds: list[str]


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


def _check_positive_real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInputError(f"expected {name} to be a real number > 0, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise InvalidInputError(f"expected {name} to be a finite number > 0, got {value!r}")
    return value


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise InvalidInputError(f"expected {name} to be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_window_size(window_size, shape: tuple[int, ...]) -> int:
    """An odd window side that fits in the ``(..., rows, cols)`` images of ``shape``.

    A window wider or taller than the image averages the whole image at every pixel (the test
    then sees no local change) and only costs memory and time.
    """
    window_size = _check_int(window_size, "window_size", 1)
    if window_size % 2 == 0:
        raise InvalidInputError(f"expected an odd window_size, got {window_size}")
    rows, cols = shape[-2:]
    if window_size > min(rows, cols):
        raise InvalidInputError(
            f"expected window_size <= {min(rows, cols)} (the smaller side of the {rows}×{cols} "
            f"images), got {window_size}"
        )
    return window_size


def _as_stack(stack, valid) -> tuple[np.ndarray, np.ndarray | None]:
    array = np.asarray(stack)
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise InvalidInputError(
            f"expected a real numeric stack, got dtype {array.dtype}; convert complex data to "
            "intensity first (|z|²)"
        )
    if array.ndim != 3 or 0 in array.shape:
        raise InvalidInputError(
            f"expected a non-empty stack of shape (dates, rows, cols), got shape {array.shape}"
        )
    if valid is not None:
        valid = np.asarray(valid)
        if valid.dtype != np.bool_:
            raise InvalidInputError(f"expected valid to be a boolean array, got {valid.dtype}")
        if valid.shape != array.shape:
            raise InvalidInputError(
                f"expected valid of the stack's shape {array.shape}, got shape {valid.shape}"
            )
    return array, valid


# --------------------------------------------------------------------------------------------
# the test
# --------------------------------------------------------------------------------------------


def change_thresholds(
    looks_date: np.ndarray | float, looks_others: np.ndarray | float, false_alarm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Exact thresholds of the two-sided ratio test of equal means of two Gamma samples.

    Parameters
    ----------
    looks_date, looks_others : float or array_like
        Equivalent looks of the two means compared: ``L · n_t`` for the date, ``L · n_o`` for
        the others (``L`` looks per pixel, ``n`` pixels averaged). Broadcast together.
    false_alarm : float
        Probability, in ``(0, 1)``, that the test rejects when both means share a reflectivity.

    Returns
    -------
    low, high : numpy.ndarray
        The test accepts ``low <= mean_date / mean_others <= high``.

    Notes
    -----
    An ``L``-look intensity of reflectivity ``R`` is ``R · Gamma(L, 1/L)`` and the mean of ``n``
    independent ones is ``R · χ²(2 n L) / (2 n L)``. The ratio of two independent such means of
    the same ``R`` is therefore

    .. math:: \\frac{\\bar I_t}{\\bar I_o} \\sim F(2 L n_t,\\; 2 L n_o),

    whatever ``R``. The thresholds are its ``α/2`` and ``1 − α/2`` quantiles (equal tails). The
    generalised likelihood ratio test of the two Gamma means is a function of this same ratio
    and rejects in both tails; its acceptance interval coincides with the equal-tail one when
    ``n_t = n_o`` and is very close to it otherwise.

    Examples
    --------
    >>> low, high = change_thresholds(9.0, 81.0, 1e-3)
    >>> bool(0.2 < low < 0.4), bool(2.0 < high < 3.0)
    (True, True)
    """
    from scipy import stats

    alpha = _check_false_alarm(false_alarm)
    date = np.asarray(looks_date, dtype=np.float64)
    others = np.asarray(looks_others, dtype=np.float64)
    low = stats.f.ppf(alpha / 2, 2 * date, 2 * others)
    high = stats.f.isf(alpha / 2, 2 * date, 2 * others)
    return np.asarray(low), np.asarray(high)


def _check_false_alarm(value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 1:
        raise InvalidInputError(f"expected false_alarm in (0, 1), got {value!r}")
    return float(value)


def _threshold_tables(
    looks: float, window_pixels: int, dates: int, false_alarm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Thresholds indexed by ``[n_t, n_o]``: the integer counts of valid pixels on each side.

    Counts are integers bounded by ``k²`` and ``k² (T − 1)``, so for small ``k`` and ``T`` all
    exact F quantiles the run can need fit in a small table (one ``scipy`` call), looked up per
    pixel afterwards. The table has ``(k² + 1) (k² (T − 1) + 1)`` cells: use :class:`_Thresholds`,
    which builds it only when it is small.
    """
    n_date = np.arange(window_pixels + 1, dtype=np.float64)[:, None]
    n_others = np.arange(window_pixels * max(dates - 1, 1) + 1, dtype=np.float64)[None, :]
    return _thresholds_of_counts(n_date, n_others, looks, false_alarm)


def _thresholds_of_counts(
    n_date: np.ndarray, n_others: np.ndarray, looks: float, false_alarm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Thresholds for valid-pixel counts ``n_date``, ``n_others`` (broadcast together)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        low, high = change_thresholds(
            np.maximum(n_date, 1) * looks, np.maximum(n_others, 1) * looks, false_alarm
        )
    shape = np.broadcast_shapes(np.shape(n_date), np.shape(n_others))
    low = np.broadcast_to(low, shape).copy()
    high = np.broadcast_to(high, shape).copy()
    # A side without any valid pixel cannot be tested: accept whatever the ratio.
    empty = np.broadcast_to((np.asarray(n_date) == 0) | (np.asarray(n_others) == 0), shape)
    low[empty] = 0.0
    high[empty] = np.inf
    return low, high


#: Largest threshold table built at once (cells); above, quantiles are computed per pair met.
_DENSE_THRESHOLD_CELLS = 1 << 16


class _Thresholds:
    """The test's thresholds looked up by the integer counts ``(n_t, n_o)`` of each pixel.

    The table of every possible pair has ``(k² + 1) (k² (T − 1) + 1)`` cells: 820 for the
    default ``k = 3`` and 10 dates, but it grows as ``k⁴ T`` (two 13 GB float64 tables for
    ``k = 201`` and 2 dates) while a run meets only the pairs of its border and mask patterns.
    Small tables are built at once; otherwise the quantiles of the distinct pairs met are
    computed when first met and kept (sorted by pair), so memory follows the pairs met (at most
    the pixels tested), not ``k``. Both give the same values.
    """

    def __init__(self, looks: float, window_pixels: int, dates: int, false_alarm: float):
        self.looks, self.false_alarm = looks, false_alarm
        self.width = window_pixels * max(dates - 1, 1) + 1  # the values n_o can take
        cells = (window_pixels + 1) * self.width
        if cells > np.iinfo(np.int64).max:
            raise InvalidInputError(
                f"expected window_size**4 * dates below 9e18, got window_size**2 = "
                f"{window_pixels} with {dates} dates; use a smaller window_size"
            )
        self.table = (_threshold_tables(looks, window_pixels, dates, false_alarm)
                      if cells <= _DENSE_THRESHOLD_CELLS else None)
        self.keys = np.empty(0, dtype=np.int64)  # n_t * width + n_o of the pairs met, sorted
        self.low = np.empty(0, dtype=np.float64)
        self.high = np.empty(0, dtype=np.float64)

    def __call__(self, n_date: np.ndarray, n_others: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.table is not None:
            low_table, high_table = self.table
            return low_table[n_date, n_others], high_table[n_date, n_others]
        keys = np.asarray(n_date, dtype=np.int64) * self.width + np.asarray(n_others, np.int64)
        position = np.searchsorted(self.keys, keys)
        known = position < self.keys.size
        known[known] = self.keys[position[known]] == keys[known]
        if not known.all():
            met = np.unique(keys[~known])
            low, high = _thresholds_of_counts((met // self.width).astype(np.float64),
                                              (met % self.width).astype(np.float64),
                                              self.looks, self.false_alarm)
            order = np.argsort(np.concatenate([self.keys, met]), kind="stable")
            self.keys = np.concatenate([self.keys, met])[order]
            self.low = np.concatenate([self.low, low])[order]
            self.high = np.concatenate([self.high, high])[order]
            position = np.searchsorted(self.keys, keys)
        return self.low[position], self.high[position]


def _box_sums(values: np.ndarray, size: int, rows: slice | None = None) -> np.ndarray:
    """Sums over ``size × size`` windows of each layer of ``(dates, rows, cols)``, zero outside.

    ``rows`` selects the output rows (the core of a strip whose halo rows are given); the work
    arrays are about the size of ``values`` in float64, whatever ``size``.
    """
    layers, height, width = values.shape
    rows = slice(0, height) if rows is None else rows
    if size == 1:
        return values[:, rows].astype(np.float64, copy=True)
    # Cumulative sums: exact window sums of any size in O(1) per pixel, no filter library.
    # Window bounds are clipped to the array (the same as zero padding, without the padding).
    pad = size // 2
    integral = np.zeros((layers, height + 1, width + 1), dtype=np.float64)
    np.cumsum(values, axis=1, dtype=np.float64, out=integral[:, 1:, 1:])
    np.cumsum(integral[:, 1:, 1:], axis=2, out=integral[:, 1:, 1:])
    centre = np.arange(height)[rows]
    top = np.clip(centre - pad, 0, height)
    bottom = np.clip(centre + pad + 1, 0, height)
    columns = np.arange(width)
    left = np.clip(columns - pad, 0, width)
    right = np.clip(columns + pad + 1, 0, width)
    lower, upper = integral[:, bottom], integral[:, top]
    del integral
    return (
        lower[:, :, right]
        - upper[:, :, right]
        - lower[:, :, left]
        + upper[:, :, left]
    )


def _median_date(means: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Index of the date whose window mean is the (lower) median of the valid ones, per pixel."""
    keyed = np.where(valid, means, np.inf)
    order = np.argsort(keyed, axis=0, kind="stable")
    position = np.maximum(valid.sum(axis=0) - 1, 0) // 2
    return np.take_along_axis(order, position[None], axis=0)[0]


def _strip_change_aware(
    intensity: np.ndarray,
    valid: np.ndarray,
    core: slice,
    *,
    window_size: int,
    thresholds: _Thresholds,
    max_iterations: int,
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Retained dates of the core rows of one strip (which carries a halo of ``k // 2`` rows).

    Returns ``(retained, fell_back, iterations, converged)`` for the core rows.
    """
    sums = _box_sums(np.where(valid, intensity, 0.0), window_size, core)
    counts = np.rint(_box_sums(valid, window_size, core)).astype(np.int64)
    valid = valid[:, core]
    sums[~valid] = 0.0  # a date is tested (and averaged) only where its own pixel is valid
    counts[~valid] = 0
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts

    # Robust start: the median of the window means, so that a minority of changed dates cannot
    # drag the first estimate (and with it the test of the stable dates) towards themselves.
    median = np.take_along_axis(means, _median_date(means, valid)[None], axis=0)[0]
    others_count = counts.sum(axis=0)[None] - counts
    low, high = thresholds(counts, others_count)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = means / median
    retained = valid & (ratio >= low) & (ratio <= high)
    fell_back = np.zeros(valid.shape[1:], dtype=bool)

    iterations, converged, previous = 0, False, None
    for iterations in range(1, max_iterations + 1):
        retained = _fallback_empty(retained, valid, means, fell_back)
        kept_sums = np.where(retained, sums, 0.0)
        kept_counts = np.where(retained, counts, 0)
        others_sum = kept_sums.sum(axis=0)[None] - kept_sums
        others_count = kept_counts.sum(axis=0)[None] - kept_counts
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = means / (others_sum / others_count)
        low, high = thresholds(counts, others_count)
        accept = (others_count == 0) | ((ratio >= low) & (ratio <= high))
        updated = _fallback_empty(valid & accept, valid, means, fell_back)
        if np.array_equal(updated, retained):
            converged = True
            break
        if iterations > max_iterations // 2:
            # A pixel can cycle between retained sets (a borderline date moves the pooled mean
            # across another date's threshold). In the second half of the rounds dates may only
            # leave: each pixel's set then shrinks to the dates all the cycle's sets keep.
            updated = _fallback_empty(updated & retained, valid, means, fell_back)
        elif previous is not None:
            # A cycle of two sets is settled at once on the dates both keep.
            cycling = (updated == previous).all(axis=0) & (updated != retained).any(axis=0)
            if cycling.any():
                updated = _fallback_empty(updated & (retained | ~cycling), valid, means,
                                          fell_back)
        if np.array_equal(updated, retained):
            converged = True
            break
        previous, retained = retained, updated
    return retained, fell_back, iterations, converged


def _fallback_empty(
    retained: np.ndarray, valid: np.ndarray, means: np.ndarray, fell_back: np.ndarray
) -> np.ndarray:
    """Where every valid date was rejected (e.g. a steady trend), keep the median date."""
    empty = ~retained.any(axis=0) & valid.any(axis=0)
    if not empty.any():
        return retained
    fell_back |= empty
    median = _median_date(means[:, empty], valid[:, empty])
    retained = retained.copy()
    rows, cols = np.nonzero(empty)
    retained[median, rows, cols] = True
    return retained


# --------------------------------------------------------------------------------------------
# the builder
# --------------------------------------------------------------------------------------------


def build_reference(
    stack,
    *,
    looks: float,
    kind: str = "intensity",
    method: str = "change-aware",
    false_alarm: float = 1e-3,
    max_iterations: int = 10,
    window_size: int = 3,
    window_looks: float | None = None,
    valid=None,
    progress: Callable[[int, int], None] | None = None,
) -> ReferenceResult:
    """Speckle-free reference of a co-registered stack, leaving out the dates that changed.

    Parameters
    ----------
    stack : array_like, shape (dates, rows, cols), or Stack
        Co-registered dates, as intensities or amplitudes (``kind``); or the :class:`Stack` that
        :func:`load_stack` returns (its intensities, with its mask of valid pixels).
    looks : float, keyword-only
        Equivalent number of looks ``L`` of each date (1 for single-look data).
    kind : {"intensity", "amplitude"}, keyword-only
        What ``stack`` holds.
    method : {"change-aware", "mean"}, keyword-only
        ``"change-aware"``: average only the dates consistent with the stable estimate (Notes);
        ``"mean"``: the plain temporal mean of the valid dates.
    false_alarm : float, keyword-only
        Design probability that one test (one date at one pixel) rejects a date that did not
        change, for white speckle and a homogeneous window.
    max_iterations : int, keyword-only
        Most re-estimate/re-test rounds (the loop stops earlier once the retained dates no
        longer change).
    window_size : int, keyword-only
        Odd side ``k`` of the window whose mean intensity is tested: each side of the test has
        about ``k² L`` looks per date. 1 tests single pixels (for data of many looks).
    window_looks : float, optional, keyword-only
        Equivalent looks of the mean of one date over a full ``k × k`` window. ``k² L`` when
        left out, which holds for white speckle only: for spatially correlated speckle pass the
        measured value (:func:`estimate_temporal_looks` with the same ``window_size``), else
        the test rejects more often than ``false_alarm``.
    valid : array_like of bool, shape (dates, rows, cols), optional, keyword-only
        Usable pixels (``True``); non-finite and non-positive values are left out in any case
        (nodata, clipped or saturated pixels must be masked here).
    progress : callable, optional, keyword-only
        Called as ``progress(done, total)`` after each strip of rows.

    Returns
    -------
    ReferenceResult
        Reference intensity, dates used per pixel, change mask and a report.

    Raises
    ------
    InvalidInputError
        Bad stack, mask or parameter values.
    UsageError
        Unknown ``kind`` or ``method``; two dates with the change-aware method (each would be
        the other's only witness: use ``method="mean"``). One date is its own reference.

    Notes
    -----
    *Model.* Date ``t`` at pixel ``x`` is ``I_t(x) = R_t(x) S_t(x)``, with independent
    ``S ~ Gamma(L, 1/L)`` across dates. The reference is ``R̂(x) = mean of I_t(x) over the
    retained dates``, of ENL ``L × (number of dates used)`` in homogeneous areas.

    *Test.* Single-look pixels are too noisy to be tested one by one, so each date is
    summarised by its mean ``Ī_t`` over the ``k × k`` window around ``x`` (``n_t`` valid pixels,
    ``n_t L`` looks). Under "no change at ``x`` between ``t`` and the other retained dates ``K``"
    the ratio of ``Ī_t`` to the pooled mean ``Ī_o = Σ_{s∈K∖t} S_s / Σ_{s∈K∖t} n_s`` (``S_s`` =
    window sums) is ``F(2 L n_t, 2 L n_o)`` distributed whatever the reflectivity level, for a
    reflectivity uniform in the window (the ratio of two Gamma means; see
    :func:`change_thresholds`). ``window_looks`` replaces ``k² L`` when given (then each valid
    pixel counts for ``window_looks / k²`` looks). Date ``t`` is consistent when the ratio lies
    between the ``α/2`` and ``1 − α/2`` quantiles, ``α = false_alarm``. The counts are
    integers, so the exact quantiles are tabulated once per run.

    *Iterations.* Start from the median of the window means (robust to a minority of changed
    dates), keep the consistent dates, then repeat: re-estimate ``Ī_o`` from the retained dates,
    retest every valid date (a date rejected earlier can come back), until the retained set is
    stable or ``max_iterations``. A pixel can cycle between sets when a borderline date moves the
    pooled mean across another date's threshold: a cycle of two is settled on the dates both
    sets keep, and after ``max_iterations // 2`` rounds dates may only leave, which ends any
    cycle. Where a round rejects every date (a steady trend, or two dates
    that disagree), the date whose window mean is the median is kept, and the next round adds
    the dates consistent with it: the result is the largest cluster around the median date.

    *Caveats.* The ``F`` law assumes white speckle and a reflectivity homogeneous in the window.
    Spatially correlated speckle (real SLC) or texture/edges inside the window give the window
    mean fewer than ``k² L`` effective looks, so the actual false-alarm rate is higher than
    ``false_alarm`` there: pass the measured ``window_looks`` for correlated speckle, and accept
    that a few more dates are dropped at edges (this costs looks, not bias). The window also
    blurs the change mask by ``k // 2`` pixels.

    Examples
    --------
    >>> import numpy as np
    >>> from sardespeckle.speckle import simulate_speckle
    >>> truth = np.full((10, 64, 64), 5.0)
    >>> truth[6:, 16:48, 16:48] = 50.0          # a change in the last four dates
    >>> stack = truth * simulate_speckle(truth.shape, 1, seed=0)
    >>> result = build_reference(stack, looks=1)
    >>> int(result.dates_used[32, 32]), int(result.dates_used[2, 2])
    (6, 10)
    """
    if isinstance(stack, Stack):  # what load_stack returns: its intensities and mask
        if kind != "intensity":
            raise UsageError(f"a Stack holds intensities: expected kind 'intensity', got {kind!r}")
        stack, valid = stack.intensity, stack.valid if valid is None else valid & stack.valid
    array, valid = _as_stack(stack, valid)
    usable = np.isfinite(array) & (array > 0)
    if not (usable if valid is None else usable & valid).any():
        raise InvalidInputError(
            f"expected a stack with valid pixels, got none in its {array.shape[0]} date(s) "
            "(every pixel NaN, infinite, zero, negative or masked by valid)"
        )
    looks = _check_positive_real(looks, "looks")
    if kind not in ("intensity", "amplitude"):
        raise UsageError(f"expected kind 'intensity' or 'amplitude', got {kind!r}")
    if method not in METHODS:
        raise UsageError(f"expected method to be one of {METHODS}, got {method!r}")
    false_alarm = _check_false_alarm(false_alarm)
    max_iterations = _check_int(max_iterations, "max_iterations", 1)
    window_size = _check_window_size(window_size, array.shape)

    if window_looks is None:
        window_looks = window_size**2 * looks
    window_looks = _check_positive_real(window_looks, "window_looks")
    test_looks = window_looks / window_size**2  # looks of one window pixel, as the test sees it

    dates, rows, cols = array.shape
    if dates == 2:  # one date is its own reference; two cannot be tested against each other
        check_date_count(dates, method)
    intensity = array.astype(np.float32, copy=False)
    if kind == "amplitude":
        intensity = np.square(intensity, dtype=np.float32)
    usable = np.isfinite(intensity) & (intensity > 0)
    if valid is not None:
        usable &= valid
    if np.any(np.asarray(array)[np.isfinite(array) & (valid if valid is not None else True)] < 0):
        raise InvalidInputError(
            "expected non-negative intensities/amplitudes, got negative values; is this dB? "
            "convert it to intensity first, or mask nodata with valid"
        )

    retained = usable.copy()
    fell_back = np.zeros((rows, cols), dtype=bool)
    iterations, converged = 0, True
    pad = window_size // 2
    strips = list(range(0, rows, _STRIP_ROWS))
    if method == "change-aware" and dates > 1:
        thresholds = _Thresholds(test_looks, window_size**2, dates, false_alarm)
        for done, row0 in enumerate(strips, start=1):
            row1 = min(row0 + _STRIP_ROWS, rows)
            top, bottom = max(row0 - pad, 0), min(row1 + pad, rows)
            core = slice(row0 - top, row0 - top + (row1 - row0))
            strip_kept, strip_fell, strip_iterations, strip_converged = _strip_change_aware(
                intensity[:, top:bottom].astype(np.float64),
                usable[:, top:bottom],
                core,
                window_size=window_size,
                thresholds=thresholds,
                max_iterations=max_iterations,
            )
            retained[:, row0:row1] = strip_kept
            fell_back[row0:row1] = strip_fell
            iterations = max(iterations, strip_iterations)
            converged &= strip_converged
            if progress is not None:
                progress(done, len(strips))
    elif progress is not None:
        progress(len(strips), len(strips))

    dates_used = retained.sum(axis=0)
    total = np.zeros((rows, cols), dtype=np.float64)
    for date in range(dates):  # date by date: no (dates, rows, cols) float64 temporary
        total += np.where(retained[date], intensity[date], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        reflectivity = (total / dates_used).astype(np.float32)
    reflectivity[dates_used == 0] = np.nan
    change_mask = usable & ~retained

    report = _report(
        reflectivity, dates_used, change_mask, usable,
        looks=looks, kind=kind, method=method, false_alarm=false_alarm,
        window_size=window_size, window_looks=window_looks, max_iterations=max_iterations,
        iterations=iterations,
        converged=converged, fell_back=fell_back,
    )
    return ReferenceResult(
        reflectivity=reflectivity,
        dates_used=dates_used.astype(np.uint16),
        change_mask=change_mask,
        valid=usable,
        report=report,
    )


def _report(
    reflectivity, dates_used, change_mask, usable, *, looks, kind, method, false_alarm,
    window_size, window_looks, max_iterations, iterations, converged, fell_back,
) -> dict[str, Any]:
    from sardespeckle.speckle import estimate_looks

    dates, rows, cols = usable.shape
    covered = dates_used > 0
    mean_used = float(dates_used[covered].mean()) if covered.any() else 0.0
    try:
        measured = float(estimate_looks(reflectivity, valid=covered))
    except InvalidInputError as error:
        measured = None
        measured_note = str(error)
    else:
        measured_note = (
            "estimate_looks on the 5 % most homogeneous 7×7 windows of the reference: texture "
            "that survives in those windows lowers it"
        )
    valid_tests = int(usable.sum())
    report: dict[str, Any] = {
        "dates": int(dates),
        "rows": int(rows),
        "cols": int(cols),
        "input_kind": kind,
        "looks": float(looks),
        "method": method,
        "mean_dates_used": round(mean_used, 4),
        "min_dates_used": int(dates_used[covered].min()) if covered.any() else 0,
        "expected_enl": round(mean_used * looks, 4),
        "measured_enl": None if measured is None else round(measured, 4),
        "measured_enl_note": measured_note,
        "pixels_without_data": int((~covered).sum()),
        "valid_fraction": round(valid_tests / usable.size, 6),
        "rejected_fraction": round(int(change_mask.sum()) / max(valid_tests, 1), 6),
        "rejected_fraction_per_date": [
            round(int(change_mask[d].sum()) / max(int(usable[d].sum()), 1), 6)
            for d in range(dates)
        ],
    }
    if method == "change-aware":
        low, high = change_thresholds(window_looks, window_looks * max(dates - 1, 1),
                                      false_alarm)
        report["test"] = {
            "statistic": "ratio of the k×k window mean of the date to the pooled window mean of "
                         "the other retained dates; F(2 L n_t, 2 L n_o) under no change",
            "false_alarm": false_alarm,
            "window_size": window_size,
            "window_looks": round(float(window_looks), 4),
            "thresholds_all_dates_valid": [round(float(low), 6), round(float(high), 6)],
            "thresholds_all_dates_valid_db": [round(10 * math.log10(float(low)), 4),
                                              round(10 * math.log10(float(high)), 4)],
            "max_iterations": max_iterations,
            "iterations": iterations,
            "converged": bool(converged),
            "fallback_pixels": int(fell_back.sum()),
        }
    return report


# --------------------------------------------------------------------------------------------
# reading stacks
# --------------------------------------------------------------------------------------------


def read_png_series(paths: Sequence[str | os.PathLike], *, threshold: float):
    """Read co-registered 8-bit PNG dates as amplitudes, with saturated and zero pixels masked.

    Parameters
    ----------
    paths : sequence of path-like
        Grey 8-bit PNG files of one shape, one per date.
    threshold : float, keyword-only
        Amplitude of grey level 255 (the clipping threshold): ``A = png / 255 · threshold``.

    Returns
    -------
    amplitude : numpy.ndarray of float32, shape (dates, rows, cols)
    valid : numpy.ndarray of bool, shape (dates, rows, cols)
        ``False`` at grey level 255 (clipped: the true amplitude is unknown, only ``≥ threshold``)
        and at 0 (no signal, or below the quantisation step).

    Raises
    ------
    InputFileError
        A file is missing or not a readable image.
    InvalidInputError
        Not 8-bit grey, shapes differ, no path, or a bad threshold.
    """
    from PIL import Image

    threshold = _check_positive_real(threshold, "threshold")
    paths = [os.fspath(path) for path in paths]
    if not paths:
        raise InvalidInputError("expected at least one PNG file, got none")
    layers = []
    for path in paths:
        if not os.path.isfile(path):
            raise InputFileError(f"no such file: {path}")
        try:
            with Image.open(path) as image:
                mode = image.mode
                grey = np.asarray(image)
        except OSError as error:
            raise InputFileError(f"cannot read {path} as an image: {error}") from error
        if mode != "L" or grey.dtype != np.uint8:
            raise InvalidInputError(
                f"expected an 8-bit grey PNG (mode 'L'), got mode {mode!r} in {path}"
            )
        if layers and grey.shape != layers[0].shape:
            raise InvalidInputError(
                f"expected co-registered dates of one shape {layers[0].shape}, got "
                f"{grey.shape} in {path}"
            )
        layers.append(grey)
    grey = np.stack(layers)
    valid = (grey > 0) & (grey < 255)
    amplitude = grey.astype(np.float32) * np.float32(threshold / 255.0)
    return amplitude, valid


#: Ratio of the looks estimated from the dates to the looks expected, beyond which the kind is
#: suspect: single-look amplitude read as intensity fluctuates like 3.3-3.7 looks (the
#: Rayleigh law's ENL is 1/(4/π − 1) = 3.66), intensity read as amplitude like 0.2-0.4.
LOOKS_RATIO_LIMITS = (0.5, 2.5)


def _warn_implausible_looks(estimated: float, given: float | None, kinds: Sequence[str]) -> None:
    """Warn when the dates' own speckle contradicts the looks given, or is below one look:
    the usual sign of amplitude and intensity confused."""
    if not np.isfinite(estimated) or "png" in kinds:
        return
    hint = ("check --kind: intensity read as amplitude squares the speckle, amplitude read as "
            "intensity takes its square root")
    if given is None:
        if estimated < 1 / LOOKS_RATIO_LIMITS[1]:
            warnings.warn(f"the dates fluctuate like {estimated:.2f} looks, below one look, which "
                          f"no SAR image has; {hint}", UserWarning, stacklevel=3)
        return
    ratio = estimated / given
    if not LOOKS_RATIO_LIMITS[0] <= ratio <= LOOKS_RATIO_LIMITS[1]:
        warnings.warn(f"the dates fluctuate like {estimated:.2f} looks, not the {given:g} given "
                      f"(--looks); {hint} (or the dates are not independent, e.g. already "
                      "despeckled or multilooked)", UserWarning, stacklevel=3)


def load_stack(
    paths: Sequence[str | os.PathLike],
    *,
    kind: str | None = None,
    png_threshold: float | None = None,
    nodata: float | None = None,
) -> Stack:
    """Read co-registered files (GeoTIFF/``.npy``, or 8-bit PNG) into one intensity stack.

    Parameters
    ----------
    paths : sequence of path-like
        One file per date, all of one shape.
    kind : str, optional, keyword-only
        Kind of every GeoTIFF/``.npy`` file (``"intensity"``, ``"amplitude"``, ``"db"``,
        ``"complex"``); detected per file when left out (see :func:`sardespeckle.io.open_source`).
    png_threshold : float, optional, keyword-only
        Required for ``.png`` files: the amplitude of grey level 255 (:func:`read_png_series`).
    nodata : float, optional, keyword-only
        Value of missing pixels, replacing the files' own.

    Returns
    -------
    Stack

    Raises
    ------
    InvalidInputError
        Different shapes, GeoTIFFs on different grids (another CRS or transform:
        :func:`sardespeckle.io.grid.check_same_grid`), mixed PNG and raster files, no path.
    UnknownKindError
        ``kind`` left out for a file whose kind cannot be detected (float data without
        metadata); the message names the file.
    UsageError
        PNG files without ``png_threshold``.
    InputFileError
        A file is missing or unreadable.
    """
    from sardespeckle.io import open_source
    from sardespeckle.io.kinds import value_notes
    from sardespeckle.io.grid import check_same_grid
    from sardespeckle.window import Window

    paths = [os.fspath(path) for path in paths]
    if not paths:
        raise InvalidInputError("expected at least one file of the stack, got none")
    is_png = [path.lower().endswith(".png") for path in paths]
    if any(is_png):
        if not all(is_png):
            raise InvalidInputError(
                "expected all dates as PNG or all as GeoTIFF/.npy, got a mix; convert them first"
            )
        if png_threshold is None:
            raise UsageError(
                "expected a PNG threshold (the amplitude of grey level 255) for 8-bit PNG dates, "
                "got none; pass png_threshold (--png-threshold)"
            )
        if kind is not None:
            warnings.warn(f"kind {kind!r} (--kind) does not apply to PNG dates: 8-bit grey "
                          "levels are amplitude scaled by png_threshold (--png-threshold)",
                          UserWarning, stacklevel=2)
        amplitude, valid = read_png_series(paths, threshold=png_threshold)
        return Stack(np.square(amplitude), valid, paths, ["png"] * len(paths))
    if png_threshold is not None:
        raise UsageError("expected png_threshold only with .png dates, got GeoTIFF/.npy files")

    check_same_grid(paths, what="co-registered dates")
    layers, masks, kinds = [], [], []
    shape = None
    for path in paths:
        try:
            source = open_source(path, kind=kind, nodata=nodata)
        except InvalidInputError as error:
            raise without_layout_hint(
                error, "'references build' reads one 2-D date per file: split a 3-D stack "
                "into one file per date (numpy.save of stack[i]); complex dates are read as "
                "complex-valued arrays (a complex .npy, a complex GeoTIFF band), not as "
                "real/imaginary parts: combine them first (numpy: parts[..., 0] + 1j * "
                "parts[..., 1])") from None
        with source:
            if shape is None:
                shape = source.shape
            elif source.shape != shape:
                raise InvalidInputError(
                    f"expected co-registered dates of one shape {shape} (rows, cols), got "
                    f"{source.shape} in {path}; resample or crop them onto one grid first"
                )
            if getattr(source, "band_count", 1) > 1:
                warnings.warn(f"{path} has {source.band_count} bands: band 1 is its date",
                              UserWarning, stacklevel=2)
            # dB read as amplitude/intensity is refused, as 'run' refuses it; a few negative
            # (thermal-noise) or overflowing pixels become nodata, and are said
            shares = source.value_shares()
            for note in value_notes(*shares, fate="they are left out of the reference (nodata)"):
                warnings.warn(f"{path}: {note}", UserWarning, stacklevel=2)
            intensity, valid = source.read_intensity(Window.full(source.shape))
            if not valid.any():
                warnings.warn(f"{path} has no valid pixel (all NaN, nodata or zero): it adds "
                              "nothing to the reference", UserWarning, stacklevel=2)
            layers.append(intensity)
            masks.append(valid)
            kinds.append(source.kind)
    return Stack(np.stack(layers), np.stack(masks), paths, kinds)


#: What a folder or a glob pattern of dates may hold (PNG only when it holds no raster).
_RASTER_SUFFIXES = (".tif", ".tiff", ".npy")
_PNG_SUFFIXES = (".png",)


def expand_dates(
    inputs: Sequence[str | os.PathLike], *, output: str | os.PathLike | None = None
) -> tuple[list[str], list[str]]:
    """The date files named by files, folders and glob patterns.

    Parameters
    ----------
    inputs : sequence of path-like
        Files, kept as given (a file named twice stays twice: :func:`build_reference_files`
        refuses it); folders, giving their ``.tif``/``.tiff``/``.npy`` files (their ``.png``
        files when they hold none; not recursive, hidden files left out), sorted by name; glob
        patterns (``'stack/*.tif'``, quoted so that the shell leaves them), giving the files of
        those formats they match, sorted.
    output : path-like, optional, keyword-only
        The reference to be written: it and its side files (:func:`side_paths`) are not dates.

    Returns
    -------
    dates : list of str
    left_out : list of str
        Files of a folder or pattern that a reference build wrote (a reference with its report
        beside it, its ``_count`` and ``_changes`` files, and those of ``output``): not dates.

    Raises
    ------
    InputFileError
        A folder or pattern that gives no date.
    UsageError
        A folder or pattern that holds the output.
    """
    import glob

    outputs = list(side_paths(output).values()) if output is not None else []
    dates: list[str] = []
    left_out: list[str] = []
    for text in (os.fspath(item) for item in inputs):
        if os.path.isdir(text):
            names = sorted(name for name in os.listdir(text) if not name.startswith("."))
            files = [os.path.join(text, name) for name in names]
            where = f"in the folder {text}"
        elif glob.has_magic(text) and not os.path.exists(text):
            files = sorted(path for path in glob.glob(text) if os.path.isfile(path))
            where = f"matching {text!r}"
        else:
            side = side_output_of(text)
            if side is not None:
                raise UsageError(
                    f"expected dates, got {text}: the per-pixel "
                    f"{'count of dates used' if side[0] == 'count' else 'change codes'} that a "
                    f"reference build wrote beside {side[1]}, not a date")
            dates.append(text)
            continue
        rasters = [path for path in files if path.lower().endswith(_RASTER_SUFFIXES)]
        found = rasters or [path for path in files if path.lower().endswith(_PNG_SUFFIXES)]
        for path in found:
            if _is_an_output(path, outputs) and not _is_a_build_product(path):
                raise UsageError(
                    f"expected an output that is not one of the dates, got {os.fspath(output)}: "
                    f"it would replace {path}, a date {where} (inputs are never overwritten, "
                    "--overwrite or not); write the reference elsewhere")
        written = [path for path in found if _written_by_a_build(path, outputs)]
        found = [path for path in found if path not in written]
        left_out += written
        if not found:
            raise InputFileError(
                f"expected dates ({', '.join(_RASTER_SUFFIXES + _PNG_SUFFIXES)} files) {where}, "
                f"found none" + (f" but the {len(written)} file(s) of a reference build"
                                 if written else ""))
        dates += found
    return dates, left_out


def _written_by_a_build(path: str, outputs: list[str]) -> bool:
    """Whether ``path`` is a reference (its report and count file beside it), the count or
    change file of one, or one of the ``outputs`` about to be written."""
    return _is_an_output(path, outputs) or _is_a_build_product(path)


def _is_an_output(path: str, outputs: list[str]) -> bool:
    from sardespeckle.io.base import same_file

    return any(same_file(path, output) for output in outputs)


def _is_a_build_product(path: str) -> bool:
    """A reference (its report and count file beside it), or the count or change file of one."""
    if side_output_of(path) is not None:
        return True
    beside = side_paths(path)
    return os.path.isfile(beside["report"]) and os.path.isfile(beside["count"])


def estimate_stack_looks(intensity, *, valid=None, window_size: int = 7) -> float:
    """Equivalent number of looks of a stack: the median over dates of
    :func:`sardespeckle.speckle.estimate_looks` (homogeneous windows of each date).

    Parameters
    ----------
    intensity : array_like, shape (dates, rows, cols)
    valid : array_like of bool, same shape, optional
    window_size : int
        Side of the windows of :func:`~sardespeckle.speckle.estimate_looks`.

    Returns
    -------
    float

    Notes
    -----
    For despeckled data the "looks" is how much residual fluctuation a pixel has around its
    local mean; it is an effective value (spatially correlated fluctuations, quantisation).
    """
    from sardespeckle.speckle import estimate_looks

    array, valid = _as_stack(intensity, valid)
    values = [
        estimate_looks(array[d], window_size=window_size,
                       valid=None if valid is None else valid[d])
        for d in range(array.shape[0])
    ]
    return float(np.median(values))


def estimate_temporal_looks(
    intensity, *, valid=None, window_size: int = 1, max_samples: int = 2_000_000, seed: int = 0
) -> float:
    """Looks per pixel that explain the date-to-date fluctuation of a stack (robustly).

    Parameters
    ----------
    intensity : array_like, shape (dates, rows, cols)
        At least 2 dates.
    valid : array_like of bool, same shape, optional
    window_size : int, keyword-only
        Odd window side ``k``: the looks returned are those of the mean of one date over a
        ``k × k`` window (the ``window_looks`` of :func:`build_reference`); ``k = 1`` gives the
        looks of a pixel.
    max_samples : int, keyword-only
        Most (date, pixel) pairs drawn to measure the spread (seeded draw).
    seed : int, keyword-only

    Returns
    -------
    float
        ``Lw`` such that ``log(Ī_t / Ī_o)``, the log-ratio of a date's window mean to the mean
        of the other dates, has the interquartile range of ``log F(2 Lw, 2 (T − 1) Lw)``.

    Notes
    -----
    The interquartile range ignores the tails, so a minority of changed dates barely moves it,
    and it is exact for Gamma speckle (no Gaussian approximation of the log-ratio). On white
    speckle of ``L`` looks it returns ``≈ k² L``. On spatially correlated speckle, or textured
    scenes, it returns the *effective* looks of the window means, less than ``k² L``. On
    despeckled series it measures the natural date-to-date variability plus the despeckler's
    residue, which is what a test of temporal consistency must use.
    """
    from scipy import optimize, stats

    array, valid = _as_stack(intensity, valid)
    window_size = _check_window_size(window_size, array.shape)
    dates = array.shape[0]
    if dates < 2:
        raise InvalidInputError(f"expected at least 2 dates, got {dates}")
    usable = np.isfinite(array) & (array > 0)
    if valid is not None:
        usable &= valid
    rng = np.random.default_rng(seed)
    logs = []
    budget = max(1, int(max_samples) // dates)
    for row0 in range(0, array.shape[1], _STRIP_ROWS):
        row1 = min(row0 + _STRIP_ROWS, array.shape[1])
        pad = window_size // 2
        top, bottom = max(row0 - pad, 0), min(row1 + pad, array.shape[1])
        core = slice(row0 - top, row0 - top + row1 - row0)
        ok = usable[:, top:bottom]
        sums = _box_sums(np.where(ok, array[:, top:bottom], 0.0), window_size, core)
        counts = _box_sums(ok.astype(np.float64), window_size, core)
        ok = ok[:, core]
        sums[~ok] = 0.0
        counts[~ok] = 0.0
        others_sum = sums.sum(axis=0)[None] - sums
        others_count = counts.sum(axis=0)[None] - counts
        use = ok & (others_count > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = (sums / counts) / (others_sum / others_count)
        values = np.log(ratio[use])
        share = budget * (row1 - row0) / array.shape[1] * dates
        if values.size > share:
            values = rng.choice(values, size=int(share), replace=False)
        logs.append(values)
    logs = np.concatenate(logs)
    if logs.size < 100:
        raise InvalidInputError(
            f"expected at least 100 usable (date, pixel) pairs, got {logs.size}; check the masks"
        )
    q25, q75 = np.percentile(logs, [25, 75])
    observed = float(q75 - q25)

    tiny = np.finfo(np.float64).smallest_subnormal

    def spread(log_looks: float) -> float:
        looks = math.exp(log_looks)
        low = float(stats.f.ppf(0.25, 2 * looks, 2 * looks * (dates - 1)))
        high = float(stats.f.ppf(0.75, 2 * looks, 2 * looks * (dates - 1)))
        # The log of each quartile, not of their ratio: at a fraction of a look (the lower end
        # of the search) the quartiles lie near 1e-300 and 1e+300 and high / low overflows.
        return math.log(max(high, tiny)) - math.log(max(low, tiny)) - observed

    low_bound, high_bound = math.log(1e-3), math.log(1e7)
    if spread(high_bound) > 0:
        return math.exp(high_bound)
    if spread(low_bound) < 0:
        return math.exp(low_bound)
    return math.exp(optimize.brentq(spread, low_bound, high_bound, xtol=1e-6))


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def side_paths(output: str | os.PathLike) -> dict[str, str]:
    """The files written beside a reference ``<out>.<ext>``: ``<out>_count.<ext>`` (dates used),
    ``<out>_changes.<ext>`` (change codes per date) and ``<out>.json`` (the report)."""
    output = os.fspath(output)
    stem, ext = os.path.splitext(output)
    return {
        "reference": output,
        "count": f"{stem}_count{ext}",
        "changes": f"{stem}_changes{ext}",
        "report": f"{stem}.json",
    }


def side_output_of(path: str | os.PathLike) -> tuple[str, str] | None:
    """``(role, reference)`` when ``path`` is the ``count`` or ``changes`` file that
    :func:`write_reference` wrote beside ``reference`` (that reference and its JSON report are
    still there), else None. Lets commands refuse them where a reference is expected (a glob
    such as ``refs/*.tif`` matches them too)."""
    stem, ext = os.path.splitext(os.fspath(path))
    for role in ("count", "changes"):
        suffix = f"_{role}"
        if stem.endswith(suffix):
            reference = stem[: -len(suffix)] + ext
            if os.path.isfile(reference) and os.path.isfile(side_paths(reference)["report"]):
                return role, reference
    return None


def _change_codes(result: ReferenceResult) -> np.ndarray:
    codes = np.full(result.valid.shape, CHANGE_INVALID, dtype=np.uint8)
    codes[result.valid] = CHANGE_CONSISTENT
    codes[result.change_mask] = CHANGE_REJECTED
    return codes


def _write_layers(path: str, layers: np.ndarray, *, like_path: str | None, overwrite: bool,
                  tags: dict[str, str]) -> None:
    """A ``(dates, rows, cols)`` ``uint8`` array as a multi-band GeoTIFF or a 3-D ``.npy``,
    atomically."""
    from sardespeckle.io.base import publish, temporary_path

    if path.lower().endswith(".npy"):
        from sardespeckle.io.npy import write_npy

        write_npy(path, layers, overwrite=overwrite)
        return
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    profile = {
        "driver": "GTiff", "height": layers.shape[1], "width": layers.shape[2],
        "count": layers.shape[0], "dtype": "uint8", "nodata": CHANGE_INVALID,
        "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate",
        "interleave": "band", "BIGTIFF": "IF_SAFER",
    }
    if like_path is not None and like_path.lower().endswith((".tif", ".tiff")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            like = rasterio.open(like_path)
        with like:
            if like.crs is not None:
                profile["crs"] = like.crs
            if like.transform is not None and not like.transform.is_identity:
                profile["transform"] = like.transform
    temp = temporary_path(path)
    try:
        with warnings.catch_warnings():
            # a stack without georeferencing gives a change mask without it, as intended
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            dataset = rasterio.open(temp, "w", **profile)
        with dataset:
            dataset.write(layers)
            dataset.update_tags(**tags)
            for band in range(layers.shape[0]):
                dataset.set_band_description(band + 1, f"date {band}: 0 kept, 1 changed, 255 invalid")
        from .io.geotiff import check_written

        check_written(temp, path)
        publish(temp, path, overwrite=overwrite)
    except BaseException:
        remove_if_exists(temp)
        raise


def write_reference(
    result: ReferenceResult,
    output: str | os.PathLike,
    *,
    output_kind: str = "intensity",
    like_path: str | None = None,
    like_kind: str | None = None,
    overwrite: bool = False,
    extra_report: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write a reference, its date count, its change codes and its JSON report.

    Parameters
    ----------
    result : ReferenceResult
    output : path-like
        ``.tif``/``.tiff`` or ``.npy``: the reference (``float32``, NaN where no date is valid).
        Beside it (:func:`side_paths`): ``<out>_count.<ext>`` (``uint16`` dates used),
        ``<out>_changes.<ext>`` (``uint8`` per date, as bands of a GeoTIFF or the first axis of a
        ``.npy``: 0 kept, 1 rejected as changed, 255 invalid) and ``<out>.json``.
    output_kind : {"intensity", "amplitude"}, keyword-only
    like_path : str, optional, keyword-only
        A GeoTIFF whose georeferencing is copied.
    like_kind : str, optional, keyword-only
        What ``like_path`` holds (as given for the stack), for files whose kind cannot be
        detected; only its georeferencing is read.
    overwrite : bool, keyword-only
        Replace existing files.
    extra_report : dict, optional, keyword-only
        Entries added to the report (e.g. the inputs, a crop).

    Returns
    -------
    dict
        The report written, with the paths under ``"outputs"``.

    Notes
    -----
    All four paths are checked before anything is written (existing file without ``overwrite``,
    folder in place of a file, missing folder, extension). The files are written under temporary
    names and renamed together at the end: when anything fails, none of them is left behind and
    the files they were to replace are kept as they were.
    """
    from sardespeckle.io import open_source, write_array
    from sardespeckle.io.base import temporary_path
    from sardespeckle.io.raster import provenance_tags

    if output_kind not in ("intensity", "amplitude"):
        raise UsageError(f"expected output kind 'intensity' or 'amplitude', got {output_kind!r}")
    paths = side_paths(output)
    _check_outputs(paths, overwrite=overwrite)

    values = result.reflectivity if output_kind == "intensity" else result.amplitude
    report = {**result.report, "output_kind": output_kind, **dict(extra_report or {}),
              "outputs": paths,
              "change_codes": {"kept": CHANGE_CONSISTENT, "changed": CHANGE_REJECTED,
                               "invalid": CHANGE_INVALID}}
    tags = {"method": "multitemporal reference", "reference": json.dumps(
        {k: report[k] for k in ("dates", "looks", "method", "mean_dates_used", "expected_enl")})}
    temps: dict[str, str] = {}  # output -> the temporary file written in its place
    like = None
    try:
        for key in ("reference", "count", "changes", "report"):
            temps[paths[key]] = temporary_path(paths[key])
        if like_path is not None and like_path.lower().endswith((".tif", ".tiff")):
            like = open_source(like_path, kind=like_kind)
        write_array(temps[paths["reference"]], values.astype(np.float32), like=like,
                    kind=output_kind, nodata=float("nan"), tags=tags, overwrite=True,
                    sidecar=False)
        if paths["reference"].lower().endswith(".npy"):
            # What a GeoTIFF's band description says: the kind, read back by train and run.
            from sardespeckle.io.npy import sidecar_path, sidecar_record

            sidecar = sidecar_path(paths["reference"])
            temps[sidecar] = temporary_path(sidecar)
            _write_json(temps[sidecar], sidecar_record(
                paths["reference"], shape=values.shape, dtype=np.float32, kind=output_kind,
                tags=provenance_tags(tags)))
        write_array(temps[paths["count"]], result.dates_used, like=like,
                    description="dates used in the reference", tags=tags, overwrite=True,
                    sidecar=False)
        _write_layers(temps[paths["changes"]], _change_codes(result), like_path=like_path,
                      overwrite=True, tags=provenance_tags(tags))
        _write_json(temps[paths["report"]], report)
        _publish_together(temps, overwrite=overwrite)
    finally:
        if like is not None:
            like.close()
        for temp in temps.values():  # left only when something failed
            remove_if_exists(temp)
    return report


def _check_outputs(
    paths: dict[str, str], *, inputs: Sequence[str | os.PathLike] = (), overwrite: bool = False
) -> None:
    """Refuse, before any work, a set of outputs (:func:`side_paths`) that cannot all be written.

    Raises
    ------
    UsageError
        An unsupported extension, a missing folder, a folder in place of one of the files, or an
        output that is one of ``inputs``.
    OutputExistsError
        One of the files exists and ``overwrite`` is false.
    """
    from sardespeckle.errors import OutputExistsError
    from sardespeckle.io.base import check_output_path

    inputs = tuple(os.fspath(path) for path in inputs)
    for key in ("reference", "count", "changes"):
        check_output_path(paths[key], inputs=inputs, overwrite=overwrite)
    report = paths["report"]  # same folder as the reference, checked above
    if os.path.isdir(report):
        raise UsageError(f"expected an output file for the report, got the folder {report}")
    if os.path.lexists(report) and not overwrite:
        raise OutputExistsError(f"output {report} exists; {OVERWRITE_HINT}")
    if paths["reference"].lower().endswith(".npy"):
        from sardespeckle.io.npy import check_sidecar

        check_sidecar(paths["reference"], overwrite=overwrite)


def _publish_together(temps: dict[str, str], *, overwrite: bool) -> None:
    """Rename each temporary file onto its output (``{output: temp}``): all of them or none.

    Outputs being replaced are first moved aside (under a hidden name next to them), and put
    back if anything fails or is interrupted before the end; an old output is never deleted
    before every new one is in place.
    """
    from sardespeckle.io.base import hidden_sibling, publish

    aside: dict[str, str] = {}  # output -> the hidden name its previous file is moved to
    published: list[str] = []
    try:
        for path, temp in temps.items():
            if overwrite and os.path.lexists(path):
                # Recorded before the move: the restore below looks at what is there.
                aside[path] = hidden_sibling(path, label="previous")
                os.replace(path, aside[path])
            publish(temp, path, overwrite=overwrite)
            published.append(path)
    except BaseException:
        for path in published:
            if path not in aside:  # those are replaced by their previous file below
                with contextlib.suppress(OSError):
                    remove_if_exists(path)
        for path, previous in aside.items():
            if os.path.lexists(previous):  # moved: put it back over whatever is there
                with contextlib.suppress(OSError):
                    os.replace(previous, path)
        raise
    for previous in aside.values():
        with contextlib.suppress(OSError):
            remove_if_exists(previous)
    # the old files an earlier build killed while replacing these outputs left: the set is
    # whole again, they are nobody's
    from sardespeckle.io.base import hidden_leftovers

    for previous in hidden_leftovers(list(temps), "previous"):
        with contextlib.suppress(OSError):
            remove_if_exists(previous)


def _write_json(path: str, data: dict[str, Any]) -> None:
    """The report as JSON into ``path`` (a temporary file of :func:`write_reference`)."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=False, default=str)
        handle.write("\n")


def _distinct_dates(paths: Sequence[str | os.PathLike], method: str) -> list[str]:
    """The dates as strings, refusing a file given twice and too few dates for ``method``."""
    paths = [os.fspath(path) for path in paths]
    missing = [path for path in paths if not os.path.exists(path)]
    if missing:  # said first: a count of dates that do not exist would mislead
        raise InputFileError(f"no such file: {missing[0]}"
                             + (f" (and {len(missing) - 1} other date(s))" if len(missing) > 1
                                else ""))
    repeated = repeated_file(paths)  # an unreadable file: load_stack says so
    if repeated is not None:
        first, again = repeated
        raise UsageError(
            f"expected distinct dates, got the same file twice: {paths[first]} (date "
            f"{first + 1}) and {paths[again]} (date {again + 1}); a repeated date would count "
            "twice in the reference and vouch for itself in the change test"
        )
    check_date_count(len(paths), method, distinct=True)
    return paths


def check_date_count(count: int, method: str, *, distinct: bool = False) -> None:
    """UsageError unless ``count`` dates are enough for ``method``: 2, and 3 for the
    change-aware test (with 2, each date is the other's only witness)."""
    dates = "distinct dates" if distinct else "dates"
    if count < 2:
        raise UsageError(
            f"expected at least 2 {dates} (3 for the change-aware method), got "
            f"{count}: a reference averages dates, one date is just itself with its speckle"
        )
    if method == "change-aware" and count < 3:
        raise UsageError(
            f"expected at least 3 {dates} for the change-aware method, got {count}: "
            "when 2 dates disagree the test cannot tell which one changed (each is the other's "
            "only witness); add dates, or average 2 dates with method='mean' (--method mean)"
        )


def _warn_interrupted_replacement(paths: Mapping[str, str]) -> None:
    """A warning when a build killed outright while replacing these outputs left the old
    files it had moved aside (``.NAME.<hex>.previous.EXT``): the outputs may then mix the old
    set and the new one; the next complete build (``--overwrite``) removes those files."""
    from sardespeckle.io.base import hidden_leftovers

    leftovers = hidden_leftovers(list(paths.values()), "previous")
    if leftovers:
        warnings.warn(
            f"an earlier build was killed while replacing {paths['reference']} and its side "
            f"files: they may mix the old set and the new one (the old files it had moved "
            f"aside are still there: {', '.join(os.path.basename(p) for p in leftovers)}); "
            "rebuild with overwrite=True (CLI --overwrite) to make them one set again",
            UserWarning, stacklevel=3)


def _remove_stale_partials(paths: Mapping[str, str]) -> None:
    """The hidden partial files a build killed outright left beside these outputs (and the
    sidecar of a ``.npy`` reference) go: this build writes its own."""
    from sardespeckle.io.base import remove_stale_partials
    from sardespeckle.io.npy import sidecar_path

    outputs = list(paths.values())
    if paths["reference"].lower().endswith(".npy"):
        outputs.append(sidecar_path(paths["reference"]))
    remove_stale_partials(outputs)


def _check_stack_content(stack: Stack, method: str) -> None:
    """UsageError for dates whose pixels are identical (one file copied under two names: it
    would vouch for itself in the change test), and for too few dates with valid pixels for
    ``method`` (the empty ones were warned about when read)."""
    import hashlib

    seen: dict[bytes, int] = {}
    for index, (layer, valid) in enumerate(zip(stack.intensity, stack.valid)):
        if not valid.any():
            continue
        digest = hashlib.blake2b(np.where(valid, layer, 0).tobytes() + valid.tobytes(),
                                 digest_size=16).digest()
        if digest in seen:
            first = seen[digest]
            raise UsageError(
                f"expected distinct dates, got identical pixels in {stack.paths[first]} (date "
                f"{first + 1}) and {stack.paths[index]} (date {index + 1}): one date copied "
                "under two names would count twice and vouch for itself in the change test")
        seen[digest] = index
    needed = 3 if method == "change-aware" else 2
    if len(seen) < needed:
        raise UsageError(
            f"expected at least {needed} dates with valid pixels for the {method} method, got "
            f"{len(seen)} of {len(stack.paths)} (the others are all nodata); add dates"
            + (", or average 2 dates with method='mean' (CLI --method mean)"
               if method == "change-aware" and len(seen) == 2 else ""))


def build_reference_files(
    paths: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    looks: float | None,
    kind: str | None = None,
    output_kind: str = "intensity",
    overwrite: bool = False,
    png_threshold: float | None = None,
    method: str = "change-aware",
    false_alarm: float = 1e-3,
    max_iterations: int = 10,
    window_size: int = 3,
    window_looks: float | str | None = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Build the reference of co-registered files and write it with its side files and report.

    Parameters
    ----------
    paths : sequence of path-like
        One file per date (:func:`load_stack`): at least 2 distinct files, 3 for the change-aware
        method (with 2, a disagreement cannot be attributed to either date).
    output : path-like
        The reference, ``.tif``/``.tiff`` or ``.npy`` (see :func:`write_reference` for the side
        files written beside it).
    looks : float or None, keyword-only
        Looks of each date; ``None`` estimates it from the date-to-date fluctuation
        (:func:`estimate_temporal_looks` at ``window_size``, which also absorbs spatially
        correlated speckle) and says so in the report.
    kind, png_threshold : keyword-only
        As for :func:`load_stack`.
    output_kind : {"intensity", "amplitude"}, keyword-only
    overwrite : bool, keyword-only
    window_looks : float, "auto" or None, keyword-only
        Looks of a ``k × k`` window mean (:func:`build_reference`). ``"auto"`` (default)
        measures it on the stack (:func:`estimate_temporal_looks`), which accounts for spatially
        correlated speckle and texture; ``None`` assumes white speckle (``k² L``).
    method, false_alarm, max_iterations, window_size, progress : keyword-only
        As for :func:`build_reference`.

    Returns
    -------
    dict
        The report (also written as ``<out>.json``).

    Raises
    ------
    UsageError
        Fewer than 2 distinct dates (3 for ``method="change-aware"``), a file given twice, a
        ``window_size`` larger than the images, or outputs that cannot be written (checked
        before anything is read: see :func:`write_reference`).
    InputFileError
        A date that does not exist (said before the count of dates) or cannot be read.
    OutputExistsError
        An output exists and ``overwrite`` is false.
    """
    if output_kind not in ("intensity", "amplitude"):
        raise UsageError(f"expected output kind 'intensity' or 'amplitude', got {output_kind!r}")
    if method not in METHODS:
        raise UsageError(f"expected method to be one of {METHODS}, got {method!r}")
    paths = _distinct_dates(paths, method)
    _warn_interrupted_replacement(side_paths(output))
    _check_outputs(side_paths(output), inputs=paths, overwrite=overwrite)
    _remove_stale_partials(side_paths(output))
    stack = load_stack(paths, kind=kind, png_threshold=png_threshold)
    _check_stack_content(stack, method)
    rows, cols = stack.intensity.shape[1:]
    if (isinstance(window_size, numbers.Integral) and not isinstance(window_size, bool)
            and window_size > min(rows, cols)):
        raise UsageError(
            f"expected window_size (--window-size) of at most {min(rows, cols)}, the smaller "
            f"side of the {rows}×{cols} dates, got {window_size}; a larger window averages the "
            "whole image at every pixel (typical values: 1 to 7)"
        )
    try:
        estimated = estimate_temporal_looks(stack.intensity, valid=stack.valid)
    except InvalidInputError:
        if looks is None:
            raise
        estimated = math.nan  # too few pixels to check the looks given: they are used as is
    looks_source = "given"
    if looks is None:
        looks = estimated
        looks_source = "estimated from the date-to-date fluctuation of single pixels"
    _warn_implausible_looks(estimated, looks if looks_source == "given" else None, stack.kinds)
    window_looks_source = "given"
    if isinstance(window_looks, str):
        if window_looks != "auto":
            raise UsageError(f"expected window_looks 'auto', None or a number, got "
                             f"{window_looks!r}")
        if len(stack.paths) > 1 and window_size > 1 and method == "change-aware":
            window_looks = estimate_temporal_looks(stack.intensity, valid=stack.valid,
                                                   window_size=window_size)
            window_looks_source = "estimated from the date-to-date fluctuation of window means"
        else:
            window_looks, window_looks_source = None, "window_size**2 * looks"
    elif window_looks is None:
        window_looks_source = "window_size**2 * looks (white speckle)"
    result = build_reference(
        stack.intensity, looks=looks, kind="intensity", method=method, false_alarm=false_alarm,
        max_iterations=max_iterations, window_size=window_size, window_looks=window_looks,
        valid=stack.valid, progress=progress,
    )
    # The stack is handed over as intensity; the report names what the files held.
    kinds = sorted(set(stack.kinds))
    extra = {"inputs": stack.paths, "input_kind": kinds[0] if len(kinds) == 1 else "mixed",
             "input_kinds": stack.kinds, "looks_source": looks_source,
             "window_looks_source": window_looks_source}
    if png_threshold is not None:
        extra["png_threshold"] = float(png_threshold)
    if np.isfinite(estimated):
        extra["estimated_looks"] = round(float(estimated), 4)
    from sardespeckle.io.grid import georeferencing_source

    like = georeferencing_source(stack.paths, what="dates")
    return write_reference(result, output, output_kind=output_kind,
                           like_path=stack.paths[like], like_kind=stack.kinds[like],
                           overwrite=overwrite, extra_report=extra)
