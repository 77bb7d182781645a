"""Fields of Hermitian matrices: eigen-calculus, the real-channel embedding, Wishart simulation.

A *field* is an array of shape ``(..., D, D)`` whose last two axes hold one Hermitian matrix per
pixel, e.g. ``(rows, cols, D, D)`` complex covariance matrices. Everything here is vectorised
over the leading axes with :func:`numpy.linalg.eigh`.
"""

from __future__ import annotations

import math

import numpy as np

from sardespeckle.errors import InvalidInputError

__all__ = [
    "channel_count",
    "channel_basis",
    "to_channels",
    "from_channels",
    "hermitian_part",
    "matrix_log",
    "matrix_exp",
    "exp_divided_differences",
    "exp_second_divided_differences",
    "condition_field",
    "simulate_wishart",
]


def channel_count(size: int) -> int:
    """Number of real channels ``D²`` of a ``D × D`` Hermitian matrix."""
    return size * size


def _off_diagonal_pairs(size: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(size) for j in range(i + 1, size)]


def to_channels(field: np.ndarray) -> np.ndarray:
    """Map Hermitian matrices ``(..., D, D)`` to ``D²`` real channels ``(..., D²)``.

    Notes
    -----
    The channels are, in this order: the ``D`` real diagonal entries, then for each upper
    off-diagonal entry ``(i, j)`` (row-major, ``i < j``) the pair ``√2·Re X_ij, √2·Im X_ij``.
    The map is an isometry from Hermitian matrices with the Frobenius inner product
    ``⟨A, B⟩ = Re tr(Aᴴ B)`` onto ``ℝ^{D²}``: ``‖X‖_F = ‖to_channels(X)‖₂``. It is therefore
    unitary, and a gradient with respect to ``X`` maps to the gradient with respect to the
    channels by the same map.
    """
    size = field.shape[-1]
    parts = [field[..., k, k].real for k in range(size)]
    root2 = math.sqrt(2.0)
    for i, j in _off_diagonal_pairs(size):
        parts.append(root2 * field[..., i, j].real)
        parts.append(root2 * field[..., i, j].imag)
    return np.stack(parts, axis=-1)


def from_channels(channels: np.ndarray, size: int) -> np.ndarray:
    """Inverse of :func:`to_channels`: ``(..., D²)`` real → ``(..., D, D)`` complex Hermitian."""
    if channels.shape[-1] != channel_count(size):
        raise InvalidInputError(
            f"expected {channel_count(size)} channels for {size}×{size} matrices, "
            f"got {channels.shape[-1]}"
        )
    field = np.zeros(channels.shape[:-1] + (size, size), dtype=np.complex128)
    for k in range(size):
        field[..., k, k] = channels[..., k]
    inv_root2 = 1.0 / math.sqrt(2.0)
    for n, (i, j) in enumerate(_off_diagonal_pairs(size)):
        value = (channels[..., size + 2 * n] + 1j * channels[..., size + 2 * n + 1]) * inv_root2
        field[..., i, j] = value
        field[..., j, i] = np.conj(value)
    return field


def channel_basis(size: int) -> np.ndarray:
    """The Hermitian matrices ``E_a`` (``(D², D, D)``) with ``X = Σ_a to_channels(X)_a · E_a``.

    They are orthonormal for ``⟨A, B⟩ = Re tr(Aᴴ B)``.
    """
    return from_channels(np.eye(channel_count(size)), size)


def hermitian_part(field: np.ndarray) -> np.ndarray:
    """``(X + Xᴴ) / 2`` over the last two axes."""
    return 0.5 * (field + np.conj(np.swapaxes(field, -1, -2)))


def _recompose(eigenvalues: np.ndarray, eigenvectors: np.ndarray) -> np.ndarray:
    """``U diag(w) Uᴴ`` for stacks of eigenpairs."""
    out = (eigenvectors * eigenvalues[..., None, :]) @ np.conj(np.swapaxes(eigenvectors, -1, -2))
    return hermitian_part(out)


def matrix_log(field: np.ndarray) -> np.ndarray:
    """Matrix logarithm of Hermitian positive definite matrices ``(..., D, D)``."""
    eigenvalues, eigenvectors = np.linalg.eigh(field)
    if np.any(eigenvalues <= 0):
        raise InvalidInputError(
            "expected positive definite matrices, got a non-positive eigenvalue; "
            "condition the field first (condition_field)"
        )
    return _recompose(np.log(eigenvalues), eigenvectors)


def matrix_exp(field: np.ndarray) -> np.ndarray:
    """Matrix exponential of Hermitian matrices ``(..., D, D)`` (Hermitian positive definite)."""
    eigenvalues, eigenvectors = np.linalg.eigh(field)
    return _recompose(np.exp(eigenvalues), eigenvectors)


def exp_divided_differences(values: np.ndarray) -> np.ndarray:
    """First divided differences of ``exp``: ``(..., D)`` → ``(..., D, D)``.

    Entry ``[i, j]`` is ``(e^{a_i} − e^{a_j}) / (a_i − a_j)``, and ``e^{a_i}`` on ties.

    Notes
    -----
    With ``a ≤ b`` and ``δ = b − a``, ``exp[a, b] = e^b · (−expm1(−δ)) / δ``: no cancellation
    for close values and no overflow beyond that of ``e^b`` itself.
    """
    a = values[..., :, None]
    b = values[..., None, :]
    high = np.maximum(a, b)
    delta = np.abs(a - b)
    small = delta < 1e-12
    safe = np.where(small, 1.0, delta)
    ratio = np.where(small, 1.0 - 0.5 * delta, -np.expm1(-safe) / safe)
    return np.exp(high) * ratio


def exp_second_divided_differences(values: np.ndarray) -> np.ndarray:
    """Second divided differences of ``exp``: ``(..., D)`` → ``(..., D, D, D)``.

    Entry ``[i, j, k]`` is ``exp[a_i, a_j, a_k]``, symmetric in its three indices, equal to
    ``e^a / 2`` when the three values coincide.

    Notes
    -----
    With the three values sorted, ``p ≤ q ≤ r``:
    ``exp[p, q, r] = (exp[q, r] − exp[p, q]) / (r − p)`` when ``r − p > 10⁻²``. Closer values
    would cancel, and the Hermite–Genocchi formula
    ``exp[x₀, x₁, x₂] = ∫_Δ exp(Σ tᵢ xᵢ) dt`` (``Δ`` the 2-simplex, area ½) expanded around the
    mean ``m`` with ``dᵢ = xᵢ − m`` (``Σ dᵢ = 0``) gives, from the Dirichlet moments
    ``∫tᵢ² = 1/12``, ``∫tᵢtⱼ = 1/24``, ``∫t₀t₁t₂ = 1/120``,

    .. math:: \\exp[x_0, x_1, x_2] = e^m \\Big(\\tfrac12 + \\tfrac{1}{48}\\sum d_i^2
              + \\tfrac{1}{120} d_0 d_1 d_2 + O(d^4)\\Big),

    whose truncation error is below 10⁻¹⁰ relative at that threshold.
    """
    size = values.shape[-1]
    shape = values.shape[:-1] + (size, size, size)
    x0 = np.broadcast_to(values[..., :, None, None], shape)
    x1 = np.broadcast_to(values[..., None, :, None], shape)
    x2 = np.broadcast_to(values[..., None, None, :], shape)
    stacked = np.sort(np.stack([x0, x1, x2], axis=-1), axis=-1)
    p, q, r = stacked[..., 0], stacked[..., 1], stacked[..., 2]
    spread = r - p
    far = spread > 1e-2

    def first(lo, hi):
        delta = hi - lo
        small = delta < 1e-12
        safe = np.where(small, 1.0, delta)
        return np.exp(hi) * np.where(small, 1.0 - 0.5 * delta, -np.expm1(-safe) / safe)

    direct = (first(q, r) - first(p, q)) / np.where(far, spread, 1.0)
    mean = (p + q + r) / 3.0
    d0, d1, d2 = p - mean, q - mean, r - mean
    series = np.exp(mean) * (0.5 + (d0 * d0 + d1 * d1 + d2 * d2) / 48.0 + d0 * d1 * d2 / 120.0)
    return np.where(far, direct, series)


def condition_field(field: np.ndarray, *, min_inverse_condition: float = 1e-4) -> np.ndarray:
    """Raise the smallest eigenvalues so that ``λ_min / λ_max ≥ min_inverse_condition``.

    Matrices whose largest eigenvalue is not positive are not handled here (the caller's
    safeguard on the diagonal makes it positive).
    """
    eigenvalues, eigenvectors = np.linalg.eigh(field)
    floor = min_inverse_condition * eigenvalues[..., -1:]
    if np.all(eigenvalues >= floor):
        return hermitian_part(field)
    return _recompose(np.maximum(eigenvalues, floor), eigenvectors)


def simulate_wishart(
    covariance, looks: float, *, seed: int | None = None, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Draw ``L``-look sample covariance matrices around a field of true covariances.

    Parameters
    ----------
    covariance : array_like of complex, shape ``(..., D, D)``
        True covariance matrices, Hermitian positive definite.
    looks : float
        Number of looks ``L``. Integers draw ``L`` complex Gaussian vectors per pixel (any
        ``L ≥ 1``, singular matrices when ``L < D``); non-integers use the Bartlett
        decomposition, which needs ``L > D − 1``.
    seed : int, optional, keyword-only
        Seed of a fresh ``numpy.random.default_rng``.
    rng : numpy.random.Generator, optional, keyword-only
        Generator to draw from instead of ``seed`` (not both).

    Returns
    -------
    numpy.ndarray
        ``complex128`` sample covariances of the input's shape, Hermitian, with mean
        ``covariance``.

    Raises
    ------
    InvalidInputError
        If the matrices are not square, not positive definite, or ``looks`` is not usable.

    Notes
    -----
    ``C = (1/L) Σ_{l=1}^{L} z_l z_lᴴ`` with ``z_l = Σ^{½} w_l`` and ``w_l ~ CN(0, I)``
    (real and imaginary parts ``N(0, ½)``), ``Σ^{½}`` the Cholesky factor: ``L·C`` follows a
    complex Wishart law ``CW(L, Σ)``. For non-integer ``L``, Bartlett: ``L·C = G T Tᴴ Gᴴ``
    with ``G`` the Cholesky factor, ``T`` lower triangular, ``|T_ii|² ~ Gamma(L − i + 1, 1)``
    (``i = 1..D``) and ``T_ij ~ CN(0, 1)`` below the diagonal. For ``D = 1`` both reduce to
    ``C = Σ · Gamma(L, 1/L)``, the speckle of :func:`sardespeckle.speckle.simulate_speckle`.

    Examples
    --------
    >>> import numpy as np
    >>> truth = np.broadcast_to(np.array([[2.0, 0.5j], [-0.5j, 1.0]]), (64, 64, 2, 2))
    >>> noisy = simulate_wishart(truth, 4, seed=0)
    >>> bool(np.allclose(noisy.mean(axis=(0, 1)), truth[0, 0], atol=0.05))
    True
    """
    from sardespeckle.speckle import _check_looks, _make_rng

    sigma = np.asarray(covariance)
    if sigma.ndim < 2 or sigma.shape[-1] != sigma.shape[-2]:
        raise InvalidInputError(f"expected covariance of shape (..., D, D), got {sigma.shape}")
    looks = _check_looks(looks)
    generator = _make_rng(seed, rng)
    size = sigma.shape[-1]
    sigma = hermitian_part(sigma.astype(np.complex128))
    try:
        factor = np.linalg.cholesky(sigma)
    except np.linalg.LinAlgError:
        raise InvalidInputError(
            "expected positive definite true covariances, got a singular or indefinite one"
        ) from None
    batch = sigma.shape[:-2]

    if float(looks).is_integer():
        count = int(looks)
        white = generator.standard_normal(batch + (size, count, 2)) * math.sqrt(0.5)
        white = white[..., 0] + 1j * white[..., 1]
        vectors = factor @ white
        gram = vectors @ np.conj(np.swapaxes(vectors, -1, -2))
    else:
        if looks <= size - 1:
            raise InvalidInputError(
                f"expected looks > D − 1 = {size - 1} for non-integer looks, got {looks}; "
                "use an integer number of looks"
            )
        tri = np.zeros(batch + (size, size), dtype=np.complex128)
        for i in range(size):
            tri[..., i, i] = np.sqrt(generator.gamma(shape=looks - i, scale=1.0, size=batch))
            for j in range(i):
                pair = generator.standard_normal(batch + (2,)) * math.sqrt(0.5)
                tri[..., i, j] = pair[..., 0] + 1j * pair[..., 1]
        root = factor @ tri
        gram = root @ np.conj(np.swapaxes(root, -1, -2))
    return hermitian_part(gram / looks)

