"""Training losses: the distance between the network's clean estimate and the target.

Tensors are ``(B, C, H, W)`` float32. ``error`` is ``estimate − (target + offset)`` in the
network's normalised units (``offset`` is SAR-CNN's ``cn``, 0 for Gaussian noise), ``target`` the
clean image in the same units.
"""

from __future__ import annotations

import torch

from ..models.sarcnn import LOG_AMPLITUDE_MAX, LOG_AMPLITUDE_MIN
from .config import LOSSES

__all__ = ["training_loss"]

_SPAN = LOG_AMPLITUDE_MAX - LOG_AMPLITUDE_MIN
#: Bound on the log-amplitude error inside the ``amplitude`` loss (e^10 ≈ 2·10⁴ times off):
#: keeps a diverging start finite in float32.
_MAX_LOG_ERROR = 10.0


def training_loss(name: str, error: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The scalar loss ``name`` of a batch.

    Parameters
    ----------
    name : {"l1", "l2", "amplitude"}
        ``l1``/``l2``: ``mean |error|`` / ``mean error²``.
        ``amplitude``: per patch, ``Σ (Â − A)² / Σ A²`` with ``A = exp((M − m)·target)`` the
        reference amplitude and ``Â = A·exp((M − m)·error)`` the debiased estimate, averaged over
        the patches. It is the squared amplitude error that the paper's PSNR counts, made
        independent of the patch level (a gain on the patch cancels); bright pixels weigh as
        they do in the PSNR, where ``l1`` on log-amplitude weighs every pixel alike.
    error, target : Tensor
        ``(B, C, H, W)``, see the module notes.

    Returns
    -------
    Tensor
        0-d, differentiable with respect to ``error``.
    """
    if name == "l1":
        return torch.mean(torch.abs(error))
    if name == "l2":
        return torch.mean(error**2)
    if name == "amplitude":
        dims = tuple(range(1, target.ndim))
        # Amplitudes relative to the patch's geometric mean: the exponentials stay in range
        # whatever the level, and the ratio below does not depend on it.
        level = (target - target.mean(dim=dims, keepdim=True)) * _SPAN
        reference = torch.exp(level)
        log_error = torch.clamp(error * _SPAN, -_MAX_LOG_ERROR, _MAX_LOG_ERROR)
        squared = (reference * torch.expm1(log_error)) ** 2
        return torch.mean(squared.sum(dim=dims) / (reference**2).sum(dim=dims))
    raise ValueError(f"expected a loss in {LOSSES}, got {name!r}")
