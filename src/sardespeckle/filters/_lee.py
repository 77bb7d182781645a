"""Local-statistics filters of the Lee family: Lee, Kuan and enhanced Lee.

All three estimate the reflectivity as a mix of the local mean and the observed pixel, the mix
being driven by the local coefficient of variation Ci = std / mean over the window compared with
the speckle's Cu = 1 / sqrt(looks).
"""

from __future__ import annotations

import math

import numpy as np

from sardespeckle.filters._local import (
    check_intensity,
    check_looks,
    check_positive,
    check_window_size,
    local_moments,
    mmse,
    squared_variation,
    to_output,
)


def lee(intensity: np.ndarray, *, window_size: int = 3, looks: float = 1.0) -> np.ndarray:
    r"""Lee's local-statistics (linearised MMSE) speckle filter (SNAP "Lee").

    Parameters
    ----------
    intensity : ndarray, shape (rows, cols)
        Intensity image, real floating point, finite and strictly positive.
    window_size : int, default 3
        Side of the square window, odd and >= 3 (SNAP ``filterSizeX`` / ``filterSizeY``,
        default 3).
    looks : float, default 1.0
        Equivalent number of looks L of the speckle (SNAP ``enl``; SNAP can also estimate it,
        here the caller provides it).

    Returns
    -------
    ndarray, shape (rows, cols), float32
        Filtered intensity.

    Notes
    -----
    With :math:`\bar I` and :math:`\sigma_I^2` the mean and (population) variance of the
    intensity in the window, :math:`C_i^2 = \sigma_I^2 / \bar I^2` and
    :math:`C_u^2 = 1 / L`,

    .. math::

        \hat R = \bar I + k\,(I - \bar I), \qquad
        k = \operatorname{clip}\!\left(1 - \frac{C_u^2}{C_i^2},\ 0,\ 1\right).

    This is Lee's first-order (linearised) approximation of the MMSE estimator for
    multiplicative noise, :math:`k = \sigma_R^2 / \sigma_I^2` with
    :math:`\sigma_R^2 \approx \sigma_I^2 - \bar I^2 C_u^2`. Homogeneous areas
    (:math:`C_i \le C_u`) get the local mean; strongly heterogeneous ones keep the pixel.
    See :func:`kuan` for the exact linear MMSE. Support radius: ``window_size // 2``.

    References
    ----------
    .. [1] J.-S. Lee, "Digital image enhancement and noise filtering by use of local
       statistics", IEEE Trans. Pattern Anal. Mach. Intell., PAMI-2(2), 165-168, 1980.

    Examples
    --------
    >>> import numpy as np
    >>> from sardespeckle.filters import lee
    >>> lee(np.full((5, 5), 3.0), looks=1.0)[2, 2]
    np.float32(3.0)
    """
    image = check_intensity(intensity)
    size = check_window_size(window_size)
    noise_variation2 = 1.0 / check_looks(looks)
    mean, variance = local_moments(image, size)
    gain = 1.0 - np.divide(
        mean * mean * noise_variation2, variance, out=np.ones_like(variance), where=variance > 0
    )
    np.clip(gain, 0.0, 1.0, out=gain)
    return to_output(mean + gain * (image - mean))


def kuan(intensity: np.ndarray, *, window_size: int = 7, looks: float = 1.0) -> np.ndarray:
    r"""Kuan's linear MMSE speckle filter.

    Parameters
    ----------
    intensity : ndarray, shape (rows, cols)
        Intensity image, real floating point, finite and strictly positive.
    window_size : int, default 7
        Side of the square window, odd and >= 3 (SNAP-like ``filterSizeX`` / ``filterSizeY``,
        default 7; SNAP has no Kuan filter).
    looks : float, default 1.0
        Equivalent number of looks L of the speckle (SNAP ``enl``).

    Returns
    -------
    ndarray, shape (rows, cols), float32
        Filtered intensity.

    Notes
    -----
    For :math:`I = R\,S` with :math:`E[S] = 1`, :math:`\operatorname{Var}[S] = C_u^2 = 1/L`,
    the local-statistics linear MMSE estimator is

    .. math::

        \hat R = \bar I + k\,(I - \bar I), \qquad
        k = \operatorname{clip}\!\left(\frac{1 - C_u^2 / C_i^2}{1 + C_u^2},\ 0,\ 1\right),

    i.e. :math:`k = \sigma_R^2 / \sigma_I^2` with the exact
    :math:`\sigma_R^2 = (\sigma_I^2 - \bar I^2 C_u^2) / (1 + C_u^2)`. It differs from
    :func:`lee` by the factor :math:`1 / (1 + C_u^2)`, which smooths more (it never keeps the
    pixel entirely unless :math:`C_u = 0`). Support radius: ``window_size // 2``.

    References
    ----------
    .. [1] D. T. Kuan, A. A. Sawchuk, T. C. Strand, P. Chavel, "Adaptive noise smoothing
       filter for images with signal-dependent noise", IEEE Trans. Pattern Anal. Mach.
       Intell., PAMI-7(2), 165-177, 1985.
    .. [2] D. T. Kuan, A. A. Sawchuk, T. C. Strand, P. Chavel, "Adaptive restoration of
       images with speckle", IEEE Trans. Acoust., Speech, Signal Process., 35(3), 373-383,
       1987.

    Examples
    --------
    >>> import numpy as np
    >>> from sardespeckle.filters import kuan
    >>> kuan(np.full((5, 5), 3.0), looks=4.0)[0, 0]
    np.float32(3.0)
    """
    image = check_intensity(intensity)
    size = check_window_size(window_size)
    noise_variation2 = 1.0 / check_looks(looks)
    mean, variance = local_moments(image, size)
    return to_output(mmse(image, mean, variance, noise_variation2))


def enhanced_lee(
    intensity: np.ndarray,
    *,
    window_size: int = 3,
    looks: float = 1.0,
    damping_factor: float = 1.0,
) -> np.ndarray:
    r"""Enhanced Lee filter of Lopes, Touzi and Nezry (three heterogeneity classes).

    Parameters
    ----------
    intensity : ndarray, shape (rows, cols)
        Intensity image, real floating point, finite and strictly positive.
    window_size : int, default 3
        Side of the square window, odd and >= 3 (SNAP-like ``filterSizeX`` / ``filterSizeY``,
        default 3; SNAP has no enhanced Lee filter).
    looks : float, default 1.0
        Equivalent number of looks L of the speckle (SNAP ``enl``).
    damping_factor : float, default 1.0
        Damping K > 0 of the exponential weight; larger values keep more of the pixel in
        textured areas (SNAP-like ``dampingFactor``).

    Returns
    -------
    ndarray, shape (rows, cols), float32
        Filtered intensity.

    Notes
    -----
    With :math:`C_u = 1/\sqrt{L}`, :math:`C_{max} = \sqrt{1 + 2/L}` and :math:`C_i` the local
    coefficient of variation,

    .. math::

        \hat R = \begin{cases}
            \bar I & C_i \le C_u \quad\text{(homogeneous)}\\
            \bar I\, W + I\,(1 - W) & C_u < C_i < C_{max} \quad\text{(textured)}\\
            I & C_i \ge C_{max} \quad\text{(point target)}
        \end{cases}
        \qquad W = \exp\!\left(-K \frac{C_i - C_u}{C_{max} - C_i}\right).

    Support radius: ``window_size // 2``.

    References
    ----------
    .. [1] A. Lopes, R. Touzi, E. Nezry, "Adaptive speckle filters and scene heterogeneity",
       IEEE Trans. Geosci. Remote Sens., 28(6), 992-1000, 1990.

    Examples
    --------
    >>> import numpy as np
    >>> from sardespeckle.filters import enhanced_lee
    >>> enhanced_lee(np.full((5, 5), 3.0))[4, 4]
    np.float32(3.0)
    """
    image = check_intensity(intensity)
    size = check_window_size(window_size)
    n_looks = check_looks(looks)
    damping = check_positive(damping_factor, name="damping_factor")
    c_u = 1.0 / math.sqrt(n_looks)
    c_max = math.sqrt(1.0 + 2.0 / n_looks)
    mean, variance = local_moments(image, size)
    c_i = np.sqrt(squared_variation(mean, variance))
    textured = (c_i > c_u) & (c_i < c_max)
    # Outside the textured class the value of W is overridden below; keep its argument finite.
    c_i_textured = np.where(textured, c_i, c_u)
    weight = np.exp(-damping * (c_i_textured - c_u) / (c_max - c_i_textured))
    estimate = mean * weight + image * (1.0 - weight)
    estimate = np.where(c_i <= c_u, mean, estimate)
    estimate = np.where(c_i >= c_max, image, estimate)
    return to_output(estimate)
