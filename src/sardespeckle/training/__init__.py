"""Training SAR-CNN on speckle-free references, and the Gaussian DnCNNs of MuLoG: data,
configuration, the training loop."""

from .config import TrainConfig
from .data import PatchSampler, Reference, ReferenceSpec, load_reference
from .gaussian import GaussianPatchSampler, UnitImage, load_unit_images, log_image_to_unit
from .trainer import TrainResult, amplitude_psnr, export_weights, train

__all__ = ["GaussianPatchSampler", "PatchSampler", "Reference", "ReferenceSpec", "TrainConfig",
           "TrainResult", "UnitImage", "amplitude_psnr", "export_weights", "load_reference",
           "load_unit_images", "log_image_to_unit", "train"]
