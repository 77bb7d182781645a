"""Median filter."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from sardespeckle.filters._local import NDIMAGE_MODE, check_intensity, check_window_size, to_output


def median(intensity: np.ndarray, *, window_size: int = 3) -> np.ndarray:
    r"""Take the median of the intensity over a square window (SNAP "Median").

    Parameters
    ----------
    intensity : ndarray, shape (rows, cols)
        Intensity image, real floating point, finite and strictly positive.
    window_size : int, default 3
        Side of the square window, odd and >= 3 (SNAP ``filterSizeX`` / ``filterSizeY``,
        default 3).

    Returns
    -------
    ndarray, shape (rows, cols), float32
        Filtered intensity.

    Notes
    -----
    .. math:: \hat R = \operatorname{median}\{I_k,\ k \in W\}

    The median keeps step edges of noise-free images but is **biased** on speckle, whose
    distribution is skewed: for single-look intensity the median of Exp(R) is R ln 2, and the
    mean of the median of :math:`n = 2m + 1` independent Exp(R) samples is
    :math:`R \sum_{i=m+1}^{n} 1/i` (0.746 R for a 3 x 3 window, 0.703 R for 7 x 7).
    Use it on intensity only when that bias is acceptable. Support radius: ``window_size // 2``.

    References
    ----------
    .. [1] J. W. Tukey, *Exploratory Data Analysis*, Addison-Wesley, 1977 (running medians).

    Examples
    --------
    >>> import numpy as np
    >>> from sardespeckle.filters import median
    >>> median(np.array([[1.0, 1.0, 1.0], [1.0, 9.0, 1.0], [1.0, 1.0, 1.0]]))[1, 1]
    np.float32(1.0)
    """
    image = check_intensity(intensity)
    size = check_window_size(window_size)
    # Selection needs no arithmetic: float64 changes nothing but keeps one code path.
    return to_output(ndimage.median_filter(image, size=size, mode=NDIMAGE_MODE))
