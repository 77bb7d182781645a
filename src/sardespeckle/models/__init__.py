"""Networks (DnCNN / SAR-CNN), the weights registry and network inference on tiles.

Importing this package imports torch; the CLI imports it only when a network is used.
"""

from sardespeckle.models.dncnn import DnCNN
from sardespeckle.models.sarcnn import (
    LOG_AMPLITUDE_MAX,
    LOG_AMPLITUDE_MIN,
    SarCnnDenoiser,
    cn,
    denormalize,
    normalize_log_amplitude,
)
from sardespeckle.models.weights import (
    REGISTRY,
    WEIGHTS_DIR,
    Architecture,
    WeightsEntry,
    list_weights,
    load_weights,
    save_weights,
    sha256_file,
)

__all__ = [
    "LOG_AMPLITUDE_MAX",
    "LOG_AMPLITUDE_MIN",
    "REGISTRY",
    "WEIGHTS_DIR",
    "Architecture",
    "DnCNN",
    "SarCnnDenoiser",
    "WeightsEntry",
    "cn",
    "denormalize",
    "list_weights",
    "load_weights",
    "normalize_log_amplitude",
    "save_weights",
    "sha256_file",
]
