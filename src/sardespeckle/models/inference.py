"""Network inference as an engine method: device and precision choice, weights identity, batching.

The method registry builds the ``sarcnn`` method through :func:`load_sarcnn`; everything that
needs torch to decide (is CUDA there, does this CPU do bf16 fast) lives here so that the registry
itself stays importable without torch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sardespeckle.errors import UsageError, WeightsError
from sardespeckle.models.sarcnn import DEVICES, PRECISIONS, SarCnnDenoiser
from sardespeckle.models import weights as _weights
from sardespeckle.models.weights import load_weights, sha256_file

__all__ = [
    "BatchLimit",
    "LoadedSarCnn",
    "NO_WEIGHTS_MESSAGE",
    "cpu_has_fast_bf16",
    "default_sarcnn_weights",
    "load_sarcnn",
    "resolve_device",
    "resolve_precision",
    "weights_identity",
]

NO_WEIGHTS_MESSAGE = ("no trained SAR-CNN weights are installed yet; give a weights file "
                      "(weights=PATH; CLI --weights PATH)")
#: Largest number of pixels (batch × rows × cols) sent through the network at once: bounds the
#: activations (64 channels × 4 bytes × pixels per layer, two layers alive: 1 GiB in fp32).
MAX_BATCH_PIXELS = 2 * 1024 * 1024


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has native bf16 dot products (AVX512-BF16 or AMX), per torch."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # private helpers: absent in other torch versions means "do not know"
        return False


def resolve_device(device: str) -> str:
    """``"auto"`` → ``"cuda"`` when available, else ``"cpu"``; ``"cuda"`` must be available."""
    if device not in DEVICES:
        raise UsageError(f"expected device in {DEVICES}, got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("expected a CUDA device, got none available; use device 'cpu' or 'auto' "
                         "(CLI --device cpu or auto)")
    return device


def resolve_precision(precision: str, device: str) -> str:
    """``"auto"`` → ``"bf16"`` where the device computes it natively, else ``"fp32"``."""
    if precision == "auto":
        if device == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    if precision not in PRECISIONS:
        raise UsageError(f"expected precision in ('auto', {', '.join(map(repr, PRECISIONS))}), got {precision!r}")
    return precision


def default_sarcnn_weights(looks: float | None = None) -> str | None:
    """Name of the shipped SAR-CNN weights (log-amplitude domain), or ``None`` when none are.

    With ``looks``: the registered weights of :data:`~sardespeckle.models.weights.
    DEFAULT_SARCNN_BY_LOOKS` trained for the looks nearest to ``looks`` (in ratio: 1-look
    weights up to about 1.4 looks, 2-look weights up to about 3, 4.4-look weights above)."""
    by_looks = {trained: name for trained, name in _weights.DEFAULT_SARCNN_BY_LOOKS.items()
                if name in _weights.REGISTRY}
    if looks is not None and by_looks:
        return by_looks[min(by_looks, key=lambda trained: abs(math.log(looks / trained)))]
    if _weights.DEFAULT_SARCNN in _weights.REGISTRY:
        return _weights.DEFAULT_SARCNN
    names = sorted(name for name, entry in _weights.REGISTRY.items() if entry.domain == "log-amplitude")
    preferred = [name for name in names if name.startswith("sarcnn")]
    return (preferred or names or [None])[0]


def weights_identity(name_or_path: str, meta: dict) -> str:
    """Provenance id of weights: ``"NAME sha256:<16 hex>"``.

    ``NAME`` is the registry name, for a registry name or a file that is an exact copy of
    registered weights (same digest); any other file is named by its file name, as MuLoG names
    its denoiser files. The name stored inside a file is not used: a user's run stores the
    generic ``"sarcnn"`` by default, and a modified copy keeps the registered name it came from.
    """
    entry = _weights.REGISTRY.get(name_or_path) if isinstance(name_or_path, str) else None
    if entry is not None:
        return f"{entry.name} sha256:{entry.sha256[:16]}"
    digest = sha256_file(name_or_path)
    claimed = _weights.REGISTRY.get(str(meta.get("name") or ""))
    if claimed is not None and claimed.sha256 == digest:
        return f"{claimed.name} sha256:{digest[:16]}"
    return f"{Path(name_or_path).name} sha256:{digest[:16]}"


class BatchLimit:
    """A method whose ``batch`` sends at most ``max_pixels`` pixels through the network at once.

    The engine and :class:`~sardespeckle.decorrelate.Subsampled` hand over as many equally
    shaped tiles as they have; this splits them into forward passes of bounded memory.
    """

    def __init__(self, denoiser: SarCnnDenoiser, *, max_pixels: int = MAX_BATCH_PIXELS) -> None:
        self.denoiser = denoiser
        self.max_pixels = int(max_pixels)

    @property
    def halo(self) -> int:
        return self.denoiser.halo

    def __repr__(self) -> str:
        return f"BatchLimit({self.denoiser!r}, max_pixels={self.max_pixels})"

    def __call__(self, intensity: np.ndarray) -> np.ndarray:
        return self.denoiser(intensity)

    def batch(self, tiles: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self._split(self.denoiser.batch, tiles)

    def batch_with_context(self, tiles: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Tiles that carry the halo already (the tiled engine mirrors raster edges for us)."""
        return self._split(self.denoiser.batch_with_context, tiles)

    def _split(self, run, tiles: Sequence[np.ndarray]) -> list[np.ndarray]:
        tiles = list(tiles)
        if not tiles:
            return []
        per_tile = max(1, int(np.asarray(tiles[0]).size))
        step = max(1, self.max_pixels // per_tile)
        out: list[np.ndarray] = []
        for start in range(0, len(tiles), step):
            out.extend(run(tiles[start : start + step]))
        return out


@dataclass(frozen=True)
class LoadedSarCnn:
    """A SAR-CNN ready to run, with what was resolved to build it."""

    denoiser: SarCnnDenoiser
    weights: str
    weights_id: str
    precision: str
    device: str
    meta: dict


def load_sarcnn(
    weights: str | os.PathLike[str] | None,
    *,
    precision: str = "auto",
    device: str = "auto",
    threads: int | None = None,
    ensemble: int = 1,
    looks: float | None = None,
    level: float | None = None,
) -> LoadedSarCnn:
    """Load checked SAR-CNN weights once and wrap them for inference.

    Parameters
    ----------
    weights : str, path or None
        A registry name or a file; ``None`` takes :func:`default_sarcnn_weights` (for ``looks``,
        the input's looks, when given) and raises :class:`WeightsError` when no weights are
        installed.
    precision : {"auto", "fp32", "bf16", "fp16"}
        See :func:`resolve_precision`.
    device : {"auto", "cpu", "cuda"}
        See :func:`resolve_device`.
    threads : int or None
        Torch CPU threads during inference; ``None`` keeps torch's setting.
    ensemble : {1, 8}
        Geometric self-ensemble of :class:`SarCnnDenoiser` (8: every flip/rotation).
    level : float or None
        The scene level of :class:`SarCnnDenoiser` (``None``: intensities as given).

    Notes
    -----
    The debiasing offset uses the looks stored with the weights (the speckle the network was
    trained to remove), not the input's: the network's output carries the log-speckle mean of
    its training data whatever it is given.
    """
    if weights is None or weights == "":
        weights = default_sarcnn_weights(looks)
        if weights is None:
            raise WeightsError(NO_WEIGHTS_MESSAGE)
    _weights.check_weights_reference(weights)
    name = os.fspath(weights)
    resolved_device = resolve_device(device)
    resolved_precision = resolve_precision(precision, resolved_device)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise UsageError(f"expected threads to be a positive integer, got {threads!r}")
    network, meta = load_weights(name)
    denoiser = SarCnnDenoiser.from_loaded(
        network, meta, precision=resolved_precision, device=resolved_device, threads=threads,
        ensemble=ensemble, level=level,
    )
    return LoadedSarCnn(
        denoiser=denoiser,
        weights=name,
        weights_id=weights_identity(name, meta),
        precision=resolved_precision,
        device=resolved_device,
        meta=meta,
    )
