"""Training data for Gaussian denoisers (MuLoG's DnCNNs): ``[0, 1]`` images and white noise.

A source is either 8-bit grey images (kind ``"grey"``: one file, a folder of PNGs or a glob),
scaled to ``[0, 1]`` by 1/255, or a speckle-free SAR reference (kind ``intensity``, ``amplitude``
or ``db``: a file or a glob) turned into a ``[0, 1]`` log-image by :func:`log_image_to_unit`,
the map :class:`sardespeckle.mulog.DnCNNDenoiser` applies to MuLoG's log-images at run time.
The sampler draws patches uniformly over the valid positions, one of the 8 flips/rotations, a
noise std per patch uniformly in ``sigma_range``, and white Gaussian noise, all from one seeded
``numpy.random.Generator`` (saved in checkpoints, so a resumed run draws the same patches).

With ``log_sigma_range`` (SAR references only) the images are instead centred log-intensities
(:func:`centred_log_image`) and :class:`LogScalePatchSampler` scales each patch by its own
noise level, as MuLoG's fixed-σ wrapper does at run time.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputFileError, InvalidInputError, UsageError
from ..mulog.denoisers import ROBUST_PERCENTILES  # the range MuLoG's wrapper maps
from ..window import Window
from .config import GREY, TrainConfig
from .data import ReferenceSpec, ValidPatches, load_reference
from .targets import add_bright_targets_log

#: Noise std of the validation PSNR on the ``[0, 1]`` scale for blind runs: σ = 25 on the 8-bit
#: scale (a fixed-σ run, ``sigma_range`` low == high, is validated at its own σ).
VALIDATION_SIGMA = 25.0 / 255.0


def validation_sigma(sigma_range: tuple[float, float]) -> float:
    """Noise std of the validation draws: the trained σ of a fixed-σ run, else :data:`VALIDATION_SIGMA`."""
    low, high = sigma_range
    return float(low) if low == high else VALIDATION_SIGMA



@dataclass
class UnitImage:
    """A training or validation image on the ``[0, 1]`` scale (float32, NaN where invalid)."""

    name: str
    values: np.ndarray


def log_image_to_unit(intensity: np.ndarray, *, span: float = 0.8) -> np.ndarray:
    """Map an intensity image's logarithm so that its robust range fills ``span`` of ``[0, 1]``.

    Parameters
    ----------
    intensity : ndarray, shape (rows, cols)
        Speckle-free intensity; pixels that are non-finite or ≤ 0 are invalid.
    span : float, keyword-only
        Share of ``[0, 1]`` given to the 0.5–99.5 % range of the valid log-intensities.

    Returns
    -------
    ndarray, float32
        ``(log I − c)·s + ½`` with ``c`` the mid-point of the percentiles ``q₋, q₊`` and
        ``s = span / (q₊ − q₋)`` (1 for an image without contrast); NaN where invalid.

    Notes
    -----
    This is the rescaling of :class:`sardespeckle.mulog.DnCNNDenoiser` for blind networks, so
    the network is trained on the images it sees inside MuLoG: ``q₋ ↦ ½ − span/2`` and
    ``q₊ ↦ ½ + span/2`` (0.1 and 0.9 for the default span). The map is affine in ``log I``, so
    MuLoG's normalisation of the log-image by ``√ψ₁(L)`` and its debiasing do not change it.
    """
    if not 0 < span <= 1:
        raise InvalidInputError(f"expected span in (0, 1], got {span!r}")
    centred, extent = _centred_log(intensity)
    scale = span / extent if extent > 0 else 1.0
    return (centred * scale + 0.5).astype(np.float32)


def centred_log_image(intensity: np.ndarray) -> np.ndarray:
    """``log I − c`` with ``c`` the mid-point of its 0.5 and 99.5 percentiles (float32, NaN
    where ``I`` is non-finite or ≤ 0): a SAR log-image in its own units, centred as
    :class:`sardespeckle.mulog.DnCNNDenoiser` centres MuLoG's log-images before scaling them."""
    return _centred_log(intensity)[0].astype(np.float32)


def _centred_log(intensity: np.ndarray) -> tuple[np.ndarray, float]:
    """``(log I − (q₋ + q₊)/2, q₊ − q₋)`` with ``q₋, q₊`` the robust percentiles of the valid
    log-intensities (float64, NaN where ``I`` is non-finite or ≤ 0)."""
    values = np.asarray(intensity, dtype=np.float64)
    if values.ndim != 2:
        raise InvalidInputError(f"expected a (rows, cols) intensity image, got shape {values.shape}")
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(values) & (values > 0)
    if not valid.any():
        raise InvalidInputError("expected an intensity image with valid (finite, > 0) pixels, got none")
    log_intensity = np.full(values.shape, np.nan)
    log_intensity[valid] = np.log(values[valid])
    low, high = np.percentile(log_intensity[valid], ROBUST_PERCENTILES)
    return log_intensity - 0.5 * (low + high), float(high - low)


def source_paths(spec: ReferenceSpec) -> list[Path]:
    """The files a source names: a file, a glob, or (grey images) a folder's ``*.png``, sorted."""
    path = Path(spec.path)
    if path.is_dir():
        if spec.kind != GREY:
            raise UsageError(f"expected a file or a glob for a SAR reference source, got the folder "
                             f"{spec.path}; a folder is only read for kind {GREY!r} (its *.png)")
        found = sorted(path.glob("*.png"))
    elif path.is_file():
        found = [path]
    elif glob.has_magic(spec.path):
        found = sorted(Path(p) for p in glob.glob(spec.path) if Path(p).is_file())
    else:
        raise InputFileError(f"no such training source: {spec.path} (expected a file, a folder "
                             "or a glob)")
    if not found:
        raise InputFileError(f"expected images in the training source {spec.path}, found none "
                             "(a folder is searched for *.png)")
    return found


def read_grey_image(path: Path, window: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """An 8-bit grey image file as float32 on ``[0, 1]`` (``value / 255``), optionally a window."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.mode != "L":
                raise InvalidInputError(f"expected an 8-bit grey image (mode L), got mode {image.mode} "
                                        f"for {path}; convert it to grey first")
            pixels = np.asarray(image, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as error:
        raise InputFileError(f"cannot read {path} as an image: {error}") from None
    if window is None:
        return pixels
    box = Window(*window)
    if (box.row < 0 or box.col < 0 or box.row + box.height > pixels.shape[0]
            or box.col + box.width > pixels.shape[1]):
        raise InvalidInputError(f"expected a window inside the {pixels.shape} image {path}, got {window}")
    return pixels[box.row:box.row + box.height, box.col:box.col + box.width]


def load_unit_images(spec: ReferenceSpec, *, span: float | None) -> list[UnitImage]:
    """The images of one source: ``[0, 1]`` grey images, SAR log-images mapped to ``span`` of
    ``[0, 1]``, or with ``span=None`` centred SAR log-images (:func:`centred_log_image`)."""
    images = []
    for path in source_paths(spec):
        if spec.kind == GREY:
            values = read_grey_image(path, spec.window)
        else:
            reference = load_reference(ReferenceSpec(str(path), spec.kind, spec.window))
            values = (centred_log_image(reference.intensity) if span is None
                      else log_image_to_unit(reference.intensity, span=span))
        images.append(UnitImage(path.stem, values))
    return images


class _UnitPatches:
    """The valid ``patch_size``² patch positions of some images (NaN marks pixels a patch may
    not contain): what the Gaussian samplers draw their clean patches from."""

    def __init__(self, images: Sequence[UnitImage], patch_size: int):
        if not images:
            raise InvalidInputError("expected at least one training image, got none")
        self._patches = ValidPatches(
            [(image.name, image.values, np.isfinite(image.values)) for image in images],
            size=int(patch_size),
        )
        self.patch_size = self._patches.size

    @property
    def positions(self) -> int:
        """Number of distinct valid patch positions."""
        return self._patches.positions


class GaussianPatchSampler(_UnitPatches):
    """Random ``patch_size²`` patches of ``[0, 1]`` images with white Gaussian noise.

    Parameters
    ----------
    images : sequence of UnitImage
        Clean images (NaN marks pixels a patch may not contain).
    patch_size : int, keyword-only
        Side of the square patches.
    sigma_range : (float, float), keyword-only
        Each patch's noise std is drawn uniformly in ``[low, high]`` (the ``[0, 1]`` scale).
    """

    def __init__(self, images: Sequence[UnitImage], *, patch_size: int,
                 sigma_range: tuple[float, float]):
        super().__init__(images, patch_size)
        self.sigma_range = (float(sigma_range[0]), float(sigma_range[1]))

    def sample(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(noisy, clean)`` as float32 ``(batch, 1, P, P)``; the draws use only ``rng``.

        The noise is not clipped to ``[0, 1]`` (DnCNN's training and test protocol).
        """
        clean = self._patches.draw(batch_size, rng)
        sigma = rng.uniform(*self.sigma_range, size=batch_size)
        noise = rng.standard_normal(clean.shape)
        noisy = (clean + sigma[:, None, None] * noise).astype(np.float32)
        return noisy[:, None], clean[:, None]


class LogScalePatchSampler(_UnitPatches):
    """Patches of centred SAR log-images seen as a fixed-σ network sees them inside MuLoG.

    Parameters
    ----------
    images : sequence of UnitImage
        Centred log-intensities (:func:`centred_log_image`; NaN marks invalid pixels).
    patch_size : int, keyword-only
        Side of the square patches.
    trained_sigma : float, keyword-only
        The network's noise std ``t`` (``[0, 1]`` image scale).
    log_sigma_range : (float, float), keyword-only
        Each patch's noise std in log-intensity units, ``σ``, is drawn log-uniformly in
        ``[low, high]``.
    bright_targets : float or None, keyword-only
        When set, bright point and line targets are added to each clean patch at this rate
        (targets per pixel), see :mod:`sardespeckle.training.targets`.

    Notes
    -----
    A patch ``ℓ`` becomes ``ℓ·t/σ + ½`` and gets white noise of std ``t``: MuLoG asks its
    denoiser for noise ``σ`` and a fixed-σ :class:`~sardespeckle.mulog.DnCNNDenoiser` scales
    the log-image by ``t/σ``, so the network always removes noise ``t`` and the scene's
    contrast relative to that noise, which carries the noise level, is the SAR scene's own.
    """

    def __init__(self, images: Sequence[UnitImage], *, patch_size: int, trained_sigma: float,
                 log_sigma_range: tuple[float, float], bright_targets: float | None = None):
        super().__init__(images, patch_size)
        self.trained_sigma = float(trained_sigma)
        self.log_sigma_range = (float(log_sigma_range[0]), float(log_sigma_range[1]))
        self.bright_targets = None if bright_targets is None else float(bright_targets)

    def sample(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(noisy, clean)`` as float32 ``(batch, 1, P, P)``; the draws use only ``rng``."""
        patches = self._patches.draw(batch_size, rng)
        low, high = np.log(self.log_sigma_range)
        sigma = np.exp(rng.uniform(low, high, size=batch_size))
        noise = rng.standard_normal(patches.shape)
        if self.bright_targets is not None:
            # Drawn after everything else, so that runs without targets keep their draws.
            patches = add_bright_targets_log(patches, self.bright_targets, rng)
        clean = patches * (self.trained_sigma / sigma)[:, None, None] + 0.5
        noisy = clean + self.trained_sigma * noise
        return noisy.astype(np.float32)[:, None], clean.astype(np.float32)[:, None]


def validation_log_sigma(log_sigma_range: tuple[float, float]) -> float:
    """Log-intensity noise std of the validation draws of a ``log_sigma_range`` run: the
    geometric mean of the range."""
    return float(np.sqrt(log_sigma_range[0] * log_sigma_range[1]))


def denoise_unit_images(network, images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each ``(rows, cols)`` ``[0, 1]`` image denoised by a Gaussian DnCNN (float32 out).

    Runs the inference path MuLoG uses: a batch-norm-folded eval copy under
    ``torch.inference_mode`` on the network's device; ``network`` itself is not modified.
    """
    import torch

    folded = network.fold_batchnorm()
    device = next(folded.parameters()).device
    out = []
    with torch.inference_mode():
        for image in images:
            x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None].to(device)
            out.append(folded.denoise(x)[0, 0].float().cpu().numpy())
    return out


def noisy_draw(clean: np.ndarray, *, sigma: float, seed: Sequence[int]) -> np.ndarray:
    """``clean + σ·N(0, 1)`` (float32, not clipped) from ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(list(seed))
    return (clean + sigma * rng.standard_normal(clean.shape)).astype(np.float32)


def unit_psnr(clean: np.ndarray, estimate: np.ndarray) -> float:
    """PSNR of ``[0, 1]`` images with peak 1: the usual 8-bit PSNR (peak 255 on 0..255)."""
    from ..metrics import psnr

    return psnr(clean, estimate, data_range=1.0)


class GaussianValidator:
    """Fixed noisy draws of the validation images, scored by PSNR on ``[0, 1]``.

    The noise std is :func:`validation_sigma` (25/255, or the σ of a fixed-σ run). A
    ``log_sigma_range`` run scales its centred log-images by ``t/σ`` with ``σ`` from
    :func:`validation_log_sigma`, as :class:`LogScalePatchSampler` does.

    Draw ``d`` of the ``i``-th validation image uses ``default_rng([seed, 1000 + i, d])``; the
    estimate is not clipped (the score measures the network, not a post-processing).
    """

    def __init__(self, config: TrainConfig):
        self.images = []
        self.sigma = validation_sigma(config.sigma_range)
        sources = [image for spec in config.validation for image in load_unit_images(spec, span=config.span)]
        if config.log_sigma_range is not None:
            scale = self.sigma / validation_log_sigma(config.log_sigma_range)
            sources = [UnitImage(image.name, image.values * np.float32(scale) + np.float32(0.5))
                       for image in sources]
        for index, image in enumerate(sources):
            if not np.isfinite(image.values).all():
                raise UsageError(f"validation image {image.name} has invalid pixels; give a window "
                                 "without them")
            draws = [noisy_draw(image.values, sigma=self.sigma, seed=(config.seed, 1000 + index, draw))
                     for draw in range(config.validation_draws)]
            self.images.append((image.values, draws))

    def __bool__(self) -> bool:
        return bool(self.images)

    def score(self, network) -> float:
        """Mean PSNR (dB) over the images and draws."""
        noisy = [draw for _, draws in self.images for draw in draws]
        clean = [values for values, draws in self.images for _ in draws]
        estimates = denoise_unit_images(network, noisy)
        return float(np.mean([unit_psnr(c, e) for c, e in zip(clean, estimates)]))
