"""Training SAR-CNN on speckle-free references: data, configuration, the training loop."""

from .config import TrainConfig
from .data import PatchSampler, Reference, ReferenceSpec, load_reference
from .trainer import TrainResult, amplitude_psnr, export_weights, train

__all__ = ["PatchSampler", "Reference", "ReferenceSpec", "TrainConfig", "TrainResult",
           "amplitude_psnr", "export_weights", "load_reference", "train"]
