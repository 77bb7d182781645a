"""Training data for SAR-CNN: speckle-free references, patch sampling, on-the-fly speckle.

A reference is a speckle-free intensity image (float32, NaN where unknown). The sampler draws
random patches (uniform over the valid positions of all references, so every pixel counts the
same), applies one of the 8 flips/rotations, multiplies by fresh ``looks``-look Gamma speckle
from a seeded generator, and returns the network's normalised log-amplitude of the noisy and
clean patches. Everything random comes from one ``numpy.random.Generator`` whose state is
saved in checkpoints, so a resumed run draws exactly the patches it would have drawn.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..decorrelate import correlated_speckle
from ..errors import InvalidInputError, UnknownKindError, UsageError
from ..window import Window
from .targets import add_bright_targets, at_level, clipped_level, uncap_clipped


@dataclass(frozen=True)
class ReferenceSpec:
    """One reference file, optionally restricted to a window ``[row, col, height, width]``."""

    path: str
    kind: str | None = None
    window: tuple[int, int, int, int] | None = None

    @classmethod
    def from_dict(cls, values) -> "ReferenceSpec":
        """A spec from a path or ``{"path": ..., "kind": ..., "window": ...}`` (UsageError if not)."""
        if isinstance(values, ReferenceSpec):
            return values
        if isinstance(values, (str, os.PathLike)):
            values = {"path": os.fspath(values)}
        if not isinstance(values, dict):
            raise UsageError(f"expected a reference as a path or an object {{\"path\": ..., "
                             f"\"kind\": ..., \"window\": ...}}, got {values!r}")
        unknown = sorted(set(values) - {"path", "kind", "window"}, key=str)
        if unknown:
            raise UsageError(f"unknown key(s) {unknown} in the reference {values!r}; known: "
                             "path, kind, window")
        path = values.get("path")
        if isinstance(path, os.PathLike):
            path = os.fspath(path)
        if not isinstance(path, str) or not path:
            raise UsageError(f"expected a reference's path as a non-empty string, got {path!r} in "
                             f"{values!r}")
        kind = values.get("kind")
        if kind is not None and not isinstance(kind, str):
            raise UsageError(f"expected the kind of reference {path} as a string or null, got {kind!r}")
        window = values.get("window")
        if window is not None:
            if isinstance(window, (list, tuple)):
                window = [int(v) if isinstance(v, float) and v.is_integer() else v for v in window]
            if (not isinstance(window, (list, tuple)) or len(window) != 4
                    or any(isinstance(v, bool) or not isinstance(v, int) for v in window)
                    or min(window[:2]) < 0 or min(window[2:]) < 1):
                raise UsageError(f"expected the window of reference {path} as [row, col, height, "
                                 f"width] (integers, row, col ≥ 0, height, width ≥ 1), got {window!r}")
            window = tuple(window)
        return cls(path=path, kind=kind, window=window)

    def as_dict(self) -> dict:
        return {"path": self.path, "kind": self.kind,
                "window": None if self.window is None else list(self.window)}


@dataclass
class Reference:
    """A loaded reference: intensity (float32, NaN where invalid) and a name."""

    name: str
    intensity: np.ndarray


def load_reference(spec: ReferenceSpec, *, role: str = "training reference") -> Reference:
    """Read a reference file (GeoTIFF/.npy via :mod:`sardespeckle.io`) as intensity.

    Refuses the date-count and change-code files that ``references build`` writes beside a
    reference (a glob such as ``refs/*.tif`` picks them up too). ``role`` names the file in
    warnings (``"validation reference"`` for those).
    """
    from ..io import open_source
    from ..io.kinds import value_notes
    from ..references import side_output_of

    side = side_output_of(spec.path)
    if side is not None:
        role, reference = side
        what = {"count": "the per-pixel count of dates used",
                "changes": "the per-date change codes"}[role]
        raise UsageError(
            f"expected a speckle-free reference, got {spec.path}: {what} that 'references "
            f"build' wrote beside {reference}; pass the reference itself (a glob such as "
            f"refs/*.tif also matches its _count and _changes files)"
        )
    from ..io.base import without_layout_hint

    try:
        source = open_source(spec.path, kind=spec.kind)
    except UnknownKindError as error:
        raise UnknownKindError(
            f"{error}. For training: --kind applies to every reference and validation file; "
            "when they hold different kinds, give each its own in a config file entry "
            "{\"path\": ..., \"kind\": ...} (docs/training.md), or make the file with "
            "'sardespeckle references build', which records what it holds") from None
    except InvalidInputError as error:
        raise without_layout_hint(
            error, "a training reference is a real, speckle-free image (intensity or amplitude), "
            "not complex data: build one with 'sardespeckle references build'") from None
    with source:
        if source.kind == "complex":
            raise InvalidInputError(
                f"{spec.path} holds complex data (an SLC, speckled): a training reference is a "
                "real, speckle-free image (intensity or amplitude); build one from a stack of "
                "dates with 'sardespeckle references build'")
        # mostly negative "intensities" (dB) are refused; a few are nodata, and said
        for note in value_notes(*source.value_shares(),
                                fate="they are left out (nodata, no patch holds them)"
                                if role == "training reference" else
                                "they are left out (nodata, filled for the network, not scored)"):
            warnings.warn(f"{role} {spec.path}: {note}", UserWarning, stacklevel=2)
        window = Window.full(source.shape) if spec.window is None else Window(*spec.window)
        if (window.row < 0 or window.col < 0 or window.row + window.height > source.shape[0]
                or window.col + window.width > source.shape[1]):
            raise InvalidInputError(
                f"expected a window inside the {source.shape} raster {spec.path}, got {spec.window}"
            )
        intensity, valid = source.read_intensity(window)
    if not valid.any():
        raise InvalidInputError(
            f"{spec.path}{'' if spec.window is None else f' (window {spec.window})'} has no "
            "valid pixel (all nodata, NaN, zero or negative): nothing to train on; leave it out")
    intensity = np.where(valid, intensity, np.nan).astype(np.float32)
    return Reference(name=Path(spec.path).stem, intensity=intensity)


def normalized_log_amplitude(intensity: np.ndarray) -> np.ndarray:
    """SAR-CNN input normalisation (float32), vectorised over any shape; NaN stays NaN."""
    from ..models.sarcnn import LOG_AMPLITUDE_MAX, LOG_AMPLITUDE_MIN

    with np.errstate(invalid="ignore", divide="ignore"):
        log_amplitude = 0.5 * np.log(intensity.astype(np.float64))
    return ((log_amplitude - LOG_AMPLITUDE_MIN) / (LOG_AMPLITUDE_MAX - LOG_AMPLITUDE_MIN)).astype(
        np.float32
    )


class ValidPatches:
    """Every fully valid ``size²`` patch of some images, drawn uniformly with a random flip/rotation.

    Parameters
    ----------
    images : sequence of (name, array, valid)
        ``(rows, cols)`` arrays and their boolean masks of the pixels a patch may contain.
    size : int
        Side of the square patches.
    bright_oversample : float or None
        When set (``k ≥ 0``), a position is drawn with probability proportional to
        ``1 + k · b / b̄``, where ``b`` is the number of its patch's pixels above the 99th
        percentile of their image and ``b̄`` the mean of ``b`` over all positions: ``k = 4`` draws a
        patch with the average count of bright pixels 5 × as often as a patch without any.

    Notes
    -----
    A draw takes ``batch_size`` integers for the positions from ``rng`` (``batch_size`` uniform
    floats with ``bright_oversample``), then one integer in ``0..7`` per patch for its
    flip/rotation, in this order: the data samplers build on it, and resumed runs rely on the
    order of the draws.
    """

    def __init__(self, images: Sequence[tuple[str, np.ndarray, np.ndarray]], *, size: int,
                 bright_oversample: float | None = None):
        self.size = int(size)
        self._arrays = []
        self._starts = []
        self.kept = []  # index in ``images`` of each image that holds a valid patch
        bright_counts = []
        for index, (name, array, valid) in enumerate(images):
            if array.shape[0] < self.size or array.shape[1] < self.size:
                raise InvalidInputError(
                    f"expected training images of at least {self.size}² pixels, got "
                    f"{array.shape} for {name}"
                )
            starts = _fully_valid_starts(valid, self.size)
            if starts.size == 0:
                continue
            self._arrays.append(array)
            self._starts.append(starts)
            self.kept.append(index)
            if bright_oversample is not None:
                bright = valid & (np.nan_to_num(array) > np.percentile(array[valid], 99))
                bright_counts.append(_window_sums(bright, self.size)[starts[:, 0], starts[:, 1]])
        if not self._arrays:
            raise InvalidInputError("no training image contains a fully valid patch")
        self._counts = np.array([p.shape[0] for p in self._starts], dtype=np.int64)
        self._cumulative = None
        if bright_oversample is not None:
            counts = np.concatenate(bright_counts).astype(np.float64)
            mean = max(float(counts.mean()), 1e-12)
            self._cumulative = np.cumsum(1.0 + float(bright_oversample) * counts / mean)

    @property
    def positions(self) -> int:
        """Number of distinct valid patch positions."""
        return int(self._counts.sum())

    def draw(self, batch_size: int, rng: np.random.Generator, *, sources: bool = False):
        """``(batch_size, size, size)`` float32 patches, uniform over all valid positions (or
        weighted by their bright pixels, see ``bright_oversample``); with ``sources``, also the
        index in ``images`` of each patch's image (the same draws either way)."""
        size = self.size
        if self._cumulative is None:
            flat = rng.integers(0, self.positions, size=batch_size)
        else:
            flat = np.searchsorted(self._cumulative, rng.random(batch_size) * self._cumulative[-1],
                                   side="right")
            flat = np.minimum(flat, self.positions - 1)
        boundaries = np.cumsum(self._counts)
        which = np.searchsorted(boundaries, flat, side="right")
        patches = np.empty((batch_size, size, size), np.float32)
        for i, (image_index, position) in enumerate(zip(which, flat)):
            offset = position - (boundaries[image_index] - self._counts[image_index])
            row, col = self._starts[image_index][offset]
            patch = self._arrays[image_index][row:row + size, col:col + size]
            patches[i] = _dihedral(patch, int(rng.integers(0, 8)))
        if sources:
            return patches, np.asarray(self.kept, np.int64)[which]
        return patches


class PatchSampler:
    """Random ``patch_size²`` patches of references with simulated ``looks``-look speckle.

    Parameters
    ----------
    references : sequence of Reference
        Speckle-free intensities (NaN marks pixels a patch may not contain).
    patch_size : int
        Side of the square patches.
    looks : float
        Number of looks of the simulated speckle (Gamma(L, 1/L) on intensity).
    gain_range : (float, float) or None
        When set, each clean patch is multiplied by a gain drawn log-uniformly in it.
    bright_targets : float or None
        When set, bright point and line targets are added to each clean patch at this rate
        (targets per pixel), see :mod:`sardespeckle.training.targets`.
    bright_oversample : float or None
        When set, patches rich in the references' own bright pixels are drawn more often
        (:class:`ValidPatches`).
    uncap_clipped : float or None
        When set (a Pareto tail index, e.g. ``UNCAP_TAIL`` = 4), the pixels at a reference's
        clipping level (:func:`~sardespeckle.training.targets.clipped_level`) are lifted, per
        connected group and patch, by a random amplitude factor above 1
        (:func:`~sardespeckle.training.targets.uncap_clipped`). ``clipped_pixels`` gives the
        number found per reference (0 where a reference is not clipped).
    speckle_band : (float, float) or None
        When set, a share ``speckle_band_share`` of the patches get spatially correlated
        speckle instead of white, as SAR processors make it
        (:func:`sardespeckle.decorrelate.correlated_speckle`, Sentinel-1's Hamming weighting),
        with the band fraction of each axis drawn uniformly in ``speckle_band`` per patch: a
        network trained so meets detected SLC data at its full resolution, without ``subsample``.
        With ``looks`` above 1 each such patch averages ``⌈looks⌉`` correlated looks of its
        band, weighted to ``looks`` equivalent looks (multilooked products such as GRD).
    speckle_band_share : float
        The share of patches with correlated speckle (``speckle_band`` set), in ``[0, 1]``.
    """

    def __init__(self, references: Sequence[Reference], *, patch_size: int, looks: float,
                 gain_range: tuple[float, float] | None = None,
                 bright_targets: float | None = None, bright_oversample: float | None = None,
                 uncap_clipped: float | None = None,
                 speckle_band: tuple[float, float] | None = None, speckle_band_share: float = 1.0):
        if not references:
            raise InvalidInputError("expected at least one training reference, got none")
        self.patch_size = int(patch_size)
        self.looks = float(looks)
        self.gain_range = None if gain_range is None else (float(gain_range[0]), float(gain_range[1]))
        self.bright_targets = None if bright_targets is None else float(bright_targets)
        if speckle_band is not None and self.looks < 1:
            raise UsageError(f"speckle_band simulates correlated speckle of one look or more; got "
                             f"looks {self.looks:g}")
        self.speckle_band = None if speckle_band is None else (float(speckle_band[0]),
                                                               float(speckle_band[1]))
        self.speckle_band_share = float(speckle_band_share)
        self._patches = ValidPatches(
            [(reference.name, reference.intensity,
              np.isfinite(reference.intensity) & (np.nan_to_num(reference.intensity) > 0))
             for reference in references],
            size=self.patch_size, bright_oversample=bright_oversample,
        )
        self.uncap_clipped = None if uncap_clipped is None else float(uncap_clipped)
        self._levels = np.array([clipped_level(r.intensity) or np.inf for r in references])
        self.clipped_pixels = [int(np.count_nonzero(at_level(np.nan_to_num(r.intensity), level)))
                               for r, level in zip(references, self._levels)]

    @property
    def positions(self) -> int:
        """Number of distinct valid patch positions."""
        return self._patches.positions

    def sample(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(noisy, target)`` as float32 ``(batch, 1, P, P)`` normalised log-amplitudes.

        ``target`` is the clean patch's normalised log-amplitude; ``noisy`` the same patch with
        speckle. The draws use only ``rng``.
        """
        clean, sources = self._patches.draw(batch_size, rng, sources=True)
        if self.uncap_clipped is not None:  # marked before the gains move the levels
            clipped = at_level(clean, self._levels[sources][:, None, None])
        speckle = rng.gamma(self.looks, 1.0 / self.looks, size=clean.shape)
        if self.gain_range is not None:
            # Drawn last, so that runs without gains keep their sequence of draws.
            low, high = np.log(self.gain_range)
            clean = clean * np.exp(rng.uniform(low, high, size=(batch_size, 1, 1))).astype(np.float32)
        if self.bright_targets is not None:
            # Also drawn after everything else, for the same reason.
            clean = add_bright_targets(clean, self.bright_targets, rng)
        if self.uncap_clipped is not None:
            # Drawn after everything else too.
            clean = uncap_clipped(clean, clipped, self.uncap_clipped, rng)
        if self.speckle_band is not None:
            # Drawn after everything else too.
            chosen = np.flatnonzero(rng.random(batch_size) < self.speckle_band_share)
            bands = rng.uniform(*self.speckle_band, size=(chosen.size, 2))
            speckle[chosen] = correlated_speckle(chosen.size, self.patch_size, bands, rng,
                                                 looks=self.looks)
        noisy = clean * speckle
        return (normalized_log_amplitude(noisy)[:, None],
                normalized_log_amplitude(clean)[:, None])


def _window_sums(mask: np.ndarray, size: int) -> np.ndarray:
    """Number of true pixels of every ``size²`` window of ``mask``, indexed by its top-left corner."""
    table = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), np.int64)
    table[1:, 1:] = mask.astype(np.int64).cumsum(0).cumsum(1)
    return table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]


def _fully_valid_starts(valid: np.ndarray, size: int) -> np.ndarray:
    """``(n, 2)`` top-left corners of the ``size²`` windows containing only valid pixels."""
    return np.argwhere(_window_sums(~valid, size) == 0).astype(np.int32)


def _dihedral(patch: np.ndarray, code: int) -> np.ndarray:
    """One of the 8 flips/rotations of a square patch (``code`` in 0..7)."""
    out = np.rot90(patch, k=code % 4)
    return out[:, ::-1] if code >= 4 else out
