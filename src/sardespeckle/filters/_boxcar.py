"""Boxcar (moving average) filter."""

from __future__ import annotations

import numpy as np

from sardespeckle.filters._local import box_sum, check_intensity, check_window_size, to_output


def boxcar(intensity: np.ndarray, *, window_size: int = 3) -> np.ndarray:
    r"""Average the intensity over a square window (SNAP "Boxcar", also called "Mean").

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
    With :math:`W` the ``window_size`` x ``window_size`` window centred on the pixel,

    .. math:: \hat R = \frac{1}{|W|} \sum_{k \in W} I_k .

    It is the maximum-likelihood estimate of a constant reflectivity under Gamma speckle: on a
    homogeneous area of :math:`L`-look speckle the output ENL is close to :math:`L |W|`, but it
    blurs edges and point targets alike. The image is extended by half-sample reflection at
    its borders. Support radius (halo): ``window_size // 2``.

    References
    ----------
    .. [1] J.-S. Lee, E. Pottier, *Polarimetric Radar Imaging: From Basics to Applications*,
       CRC Press, 2009, ch. 5 (multilook averaging).

    Examples
    --------
    >>> import numpy as np
    >>> from sardespeckle.filters import boxcar
    >>> boxcar(np.full((4, 4), 2.0, dtype=np.float32)).max()
    np.float32(2.0)
    """
    image = check_intensity(intensity)
    size = check_window_size(window_size)
    return to_output(box_sum(image, size) / float(size * size))
