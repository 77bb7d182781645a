"""SAR-CNN: a DnCNN applied to normalised log-amplitude, with debiasing.

Numpy images are ``(rows, cols)`` intensity; the network sees ``(B, 1, H, W)`` normalised
log-amplitude. The conversion between the two happens only in :class:`SarCnnDenoiser`.

References
----------
E. Dalsasso, X. Yang, L. Denis, F. Tupin, W. Yang, "SAR image despeckling by deep neural networks:
from a pre-trained model to an end-to-end training strategy", Remote Sensing 12(16), 2636, 2020.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Sequence

import numpy as np
import torch
from scipy.special import digamma

from sardespeckle.errors import InvalidInputError, UsageError, WeightsError
from sardespeckle.models.dncnn import DnCNN

__all__ = [
    "LOG_AMPLITUDE_MAX",
    "LOG_AMPLITUDE_MIN",
    "SCENE_LEVEL",
    "SarCnnDenoiser",
    "cn",
    "denormalize",
    "normalize_log_amplitude",
    "scene_level",
]

#: ``M`` of the paper: largest log-amplitude over the authors' Sentinel-1 images.
LOG_AMPLITUDE_MAX = 10.089038980848645
#: ``m`` of the paper: smallest log-amplitude over the authors' Sentinel-1 images.
LOG_AMPLITUDE_MIN = -1.429329123112601

_SPAN = LOG_AMPLITUDE_MAX - LOG_AMPLITUDE_MIN
PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES = ("cpu", "cuda", "auto")
#: Allowed sizes of the geometric self-ensemble (1: none; 8: every flip/rotation).
ENSEMBLES = (1, 8)
#: Median intensity a scene is brought to before the network runs when its ``level`` is given
#: (:class:`SarCnnDenoiser`), for weights that record no ``training_level`` (the shipped ones):
#: the single-look median of their training references at the middle of the gains they were
#: trained with (references ≈ 7000, gains log-uniform in [1e-4, 100]).
SCENE_LEVEL = 1000.0


def scene_level(intensity: np.ndarray, valid: np.ndarray | None = None) -> float:
    """The level of a scene for :class:`SarCnnDenoiser`: the median of its finite, strictly
    positive intensities (within ``valid`` when given).

    Raises :class:`InvalidInputError` when there is none.
    """
    values = np.asarray(intensity, dtype=np.float64)
    usable = np.isfinite(values) & (values > 0)
    if valid is not None:
        usable &= np.asarray(valid, dtype=bool)
    if not usable.any():
        raise InvalidInputError("expected at least one finite, strictly positive intensity to "
                                "measure the scene level, got none")
    return float(np.median(values[usable]))


def normalize_log_amplitude(intensity: np.ndarray) -> np.ndarray:
    """Map intensity to the network's normalised log-amplitude.

    Parameters
    ----------
    intensity : ndarray
        Finite, strictly positive intensities, any shape.

    Returns
    -------
    ndarray, float32
        ``x = (½·log(intensity) − m) / (M − m)``, same shape.

    Notes
    -----
    The log-amplitude is ``log √I = ½ log I``. The paper writes ``log(A + ε)``; the engine
    guarantees strictly positive intensities, so no ``ε`` is added (it would bias dark pixels).
    The logarithm is taken in float64 and rounded once to float32, before any reduced-precision
    cast. Intensities that are not finite or not positive raise :class:`InvalidInputError`.
    """
    values = np.asarray(intensity)
    if not np.issubdtype(values.dtype, np.number) or np.iscomplexobj(values):
        raise InvalidInputError(f"expected real intensities, got dtype {values.dtype}")
    values = values.astype(np.float64, copy=False)
    if values.size and not (np.all(np.isfinite(values)) and values.min() > 0):
        raise _bad_intensities(int(np.count_nonzero(~(np.isfinite(values) & (values > 0)))))
    return ((0.5 * np.log(values) - LOG_AMPLITUDE_MIN) / _SPAN).astype(np.float32)


def _bad_intensities(count: int) -> InvalidInputError:
    return InvalidInputError(f"expected finite, strictly positive intensities, got {count} "
                             "pixel(s) that are not; mask them before despeckling")


def denormalize(x: np.ndarray, *, clip: bool = False) -> np.ndarray:
    """Map normalised log-amplitude back to intensity.

    Parameters
    ----------
    x : ndarray
        Normalised log-amplitude, any shape.
    clip : bool
        Clip ``x`` to ``[0, 1]`` first, as the paper does. Off by default: the bounds are the
        extremes of the authors' (uncalibrated, digital-number) Sentinel-1 images, i.e. intensity
        in about ``[0.057, 5.8e8]``, and clipping would flatten every pixel of data on another
        scale (calibrated σ⁰ is mostly below 0.057).

    Returns
    -------
    ndarray, float32
        ``intensity = exp(2·((M − m)·x + m))``, strictly positive (0 or inf only where the
        float32 range is exceeded).

    Notes
    -----
    Computed in float64; inverse of :func:`normalize_log_amplitude` up to float32 rounding.
    """
    values = np.asarray(x, dtype=np.float64)
    if clip:
        values = np.clip(values, 0.0, 1.0)
    with np.errstate(over="ignore"):  # inf where float32 is exceeded, as documented
        return np.exp(2.0 * (_SPAN * values + LOG_AMPLITUDE_MIN)).astype(np.float32)


def cn(looks: float) -> float:
    """Debiasing offset of SAR-CNN: mean of the log-amplitude speckle, normalised.

    Parameters
    ----------
    looks : float
        Number of looks ``L`` (> 0) of the speckle the network removes.

    Returns
    -------
    float
        ``cn = ½(ψ(L) − ln L) / (M − m)``; −0.0250563 for ``L = 1``.

    Notes
    -----
    ``log S`` with ``S ~ Gamma(L, 1/L)`` has mean ``ψ(L) − ln L``, half of it for amplitude. A
    network trained with an ℓ1/ℓ2 loss on log data returns "clean + this mean", which is
    subtracted before leaving the log domain.
    """
    if isinstance(looks, bool) or not isinstance(looks, (int, float, np.integer, np.floating)):
        raise InvalidInputError(f"expected looks to be a positive number, got {looks!r}")
    if not (np.isfinite(looks) and looks > 0):
        raise InvalidInputError(f"expected looks to be a finite number > 0, got {looks!r}")
    return float(0.5 * (digamma(float(looks)) - np.log(float(looks))) / _SPAN)


#: Side of the window of :func:`within_local_range` (pixels).
GUARD_WINDOW = 9
#: How far (normalised log-amplitude; 0.02 is 0.23 neper, 2 dB) the network's output may leave
#: the range of the input's values in that window.
GUARD_MARGIN = 0.02


def within_local_range(clean: torch.Tensor, x: torch.Tensor, *, size: int = GUARD_WINDOW,
                       margin: float = GUARD_MARGIN) -> torch.Tensor:
    """The network's clean estimate ``clean`` kept within the range of the noisy input ``x``
    around each pixel (both ``(B, 1, H, W)`` normalised log-amplitude, before debiasing):
    ``[min − margin, max + margin]`` over the ``size × size`` window.

    A despeckled value lies there: single-look log-speckle is at most about +0.8 neper
    (amplitude) in 81 draws, so the clean value sits below the window's largest noisy value and
    far above its smallest. The guard binds only where the network leaves its training
    distribution: on strongly textured scenes with white speckle (log-amplitude std ≈ 1 neper
    over a few pixels) the white-speckle networks' outputs ran to ±30–80 normalised (intensities
    of 0 or inf) on small patches; there they now stay within the data's local range."""
    import torch.nn.functional as F

    pad = size // 2
    high = F.max_pool2d(x, size, stride=1, padding=pad)
    low = -F.max_pool2d(-x, size, stride=1, padding=pad)
    return torch.minimum(torch.maximum(clean, low - margin), high + margin)


class SarCnnDenoiser:
    """Despeckle intensity images with a SAR-CNN network (a Method of the engine).

    Parameters
    ----------
    network : DnCNN
        The trained network (single channel). A batch-norm-folded eval copy is made; the
        original is not modified.
    looks : float
        Looks ``L`` used for the debiasing offset :func:`cn` (the speckle the network was trained
        to remove: 1 for SAR-CNN).
    precision : {"fp32", "bf16", "fp16"}
        Arithmetic of the network. ``bf16`` runs the convolutions in bfloat16 (autocast);
        ``fp16`` is for CUDA only. The network is channels-last in every precision.
        Normalisation, the residual subtraction and the debiasing stay in float32/float64.
    device : {"cpu", "cuda", "auto"}
        Where the network runs; ``auto`` picks CUDA when available. On CUDA, "fp32" turns
        cuDNN's TF32 convolutions off while the network runs
        (:func:`~sardespeckle.models.threads.full_fp32`).
    threads : int or None
        Torch CPU threads while a call runs (restored afterwards); ``None`` keeps the current
        setting.
    clip : bool
        Clip the normalised output to ``[0, 1]`` as the paper does (see :func:`denormalize`).
    ensemble : {1, 8}
        8: geometric self-ensemble, the mean of the debiased log-amplitude estimates of the 8
        flips/rotations of each tile, each mapped back (8× the network work; +0.23 dB PSNR
        measured on unseen Sentinel-1 crops, ``docs/sarcnn.md``). 1: one pass.
    level : float or None
        The scene's level (:func:`scene_level` of the whole scene, or of a representative
        window): every tile is scaled by ``training_level / level`` before the network and back
        after, so the result scales exactly with the input (``c·I`` gives ``c·`` the result) and
        the network always sees the levels it was trained on. ``None``: the intensities as
        given (the paper; the shipped weights keep flat areas within 1 % of their level from
        intensity 1 to 50 000, but brighten them by 6 % at 0.01 and 22 % at 1e-4, levels of
        calibrated σ⁰: ``python tools/flat_levels.py``).
    training_level : float
        The median intensity of the scenes the network was trained on, where ``level`` brings
        each scene: the weights file's ``training_level`` (``sardespeckle train`` records it),
        else :data:`SCENE_LEVEL` (the shipped weights).

    Notes
    -----
    For intensity ``I``: ``x = normalize_log_amplitude(I)``, ``n = network(x)`` (the predicted
    normalised log-speckle), ``x̂ = x − n − cn(L)``, output ``exp(2·((M − m)·x̂ + m))``.
    In bf16 (fp16) the convolutions run in reduced precision but the input keeps float32
    precision (split into two bf16 parts, ``DnCNN.forward_mixed``), and ``n`` is upcast to
    float32 before the subtraction, so the error scales with the speckle estimate, not with
    the image level.
    The output at a pixel depends on the input within :attr:`halo` pixels, so tiles must overlap
    by ``halo``. Every tile is mirrored (``reflect``) by ``halo`` pixels on each side before the
    network runs: at an image border the network then sees image-like context instead of its own
    zero padding (with zero padding, isolated border pixels came out up to 120× too bright,
    e.g. 6.7 dB instead of 22.5 dB PSNR on a validation reference); inside a scene the mirrored
    band only touches outputs that the engine discards, so tiled and whole-image results agree.
    """

    def __init__(
        self,
        network: DnCNN,
        *,
        looks: float = 1.0,
        precision: str = "fp32",
        device: str = "cpu",
        threads: int | None = None,
        clip: bool = False,
        ensemble: int = 1,
        level: float | None = None,
        training_level: float = SCENE_LEVEL,
    ) -> None:
        if not isinstance(network, DnCNN):
            raise InvalidInputError(f"expected a DnCNN network, got {type(network).__name__}")
        if network.channels != 1:
            raise InvalidInputError(f"expected a single-channel DnCNN, got channels={network.channels}")
        if precision not in PRECISIONS:
            raise UsageError(f"expected precision in {PRECISIONS}, got {precision!r}")
        if device not in DEVICES:
            raise UsageError(f"expected device in {DEVICES}, got {device!r}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise UsageError(f"expected threads to be a positive integer or None, got {threads!r}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise UsageError("expected a CUDA device, got none available; use device='cpu' or 'auto'")
        if precision == "fp16" and device != "cuda":
            raise UsageError(f"expected precision 'fp32' or 'bf16' on {device}, got 'fp16' (CUDA only)")
        if isinstance(ensemble, bool) or ensemble not in ENSEMBLES:
            raise UsageError(f"expected ensemble in {ENSEMBLES} (1: one pass, 8: every flip/rotation), "
                             f"got {ensemble!r}")

        if level is not None and (isinstance(level, bool) or not isinstance(level, numbers.Real)
                                  or not (np.isfinite(level) and level > 0)):
            raise UsageError(f"expected level to be a finite intensity > 0 or None, got {level!r}")
        if (isinstance(training_level, bool) or not isinstance(training_level, numbers.Real)
                or not (np.isfinite(training_level) and training_level > 0)):
            raise UsageError(f"expected training_level to be a finite intensity > 0, got "
                             f"{training_level!r}")

        self.ensemble = int(ensemble)
        self.level = None if level is None else float(level)
        self.training_level = float(training_level)
        # The scaling, as a shift of the normalised log-amplitude (½ log of the gain).
        self._shift = (0.0 if level is None
                       else float(0.5 * np.log(self.training_level / float(level)) / _SPAN))
        self.looks = float(looks)
        self.offset = cn(looks)
        self.precision = precision
        self.device = torch.device(device)
        self.threads = threads
        self.clip = bool(clip)

        folded = network.fold_batchnorm().to(self.device)
        for parameter in folded.parameters():
            parameter.requires_grad_(False)
        # channels_last lets oneDNN pick its fast kernels: on a 2-core AVX512-bf16 CPU it made
        # fp32 1.5x and bf16 1.6x faster than contiguous (256x256 tiles, depth 19).
        self.network = folded.to(memory_format=torch.channels_last)

    @classmethod
    def from_weights(
        cls,
        name_or_path: str,
        *,
        looks: float | None = None,
        precision: str = "fp32",
        device: str = "cpu",
        threads: int | None = None,
        clip: bool = False,
        ensemble: int = 1,
        level: float | None = None,
    ) -> SarCnnDenoiser:
        """Build from checked weights (see ``load_weights``); ``looks`` defaults to the file's.

        Refuses weights of another domain or normalisation than SAR-CNN's log-amplitude.
        """
        from sardespeckle.models.weights import load_weights  # weights.py imports this module

        network, meta = load_weights(name_or_path)
        return cls.from_loaded(
            network, meta, looks=looks, precision=precision, device=device, threads=threads, clip=clip,
            ensemble=ensemble, level=level,
        )

    @classmethod
    def from_loaded(
        cls,
        network: DnCNN,
        meta: dict,
        *,
        looks: float | None = None,
        precision: str = "fp32",
        device: str = "cpu",
        threads: int | None = None,
        clip: bool = False,
        ensemble: int = 1,
        level: float | None = None,
    ) -> SarCnnDenoiser:
        """Build from a network and the ``meta`` returned by ``load_weights`` (same checks as
        :meth:`from_weights`, without reading the file again)."""
        if meta.get("domain") != "log-amplitude":
            raise WeightsError(f"expected SAR-CNN weights of domain 'log-amplitude', got {meta.get('domain')!r}")
        constants = (meta.get("norm_min"), meta.get("norm_max"))
        if constants != (LOG_AMPLITUDE_MIN, LOG_AMPLITUDE_MAX):
            raise WeightsError(
                f"expected normalisation (m, M) = {(LOG_AMPLITUDE_MIN, LOG_AMPLITUDE_MAX)}, got {constants}"
            )
        return cls(
            network,
            looks=meta["looks"] if looks is None else looks,
            precision=precision,
            device=device,
            threads=threads,
            clip=clip,
            ensemble=ensemble,
            level=level,
            training_level=meta.get("training_level") or SCENE_LEVEL,
        )

    @property
    def halo(self) -> int:
        """Radius (pixels) of the support of one output pixel."""
        return self.network.receptive_field_radius

    def __repr__(self) -> str:
        return (
            f"SarCnnDenoiser(depth={self.network.depth}, looks={self.looks}, precision={self.precision!r}, "
            f"device={self.device.type!r}, threads={self.threads}, clip={self.clip}, "
            f"ensemble={self.ensemble}, level={self.level})"
        )

    def __call__(self, intensity: np.ndarray) -> np.ndarray:
        """Despeckle one image: ``(rows, cols)`` intensity → ``(rows, cols)`` float32 intensity."""
        return self.batch([intensity])[0]

    def batch(self, tiles: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Despeckle equally shaped ``(rows, cols)`` tiles in one ``(B, 1, rows, cols)`` pass.

        Returns the despeckled float32 intensities, in the same order. The result for a tile
        does not depend on the other tiles of the batch. Each tile is mirrored by :attr:`halo`
        first (see Notes).
        """
        return self._despeckle(tiles, pad=self.halo)

    def batch_with_context(self, tiles: Sequence[np.ndarray]) -> list[np.ndarray]:
        """As :meth:`batch` for tiles that already carry :attr:`halo` pixels of context on every
        side (the tiled engine's, mirrored where the raster ends): no mirror is added, and the
        outputs within :attr:`halo` of a tile edge are not meaningful (the engine drops them).

        Saves the mirror band: a 1024-px core with a halo of 19 costs 1062² instead of 1100²
        network pixels (−7 %).
        """
        return self._despeckle(tiles, pad=0)

    def _despeckle(self, tiles: Sequence[np.ndarray], *, pad: int) -> list[np.ndarray]:
        if isinstance(tiles, np.ndarray) or not isinstance(tiles, Sequence) or len(tiles) == 0:
            raise InvalidInputError(f"expected a non-empty list of (rows, cols) arrays, got {type(tiles).__name__}")
        arrays = [np.asarray(tile) for tile in tiles]
        shape = arrays[0].shape
        for index, array in enumerate(arrays):
            if array.ndim != 2:
                raise InvalidInputError(f"expected tile {index} of shape (rows, cols), got {array.shape}")
            if array.shape != shape:
                raise InvalidInputError(f"expected all tiles of shape {shape}, got {array.shape} for tile {index}")
        if 0 in shape:
            raise InvalidInputError(f"expected non-empty tiles, got shape {shape}")
        if self.device.type != "cpu" and pad < min(shape):
            return self._despeckle_on_device(arrays, shape, pad)

        x = np.stack([np.pad(normalize_log_amplitude(array), pad, mode="reflect") if pad
                      else normalize_log_amplitude(array) for array in arrays])[:, None]
        clean = self._clean_log_amplitude(torch.from_numpy(x))
        clean = clean[:, 0, pad:pad + shape[0], pad:pad + shape[1]].cpu().numpy()
        intensity = denormalize(clean, clip=self.clip)
        return list(intensity)

    def _despeckle_on_device(self, arrays: list[np.ndarray], shape: tuple[int, int],
                             pad: int) -> list[np.ndarray]:
        """:meth:`_despeckle` with the log, the mirror and the exp on the GPU as well: the same
        float64 arithmetic as :func:`normalize_log_amplitude` and :func:`denormalize`, but the
        CPU only stacks the tiles and reads the result back. On an H100 the numpy log and exp
        took 0.28 s of the 1.0 s that SAR-CNN (bf16) spent on a 4096² image, the network 0.15 s
        (``benchmarks/bench_cuda.py``)."""
        import torch.nn.functional as F

        values = np.stack(arrays)
        if not np.issubdtype(values.dtype, np.number) or np.iscomplexobj(values):
            raise InvalidInputError(f"expected real intensities, got dtype {values.dtype}")
        with self._full_fp32(), torch.inference_mode():
            v = torch.from_numpy(values).to(self.device).double()
            bad = int(torch.count_nonzero(~(torch.isfinite(v) & (v > 0))))
            if bad:
                raise _bad_intensities(bad)
            x = ((0.5 * torch.log(v) - LOG_AMPLITUDE_MIN) / _SPAN).float()[:, None]
            if pad:
                x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
            clean = self._clean_log_amplitude(x)[:, 0, pad:pad + shape[0], pad:pad + shape[1]]
            clean = clean.double()
            if self.clip:
                clean = clean.clamp(0.0, 1.0)
            intensity = torch.exp(2.0 * (_SPAN * clean + LOG_AMPLITUDE_MIN)).float().cpu().numpy()
        return list(intensity)

    def _clean_log_amplitude(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` float32 normalised log-amplitude → debiased clean estimate, a float32
        tensor on the network's device."""
        with self._thread_limit(), self._full_fp32(), torch.inference_mode():
            x = x.to(self.device)
            if self._shift:
                x = x + self._shift
            if self.ensemble == 1:
                clean = self._denoise(x)
            else:
                # Each flip/rotation of the tile (its halo is the same on every side, so the
                # core maps onto the core), denoised and mapped back; the mean of the 8.
                clean = torch.zeros_like(x, dtype=torch.float32)
                for turns in range(4):
                    for flip in (False, True):
                        view = torch.rot90(x, turns, dims=(2, 3))
                        view = torch.flip(view, dims=(3,)) if flip else view
                        out = self._denoise(view)
                        out = torch.flip(out, dims=(3,)) if flip else out
                        clean += torch.rot90(out, -turns, dims=(2, 3))
                clean /= 8
            return clean - (self.offset + self._shift)

    def _denoise(self, x: torch.Tensor) -> torch.Tensor:
        """The network's clean normalised log-amplitude of ``x`` (not debiased), float32,
        within the local range of ``x`` (:func:`within_local_range`)."""
        clean = self.network.denoise(x.contiguous(memory_format=torch.channels_last),
                                     self._dtype()).float()
        return within_local_range(clean, x.float())

    def _dtype(self) -> torch.dtype | None:
        """Reduced precision of the hidden layers (see ``DnCNN.forward_mixed``); None for fp32."""
        return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]

    def _thread_limit(self) -> contextlib.AbstractContextManager:
        from sardespeckle.models.threads import torch_threads

        return torch_threads(self.threads if self.device.type == "cpu" else None)

    def _full_fp32(self) -> contextlib.AbstractContextManager:
        from sardespeckle.models.threads import full_fp32

        return full_fp32(self.device.type == "cuda" and self.precision == "fp32")
