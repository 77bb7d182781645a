"""Gaussian denoisers for plug-and-play MuLoG, all under one contract.

A Gaussian denoiser is a callable ``f(v, sigma) -> ndarray``: ``v`` is a ``(rows, cols)`` float
image corrupted by white Gaussian noise of standard deviation ``sigma``, **in the units of v**,
and the result is the denoised image of the same shape. Each denoiser here rescales ``v`` to the
range its algorithm was tuned or trained for, denoises, and maps the result back, so that the
caller never needs to know that range.

A denoiser may also define ``prior_weight(looks) -> float``: the ADMM prior weight λ that MuLoG
uses with it by default at ``looks`` (1, MuLoG's value, when it does not;
:func:`fixed_sigma_prior_weight` for the fixed-σ DnCNNs).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from sardespeckle.errors import InvalidInputError, SardespeckleError, UsageError

__all__ = [
    "GaussianDenoiser",
    "MissingDependencyError",
    "Bm3dDenoiser",
    "GaussianFilterDenoiser",
    "DnCNNDenoiser",
    "DnCNNSetDenoiser",
    "bm3d_denoiser",
    "fixed_sigma_prior_weight",
    "gaussian_filter_denoiser",
]


class GaussianDenoiser(Protocol):
    """``f(v, sigma) -> ndarray``: denoise ``(rows, cols)`` ``v`` with noise std ``sigma``."""

    def __call__(self, v: np.ndarray, sigma: float) -> np.ndarray: ...


class MissingDependencyError(SardespeckleError, ImportError):
    """An optional dependency needed by the requested feature is not installed."""


def _check_call(v, sigma) -> tuple[np.ndarray, float]:
    array = np.asarray(v)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating):
        raise InvalidInputError(
            f"expected v as a float array of shape (rows, cols), got {array.dtype} {array.shape}"
        )
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real):
        raise InvalidInputError(f"expected sigma to be a real number >= 0, got {sigma!r}")
    sigma = float(sigma)
    if not math.isfinite(sigma) or sigma < 0:
        raise InvalidInputError(f"expected sigma to be a finite number >= 0, got {sigma!r}")
    return array, sigma


# --- MuLoG prior weight ------------------------------------------------------------------------

#: Square root of the prior weight of the fixed-σ DnCNNs at L ≤ 1 (:func:`fixed_sigma_prior_weight`) ...
FIXED_SIGMA_STRENGTH_L1 = 0.82
#: ... and its growth per doubling of the looks, up to 1 (reached at L = 4).
FIXED_SIGMA_STRENGTH_SLOPE = 0.09


def fixed_sigma_prior_weight(looks: float) -> float:
    """MuLoG's prior weight λ for a fixed-σ DnCNN at ``looks``: ``k(L)²`` with
    ``k(L) = min(1, 0.82 + 0.09·log₂ max(L, 1))`` (0.67 at L = 1, 0.83 at L = 2, 1 from L = 4).

    After the first iteration MuLoG asks its denoiser to remove noise of std ``√(λ/β)``
    (normalised units); a fixed-σ network removes exactly that much, and with λ = 1 (the
    value tuned for BM3D) it over-smooths at low looks. ``k`` scales the noise level it is
    asked to remove. Chosen with MuLoG on six 256² crops of the SAR training references and
    four 256 × 128 crops of an unseen strip (marais2 columns 256:384), one speckle draw,
    average PSNR train / unseen (the validation references were not used):

    ============  ===============  ===============  ===============  ===============
    L, k          1.0              0.9              0.85             0.8
    ============  ===============  ===============  ===============  ===============
    1 dncnn-sar   25.73 / 25.92    26.09 / 26.24    —                26.20 / 26.31
    1 natural     24.81 / 24.83    25.35 / 25.44    25.57 / 25.63    25.59 / 25.59
    2 dncnn-sar   27.75 / 27.89    27.91 / 28.07    27.90 / 28.05    27.79 / 27.91
    2 natural     26.88 / 26.99    27.38 / 27.23    27.33 / 27.39    26.84 / 26.82
    4 dncnn-sar   29.67 / 29.82    —                29.65 / 29.73    29.46 / 29.47
    4 natural     28.93 / 29.10    —                28.70 / 28.57    27.53 / 27.45
    ============  ===============  ===============  ===============  ===============

    Checked afterwards between the measured looks, rule value against k = 1: L = 1.5 (k = 0.87)
    dncnn-sar 27.16 / 27.43 against 26.86 / 27.24, natural 26.48 / 26.75 against 26.00 / 26.44;
    L = 3 (k = 0.96) dncnn-sar 28.88 / 29.02 against 28.82 / 28.97, natural 28.26 / 28.44
    against 28.14 / 28.19.

    Below the optimum the natural set breaks down quickly (L = 1: 25.08 / 24.89 dB at
    k = 0.75, 23.07 / 22.91 at 0.7: it leaves the log-speckle's outliers in), hence k above
    the best value rather than below it. BM3D keeps λ = 1 (L = 1, k = 0.8: 25.49 / 25.80 dB
    against 25.48 / 25.92), and so do blind networks, which remove the noise they see.
    Below one look (not measured) the L = 1 value is used.
    """
    from sardespeckle.speckle import _check_looks

    looks = _check_looks(looks)
    strength = FIXED_SIGMA_STRENGTH_L1 + FIXED_SIGMA_STRENGTH_SLOPE * math.log2(max(looks, 1.0))
    return min(1.0, strength) ** 2


# --- BM3D -----------------------------------------------------------------------------------


#: Smallest image side handed to bm3d (smaller images are mirrored up to it): bm3d 4.0.3 raises
#: below 8 pixels and crashes with a segmentation fault at exactly 8 (measured at σ = 40).
BM3D_MIN_SIDE = 16


class Bm3dDenoiser:
    """BM3D (Dabov et al.) with the affine rescaling under which it was tuned.

    Build it with :func:`bm3d_denoiser`.

    Parameters
    ----------
    target_sigma : float
        Noise level, on BM3D's ``[0, 255]`` scale, that ``sigma`` is mapped to.
    profile : str
        ``bm3d`` profile name (``"np"``: the normal profile).

    Notes
    -----
    BM3D's thresholds and block-matching distances are tuned for 8-bit images, so a noise
    level means the same thing to it only on that scale. The image is mapped by
    ``v' = v·s + 127.5`` with ``s = target_sigma / sigma``, denoised at noise level
    ``target_sigma`` and mapped back by ``(u − 127.5)/s``. BM3D therefore always runs in the
    regime it is tuned for (its parameters switch at σ = 40); what varies is the image
    contrast on its scale, i.e. the signal-to-noise ratio, which is the information it needs.
    The map depends on ``sigma`` only, never on the image content: BM3D's block matching is
    discontinuous, so any data-dependent offset (a median, a min–max range) computed on a tile
    would make tiles differ from the whole image far beyond the halo. BM3D does not clip, so
    the values need not lie in ``[0, 255]``; they are centred there when ``v`` is (MuLoG's
    normalised log images span ≈ 300–500 grey levels at ``sigma = 1``).
    ``target_sigma`` was chosen by measuring MuLoG+BM3D PSNR (``docs/mulog.md``).
    """

    def __init__(self, *, target_sigma: float = 40.0, profile: str = "np") -> None:
        try:
            import bm3d  # noqa: F401  (optional dependency, imported only when asked for)
        except ImportError:
            raise MissingDependencyError(
                "the BM3D denoiser needs the bm3d package, which is not installed: "
                "pip install sardespeckle[bm3d]; BM3D is free for non-commercial use only"
            ) from None
        if not (isinstance(target_sigma, numbers.Real) and 0 < float(target_sigma) < 255):
            raise UsageError(f"expected target_sigma in (0, 255), got {target_sigma!r}")
        self.target_sigma = float(target_sigma)
        self.profile = str(profile)

    def __repr__(self) -> str:
        return f"Bm3dDenoiser(target_sigma={self.target_sigma}, profile={self.profile!r})"

    def __call__(self, v: np.ndarray, sigma: float) -> np.ndarray:
        import bm3d

        array, sigma = _check_call(v, sigma)
        if sigma == 0:
            return array.astype(np.float64, copy=True)
        scale = self.target_sigma / sigma
        scaled = array.astype(np.float64) * scale + 127.5
        # bm3d 4.0.3 refuses sides below its block size and crashes the interpreter (SIGSEGV)
        # on an 8-pixel side: smaller images are mirrored up to BM3D_MIN_SIDE and cropped back.
        grow = [(0, max(0, BM3D_MIN_SIDE - n)) for n in scaled.shape]
        out = bm3d.bm3d(np.pad(scaled, grow, mode="symmetric"), self.target_sigma,
                        profile=self.profile)
        out = np.asarray(out, dtype=np.float64).reshape(scaled.shape[0] + grow[0][1],
                                                       scaled.shape[1] + grow[1][1])
        return (out[:array.shape[0], :array.shape[1]] - 127.5) / scale


def bm3d_denoiser(*, target_sigma: float = 40.0, profile: str = "np") -> Bm3dDenoiser:
    """BM3D as a :class:`GaussianDenoiser` ``f(v, sigma)``.

    Parameters
    ----------
    target_sigma : float, keyword-only
        Noise level on BM3D's 8-bit scale that ``sigma`` is mapped to (see
        :class:`Bm3dDenoiser`).
    profile : str, keyword-only
        ``bm3d`` profile.

    Returns
    -------
    Bm3dDenoiser

    Raises
    ------
    MissingDependencyError
        If the optional ``bm3d`` package is not installed
        (``pip install sardespeckle[bm3d]``; BM3D is free for non-commercial use only).

    References
    ----------
    K. Dabov, A. Foi, V. Katkovnik, K. Egiazarian, "Image denoising by sparse 3-D
    transform-domain collaborative filtering", IEEE TIP 16(8), 2007.
    """
    return Bm3dDenoiser(target_sigma=target_sigma, profile=profile)


# --- Gaussian filter (baseline) -------------------------------------------------------------


class GaussianFilterDenoiser:
    """A fixed Gaussian blur: the simplest denoiser satisfying the contract (a test baseline)."""

    def __init__(self, *, width: float = 1.5) -> None:
        if isinstance(width, bool) or not isinstance(width, numbers.Real) or not width > 0:
            raise UsageError(f"expected width > 0 (pixels), got {width!r}")
        self.width = float(width)

    def __repr__(self) -> str:
        return f"GaussianFilterDenoiser(width={self.width})"

    def __call__(self, v: np.ndarray, sigma: float) -> np.ndarray:
        from scipy.ndimage import gaussian_filter

        array, sigma = _check_call(v, sigma)
        if sigma == 0:
            return array.astype(np.float64, copy=True)
        return gaussian_filter(array.astype(np.float64), self.width, mode="reflect")


def gaussian_filter_denoiser(*, width: float = 1.5) -> GaussianFilterDenoiser:
    """A Gaussian blur of ``width`` pixels (standard deviation) as a denoiser.

    Parameters
    ----------
    width : float, keyword-only
        Standard deviation of the blur kernel in pixels.

    Returns
    -------
    GaussianFilterDenoiser

    Notes
    -----
    The blur ignores ``sigma`` (except that ``sigma = 0`` returns ``v``): it is linear,
    shift- and scale-equivariant, and fast, which makes it a baseline for tests and timing, not
    a good denoiser.
    """
    return GaussianFilterDenoiser(width=width)


# --- DnCNN ----------------------------------------------------------------------------------

_PRECISIONS = ("fp32", "bf16")


#: Side of the local mean whose percentiles give the signal range of ``v`` (DnCNNDenoiser).
RANGE_WINDOW = 7

#: Percentiles that bound the robust range of an image (DnCNNDenoiser, SAR training images).
ROBUST_PERCENTILES = (0.5, 99.5)


class DnCNNDenoiser:
    """A DnCNN trained on ``[0, 1]``-scaled images with white Gaussian noise, as ``f(v, sigma)``.

    Parameters
    ----------
    network : sardespeckle.models.DnCNN
        Single-channel network; its :meth:`~sardespeckle.models.DnCNN.denoise` gives the clean
        estimate. A batch-norm-folded eval copy is used; the original is not modified.
    trained_sigma : float, optional, keyword-only
        Noise std (on the ``[0, 1]`` scale) of a network trained for one noise level.
    sigma_range : (float, float), optional, keyword-only
        Noise stds ``(low, high)`` (``[0, 1]`` scale) of a blind network. Give exactly one of
        ``trained_sigma`` and ``sigma_range``.
    span : float, keyword-only
        Share of ``[0, 1]`` that the robust range of ``v`` is mapped to (blind networks).
    range_window : int, keyword-only
        Side of the local mean whose percentiles measure that range (1: those of ``v``).
    precision : {"fp32", "bf16"}, keyword-only
        Arithmetic of the convolutions (bf16 through CPU autocast, the input read at float32
        precision, see ``DnCNN.forward_mixed``).
    threads : int, optional, keyword-only
        Torch CPU threads during a call (restored afterwards).
    device : {"cpu", "cuda", "auto"}, keyword-only
        Where the network runs (``auto``: CUDA when torch sees a GPU); the image goes there and
        back at each call, the rest of MuLoG stays on the CPU.
    log_sigma_range : (float, float), optional, keyword-only
        For a fixed-σ network trained on SAR log-images scaled by their noise level
        (``sardespeckle.training.gaussian.LogScalePatchSampler``): the noise stds, in
        log-intensity units, it was trained for. Informational (MuLoG warns when it would ask
        for others); it does not change the map.

    Notes
    -----
    The rescaling is ``v' = (v − c)·s + ½`` with ``c`` the mid-point of the 0.5 and 99.5
    percentiles ``q₋, q₊`` of the ``range_window``² local mean of ``v`` (7 by default: the
    signal's range, as the noise of a local mean is 7 times smaller and the training images
    were clean when their range was mapped); the network denoises ``v'`` and the result goes
    back by
    ``(u − ½)/s + c``. The scale ``s`` fixes the noise level the network sees, ``σ·s``:

    * fixed-σ network: ``s = trained_sigma / σ``;
    * blind network: ``s = span / (q₊ − q₋)`` (the image fills ``span`` of ``[0, 1]``, as the
      training images did), then clipped to ``[low/σ, high/σ]`` so that ``σ·s`` stays in the
      trained noise range (``low`` is raised to 1/255 so that a tiny σ cannot blow the
      contrast up).

    ``σ = 0`` returns ``v`` unchanged.
    """

    def __init__(
        self,
        network,
        *,
        trained_sigma: float | None = None,
        sigma_range: tuple[float, float] | None = None,
        span: float = 0.8,
        range_window: int = RANGE_WINDOW,
        precision: str = "fp32",
        threads: int | None = None,
        log_sigma_range: tuple[float, float] | None = None,
        device: str = "cpu",
    ) -> None:
        from sardespeckle.models.dncnn import DnCNN
        from sardespeckle.models.inference import resolve_device

        if not isinstance(network, DnCNN):
            raise InvalidInputError(f"expected a DnCNN network, got {type(network).__name__}")
        if network.channels != 1:
            raise InvalidInputError(
                f"expected a single-channel DnCNN, got channels={network.channels}"
            )
        if (trained_sigma is None) == (sigma_range is None):
            raise UsageError(
                "expected exactly one of trained_sigma (fixed-noise network) and sigma_range "
                f"(blind network), got trained_sigma={trained_sigma!r}, sigma_range={sigma_range!r}"
            )
        if trained_sigma is not None:
            if not (isinstance(trained_sigma, numbers.Real) and 0 < float(trained_sigma) < 1):
                raise UsageError(
                    f"expected trained_sigma in (0, 1) (the [0, 1] image scale), got {trained_sigma!r}"
                )
            trained_sigma = float(trained_sigma)
        else:
            try:
                low, high = (float(value) for value in sigma_range)
            except (TypeError, ValueError):
                raise UsageError(f"expected sigma_range as (low, high), got {sigma_range!r}") from None
            if not 0 <= low < high < 1:
                raise UsageError(
                    f"expected 0 <= low < high < 1 for sigma_range, got {sigma_range!r}"
                )
            sigma_range = (max(low, 1.0 / 255.0), high)
        if not (isinstance(span, numbers.Real) and 0 < float(span) <= 1):
            raise UsageError(f"expected span in (0, 1], got {span!r}")
        if isinstance(range_window, bool) or not isinstance(range_window, int) or range_window < 1:
            raise UsageError(f"expected range_window to be a positive integer, got {range_window!r}")
        if precision not in _PRECISIONS:
            raise UsageError(f"expected precision in {_PRECISIONS}, got {precision!r}")
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
        ):
            raise UsageError(f"expected threads to be a positive integer or None, got {threads!r}")

        if log_sigma_range is not None:
            if trained_sigma is None:
                raise UsageError("log_sigma_range describes a fixed-σ network; give trained_sigma too")
            try:
                log_low, log_high = (float(value) for value in log_sigma_range)
            except (TypeError, ValueError):
                raise UsageError(f"expected log_sigma_range as (low, high), got {log_sigma_range!r}") from None
            if not 0 < log_low <= log_high < math.inf:
                raise UsageError(f"expected 0 < low <= high for log_sigma_range, got {log_sigma_range!r}")
            log_sigma_range = (log_low, log_high)
        self.trained_sigma = trained_sigma
        self.log_sigma_range = log_sigma_range
        self.sigma_range = sigma_range
        self.span = float(span)
        self.range_window = range_window
        self.precision = precision
        self.threads = threads
        self.device = resolve_device(device)
        import torch

        folded = network.fold_batchnorm()
        for parameter in folded.parameters():
            parameter.requires_grad_(False)
        # channels_last network and input let oneDNN pick its fast kernels: a 1024² bf16 pass of
        # DnCNN-17 took 5.4 s instead of 7.4 s on the 2-core AVX512-bf16 CPU.
        self.network = folded.to(self.device, memory_format=torch.channels_last)

    def __repr__(self) -> str:
        noise = (
            f"trained_sigma={self.trained_sigma}"
            if self.trained_sigma is not None
            else f"sigma_range={self.sigma_range}"
        )
        return (
            f"DnCNNDenoiser(depth={self.network.depth}, {noise}, precision={self.precision!r}, "
            f"threads={self.threads}, device={self.device!r})"
        )

    def scale_for(self, v: np.ndarray, sigma: float, *,
                  bounds: tuple[float, float] | None = None) -> tuple[float, float]:
        """The affine map ``(c, s)`` used for ``v`` at noise ``sigma`` (see Notes); ``bounds``
        is ``signal_range(v, self.range_window)`` when the caller has it already."""
        low_q, high_q = signal_range(v, self.range_window) if bounds is None else bounds
        center = 0.5 * float(low_q + high_q)
        if self.trained_sigma is not None:
            return center, self.trained_sigma / sigma
        extent = float(high_q - low_q)
        low, high = self.sigma_range
        fit = self.span / extent if extent > 0 else high / sigma
        return center, float(np.clip(fit, low / sigma, high / sigma))

    def prior_weight(self, looks: float) -> float:
        """MuLoG's default prior weight: :func:`fixed_sigma_prior_weight` for a fixed-σ
        network, 1 for a blind one."""
        return fixed_sigma_prior_weight(looks) if self.trained_sigma is not None else 1.0

    def __call__(self, v: np.ndarray, sigma: float) -> np.ndarray:
        array, sigma = _check_call(v, sigma)
        if sigma == 0:
            return array.astype(np.float64, copy=True)
        return self._denoise(array.astype(np.float64), sigma)

    def _denoise(self, values: np.ndarray, sigma: float,
                 bounds: tuple[float, float] | None = None) -> np.ndarray:
        """``f(values, sigma)`` for checked float64 ``values`` and ``sigma > 0``."""
        import torch

        center, scale = self.scale_for(values, sigma, bounds=bounds)
        scaled = ((values - center) * scale + 0.5).astype(np.float32)
        with self._thread_limit(), self._full_fp32(), torch.inference_mode():
            x = torch.from_numpy(scaled)[None, None].to(self.device)
            x = x.contiguous(memory_format=torch.channels_last)
            out = self.network.denoise(x, self._dtype())[0, 0].cpu().numpy().astype(np.float64)
        return (out - 0.5) / scale + center

    def _dtype(self):
        """Reduced precision of the hidden layers (``DnCNN.forward_mixed``); None for fp32."""
        import torch

        return torch.bfloat16 if self.precision == "bf16" else None

    def _thread_limit(self) -> contextlib.AbstractContextManager:
        from sardespeckle.models.threads import torch_threads

        return torch_threads(self.threads)

    def _full_fp32(self) -> contextlib.AbstractContextManager:
        from sardespeckle.models.threads import full_fp32

        return full_fp32(self.device == "cuda" and self.precision == "fp32")


def signal_range(v: np.ndarray, window: int = RANGE_WINDOW) -> tuple[float, float]:
    """The 0.5 and 99.5 percentiles of the ``window``² local mean of ``v`` (``window`` 1: of
    ``v``): by default the range of the signal, not of the noise (the noise std of a 7×7
    mean is 7 times smaller), as the training images' range was that of clean images."""
    from scipy.ndimage import uniform_filter

    local = uniform_filter(v, window, mode="reflect") if window > 1 else v
    low_q, high_q = np.percentile(local, ROBUST_PERCENTILES)
    return float(low_q), float(high_q)


#: Signal range (:func:`signal_range`) of 90 % of the natural training images (train400 on
#: ``[0, 1]``: 10/50/90th percentiles 0.47 / 0.71 / 0.87).
NATURAL_MAX_CONTRAST = 0.87


class DnCNNSetDenoiser:
    """Fixed-σ DnCNNs, one picked per call by the noise-to-contrast ratio of ``v``.

    Parameters
    ----------
    members : sequence of DnCNNDenoiser
        Networks trained for one noise level each (``trained_sigma``), on the same images.
    max_contrast : float, keyword-only
        Largest signal range (on ``[0, 1]``) that the training images commonly had.

    Notes
    -----
    A fixed-σ network removes the σ it is asked to remove (each member maps ``v`` by
    ``s = trained_sigma / σ``), unlike a blind network, which removes the noise it sees: inside
    MuLoG the ADMM asks for more than the noise left in ``x − e`` (σ = 0.58 against ≈ 0.37 at
    L = 1), and a blind network under-smooths. Which member is used only changes the contrast
    the network sees, ``c = (q₊ − q₋)·trained_sigma / σ`` (``q₋, q₊`` from
    :func:`signal_range`): a call uses the member with the largest ``trained_sigma`` whose
    ``c`` stays within ``max_contrast``, as much contrast as the training images had but not
    more (the smallest member when none fits). Measured with MuLoG on six 256² crops of the
    SAR training references (not the validation references): at L = 1 the σ = 70/255 network
    sees c ≈ 0.6–0.8 and gives 24.81 dB against 24.55 for σ = 35/255 (c ≈ 0.3–0.4); at L = 4
    the log-image's range is 2.4 times larger, σ = 70/255 would see c ≈ 1.1–1.35 and loses
    1.5 dB on one crop (28.54 dB on average when it runs the first iteration), σ = 35/255
    (c ≈ 0.56–0.67) gives 29.03 dB.
    """

    def __init__(self, members: Sequence[DnCNNDenoiser], *,
                 max_contrast: float = NATURAL_MAX_CONTRAST) -> None:
        members = list(members)
        if not members or not all(isinstance(m, DnCNNDenoiser) and m.trained_sigma is not None
                                  for m in members):
            raise UsageError("expected one or more fixed-σ DnCNNDenoiser members (trained_sigma set)")
        if len({m.trained_sigma for m in members}) != len(members):
            raise UsageError("expected members with distinct trained_sigma")
        if not (isinstance(max_contrast, numbers.Real) and 0 < float(max_contrast)):
            raise UsageError(f"expected max_contrast > 0, got {max_contrast!r}")
        if len({m.range_window for m in members}) != 1:
            raise UsageError("expected members with the same range_window")
        self.members = sorted(members, key=lambda m: m.trained_sigma)
        self.max_contrast = float(max_contrast)

    def __repr__(self) -> str:
        sigmas = ", ".join(f"{m.trained_sigma * 255:.0f}/255" for m in self.members)
        return f"DnCNNSetDenoiser(sigmas=[{sigmas}], max_contrast={self.max_contrast})"

    @property
    def precision(self) -> str:
        return self.members[0].precision

    @property
    def device(self) -> str:
        return self.members[0].device

    def prior_weight(self, looks: float) -> float:
        """MuLoG's default prior weight: :func:`fixed_sigma_prior_weight`."""
        return fixed_sigma_prior_weight(looks)

    def select(self, v: np.ndarray, sigma: float) -> DnCNNDenoiser:
        """The member used for ``v`` at noise ``sigma > 0`` (see Notes)."""
        return self._select(signal_range(np.asarray(v, dtype=np.float64),
                                         self.members[0].range_window), sigma)

    def _select(self, bounds: tuple[float, float], sigma: float) -> DnCNNDenoiser:
        extent = bounds[1] - bounds[0]
        fitting = [m for m in self.members if extent * m.trained_sigma / sigma <= self.max_contrast]
        return fitting[-1] if fitting else self.members[0]

    def __call__(self, v: np.ndarray, sigma: float) -> np.ndarray:
        array, sigma = _check_call(v, sigma)
        if sigma == 0:
            return array.astype(np.float64, copy=True)
        values = array.astype(np.float64)
        # The members share the range window: the range picks the member and maps the image.
        bounds = signal_range(values, self.members[0].range_window)
        return self._select(bounds, sigma)._denoise(values, sigma, bounds)


def check_denoiser(denoiser) -> Callable[[np.ndarray, float], np.ndarray]:
    """Refuse anything that is not callable as ``f(v, sigma)``, with a hint.

    The signature is checked before any work when Python can read it (builtins and some
    extension callables cannot be inspected: those are called as they are).
    """
    if not callable(denoiser):
        raise UsageError(
            f"expected a Gaussian denoiser f(v, sigma) -> v or a denoiser name, "
            f"got {type(denoiser).__name__}"
        )
    try:
        signature = inspect.signature(denoiser)
    except (TypeError, ValueError):
        return denoiser
    try:
        signature.bind(None, 1.0)
    except TypeError as error:
        raise UsageError(
            f"the denoiser must accept two positional arguments f(v, sigma) (the image and "
            f"the noise std); {getattr(denoiser, '__name__', type(denoiser).__name__)}"
            f"{signature} does not: {error}"
        ) from None
    return denoiser


def checked_output(result, shape: tuple[int, ...]) -> np.ndarray:
    """A denoiser's result as float64, refused unless it is a real finite array of ``shape``
    (the input's): what MuLoG does with it next would hide the mistake."""
    array = np.asarray(result)
    if array.dtype.kind not in "iuf" or array.dtype == np.bool_:
        what = "complex values" if array.dtype.kind == "c" else f"values of type {array.dtype.name}"
        raise InvalidInputError(f"the denoiser returned {what}; it must return real numbers "
                                "(an image like its input)")
    if array.shape != tuple(shape):
        size = " × ".join(str(n) for n in array.shape) or "a single value"
        raise InvalidInputError(f"the denoiser returned an array of {size}, expected one of "
                                f"{' × '.join(str(n) for n in shape)} (its input's shape)")
    array = array.astype(np.float64, copy=False)
    if not np.all(np.isfinite(array)):
        raise InvalidInputError("the denoiser returned NaN or infinite values")
    return array


def check_callback(callback) -> None:
    """Refuse a MuLoG ``callback`` that is neither ``None`` nor callable, before any work."""
    if callback is not None and not callable(callback):
        raise UsageError(
            f"callback must be a function called with each iterate, or None; "
            f"got {type(callback).__name__}"
        )
