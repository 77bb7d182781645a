"""Data-fidelity terms of MuLoG and their proximal operators.

Each term ``F`` works in the *normalised* coordinates of the ADMM, ``x̃``, related to the
log-domain variable by an affine map, and offers ``value(x̃)``, ``gradient(x̃)`` and
``prox(v, gamma) = argmin_x̃ ½‖x̃ − v‖² + gamma·F(x̃)``.

* :class:`FisherTippett`: one channel, ``x = σ·x̃ + b`` is a log-intensity.
* :class:`Wishart`: ``D × D`` covariance matrices, ``x = b + A·diag(σ)·x̃`` are the ``D²`` real
  channels of a Hermitian matrix logarithm (see :mod:`sardespeckle.mulog.hermitian`).
"""

from __future__ import annotations

import numpy as np

from sardespeckle.mulog.hermitian import (
    channel_basis,
    exp_divided_differences,
    exp_second_divided_differences,
    from_channels,
    to_channels,
)

__all__ = ["FisherTippett", "Wishart"]


class FisherTippett:
    """Negative log-likelihood of ``L``-look intensity, as a function of log-reflectivity.

    Parameters
    ----------
    log_intensity : ndarray
        ``y = log I`` of the observed (safeguarded) intensity, any shape.
    looks : float
        Number of looks ``L``.
    scale, offset : float
        The normalisation: the log-reflectivity is ``x = scale·x̃ + offset``.

    Notes
    -----
    With ``I = R·S``, ``S ~ Gamma(L, 1/L)`` and ``x = log R``,
    ``−log p(I | x) = L (x + e^{y − x}) + const``, the Fisher–Tippett law of ``y − x``. In
    normalised coordinates ``F(x̃) = L (x + e^{y − x})`` with ``x = σx̃ + b``, and the proximal
    problem ``min ½(x̃ − v)² + γF(x̃)`` becomes, with ``w = σv + b``,

    .. math:: \\min_x \\tfrac{1}{2}(x - w)^2 + \\mu L (x + e^{y - x}), \\qquad \\mu = \\gamma\\sigma^2.

    Its optimality condition is ``φ(x) = x − w + μL(1 − e^{y − x}) = 0`` (§3.7 of the notes
    with ``μ = σ²/β``: the ``σ²`` comes from the normalisation, ``x̃ = (x − b)/σ``). ``φ`` is
    increasing (``φ' = 1 + μL e^{y−x} > 0``) and concave (``φ'' = −μL e^{y−x} < 0``), so the
    root is unique and undamped Newton iterations started at any point left of it increase
    monotonically towards it (the tangent of a concave function lies above it, so each step
    lands at or before the root) and converge quadratically. The start is the larger of two
    lower bounds of the root: ``max(min(w, y), w − μL)`` (``φ`` is negative at both) and, when
    ``y > w``, ``y − log(1 + (y − w)/(μL))`` (from ``t + log(1 + t/(μL)) = y − w`` with
    ``t = x − w ∈ [0, y − w]``), which is tight when ``e^{y−x}`` dominates. The reference
    implementation instead damps its steps by ½ from an arbitrary start.
    """

    def __init__(self, log_intensity: np.ndarray, looks: float, *, scale: float = 1.0,
                 offset: float = 0.0) -> None:
        self.y = np.asarray(log_intensity, dtype=np.float64)
        self.looks = float(looks)
        self.scale = float(scale)
        self.offset = float(offset)

    def _raw(self, x: np.ndarray) -> np.ndarray:
        return self.scale * np.asarray(x, dtype=np.float64) + self.offset

    def value(self, x: np.ndarray) -> np.ndarray:
        """Per-pixel ``F(x̃) = L (x + e^{y − x})``."""
        raw = self._raw(x)
        return self.looks * (raw + np.exp(self.y - raw))

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """Per-pixel ``dF/dx̃ = σ L (1 − e^{y − x})``."""
        raw = self._raw(x)
        return self.scale * self.looks * (1.0 - np.exp(self.y - raw))

    def prox(self, v: np.ndarray, gamma: float, *, x0: np.ndarray | None = None,
             iterations: int = 10, tol: float = 1e-12) -> np.ndarray:
        """``argmin_x̃ ½(x̃ − v)² + gamma·F(x̃)``, pixel by pixel (``x0`` is not needed)."""
        w = self._raw(v)
        y = self.y
        mu_looks = float(gamma) * self.scale**2 * self.looks
        x = np.maximum(np.minimum(w, y), w - mu_looks)
        gap = np.maximum(y - w, 0.0)
        x = np.maximum(x, np.where(y > w, y - np.log1p(gap / mu_looks), x))
        for _ in range(int(iterations)):
            expo = np.exp(y - x)
            phi = x - w + mu_looks * (1.0 - expo)
            step = phi / (1.0 + mu_looks * expo)
            x = x - step
            if np.max(np.abs(step)) <= tol * (1.0 + np.max(np.abs(x))):
                break
        return (x - self.offset) / self.scale


class Wishart:
    """Negative log-likelihood of ``L``-look sample covariances, as a function of the log-matrix.

    Parameters
    ----------
    covariance : ndarray, complex, ``(N, D, D)``
        Observed (safeguarded) sample covariance matrices, one per pixel.
    looks : float
        Number of looks ``L``.
    offset : ndarray ``(D²,)``
        Channel means ``b``.
    basis : ndarray ``(D², D²)``
        ``M = A·diag(σ)``: the log-matrix channels are ``x = b + M x̃``.
    chunk : int
        Pixels processed at once (bounds the ``(chunk, D², D, D)`` temporaries).

    Notes
    -----
    For ``Σ = e^X`` (``X`` Hermitian) the complex Wishart law gives
    ``NLL(X) = L [tr(e^{−X} C) + tr X] + const``, and ``F(x̃) = NLL(X(b + M x̃))``.

    *Gradient.* Let ``X = U diag(λ) Uᴴ`` and ``C̃ = Uᴴ C U``. For a matrix function ``f``, the
    Daleckii–Krein formula gives the derivative ``Df(X)[H] = U (Γ¹ ∘ Uᴴ H U) Uᴴ`` with
    ``Γ¹_ij = f[λ_i, λ_j]`` the first divided differences. It is self-adjoint for
    ``⟨A, B⟩ = Re tr(Aᴴ B)``, so with ``f(t) = e^{−t}``:
    ``∇_X NLL = L (I + U (Γ¹ ∘ C̃) Uᴴ)``. :func:`~sardespeckle.mulog.hermitian.to_channels` is an
    isometry, so ``∇_x = to_channels(∇_X)`` and ``∇_x̃ F = Mᵀ ∇_x``. For ``D = 1`` this is
    :class:`FisherTippett`'s ``L(1 − e^{y − x})``.

    *Hessian.* The second derivative of ``h(X) = tr(f(X) C)`` is
    ``D²h[H, K] = Σ_{ijk} f[λ_i, λ_j, λ_k] (H̃_ij K̃_jk + K̃_ij H̃_jk) C̃_ki``, with ``H̃ = Uᴴ H U``
    and second divided differences ``f[·,·,·]``; for ``f(t) = e^{−t}``,
    ``f[a, b] = −exp[−a, −b]`` and ``f[a, b, c] = exp[−a, −b, −c]``. Applied to the channel
    basis ``E_a`` it gives the ``D² × D²`` Hessian ``H_x``, and ``∇²_x̃ F = Mᵀ H_x M``.

    *Prox.* Newton's method on ``Φ(x̃) = ½‖x̃ − v‖² + γF(x̃)``, pixel by pixel, with Hessian
    ``I + γ Mᵀ H_x M``. ``F`` is not convex in general (the exponential is not operator
    convex): where the Newton step is not a descent direction, the Hessian's eigenvalues are
    replaced by their absolute values floored at 10⁻⁶ (a descent direction in every case;
    the eigendecomposition is only paid there). The step is halved until ``Φ`` decreases
    enough (Armijo, ``c = 10⁻⁴``, with an allowance of 10⁻¹³·|Φ| for rounding); a pixel whose
    step fails 30 halvings keeps its value, so ``Φ`` never increases beyond rounding. Near the minimum the Hessian is positive definite and the full
    step is taken: convergence is quadratic.
    """

    def __init__(self, covariance: np.ndarray, looks: float, *, offset: np.ndarray,
                 basis: np.ndarray, chunk: int = 16384) -> None:
        self.covariance = np.asarray(covariance, dtype=np.complex128)
        self.size = self.covariance.shape[-1]
        self.looks = float(looks)
        self.offset = np.asarray(offset, dtype=np.float64)
        self.basis = np.asarray(basis, dtype=np.float64)
        self.chunk = int(chunk)
        self._channel_basis = channel_basis(self.size)

    # -- per-chunk pieces ---------------------------------------------------------------------

    def _eig(self, x: np.ndarray):
        raw = self.offset + x @ self.basis.T
        return np.linalg.eigh(from_channels(raw, self.size))

    def _value(self, eigenvalues, eigenvectors, covariance) -> np.ndarray:
        rotated_diag = np.einsum("nji,njk,nki->ni", eigenvectors.conj(), covariance, eigenvectors).real
        # Trial points of the line search may overflow: inf/NaN objectives are simply rejected.
        with np.errstate(over="ignore", invalid="ignore"):
            return self.looks * (np.sum(np.exp(-eigenvalues) * rotated_diag, axis=-1)
                                 + np.sum(eigenvalues, axis=-1))

    def _derivatives(self, eigenvalues, eigenvectors, covariance, *, hessian: bool):
        adjoint = np.conj(np.swapaxes(eigenvectors, -1, -2))
        rotated = adjoint @ covariance @ eigenvectors
        first = -exp_divided_differences(-eigenvalues)
        identity = np.eye(self.size)
        grad_matrix = self.looks * (identity + eigenvectors @ (first * rotated) @ adjoint)
        gradient = to_channels(grad_matrix) @ self.basis
        if not hessian:
            return gradient, None
        second = exp_second_divided_differences(-eigenvalues)  # (n, i, j, k)
        # Ẽ_a = Uᴴ E_a U for every basis matrix: (n, a, D, D).
        tilde = adjoint[:, None] @ self._channel_basis[None] @ eigenvectors[:, None]
        # q[n, b, j, i] = Σ_k f[λi, λj, λk] Ẽb_jk C̃_ki
        q = np.einsum("nijk,nbjk,nki->nbji", second, tilde, rotated, optimize=True)
        half = np.einsum("naij,nbji->nab", tilde, q, optimize=True).real
        hess_x = self.looks * (half + np.swapaxes(half, -1, -2))
        hess = self.basis.T[None] @ hess_x @ self.basis[None]
        return gradient, hess

    # -- public per-pixel functions (flattened pixels, (N, D²)) ------------------------------

    def _chunks(self, count: int):
        for start in range(0, count, self.chunk):
            yield slice(start, min(start + self.chunk, count))

    def value(self, x: np.ndarray) -> np.ndarray:
        """Per-pixel ``F(x̃)`` for ``x̃`` of shape ``(N, D²)``."""
        out = np.empty(x.shape[0])
        for part in self._chunks(x.shape[0]):
            w, u = self._eig(x[part])
            out[part] = self._value(w, u, self.covariance[part])
        return out

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """Per-pixel ``∇F(x̃)``, ``(N, D²)``."""
        out = np.empty_like(x, dtype=np.float64)
        for part in self._chunks(x.shape[0]):
            w, u = self._eig(x[part])
            out[part] = self._derivatives(w, u, self.covariance[part], hessian=False)[0]
        return out

    def hessian(self, x: np.ndarray) -> np.ndarray:
        """Per-pixel ``∇²F(x̃)``, ``(N, D², D²)``."""
        out = np.empty(x.shape + (x.shape[-1],))
        for part in self._chunks(x.shape[0]):
            w, u = self._eig(x[part])
            out[part] = self._derivatives(w, u, self.covariance[part], hessian=True)[1]
        return out

    def prox(self, v: np.ndarray, gamma: float, *, x0: np.ndarray | None = None,
             iterations: int = 20, tol: float = 1e-9) -> np.ndarray:
        """``argmin_x̃ ½‖x̃ − v‖² + gamma·F(x̃)`` for ``v`` of shape ``(N, D²)``, from ``x0``.

        Stops early for the pixels whose Newton step or gradient is below ``tol``.
        """
        v = np.asarray(v, dtype=np.float64)
        x = v.copy() if x0 is None else np.array(x0, dtype=np.float64)
        for part in self._chunks(v.shape[0]):
            x[part] = self._prox_chunk(v[part], x[part], float(gamma), self.covariance[part],
                                       int(iterations), tol)
        return x

    def _objective(self, x, v, gamma, covariance):
        w, u = self._eig(x)
        return 0.5 * np.sum((x - v) ** 2, axis=-1) + gamma * self._value(w, u, covariance)

    def _prox_chunk(self, v, x, gamma, covariance, iterations, tol):
        channels = v.shape[-1]
        identity = np.eye(channels)
        active = np.arange(v.shape[0])
        for _ in range(iterations):
            if active.size == 0:
                break
            xa, va, ca = x[active], v[active], covariance[active]
            w, u = self._eig(xa)
            objective = 0.5 * np.sum((xa - va) ** 2, axis=-1) + gamma * self._value(w, u, ca)
            grad_f, hess_f = self._derivatives(w, u, ca, hessian=True)
            grad = xa - va + gamma * grad_f
            done = np.max(np.abs(grad), axis=-1) <= tol * (1.0 + np.max(np.abs(xa), axis=-1))
            system = identity + gamma * hess_f
            step = -np.linalg.solve(system, grad[..., None])[..., 0]
            slope = np.sum(grad * step, axis=-1)
            # Where the Hessian is indefinite the Newton step may not descend: there, use
            # |eigenvalues| (floored) instead, a descent direction in every case.
            norms = np.linalg.norm(grad, axis=-1) * np.linalg.norm(step, axis=-1)
            bad = ~(slope < -1e-8 * norms) & ~done
            if bad.any():
                values, vectors = np.linalg.eigh(system[bad])
                values = np.maximum(np.abs(values), 1e-6)
                step[bad] = -np.einsum("nab,nb->na", vectors,
                                       np.einsum("nba,nb->na", vectors, grad[bad]) / values)
                slope[bad] = np.sum(grad[bad] * step[bad], axis=-1)
            length = np.ones(active.size)
            accepted = done.copy()
            new = xa.copy()
            pending = ~accepted
            for _ in range(30):
                if not pending.any():
                    break
                idx = np.flatnonzero(pending)
                trial = xa[idx] + length[idx, None] * step[idx]
                trial_obj = self._objective(trial, va[idx], gamma, ca[idx])
                # Armijo, with a rounding allowance: near the minimum the decrease is below
                # what float64 can resolve and the full Newton step is the right one.
                ok = trial_obj <= (objective[idx] + 1e-4 * length[idx] * slope[idx]
                                   + 1e-13 * np.abs(objective[idx]))
                new[idx[ok]] = trial[ok]
                accepted[idx[ok]] = True
                length[idx[~ok]] *= 0.5
                pending = ~accepted
            # Pixels that failed every halving keep xa: Φ never increases.
            x[active] = new
            converged = done | (np.max(np.abs(new - xa), axis=-1)
                                <= tol * (1.0 + np.max(np.abs(new), axis=-1)))
            active = active[~converged]
        return x
