"""Radiometry of covariance MuLoG on flat simulated fields: output mean / truth per channel.

    python tools/covariance_levels.py [--denoiser dncnn-sar|bm3d|oracle|...] [--size 128]

Each case is a flat field of one covariance matrix (powers ``d``, coherences ``rho``) with
simulated ``L``-look Wishart speckle (``simulate_wishart``, the given seed); the printed numbers
are the mean output power of each channel over the interior (16 px margin) divided by the
truth, and for ``D = 2`` the mean output coherence magnitude ``|γ|``. A method that keeps the
level of distributed targets prints 1.00 throughout (docs/mulog.md, "Measured limits").
"""

from __future__ import annotations

import argparse

import numpy as np

from sardespeckle.mulog import mulog_covariance, simulate_wishart

#: name, powers, coherences (upper triangle, row by row), looks, seed, iterations
CASES = (
    ("D=3 coherence 0.2-0.5", (2.0, 1.0, 0.5), (0.5, 0.2j, 0.3), 1, 1, 6),
    ("D=3 coherence 0.2-0.5, seed 2", (2.0, 1.0, 0.5), (0.5, 0.2j, 0.3), 1, 2, 6),
    ("D=3 coherence 0.8-0.9", (2.0, 1.0, 0.5), (0.9, 0.8, 0.85), 1, 1, 6),
    ("D=3 coherence 0", (2.0, 1.0, 0.5), (0, 0, 0), 1, 1, 6),
    ("D=3 coherence 0.8-0.9, L=2.7", (2.0, 1.0, 0.5), (0.9, 0.8, 0.85), 2.7, 1, 6),
    ("D=3 coherence 0.8-0.9, L=2.7, 12 it.", (2.0, 1.0, 0.5), (0.9, 0.8, 0.85), 2.7, 1, 12),
    ("D=2 coherence 0.6", (1.0, 0.5), (0.6j,), 1, 1, 6),
    ("D=2 coherence 0.3", (1.0, 0.5), (0.3,), 1, 1, 6),
    ("D=2 coherence 0", (1.0, 0.5), (0,), 1, 1, 6),
    ("D=4 coherence 0.3", (2.0, 1.0, 1.0, 0.5), (0.3,) * 6, 1, 1, 6),
)


def covariance(powers, coherences) -> np.ndarray:
    """The ``D × D`` matrix of these powers and upper-triangle coherences."""
    size = len(powers)
    matrix = np.eye(size, dtype=complex)
    pairs = [(i, j) for i in range(size) for j in range(i + 1, size)]
    for (i, j), value in zip(pairs, coherences):
        matrix[i, j], matrix[j, i] = value, np.conj(value)
    root = np.sqrt(np.asarray(powers, dtype=float))
    return root[:, None] * matrix * root[None, :]


def oracle(values: np.ndarray, sigma: float) -> np.ndarray:
    """``--denoiser oracle``: the channel's mean everywhere, the perfect denoiser of a flat
    field (what is left is the ADMM's own bias)."""
    return np.full_like(values, values.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--denoiser", default="dncnn-sar",
                        help="a MuLoG denoiser name, or oracle: the field's mean (default "
                             "%(default)s)")
    parser.add_argument("--size", type=int, default=128, help="field side (default 128)")
    args = parser.parse_args()
    print(f"| case ({args.denoiser}, {args.size}²) | output / truth per channel | |γ| |")
    print("| --- | --- | --- |")
    for name, powers, coherences, looks, seed, iterations in CASES:
        truth = covariance(powers, coherences)
        noisy = simulate_wishart(np.broadcast_to(truth, (args.size, args.size) + truth.shape),
                                 looks, seed=seed)
        denoiser = oracle if args.denoiser == "oracle" else args.denoiser
        out = mulog_covariance(noisy, looks=looks, denoiser=denoiser,
                               iterations=iterations)[16:-16, 16:-16]
        power = np.real(np.diagonal(out, axis1=2, axis2=3)).mean(axis=(0, 1))
        levels = " / ".join(f"{value:.3f}" for value in power / np.real(np.diag(truth)))
        gamma = ""
        if len(powers) == 2:
            magnitude = np.abs(out[..., 0, 1]) / np.sqrt(np.real(out[..., 0, 0] * out[..., 1, 1]))
            gamma = f"{magnitude.mean():.3f}"
        print(f"| {name} | {levels} | {gamma} |", flush=True)


if __name__ == "__main__":
    main()
