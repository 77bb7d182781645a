"""Shared machinery of the classical filters: input checks, local statistics, shifted views.

Every filter computes in float64 and reads only the pixels of its window, with the image
extended by half-sample reflection (``d c b a | a b c d | d c b a``, scipy's ``mode="reflect"``,
numpy's ``mode="symmetric"``). Window sums are computed by direct correlation rather than by a
running sum: each output pixel then adds the same values in the same order wherever the image
starts, so a tile that holds the whole support of a pixel gives that pixel bit for bit the value
a whole-image run gives it, and a bright target cannot leave rounding residue along a line.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
from scipy import ndimage

from sardespeckle.errors import InvalidInputError

#: Boundary handling shared by every filter (half-sample symmetric extension).
NDIMAGE_MODE = "reflect"
_NUMPY_PAD_MODE = "symmetric"  # numpy's name for scipy's "reflect"

_SMALLEST_FLOAT32 = np.nextafter(np.float32(0.0), np.float32(1.0))


def check_intensity(intensity) -> np.ndarray:
    """Return ``intensity`` as a float64 array after checking it is a 2-D real float image.

    Raises
    ------
    InvalidInputError
        If the array is not 2-D, empty, of a dtype other than float32/float64, or holds a value
        that is not finite and > 0 (filters see only valid pixels: ``sardespeckle.despeckle``
        and the tiled engine mask NaN, zeros and nodata and fill them before filtering).
    """
    array = np.asarray(intensity)
    if array.ndim != 2:
        raise InvalidInputError(
            f"expected (rows, cols) intensity image, got an array of shape {array.shape}; "
            "hint: filter each band or each image of a stack separately"
        )
    if not np.issubdtype(array.dtype, np.floating) or array.dtype.itemsize < 4:
        raise InvalidInputError(
            "expected (rows, cols) intensity image of dtype float32 or float64, "
            f"got {array.dtype}; "
            "hint: convert complex data to intensity (|z|**2) and integers with .astype(np.float32)"
        )
    if array.size == 0:
        raise InvalidInputError(f"expected a non-empty intensity image, got shape {array.shape}")
    array = array.astype(np.float64, copy=False)
    if not np.all(np.isfinite(array) & (array > 0)):
        bad = int(np.count_nonzero(~(np.isfinite(array) & (array > 0))))
        raise InvalidInputError(
            f"expected finite intensities > 0, got {bad} pixel(s) NaN, infinite, zero or "
            "negative; hint: sardespeckle.despeckle(...) masks such pixels (nodata) and keeps "
            "them out of their neighbours' estimates"
        )
    return array


def check_window_size(window_size, *, name: str = "window_size", minimum: int = 3) -> int:
    """Return ``window_size`` as an int after checking it is odd and at least ``minimum``."""
    if isinstance(window_size, bool) or not isinstance(window_size, Integral):
        raise InvalidInputError(f"expected an odd integer {name} >= {minimum}, got {window_size!r}")
    size = int(window_size)
    if size < minimum or size % 2 == 0:
        raise InvalidInputError(f"expected an odd integer {name} >= {minimum}, got {size}")
    return size


def check_positive(value, *, name: str) -> float:
    """Return ``value`` as a float after checking it is a finite number > 0."""
    is_number = isinstance(value, Real) and not isinstance(value, bool)
    if not is_number or not math.isfinite(value) or value <= 0:
        raise InvalidInputError(f"expected a finite {name} > 0, got {value!r}")
    return float(value)


def check_looks(looks) -> float:
    """Return the number of looks as a float after checking it is finite and > 0."""
    return check_positive(looks, name="looks (equivalent number of looks)")


def box_sum(image: np.ndarray, size: int) -> np.ndarray:
    """Sum of ``image`` over the ``size`` x ``size`` window centred on each pixel."""
    ones = np.ones(size)
    rows = ndimage.correlate1d(image, ones, axis=0, mode=NDIMAGE_MODE)
    return ndimage.correlate1d(rows, ones, axis=1, mode=NDIMAGE_MODE)


def local_moments(image: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population variance of ``image`` over the square window of side ``size``."""
    count = float(size * size)
    mean = box_sum(image, size) / count
    mean_square = box_sum(image * image, size) / count
    return mean, np.maximum(mean_square - mean * mean, 0.0)


def squared_variation(mean: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """Squared coefficient of variation Ci² = var / mean² (0 where the mean is 0)."""
    mean_square = mean * mean
    return np.divide(variance, mean_square, out=np.zeros_like(variance), where=mean_square > 0)


def pad(image: np.ndarray, radius: int) -> np.ndarray:
    """Extend ``image`` by ``radius`` pixels on every side with the filters' reflection."""
    return np.pad(image, radius, mode=_NUMPY_PAD_MODE)


def shifted(
    padded: np.ndarray, radius: int, shape: tuple[int, int], d_row: int, d_col: int
) -> np.ndarray:
    """View of the padded image such that ``view[i, j] == image[i + d_row, j + d_col]``."""
    rows, cols = shape
    top = radius + d_row
    left = radius + d_col
    return padded[top : top + rows, left : left + cols]


def mmse(
    centre: np.ndarray, mean: np.ndarray, variance: np.ndarray, noise_variation2: float
) -> np.ndarray:
    """Multiplicative-noise MMSE estimate ``mean + b (centre − mean)`` (Lee 1981, Kuan 1985).

    ``b = var_x / var_z`` with ``var_x = (var_z − mean² σv²) / (1 + σv²)``, clipped to
    [0, 1]; ``noise_variation2`` is σv², the squared coefficient of variation of the speckle.
    """
    signal_variance = (variance - mean * mean * noise_variation2) / (1.0 + noise_variation2)
    weight = np.divide(signal_variance, variance, out=np.zeros_like(variance), where=variance > 0)
    np.clip(weight, 0.0, 1.0, out=weight)
    return mean + weight * (centre - mean)


def to_output(estimate: np.ndarray) -> np.ndarray:
    """Cast a float64 estimate to the float32 output, keeping it strictly positive.

    Every filter's estimate is positive for positive input (a convex combination of
    intensities, or Gamma-MAP's positive root); the floor only guards against float32
    underflow of subnormal values.
    """
    out = estimate.astype(np.float32)
    np.maximum(out, _SMALLEST_FLOAT32, out=out)
    return out
