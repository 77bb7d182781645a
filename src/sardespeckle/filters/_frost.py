"""Frost's adaptive exponential-kernel filter."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from sardespeckle.filters._local import (
    check_intensity,
    check_positive,
    check_window_size,
    local_moments,
    pad,
    shifted,
    squared_variation,
    to_output,
)


def frost(
    intensity: np.ndarray, *, window_size: int = 3, damping_factor: float = 2.0
) -> np.ndarray:
    r"""Frost's adaptive filter with an exponentially decaying kernel (SNAP "Frost").

    Parameters
    ----------
    intensity : ndarray, shape (rows, cols)
        Intensity image, real floating point, finite and strictly positive.
    window_size : int, default 3
        Side of the square window, odd and >= 3 (SNAP ``filterSizeX`` / ``filterSizeY``,
        default 3).
    damping_factor : float, default 2.0
        Damping K > 0 (SNAP ``dampingFactor``, default 2): the larger, the faster the kernel
        decays where the scene is heterogeneous, so the more edges are kept.

    Returns
    -------
    ndarray, shape (rows, cols), float32
        Filtered intensity.

    Notes
    -----
    With :math:`C_i^2 = \sigma_I^2 / \bar I^2` the squared coefficient of variation of the
    window centred on the pixel and :math:`|d_k|` the Euclidean distance (pixels) from the
    centre to pixel :math:`k` of the window,

    .. math::

        \hat R = \frac{\sum_{k \in W} m_k I_k}{\sum_{k \in W} m_k}, \qquad
        m_k = \exp\!\left(-K\, C_i^2\, |d_k|\right).

    Homogeneous areas (:math:`C_i^2` small) get an almost flat kernel, i.e. the local mean;
    heterogeneous areas get a kernel concentrated on the centre pixel. The looks do not enter
    the filter. The sum runs over the window offsets, grouped by distance so that each
    distinct weight is computed once. Support radius: ``window_size // 2``.

    References
    ----------
    .. [1] V. S. Frost, J. A. Stiles, K. S. Shanmugan, J. C. Holtzman, "A model for radar
       images and its application to adaptive digital filtering of multiplicative noise",
       IEEE Trans. Pattern Anal. Mach. Intell., PAMI-4(2), 157-166, 1982.

    Examples
    --------
    >>> import numpy as np
    >>> from sardespeckle.filters import frost
    >>> frost(np.full((5, 5), 3.0))[2, 2]
    np.float32(3.0)
    """
    image = check_intensity(intensity)
    size = check_window_size(window_size)
    damping = check_positive(damping_factor, name="damping_factor")
    radius = size // 2
    mean, variance = local_moments(image, size)
    decay = damping * squared_variation(mean, variance)

    offsets_by_distance: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for d_row in range(-radius, radius + 1):
        for d_col in range(-radius, radius + 1):
            offsets_by_distance[d_row * d_row + d_col * d_col].append((d_row, d_col))

    padded = pad(image, radius)
    numerator = image.copy()  # the centre pixel has weight exp(0) = 1
    denominator = np.ones_like(image)
    for distance2 in sorted(offsets_by_distance):
        if distance2 == 0:
            continue
        ring = np.zeros_like(image)
        for d_row, d_col in offsets_by_distance[distance2]:
            ring += shifted(padded, radius, image.shape, d_row, d_col)
        weight = np.exp(-decay * math.sqrt(distance2))
        numerator += weight * ring
        denominator += weight * len(offsets_by_distance[distance2])
    return to_output(numerator / denominator)
