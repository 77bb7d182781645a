"""Bright point and line targets added to clean training patches.

Real SAR scenes hold strong, temporally stable scatterers (buildings, pylons, ships, dihedrals)
whose amplitude reaches tens of times the surrounding level. The 8-bit despeckled series our
references are built from are clipped at a threshold (marais2: the brightest reference pixel is
1.18 × the 99th percentile; real references reach 5–9 ×), so a network trained on them alone
never meets such a target and, given one under speckle, spreads it out and keeps a fraction of
its amplitude. This module puts targets back, with statistics measured on real, unclipped
single-look Sentinel-1 stacks (``shared/data/sar/s1_stacks``: 5-date means of five sites,
components above 3 × the 51 × 51 local median, see docs/training.md):

* the peak ratio to the patch's median amplitude is Pareto distributed above ``RATIO_MIN`` = 3
  with tail index ``TAIL`` = 2.4 (Hill estimate over the 340 components: 2.41; median peak
  ratio 3.3–4.4 per site), capped at ``RATIO_MAX`` = 100 (the largest seen: 84.5);
* shapes: single pixels, 2 × 2 blocks, 3 × 3 peaked blobs (profile ½, 1, ½ on each axis) and
  short horizontal or vertical lines of 3–10 pixels (component sizes: median 1–3 pixels, means
  1.7–4.9);
* the rate (targets per pixel) is the caller's: the sites range from 0.5e-4 (marshes) to
  33e-4 (port, industry), median 6.7e-4.

A target never darkens the patch: the clean amplitude becomes the maximum of the patch and the
target. Everything random comes from the caller's generator.

Measured (docs/training.md): a SAR-CNN fine-tuned with targets keeps isolated targets far
better, but lost 0.2–0.4 dB on scenes without them and on the validation references; the
shipped weights do not use it.

The references' own bright structures are clipped too: every pixel saturated in all dates has
the same value, the clipping level (marais2: 1.18 × the 99th percentile, 0.38 % of the pixels).
A network trained on them learns a ceiling: bright structures are never much brighter than
their surroundings. :func:`uncap_clipped` lifts each connected group of clipped pixels of a
patch by an amplitude factor drawn from a Pareto tail above 1, so that their true level (at
least the clipping level, unknown above it) is, as in real scenes, something the network has
to read from the data. The tail index ``UNCAP_TAIL`` = 4 is the pooled Hill estimate of the
amplitude exceedances above the 99.6th percentile of the unclipped 5-date means of
``s1_stacks`` lely, limagne, marais1 and ramb (per site 2.1, 5.3, 11.0, 4.3; marais2 left out,
its area may overlap the validation references).
"""

from __future__ import annotations

import numpy as np

#: Smallest peak ratio (to the patch's median amplitude) of a target.
RATIO_MIN = 3.0
#: Pareto tail index of the peak ratio.
TAIL = 2.4
#: Largest peak ratio.
RATIO_MAX = 100.0
#: Shapes and their probabilities.
SHAPES = ("point", "block", "blob", "line")
SHAPE_WEIGHTS = (0.4, 0.25, 0.2, 0.15)
#: Upper bound of the ``rate`` option (targets per pixel): beyond it a patch is a field of points.
MAX_RATE = 0.01

#: Measured Pareto tail index of the amplitude factor of a clipped group (the value for
#: ``uncap_clipped``; see the module docstring).
UNCAP_TAIL = 4.0
#: Fewest pixels at a reference's maximum for it to count as a clipping level.
MIN_CLIPPED = 10

_BLOB = np.outer([0.5, 1.0, 0.5], [0.5, 1.0, 0.5])


def target_footprint(shape: str, rng: np.random.Generator) -> np.ndarray:
    """Relative amplitude profile (peak 1) of one target of the given shape."""
    if shape == "point":
        return np.ones((1, 1))
    if shape == "block":
        return np.ones((2, 2))
    if shape == "blob":
        return _BLOB
    if shape == "line":
        length = int(rng.integers(3, 11))
        return np.ones((1, length)) if rng.random() < 0.5 else np.ones((length, 1))
    raise ValueError(f"unknown target shape {shape!r}; expected one of {SHAPES}")


def peak_ratios(count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` peak ratios: Pareto(``TAIL``) above ``RATIO_MIN``, capped at ``RATIO_MAX``."""
    uniform = 1.0 - rng.random(count)  # in (0, 1]
    return np.minimum(RATIO_MIN * uniform ** (-1.0 / TAIL), RATIO_MAX)


def add_bright_targets(clean: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Clean intensity patches ``(batch, P, P)`` with bright targets added (a new array).

    Each patch gets a Poisson number of targets with mean ``rate × P²``, placed uniformly (a
    target may be cut by the patch border), each at a peak amplitude of ``ratio × median
    amplitude of the patch``.
    """
    if clean.ndim != 3:
        raise ValueError(f"expected patches (batch, P, P), got shape {clean.shape}")
    if not 0 <= rate <= MAX_RATE:
        raise ValueError(f"expected 0 <= rate <= {MAX_RATE}, got {rate!r}")
    out = np.array(clean, dtype=np.float32, copy=True)
    batch, rows, cols = out.shape
    counts = rng.poisson(rate * rows * cols, size=batch)
    for index, count in enumerate(counts):
        if count == 0:
            continue
        amplitude = np.sqrt(out[index], dtype=np.float64)
        level = float(np.median(amplitude))
        shapes = rng.choice(len(SHAPES), size=count, p=SHAPE_WEIGHTS)
        ratios = peak_ratios(count, rng)
        for shape, ratio in zip(shapes, ratios):
            footprint = target_footprint(SHAPES[shape], rng) * (ratio * level)
            height, width = footprint.shape
            top = int(rng.integers(-(height - 1), rows))
            left = int(rng.integers(-(width - 1), cols))
            r0, c0 = max(top, 0), max(left, 0)
            r1, c1 = min(top + height, rows), min(left + width, cols)
            region = amplitude[r0:r1, c0:c1]
            np.maximum(region, footprint[r0 - top:r1 - top, c0 - left:c1 - left], out=region)
        out[index] = (amplitude ** 2).astype(np.float32)
    return out


def add_bright_targets_log(log_intensity: np.ndarray, rate: float,
                           rng: np.random.Generator) -> np.ndarray:
    """:func:`add_bright_targets` on patches of (centred) log-intensity ``(batch, P, P)``."""
    offset = np.median(log_intensity, axis=(1, 2), keepdims=True)
    relative = np.exp(np.asarray(log_intensity, np.float64) - offset).astype(np.float32)
    return (np.log(add_bright_targets(relative, rate, rng).astype(np.float64)) + offset).astype(
        log_intensity.dtype)


def clipped_level(intensity: np.ndarray) -> float | None:
    """The clipping level of a reference (its maximum) when at least ``MIN_CLIPPED`` pixels sit
    at it (to float32 rounding), else ``None`` (an unclipped reference has one brightest pixel)."""
    finite = intensity[np.isfinite(intensity)]
    if finite.size == 0:
        return None
    level = float(finite.max())
    if level <= 0 or np.count_nonzero(at_level(finite, level)) < MIN_CLIPPED:
        return None
    return level


def at_level(values: np.ndarray, level) -> np.ndarray:
    """Where ``values`` reach ``level`` (to float32 rounding): the clipped pixels; ``level`` may
    be an array broadcast against ``values``, ``inf`` for none."""
    return values >= np.asarray(level) * (1 - 1e-6)


def uncap_clipped(clean: np.ndarray, clipped: np.ndarray, tail: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Clean intensity patches ``(batch, P, P)`` with their clipped pixels lifted (a new array).

    ``clipped`` (same shape, boolean) marks the pixels at their reference's clipping level. Each
    8-connected group of them in a patch is multiplied by ``f²`` (intensity), ``f`` an amplitude
    factor Pareto distributed above 1 with tail index ``tail``, capped at ``RATIO_MAX``; one
    uniform draw per group, patches in order, groups in :func:`scipy.ndimage.label` order.
    """
    from scipy import ndimage

    if clean.ndim != 3 or clipped.shape != clean.shape:
        raise ValueError(f"expected patches (batch, P, P) and a mask of the same shape, got "
                         f"{clean.shape} and {clipped.shape}")
    if not tail > 0:
        raise ValueError(f"expected a positive tail index, got {tail!r}")
    out = np.array(clean, dtype=np.float32, copy=True)
    eight = np.ones((3, 3), bool)
    for index in np.flatnonzero(clipped.reshape(len(clipped), -1).any(axis=1)):
        labels, groups = ndimage.label(clipped[index], structure=eight)
        factors = np.minimum((1.0 - rng.random(groups)) ** (-1.0 / tail), RATIO_MAX)
        gain = np.concatenate([[1.0], factors ** 2])[labels]
        out[index] = (out[index] * gain).astype(np.float32)
    return out
