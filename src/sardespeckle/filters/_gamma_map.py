"""Gamma maximum a posteriori (Gamma-MAP) filter."""

from __future__ import annotations

import numpy as np

from sardespeckle.filters._local import (
    check_intensity,
    check_looks,
    check_window_size,
    local_moments,
    squared_variation,
    to_output,
)


def gamma_map(intensity: np.ndarray, *, window_size: int = 3, looks: float = 1.0) -> np.ndarray:
    r"""Gamma-MAP speckle filter of Lopes, Nezry, Touzi and Laur (SNAP "Gamma Map").

    Parameters
    ----------
    intensity : ndarray, shape (rows, cols)
        Intensity image, real floating point, finite and strictly positive.
    window_size : int, default 3
        Side of the square window, odd and >= 3 (SNAP ``filterSizeX`` / ``filterSizeY``,
        default 3).
    looks : float, default 1.0
        Equivalent number of looks L of the speckle (SNAP ``enl``).

    Returns
    -------
    ndarray, shape (rows, cols), float32
        Filtered intensity.

    Notes
    -----
    The reflectivity is given a Gamma prior of mean :math:`\bar I` and order
    :math:`\alpha = (1 + C_u^2) / (C_i^2 - C_u^2)`; the speckle is Gamma of order L. The MAP
    estimate is the positive root of
    :math:`\alpha \hat R^2 - (\alpha - L - 1)\,\bar I\,\hat R - L\,\bar I\,I = 0`:

    .. math::

        \hat R = \begin{cases}
            \bar I & C_i \le C_u\\
            \dfrac{(\alpha - L - 1)\,\bar I
                   + \sqrt{\bar I^2 (\alpha - L - 1)^2 + 4 \alpha L\, \bar I\, I}}{2 \alpha}
                & C_u < C_i < C_{max}\\
            I & C_i \ge C_{max}
        \end{cases}

    with :math:`C_u = 1/\sqrt{L}` and :math:`C_{max} = \sqrt{2}\, C_u`, the threshold of the
    Gamma-MAP papers and of SNAP (the enhanced Lee filter uses :math:`\sqrt{1 + 2/L}`
    instead). With this threshold :math:`\alpha > L + 1` in the middle class, so the root is
    computed without cancellation. Support radius: ``window_size // 2``.

    References
    ----------
    .. [1] A. Lopes, E. Nezry, R. Touzi, H. Laur, "Maximum a posteriori speckle filtering and
       first order texture models in SAR images", Proc. IGARSS 1990, 2409-2412.
    .. [2] A. Lopes, E. Nezry, R. Touzi, H. Laur, "Structure detection and statistical
       adaptive speckle filtering in SAR images", Int. J. Remote Sens., 14(9), 1735-1758, 1993.

    Examples
    --------
    >>> import numpy as np
    >>> from sardespeckle.filters import gamma_map
    >>> gamma_map(np.full((5, 5), 3.0))[2, 2]
    np.float32(3.0)
    """
    image = check_intensity(intensity)
    size = check_window_size(window_size)
    n_looks = check_looks(looks)
    c_u2 = 1.0 / n_looks
    c_max2 = 2.0 * c_u2
    mean, variance = local_moments(image, size)
    c_i2 = squared_variation(mean, variance)
    textured = (c_i2 > c_u2) & (c_i2 < c_max2)
    # Outside the textured class the root is overridden below; keep alpha finite there.
    alpha = (1.0 + c_u2) / (np.where(textured, c_i2, c_max2) - c_u2)
    linear = (alpha - n_looks - 1.0) * mean
    discriminant = linear * linear + 4.0 * alpha * n_looks * mean * image
    root = (linear + np.sqrt(discriminant)) / (2.0 * alpha)
    estimate = np.where(c_i2 <= c_u2, mean, np.where(textured, root, image))
    return to_output(estimate)

