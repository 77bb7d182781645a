"""Spatially correlated speckle: measure it, and decorrelate it for networks trained on white speckle.

Speckle simulated for training is white: each pixel draws its own Gamma variable. Real SLC
speckle is not. The SAR processor weights the signal band (Hamming) and samples the image above
the Nyquist rate of that band, so neighbouring pixels share part of their speckle: the lag-1
correlation of log-intensity is 0.25–0.45 on the Sentinel-1 stacks of this project (0.19–0.34 for
the speckle alone, scene removed), 0.3 on the TerraSAR-X SLC. A network trained on white speckle takes correlated speckle blobs for structure
and leaves them in. Two remedies from SAR_NOTES §1:

``subsample``
    Despeckle the four polyphase components ``I[dr::2, dc::2]`` separately, interpolate each
    back to the full grid and average them (:class:`Subsampled`). Every component has its
    pixels two samples apart, where the speckle correlation is small (lag 2 of the full image).
    Works on intensity-only data, inside the tiled engine, at the cost of the network seeing
    a half-resolution image.
``whiten``
    Complex input only: estimate the azimuth and range power spectra of the complex data, build a
    separable FIR filter whose response is ``1/√spectrum`` inside the signal band (zero outside)
    and take ``|filter ∗ z|²`` (:class:`WhiteningFilter`, :class:`WhitenedSource`). Keeps the
    full resolution.

A third remedy is a network that has learnt correlated speckle: SAR-CNN weights trained with
the training option ``speckle_band`` (:func:`correlated_speckle` draws their speckle) record it,
and ``decorrelate="auto"`` gives them correlated single-look data at full resolution; without
``weights``, SAR-CNN then takes the registered ``sarcnn-s1-l1-corr3w``
(:func:`sarcnn_handles_correlation`).

Whitening intensity-only data is refused (:func:`check_whitening_input`): the correlation of
speckle is made by linear filtering of the *complex* field; intensity keeps only ``|ρ|²``
(Siegert relation) and loses the phase of the correlation, and a linear filter applied to
intensity or to log-intensity mixes the scene with the speckle and changes the speckle's
distribution (a weighted sum of Fisher–Tippett variables is not Fisher–Tippett), so the network
would see neither the reflectivity nor the speckle it was trained on.

Arrays are ``(rows, cols)``; for SLC data rows are azimuth lines and columns range samples.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .errors import InvalidInputError, UsageError
from .window import Window

__all__ = [
    "CORRELATION_THRESHOLD",
    "CORRELATED_NETWORK_THRESHOLD",
    "estimate_looks_of_speckle",
    "DECORRELATIONS",
    "LagCorrelations",
    "Subsampled",
    "WhitenedSource",
    "WhiteningFilter",
    "central_window",
    "band_response",
    "check_whitening_input",
    "choose_decorrelation",
    "correlated_network_for",
    "correlated_speckle",
    "estimate_speckle_correlation",
    "estimate_whitening_filter",
    "homogeneous_lag_correlations",
    "measure_residual_correlation",
    "resolve_decorrelation",
    "sarcnn_handles_correlation",
    "simulate_correlated_slc",
    "speckle_band_problem",
    "whitened_source",
]

#: Decorrelation modes of the network methods (``auto`` is resolved per input).
DECORRELATIONS = ("none", "subsample", "whiten")
#: Lag-1 log-intensity correlation of the speckle above which a single-look intensity input is
#: subsampled by default. White speckle measures 0 ± 0.03 on homogeneous windows
#: (:func:`estimate_speckle_correlation`), detected Sentinel-1 SLC 0.15–0.29.
CORRELATION_THRESHOLD = 0.1
#: Speckle correlation above which single-look input goes, by default, to a network trained on
#: correlated speckle (full resolution) where one is at hand. Lower than
#: :data:`CORRELATION_THRESHOLD`: a wrong choice costs far less than subsampling. Measured
#: (``tools/correlation_threshold.py``, 161 tiles of 256² of the training references): white
#: speckle reads at most 0.038 on 99 % of them, speckle of a Hamming-weighted band sampled at
#: Nyquist (fraction 1: the least correlated a processor makes) 0.043 or more on 95 %; there
#: ``sarcnn-s1-l1-corr3w`` beats v3 by 0.2–0.5 dB on the tuning crops (by 0.5–0.9 dB at
#: fractions 0.9–0.95, which read 0.07–0.09), and v3 beats it by 0.2–0.3 dB on white speckle.
CORRELATED_NETWORK_THRESHOLD = 0.04
#: Inputs with more looks than this are multilooked products (GRD): left as they are by default,
#: unless their speckle is correlated and the method is SAR-CNN (:func:`choose_decorrelation`).
SINGLE_LOOK_MAX = 1.5
#: Speckle correlation above which multilooked input is subsampled for a SAR-CNN trained on
#: white speckle (no network trained on correlated speckle for its looks at hand). Measured on
#: the tuning crops (2026-11-28, ``python tools/tuning_crops.py --looks L --correlated A R
#: --decorrelate none|subsample W``: correlated looks of one Hamming band averaged; PSNR
#: training / unseen crops, full resolution against subsampled, estimates the median over the
#: crops): 4 looks (``sarcnn-s1-l4``) at 0.09 28.37 / 28.38 against 26.66 / 27.43 dB, at 0.17
#: 27.12 / 26.95 against 26.48 / 27.25, at 0.20 26.05 / 25.75 against 26.35 / 27.05, at 0.29
#: 25.15 / 24.76 against 26.22 / 26.91; 2 looks (``sarcnn-s1-l2``) at 0.15 25.49 / 25.15
#: against 24.96 / 25.49, at 0.26 23.41 / 22.99 against 24.73 / 25.22. White multilooked
#: speckle reads below 0.04 (4.4 looks: 99 % of 161 tiles, ``tools/correlation_threshold.py``).
MULTILOOK_SUBSAMPLE_THRESHOLD = 0.18
#: Looks are measured on the ×2 polyphase grids (:func:`estimate_looks_of_speckle`) where a grid's
#: speckle correlation is under this share of the full resolution's: a processor's correlation
#: falls on the grids, though a band of 0.4 stays correlated there as a band of 0.8 is (over a
#: scene with some fine texture, 4.4 looks: 0.49–0.54 of full resolution's; the looks read
#: about right on the grids, about twice too many at full resolution), while texture does not
#: fall (decimation coarsens it against the windows). 0.5 until 2026-11-28, when an audit found
#: band-0.4 4.4-look speckle read as 9.5 looks.
GRID_DECORRELATION = 0.6
#: A multilooked input's correlation is taken for a processor's (and subsampled above
#: :data:`MULTILOOK_SUBSAMPLE_THRESHOLD`) only on an axis whose lag-2 correlation is at most this
#: share of its lag-1, or whose estimate reaches :data:`PROCESSOR_ESTIMATE_FLOOR`: a processor's
#: correlation sits at lag 1 (multilooked correlated speckle of bands 0.7–0.9 on the tuning
#: crops: lag 2 −0.01 to 0.01 for lag 1 0.15–0.30; narrower bands reach lag 2 too: ratio 0.05 /
#: 0.14 / 0.20 / 0.28–0.31 / 0.38–0.41 at bands 0.5 / 0.45 / 0.4 / 0.35 / 0.3, 2 and 4.4
#: looks), while scene texture a pixel or two wide reaches lag 2 as well (log-normal texture,
#: correlation length 1 px, contrast 0.5–1.5: ratio 0.38–0.44; 2 px: 0.70–0.73), and under
#: white multilooked speckle, whose own log-variance is small, it reads as a strong correlation
#: (4.4 looks, 1 px, contrast 0.5: lag 1 0.32, estimate 0.18–0.19, where subsampling cost
#: 3.8 dB in an audit of 2026-11-28). Measured 2026-11-28 (3 seeds of 256² textures; the six
#: training-reference tuning crops for the bands).
PROCESSOR_LAG2_RATIO = 0.35
#: An estimate (lag 1 less lag 2) at least this high is a processor's correlation whatever its
#: shape: speckle oversampled onto a finer grid (bands 0.3–0.5: 0.44–0.51), where scene texture
#: a pixel wide under white multilooked speckle stayed at or below 0.39 (contrast up to 1.5).
PROCESSOR_ESTIMATE_FLOOR = 0.42


# ----------------------------------------------------------------------------------- measures


def measure_residual_correlation(
    noisy_intensity: np.ndarray, despeckled_intensity: np.ndarray, *, valid: np.ndarray | None = None
) -> tuple[float, float]:
    """Lag-1 correlation of the log ratio image ``noisy / despeckled``.

    Parameters
    ----------
    noisy_intensity, despeckled_intensity : ndarray, shape (rows, cols)
        The input of a despeckler and its output (intensities).
    valid : ndarray of bool, optional
        Pixels to use; non-finite and non-positive pixels of either image are left out anyway.

    Returns
    -------
    (along_rows, along_cols) : tuple of float
        Correlation of ``log r[i, j]`` with ``log r[i, j + 1]`` (horizontal neighbours) and
        with ``log r[i + 1, j]`` (vertical neighbours), ``r`` the ratio image.

    Notes
    -----
    For a perfect despeckler the ratio image is the speckle itself, so its correlation equals
    the input speckle correlation (0 for white speckle). A value *below* the speckle's
    correlation means the output kept part of the (low-frequency) speckle blobs; a value *above*
    it means scene structure leaked into the ratio image (edges, over-smoothing).
    """
    from .speckle import speckle_lag_correlation

    noisy = np.asarray(noisy_intensity, dtype=np.float64)
    clean = np.asarray(despeckled_intensity, dtype=np.float64)
    if noisy.ndim != 2 or noisy.shape != clean.shape:
        raise InvalidInputError(
            f"expected two (rows, cols) images of the same shape, got {noisy.shape} and {clean.shape}"
        )
    with np.errstate(all="ignore"):
        usable = np.isfinite(noisy) & np.isfinite(clean) & (noisy > 0) & (clean > 0)
        if valid is not None:
            usable &= np.asarray(valid, dtype=bool)
        ratio = np.where(usable, noisy / np.where(usable, clean, 1.0), 1.0)
    return speckle_lag_correlation(ratio, valid=usable)


def estimate_speckle_correlation(
    intensity: np.ndarray, *, valid: np.ndarray | None = None, window_size: int = 16, fraction: float = 0.1
) -> tuple[float, float]:
    """Spatial correlation of log-speckle, measured on the most homogeneous windows of an image:
    lag 1 less the lag-2 correlation where positive (:attr:`LagCorrelations.speckle`).

    Parameters
    ----------
    intensity : ndarray, shape (rows, cols)
        A speckled intensity image.
    valid : ndarray of bool, optional
        Pixels to use; windows with any unusable pixel are skipped.
    window_size : int
        Side of the square non-overlapping windows (at least 4).
    fraction : float
        Share of the windows, ranked by coefficient of variation, kept as homogeneous.

    Returns
    -------
    (along_rows, along_cols) : tuple of float
        ``ρ₁ − max(ρ₂, 0)`` horizontally and vertically, with ``ρₖ`` the pooled correlation of
        the window-centred log-intensity at lag ``k``.

    Notes
    -----
    In a homogeneous window ``log I = log R + log S`` with ``R`` constant, so after removing
    the window mean what is left is log-speckle. The kept windows are the least textured ones,
    but on a scene without flat areas they keep texture, which correlates neighbours too. The
    two are told apart by how fast the correlation falls: a SAR processor's speckle correlation
    sits at lag 1 (a Hamming-weighted band of 0.7 of the sampling rate gives ``ρ₁`` 0.23 and
    ``ρ₂`` 0.00, a band of 0.55 0.37 and 0.03; :func:`correlated_speckle`), while scene texture
    a few pixels wide correlates lag 2 almost as much as lag 1. So the lag-2 correlation,
    when positive, is taken as texture and subtracted (a negative one is the estimate's
    scatter). On white speckle over a smooth random texture of correlation length 3 pixels
    and log-contrast 2 this reads 0.08 where ``ρ₁`` alone reads 0.45; texture as fine as the
    speckle's own correlation (about one pixel) cannot be told from it and still reads as
    correlation. Speckle oversampled far beyond a SAR processor's (band below about 0.45 of
    the sampling rate, e.g. an SLC interpolated onto a grid 3× finer) correlates lag 2 as well,
    and the estimate falls again (0.33 at band 0.2, where ``ρ₁`` is 0.80): whether a network has
    seen such speckle is therefore judged on ``ρ₁`` (:func:`trained_correlation`,
    :func:`resolve_decorrelation`). The estimate is biased by about ``−1/window_size²`` from
    the mean removal. It is meant to tell white speckle (≈ 0) from SLC speckle (0.15 and
    more), not to measure a spectrum.
    """
    return homogeneous_lag_correlations(intensity, valid=valid, window_size=window_size,
                                        fraction=fraction).speckle


class LagCorrelations(NamedTuple):
    """Correlations of window-centred log-intensity on an image's most homogeneous windows
    (:func:`homogeneous_lag_correlations`), each ``(along_rows, along_cols)``: between
    horizontal and between vertical neighbours."""

    lag1: tuple[float, float]
    lag2: tuple[float, float]

    @property
    def speckle(self) -> tuple[float, float]:
        """``ρ₁ − max(ρ₂, 0)`` per axis: the lag-1 correlation less what scene texture adds
        (:func:`estimate_speckle_correlation`)."""
        return tuple(one - max(two, 0.0) for one, two in zip(self.lag1, self.lag2))


def homogeneous_lag_correlations(
    intensity: np.ndarray, *, valid: np.ndarray | None = None, window_size: int = 16, fraction: float = 0.1
) -> LagCorrelations:
    """The lag-1 and lag-2 correlations of log-intensity on the most homogeneous windows of an
    image, the measures behind :func:`estimate_speckle_correlation` (same parameters).

    The windows are non-overlapping ``window_size`` squares whose pixels are all usable, the
    ``fraction`` with the lowest coefficient of variation; each is centred on its own mean
    log-intensity, and the products of neighbours are pooled over them.
    """
    array = np.asarray(intensity, dtype=np.float64)
    if array.ndim != 2:
        raise InvalidInputError(f"expected a (rows, cols) intensity image, got shape {array.shape}")
    size = int(window_size)
    if size < 4:
        raise InvalidInputError(f"expected window_size >= 4, got {window_size!r}")
    with np.errstate(all="ignore"):
        usable = np.isfinite(array) & (array > 0)
    if valid is not None:
        usable &= np.asarray(valid, dtype=bool)
    n_rows, n_cols = array.shape[0] // size, array.shape[1] // size
    if n_rows == 0 or n_cols == 0:
        raise InvalidInputError(
            f"expected an image of at least {size}×{size} pixels, got {array.shape}"
        )

    def blocks(image: np.ndarray) -> np.ndarray:
        cropped = image[: n_rows * size, : n_cols * size]
        return cropped.reshape(n_rows, size, n_cols, size).swapaxes(1, 2).reshape(-1, size, size)

    whole = blocks(usable).all(axis=(1, 2))
    if not whole.any():
        raise InvalidInputError(f"expected at least one {size}×{size} window of valid pixels, got none")
    windows = blocks(np.where(usable, array, 1.0))[whole]
    cv = windows.std(axis=(1, 2)) / windows.mean(axis=(1, 2))
    keep = max(1, math.ceil(float(fraction) * len(cv)))
    chosen = windows[np.argpartition(cv, keep - 1)[:keep]]
    logs = np.log(chosen)
    logs -= logs.mean(axis=(1, 2), keepdims=True)
    variance = float((logs**2).mean())
    if variance == 0:
        raise InvalidInputError("expected speckled windows, got constant ones")

    def lag(k: int, axis: int) -> float:
        ahead = logs[:, :, k:] if axis == 2 else logs[:, k:, :]
        behind = logs[:, :, :-k] if axis == 2 else logs[:, :-k, :]
        return float((ahead * behind).mean()) / variance

    return LagCorrelations(lag1=(lag(1, 2), lag(1, 1)), lag2=(lag(2, 2), lag(2, 1)))


def estimate_looks_of_speckle(intensity: np.ndarray, *,
                              valid: np.ndarray | None = None) -> tuple[float, bool]:
    """The number of looks of single-look or multilooked intensity, spatially correlated
    speckle included; and whether the speckle was correlated.

    :func:`~sardespeckle.speckle.estimate_looks` assumes white speckle: on correlated speckle
    the pixels of a window share part of their speckle, the window's variance is too low and
    the looks too high (single-look speckle of a Hamming-weighted band of fraction 0.55
    measures 1.2 looks, of 0.4 1.6: above ``SINGLE_LOOK_MAX``, read as multilooked). Where
    :func:`estimate_speckle_correlation` exceeds :data:`CORRELATION_THRESHOLD`, the looks are
    estimated instead on each of the four ×2 polyphase grids (every other row and column, whose
    neighbours are two pixels apart: 1.01–1.08 looks for single-look bands 0.55 to 0.35) and
    averaged, provided the grid does decorrelate it (its own estimate under
    :data:`GRID_DECORRELATION` of the full resolution's: texture, which raises the estimate
    too, is not decorrelated by decimation, and white multilooked speckle on strong texture
    keeps its looks); white speckle (and a
    sample too small to measure the correlation) keeps the plain estimate. Raises
    :class:`InvalidInputError` as ``estimate_looks`` does."""
    from .speckle import estimate_looks

    intensity = np.asarray(intensity)
    mask = (np.ones(intensity.shape, bool) if valid is None else np.asarray(valid, bool))
    try:
        full = max(estimate_speckle_correlation(intensity, valid=mask))
        # Texture raises the estimate too, and decimation does not lower it (it coarsens the
        # texture relative to the windows): only speckle that every other row and column
        # decorrelates (to under GRID_DECORRELATION of it) is measured on the grids.
        correlated = (full > CORRELATION_THRESHOLD and max(estimate_speckle_correlation(
            intensity[::2, ::2], valid=mask[::2, ::2])) < GRID_DECORRELATION * full)
    except InvalidInputError:
        correlated = False
    if correlated:
        estimates = []
        for row in (0, 1):
            for col in (0, 1):
                try:
                    estimates.append(float(estimate_looks(intensity[row::2, col::2],
                                                          valid=mask[row::2, col::2])))
                except InvalidInputError:
                    pass
        if estimates:
            return float(np.mean(estimates)), True
    return float(estimate_looks(intensity, valid=mask)), False


def choose_decorrelation(kind: str, looks: float, correlation: tuple[float, float] | None, *,
                         correlated_network: bool = False,
                         lag1: tuple[float, float] | None = None,
                         lag2: tuple[float, float] | None = None) -> tuple[str, str]:
    """The default decorrelation of an input, and why.

    * complex (SLC) input → ``whiten``: the spectrum is available, whitening keeps resolution;
    * more than :data:`SINGLE_LOOK_MAX` looks (multilooked, GRD) → ``none``, unless its speckle
      correlation was measured (SAR-CNN only: :func:`resolve_decorrelation` measures it where
      a ``correlated_network`` test is given): above :data:`CORRELATED_NETWORK_THRESHOLD` with
      ``correlated_network`` → ``none``, at full resolution; else above
      :data:`MULTILOOK_SUBSAMPLE_THRESHOLD` on an axis whose correlation has a processor's
      shape (``lag2`` at most :data:`PROCESSOR_LAG2_RATIO` of ``lag1`` there, when given, or
      an estimate of :data:`PROCESSOR_ESTIMATE_FLOOR` or more) →
      ``subsample``, where the correlation costs a white-speckle network more than the halved
      resolution; fine scene texture under white multilooked speckle, which correlates lag 2
      too, stays at full resolution;
    * single-look intensity/amplitude/dB whose speckle correlation (see
      :func:`estimate_speckle_correlation`) exceeds :data:`CORRELATED_NETWORK_THRESHOLD` with
      ``correlated_network`` (weights trained on correlated speckle, the training option
      ``speckle_band``) → ``none``, at full resolution;
    * else, a correlation above :data:`CORRELATION_THRESHOLD` → ``subsample``;
    * otherwise (white speckle, e.g. simulated) → ``none``.

    ``lag1``, the uncorrected lag-1 correlation, is named in the reason when it differs from
    ``correlation`` by more than 0.05 (texture or oversampling took part of it).
    """
    if kind == "complex":
        return "whiten", "complex input: its spectrum is whitened"
    multilooked = looks > SINGLE_LOOK_MAX
    if multilooked and correlation is None:
        return "none", f"{looks:g}-look (multilooked) input: not decorrelated"
    if correlation is None:
        return "none", "speckle correlation not measured: not decorrelated"
    worst = max(correlation)
    measured = f"speckle correlation {correlation[0]:.2f} (rows) / {correlation[1]:.2f} (cols)"
    if lag1 is not None and max(abs(a - b) for a, b in zip(lag1, correlation)) > 0.05:
        measured += (f" (lag 1 {lag1[0]:.2f} / {lag1[1]:.2f}, less the lag-2 correlation of "
                     "texture or oversampling)")
    if multilooked:
        what = f"{looks:.3g}-look (multilooked) input with {measured}"
        if worst > CORRELATED_NETWORK_THRESHOLD and correlated_network:
            return "none", f"{what}, weights trained on correlated speckle: not decorrelated, full resolution"
        shaped = [estimate > MULTILOOK_SUBSAMPLE_THRESHOLD
                  and (lag1 is None or lag2 is None or estimate >= PROCESSOR_ESTIMATE_FLOOR
                       or lag2[axis] <= PROCESSOR_LAG2_RATIO * lag1[axis])
                  for axis, estimate in enumerate(correlation)]
        if worst > MULTILOOK_SUBSAMPLE_THRESHOLD and not any(shaped):
            return "none", (f"{what}: not decorrelated, its correlation reaches lag 2 as scene "
                            "texture does, not confined to lag 1 as a processor's")
        if any(shaped):
            return "subsample", (f"{what}: subsampled ×2, as above {MULTILOOK_SUBSAMPLE_THRESHOLD:g} "
                                 "a network not trained on speckle this correlated loses more "
                                 "to it than to halving the resolution")
        return "none", f"{what}: not decorrelated"
    if worst > CORRELATED_NETWORK_THRESHOLD and correlated_network:
        return "none", (f"single-look input with {measured}, weights trained on correlated "
                        "speckle: not decorrelated, full resolution")
    if worst > CORRELATION_THRESHOLD:
        return "subsample", f"single-look input with {measured}: subsampled ×2"
    return "none", f"single-look input with {measured}: white enough, not decorrelated"


def central_window(shape: tuple[int, int], size: int = 1024) -> Window:
    """The central ``size × size`` window of a raster (the whole raster when smaller)."""
    rows, cols = int(shape[0]), int(shape[1])
    height, width = min(rows, size), min(cols, size)
    return Window((rows - height) // 2, (cols - width) // 2, height, width)


def resolve_decorrelation(
    defaults: Mapping[str, Any],
    params: Mapping[str, Any] | None,
    *,
    kind: str,
    looks: float,
    sample: Callable[[], tuple[np.ndarray, np.ndarray]],
    correlated_network: Callable[[dict[str, Any], tuple[float, float]], dict[str, Any] | None]
    | None = None,
) -> tuple[dict[str, Any], str | None]:
    """Replace ``decorrelate="auto"`` in a method's parameters by the choice for this input.

    Parameters
    ----------
    defaults : mapping
        The method's parameter defaults; methods without a ``decorrelate`` parameter pass through.
    params : mapping or None
        The parameters asked for.
    kind, looks :
        The input kind and number of looks.
    sample : callable
        ``sample() -> (intensity, valid)`` of a representative window, called only when the
        speckle correlation has to be measured.
    correlated_network : callable, optional
        ``correlated_network(params, lag1) -> dict or None``, called only for correlated
        input (:func:`estimate_speckle_correlation` above
        :data:`CORRELATED_NETWORK_THRESHOLD`; multilooked input is measured only when this is
        given), with its
        lag-1 correlation on the homogeneous windows (``LagCorrelations.lag1``, not corrected
        for texture: what a network trained on correlated speckle is checked against, see
        :func:`trained_correlation`): the parameter changes that give it
        to a network trained on that correlated speckle (``{}`` when the network ``params`` name
        already is one; ``{"weights": NAME}`` to pick one), or None when there is none: then
        ``subsample`` or ``none`` (:func:`choose_decorrelation`: single-look input above
        :data:`CORRELATION_THRESHOLD`, multilooked above :data:`MULTILOOK_SUBSAMPLE_THRESHOLD`).
        SAR-CNN's is
        :func:`sarcnn_handles_correlation`.

    Returns
    -------
    (params, reason)
        The parameters with ``decorrelate`` resolved, and why (``None`` when nothing was chosen).
    """
    params = dict(params or {})
    if "decorrelate" not in defaults:
        return params, None
    requested = params.get("decorrelate", defaults["decorrelate"])
    if requested != "auto":
        return params, None
    lags = correlation = None
    # Multilooked input is measured only for a method that says how it handles correlated
    # speckle (SAR-CNN); the others keep it as it is.
    measured = kind != "complex" and (looks <= SINGLE_LOOK_MAX or correlated_network is not None)
    if measured:
        intensity, valid = sample()
        try:
            lags = homogeneous_lag_correlations(intensity, valid=valid)
        except InvalidInputError:
            lags = None
        correlation = None if lags is None else lags.speckle
    switch = (correlated_network(params, lags.lag1) if correlation is not None
              and max(correlation) > CORRELATED_NETWORK_THRESHOLD
              and correlated_network is not None else None)
    mode, reason = choose_decorrelation(kind, looks, correlation,
                                        correlated_network=switch is not None,
                                        lag1=None if lags is None else lags.lag1,
                                        lag2=None if lags is None else lags.lag2)
    if measured and correlation is None and looks > SINGLE_LOOK_MAX:
        # measured for this method, but the sample held no window to measure on
        reason = (f"{looks:.3g}-look (multilooked) input, speckle correlation not measured (no "
                  "16×16 window of valid pixels): not decorrelated")
    if mode == "none" and switch:
        params.update(switch)
        reason += "".join(f"; {key} {value}" for key, value in switch.items())
    params["decorrelate"] = mode
    return params, f"decorrelate={mode} ({reason})"


def sarcnn_handles_correlation(
        looks: float) -> Callable[[dict[str, Any], tuple[float, float]], dict[str, Any] | None]:
    """For :func:`resolve_decorrelation`: ``{}`` when the SAR-CNN weights that ``params`` name
    were trained on correlated speckle as strong as the input's; when they name none,
    ``{"weights": NAME}`` of the registered weights trained on correlated speckle for the looks
    of the default weights for ``looks``
    (:data:`~sardespeckle.models.weights.DEFAULT_SARCNN_CORRELATED_BY_LOOKS`, when installed);
    else None (subsample or none, :func:`choose_decorrelation`). Input whose lag-1
    correlation exceeds what the weights' training band made (:func:`trained_correlation` of
    their narrowest band and their looks, plus
    :data:`CORRELATION_MARGIN`) is beyond what they learnt: None too. Weights that cannot be
    read say None here; loading them later says why."""
    def check(params: dict[str, Any], lag1: tuple[float, float]) -> dict[str, Any] | None:
        from .errors import SardespeckleError
        from .models import weights as registry
        from .models.inference import default_sarcnn_weights

        def handles(name) -> bool:
            try:
                meta = registry.load_weights(name)[1]
            except SardespeckleError:
                return False
            return (registry.trained_on_correlated_speckle(meta) and max(lag1)
                    <= trained_correlation(meta["speckle_band"][0],
                                           max(1.0, float(meta.get("looks") or 1.0)))
                    + CORRELATION_MARGIN)

        if params.get("weights"):
            return {} if handles(params["weights"]) else None
        chosen = registry.correlated_counterpart(default_sarcnn_weights(looks))
        if chosen is not None and chosen in registry.REGISTRY and handles(chosen):
            return {"weights": chosen}
        return None  # none trained on correlated speckle for these looks: subsample or none

    return check


def correlated_network_for(method: str, looks: float):
    """The ``correlated_network`` test of :func:`resolve_decorrelation` for ``method``:
    SAR-CNN's (:func:`sarcnn_handles_correlation`), None for the others."""
    return sarcnn_handles_correlation(looks) if method == "sarcnn" else None


#: How far beyond the correlation of its narrowest training band a network trained on
#: correlated speckle is still given the input at full resolution (the estimate's own scatter).
CORRELATION_MARGIN = 0.03


@functools.lru_cache(maxsize=8)
def trained_correlation(band: float, looks: float = 1.0) -> float:
    """The larger lag-1 correlation :func:`homogeneous_lag_correlations` measures on flat
    ``looks``-look speckle of band fraction ``band`` on both axes (Hamming 0.75; mean over a fixed
    draw of sixteen 256² fields, whose scatter is ±0.01 each): the strongest correlation a
    network trained with ``speckle_band`` ``[band, ...]`` has seen, as the package measures
    inputs (single-look: 0.35 for 0.55, 0.40 for 0.5; it keeps rising as the band narrows, 0.80
    at 0.2, where the texture-corrected :func:`estimate_speckle_correlation` falls again;
    multilooked speckle of a band correlates its log-intensity more than one look does)."""
    rng = np.random.default_rng(0)
    if looks == 1:
        fields = correlated_speckle(16, 256, np.full((16, 2), float(band)), rng)
    else:  # one field at a time: ⌈looks⌉ looks each
        fields = (correlated_speckle(1, 256, np.array([[float(band)] * 2]), rng, looks=float(looks))[0]
                  for _ in range(16))
    return float(np.mean([max(homogeneous_lag_correlations(field).lag1) for field in fields]))


# ------------------------------------------------------------------------------- subsampling


class Subsampled:
    """Run a method on the four polyphase components of each tile and recombine them.

    Parameters
    ----------
    method : callable
        ``method(intensity) -> intensity``, optionally with ``method.batch(list) -> list``.
    halo : int
        The method's own support radius (pixels of a component).
    combine : {"average", "interleave"}
        How the four despeckled components make the full-resolution image (see Notes).

    Notes
    -----
    A tile ``I`` is split into ``I[dr::2, dc::2]`` for ``dr, dc ∈ {0, 1}``. In each component
    neighbouring pixels are two samples apart, where SLC speckle is nearly uncorrelated; each
    is despeckled on its own.

    ``interleave`` writes each result back to the positions it came from. ``average`` (the
    default) brings every component back to the full grid by linear interpolation and takes the
    mean of the four. This is the SAR-CNN authors' "subsample, despeckle, interpolate ×2" done
    for all four components instead of one, so that all the data is used; it equals the
    interleaved image smoothed by ``[1, 2, 1]/4`` along rows and columns (at a pixel of
    component ``(0, 0)`` its own estimate weighs 1/4, the interpolations of the other three the
    rest). The components' estimation errors are independent, so the average has less residual
    noise and no 2×2 pattern; with classical filters standing in for the network it gained
    1.2–2.7 dB PSNR over ``interleave`` on simulated correlated speckle (docs/sarcnn.md). At the
    raster border the missing neighbour is mirrored.

    Support: a component pixel depends on its component within ``halo`` component pixels,
    i.e. within ``2·halo`` full-resolution pixels, plus one for ``average``: :attr:`halo`. The
    split commutes with translations up to a relabelling of the components, and each
    component goes through the same method, so a tile whose origin is odd gives the same result
    as the whole image: tiles need no alignment, tiled output equals whole-image output.

    Components of equal shape (all four when the tile sides are even) are handed to
    ``method.batch`` in one call, together with those of the other tiles of the batch.
    """

    COMBINES = ("average", "interleave")

    def __init__(self, method: Callable[[np.ndarray], np.ndarray], *, halo: int, combine: str = "average") -> None:
        if int(halo) < 0:
            raise UsageError(f"expected a halo >= 0, got {halo}")
        if combine not in self.COMBINES:
            raise UsageError(f"expected combine in {self.COMBINES}, got {combine!r}")
        self.method = method
        self.inner_halo = int(halo)
        self.combine = combine

    @property
    def halo(self) -> int:
        """Support radius in full-resolution pixels."""
        return 2 * self.inner_halo + (1 if self.combine == "average" else 0)

    def __repr__(self) -> str:
        return f"Subsampled({self.method!r}, halo={self.inner_halo}, combine={self.combine!r})"

    def __call__(self, intensity: np.ndarray) -> np.ndarray:
        return self.batch([intensity])[0]

    def batch(self, tiles: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Despeckle ``(rows, cols)`` tiles; returns float32 arrays of the same shapes."""
        arrays = [np.asarray(tile) for tile in tiles]
        groups: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
        for index, array in enumerate(arrays):
            if array.ndim != 2:
                raise InvalidInputError(f"expected tile {index} of shape (rows, cols), got {array.shape}")
            for dr in (0, 1):
                for dc in (0, 1):
                    shape = ((array.shape[0] - dr + 1) // 2, (array.shape[1] - dc + 1) // 2)
                    if shape[0] and shape[1]:
                        groups.setdefault(shape, []).append((index, dr, dc))
        outputs = [np.empty(array.shape, np.float32) for array in arrays]
        batch = getattr(self.method, "batch", None)
        for members in groups.values():
            parts = [np.ascontiguousarray(arrays[i][dr::2, dc::2]) for i, dr, dc in members]
            results = batch(parts) if batch is not None else [self.method(part) for part in parts]
            for (i, dr, dc), result in zip(members, results):
                outputs[i][dr::2, dc::2] = result
        if self.combine == "average":
            outputs = [smooth_121(out).astype(np.float32) for out in outputs]
        return outputs


def smooth_121(image: np.ndarray) -> np.ndarray:
    """Separable ``[1, 2, 1]/4`` smoothing along the first two axes (rows, columns), mirrored
    borders, axes of length 1 untouched; real (→ float64) or complex (→ complex128), any trailing
    axes (e.g. the ``D × D`` matrices of a covariance field)."""
    from scipy.ndimage import convolve1d

    kernel = np.array([0.25, 0.5, 0.25])

    def smooth(part: np.ndarray) -> np.ndarray:
        for axis in (0, 1):
            if part.shape[axis] > 1:
                part = convolve1d(part, kernel, axis=axis, mode="mirror")
        return part

    array = np.asarray(image)
    if np.iscomplexobj(array):
        return smooth(array.real.astype(np.float64)) + 1j * smooth(array.imag.astype(np.float64))
    return smooth(array.astype(np.float64))


# --------------------------------------------------------------------------------- whitening


def check_whitening_input(kind: str) -> None:
    """Raise :class:`UsageError` unless ``kind`` is complex (see the module notes for why)."""
    if kind != "complex":
        raise UsageError(
            f"expected complex (SLC) input for decorrelate='whiten', got {kind} data; speckle "
            "correlation comes from filtering of the complex field, and intensity keeps only "
            "its magnitude (|ρ|²) while a filter on (log-)intensity also filters the scene and "
            "changes the speckle distribution; use decorrelate='subsample' (CLI --decorrelate "
            "subsample) for intensity-only data"
        )


@dataclass(frozen=True, eq=False)
class WhiteningFilter:
    """A separable complex FIR filter that whitens SLC speckle.

    Attributes
    ----------
    azimuth : ndarray of complex128, length ``2·radius + 1``
        Taps along rows (axis 0), lag ``−radius … radius``.
    range : ndarray of complex128, length ``2·radius + 1``
        Taps along columns (axis 1).
    """

    azimuth: np.ndarray
    range: np.ndarray

    def __post_init__(self) -> None:
        for name in ("azimuth", "range"):
            taps = np.asarray(getattr(self, name))
            if taps.ndim != 1 or taps.size % 2 == 0 or not np.all(np.isfinite(taps)):
                raise InvalidInputError(f"expected {name} taps as a finite 1-D array of odd length, got {taps.shape}")
        if self.azimuth.size != self.range.size:
            raise InvalidInputError(
                f"expected azimuth and range taps of the same length, got {self.azimuth.size} and {self.range.size}"
            )

    @property
    def radius(self) -> int:
        """Pixels of context each output pixel needs on each side."""
        return (self.azimuth.size - 1) // 2

    def apply(self, z: np.ndarray) -> np.ndarray:
        """Filter a complex ``(rows, cols)`` field; the field is taken as zero outside the array."""
        from scipy.ndimage import convolve1d

        field = np.asarray(z)
        if field.ndim != 2:
            raise InvalidInputError(f"expected a (rows, cols) complex field, got shape {field.shape}")
        field = field.astype(np.complex128, copy=False)
        out = convolve1d(field, self.azimuth, axis=0, mode="constant", cval=0.0)
        return convolve1d(out, self.range, axis=1, mode="constant", cval=0.0)

    def whitened_intensity(self, z: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """``|filter ∗ z|²`` as float32, with masked pixels (``valid`` false) set to zero first."""
        field = np.where(valid, np.nan_to_num(np.asarray(z)), 0)
        white = self.apply(field)
        return (white.real**2 + white.imag**2).astype(np.float32)

    def describe(self) -> str:
        return f"separable FIR, {self.azimuth.size}×{self.range.size} taps"


def _mean_power_spectrum(z: np.ndarray, usable: np.ndarray, axis: int, segment: int) -> np.ndarray:
    """Welch estimate of the power spectrum of ``z`` along ``axis``, averaged over all lines."""
    lines = np.moveaxis(z, axis, -1)
    ok = np.moveaxis(usable, axis, -1)
    count = lines.shape[-1] // segment
    if count == 0:
        raise InvalidInputError(
            f"expected at least {segment} pixels along axis {axis} to estimate the spectrum, got {lines.shape[-1]}"
        )
    cut = count * segment
    segs = lines[..., :cut].reshape(-1, segment)
    keep = ok[..., :cut].reshape(-1, segment).all(axis=1)
    if not keep.any():
        raise InvalidInputError("expected whole segments of valid complex pixels to estimate the spectrum, got none")
    taper = np.hanning(segment + 2)[1:-1]
    spectra = np.abs(np.fft.fft(segs[keep] * taper, axis=1)) ** 2
    return spectra.mean(axis=0)


def _whitening_taps(spectrum: np.ndarray, radius: int, floor: float) -> np.ndarray:
    size = spectrum.size
    peak = float(spectrum.max())
    if not peak > 0:
        raise InvalidInputError("expected a complex field with some power, got zeros")
    band = spectrum >= floor * peak
    gain = np.where(band, 1.0 / np.sqrt(np.where(band, spectrum, 1.0)), 0.0)
    impulse = np.fft.ifft(gain)
    lags = np.arange(-radius, radius + 1)
    taps = impulse[lags % size] * np.hanning(2 * radius + 3)[1:-1]
    # Keep the mean intensity: sum |H|²·S = sum S over the estimated spectrum.
    response = np.zeros(size, dtype=np.complex128)
    response[lags % size] = taps
    response = np.abs(np.fft.fft(response)) ** 2
    return taps * math.sqrt(float(spectrum.sum()) / float((response * spectrum).sum()))


def estimate_whitening_filter(
    z: np.ndarray,
    *,
    valid: np.ndarray | None = None,
    radius: int = 12,
    segment: int = 32,
    floor: float = 0.01,
) -> WhiteningFilter:
    """Design a :class:`WhiteningFilter` from a complex SLC sample.

    Parameters
    ----------
    z : ndarray of complex, shape (rows, cols)
        SLC pixels (azimuth lines × range samples); at least ``segment`` pixels each way.
    valid : ndarray of bool, optional
        Valid pixels; segments that hold an invalid or non-finite pixel are skipped.
    radius : int
        Half-length of each FIR filter: the filter has ``2·radius + 1`` taps per axis.
    segment : int
        Length of the Welch segments (frequency resolution ``1/segment``), ≥ ``2·radius + 1``.
    floor : float
        Frequencies where the spectrum is below ``floor × peak`` are out of the signal band:
        the filter removes them instead of amplifying what little noise they hold.

    Returns
    -------
    WhiteningFilter

    Notes
    -----
    SAR focusing makes ``z = h ∗ (√R · w)`` with ``w`` white circular Gaussian and ``h`` the
    impulse response, separable in azimuth and range (Hamming weighting, band narrower than the
    sampling rate, a Doppler-centroid shift in azimuth). With ``√R`` slowly varying the power
    spectrum of ``z`` is ``≈ E[R]·|H_az(f_a)|²·|H_rg(f_r)|²``, which the averaged periodograms
    along each axis estimate up to a constant. The filter ``G = 1/|H|`` inside the band (where
    the spectrum is above ``floor``), 0 outside, flattens it. Its impulse response is truncated
    to ``±radius`` lags with a Hann taper, and scaled so that the mean intensity of the sample
    is kept (measured on the pixels whose whole filter support is valid).

    The result is band-limited white, not fully white: frequencies out of the band carry no
    speckle to restore, so pixels keep a correlation ``≈ sinc(band fraction)`` in the complex
    field, i.e. a small intensity correlation (``|ρ|²``). Truncation leaves some colouring
    too; the residual is measured by ``benchmarks/bench_decorrelation.py``. The defaults were
    chosen on the TerraSAR-X SLC and on simulated Hamming-weighted spectra: on the TerraSAR-X
    image the lag-1 speckle correlation (homogeneous windows) drops from 0.26/0.18 to 0.03/0.04;
    a ``floor`` of 0.05 cuts into the weighted band edges and leaves 0.07–0.1.
    """
    field = np.asarray(z)
    if field.ndim != 2 or not np.iscomplexobj(field):
        raise InvalidInputError(f"expected a complex (rows, cols) array, got {field.dtype} of shape {field.shape}")
    radius, segment = int(radius), int(segment)
    if radius < 1 or segment < 2 * radius + 1:
        raise UsageError(f"expected radius >= 1 and segment >= 2·radius + 1, got radius={radius}, segment={segment}")
    if not 0 <= float(floor) < 1:
        raise UsageError(f"expected floor in [0, 1), got {floor!r}")
    usable = np.isfinite(field) & (field != 0)
    if valid is not None:
        usable &= np.asarray(valid, dtype=bool)
    field = np.where(usable, field, 0).astype(np.complex128)
    taps = [_whitening_taps(_mean_power_spectrum(field, usable, axis, segment), radius, float(floor))
            for axis in (0, 1)]
    whitening = WhiteningFilter(azimuth=taps[0], range=taps[1])
    # The taps keep the power of the estimated spectrum, which the Welch taper smears across
    # the band edges: on narrow bands the whitened intensity came out low (−3 % at a 0.7 × 0.7
    # band, −8 % at 0.5 × 0.5). Measured on the sample itself, the mean is kept exactly: the
    # pixels whose whole filter support is valid, whitened and raw.
    from scipy.ndimage import minimum_filter

    support = minimum_filter(usable, size=2 * radius + 1, mode="constant", cval=False)
    if support.any():
        white = whitening.whitened_intensity(field, usable)[support].mean()
        raw = (np.abs(field[support]) ** 2).mean()
        if white > 0:
            whitening = WhiteningFilter(azimuth=taps[0] * math.sqrt(raw / white), range=taps[1])
    return whitening


class WhitenedSource:
    """Intensity of a whitened complex source, read by windows (the engine's ``read``).

    Parameters
    ----------
    source : sardespeckle.io.Source
        An opened source of kind ``complex``.
    whitening : WhiteningFilter

    Notes
    -----
    ``read_intensity(window)`` reads the raw complex pixels of the window grown by the filter
    radius (clipped at the raster border), zeroes the masked ones, filters and crops. The
    filtered value at a pixel depends only on the raw pixels within ``radius`` of it, with zero
    outside the raster, so any tiling gives the same whitened image as the whole raster.
    """

    def __init__(self, source, whitening: WhiteningFilter) -> None:
        check_whitening_input(source.kind)
        self.source = source
        self.whitening = whitening
        self.shape = tuple(source.shape)

    def read_intensity(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        outer = window.expand(self.whitening.radius, self.shape)
        raw_intensity, valid = self.source.read_intensity(outer)
        raw = self.source.read(outer)
        intensity = self.whitening.whitened_intensity(raw, valid)
        inner = window.relative_to(outer).slices
        intensity, valid = intensity[inner], valid[inner] & (intensity[inner] > 0)
        # Masked pixels read as the source's do: 0 where the raw intensity is zero (a sample,
        # see sardespeckle.tiling.weak_zeros), NaN for missing data.
        zero = raw_intensity[inner] == 0
        return np.where(valid, intensity, np.where(zero, 0, np.nan)).astype(np.float32), valid


def whitened_source(source) -> WhitenedSource:
    """Whiten an opened complex source with a filter estimated on its central 1024² window."""
    check_whitening_input(source.kind)
    window = central_window(source.shape)
    _, valid = source.read_intensity(window)
    whitening = estimate_whitening_filter(source.read(window), valid=valid)
    return WhitenedSource(source, whitening)


# -------------------------------------------------------------------------------- simulation


def simulate_correlated_slc(
    reflectivity: np.ndarray,
    *,
    band: tuple[float, float] = (0.8, 0.8),
    hamming: float = 0.75,
    doppler: float = 0.0,
    seed: int,
) -> np.ndarray:
    """Simulate a single-look complex image with SAR-like spatially correlated speckle.

    Parameters
    ----------
    reflectivity : ndarray, shape (rows, cols)
        Non-negative reflectivity ``R``.
    band : (azimuth, range)
        Processed bandwidth as a fraction of the sampling rate (oversampling ``1/band``).
    hamming : float
        Coefficient ``α`` of the generalised Hamming weighting ``α + (1 − α)·cos(2πf/B)``
        (0.75 for Sentinel-1; 1 for no weighting).
    doppler : float
        Azimuth Doppler-centroid shift of the band, in cycles per pixel.
    seed : int
        Seed of the complex Gaussian draw.

    Returns
    -------
    ndarray of complex128
        ``z = h ∗ (√R · w)`` with ``w`` unit-power white circular Gaussian and ``h`` the
        impulse response of the weighted band, normalised so that ``E|z|² = R`` where ``R`` is
        constant.
    """
    values = np.asarray(reflectivity, dtype=np.float64)
    if values.ndim != 2 or not np.all(np.isfinite(values)) or values.min() < 0:
        raise InvalidInputError("expected a finite, non-negative (rows, cols) reflectivity")
    rng = np.random.default_rng(seed)
    white = (rng.standard_normal(values.shape) + 1j * rng.standard_normal(values.shape)) / math.sqrt(2.0)
    field = np.fft.fft2(np.sqrt(values) * white)
    response = band_response(values.shape, band, hamming=hamming, doppler=doppler)
    response *= math.sqrt(response.size / float((response**2).sum()))
    return np.fft.ifft2(field * response)


def band_response(shape: tuple[int, int], band: tuple[float, float], *, hamming: float = 0.75,
                  doppler: float = 0.0) -> np.ndarray:
    """The separable frequency response (on ``np.fft.fftfreq`` order) of a SAR processor's
    weighted band: ``α + (1 − α)·cos(2πf/B)`` inside ``|f − f_D| ≤ B/2``, zero outside, with
    ``B`` the ``(azimuth, range)`` fraction of the sampling rate in ``band``, ``α`` = ``hamming``
    and ``f_D`` = ``doppler`` (azimuth only, cycles per pixel). Not normalised."""
    response = np.ones(shape)
    for axis, (fraction, shift) in enumerate(((band[0], doppler), (band[1], 0.0))):
        freq = np.fft.fftfreq(shape[axis])
        offset = (freq - shift + 0.5) % 1.0 - 0.5
        inside = np.abs(offset) <= fraction / 2
        weight = np.where(inside, hamming + (1 - hamming) * np.cos(2 * np.pi * offset / fraction), 0.0)
        response = response * (weight[:, None] if axis == 0 else weight[None, :])
    return response


def speckle_band_problem(band, share) -> str | None:
    """What is wrong with a ``speckle_band`` ``[low, high]`` and its ``speckle_band_share``
    (the training option, as a config gives them or a weights file records them), or None:
    band fractions with ``0 < low ≤ high ≤ 1``, a share in ``[0, 1]``."""
    numbers = (isinstance(band, (list, tuple)) and len(band) == 2
               and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in band))
    if not numbers or not 0 < band[0] <= band[1] <= 1:
        return (f"expected speckle_band as [low, high] with 0 < low <= high <= 1 (band fractions "
                f"of the sampling rate; Sentinel-1 SLC about 0.6-0.8), got {band!r}")
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        return (f"expected speckle_band_share in [0, 1] (the share of patches with correlated "
                f"speckle), got {share!r}")
    return None


def multilook_weights(looks: float) -> np.ndarray:
    """Weights of the ``⌈L⌉`` looks averaged into ``L``-look speckle (:func:`correlated_speckle`
    with ``looks``): all equal but the last, ``a ∈ (0, 1]`` of the others, so that the
    equivalent number of looks ``(Σw)² / Σw²`` is ``L`` (to within 1e-6 of an integer, that
    integer); normalised to sum 1. Integer ``L`` gives ``L`` equal weights."""
    looks = float(looks)
    if not (math.isfinite(looks) and looks >= 1):
        raise InvalidInputError(f"expected looks >= 1 for multilooked correlated speckle, got {looks!r}")
    count = math.ceil(looks - 1e-6)  # within 1e-6 of an integer: that many looks
    others = count - 1
    if others == 0:
        return np.ones(1)
    # (others + a)² = L (others + a²), the root in (0, 1]
    last = (others - math.sqrt(max(others**2 - (looks - 1) * others * (looks - others), 0.0))) / (looks - 1)
    weights = np.append(np.ones(others), last)
    return weights / weights.sum()


def correlated_speckle(count: int, size: int, bands: np.ndarray, rng: np.random.Generator, *,
                       hamming: float = 0.75, looks: float = 1.0) -> np.ndarray:
    """``count`` fields of single-look intensity speckle, ``(count, size, size)`` float32 with
    mean 1, each spatially correlated as a SAR processor makes it: ``|h ∗ w|²`` with ``w``
    white circular Gaussian and ``h`` the weighted band of :func:`band_response` whose
    ``(azimuth, range)`` fractions are that field's row of ``bands`` (``(count, 2)``; 1 with
    ``hamming`` 1 is white speckle). The filtering is circular: each field is stationary, with
    exactly the exponential marginal of single-look speckle, and its lag-1 log-intensity
    correlation is about 0.06 / 0.16 / 0.23 / 0.33 / 0.43 for fractions 1 / 0.8 / 0.7 / 0.6 / 0.5
    with ``hamming`` 0.75 (Sentinel-1's weighting; its single-look products measure 0.17–0.28 on
    homogeneous windows). Draws from ``rng`` only.

    ``looks`` above 1 gives multilooked speckle instead: the weighted mean of ``⌈looks⌉``
    independent single-look fields of the same band (:func:`multilook_weights`: equivalent
    number of looks ``looks``), as looks formed from independent parts of the spectrum or of
    time keep the spatial correlation of each look (a GRD's range looks are narrower bands
    resampled, which this approximates by the band fraction itself). ``looks`` 1 draws exactly
    as before the option existed."""
    bands = np.asarray(bands, dtype=np.float64).reshape(count, 2)
    if count == 0:
        return np.empty((0, size, size), np.float32)
    if looks != 1:
        weights = multilook_weights(looks)
        fields = correlated_speckle(count * weights.size, size, np.repeat(bands, weights.size, axis=0),
                                    rng, hamming=hamming)
        fields = fields.reshape(count, weights.size, size, size)
        return np.einsum("k,nkij->nij", weights, fields).astype(np.float32)
    white = rng.standard_normal((count, size, size)) + 1j * rng.standard_normal((count, size, size))
    responses = np.stack([band_response((size, size), (float(a), float(r)), hamming=hamming)
                          for a, r in bands])
    responses /= np.sqrt(np.mean(responses**2, axis=(1, 2), keepdims=True))
    field = np.fft.ifft2(np.fft.fft2(white) * responses)
    return (0.5 * (field.real**2 + field.imag**2)).astype(np.float32)
