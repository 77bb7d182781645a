"""MuLoG: plug-and-play despeckling of intensity images and covariance fields with Gaussian denoisers.

* :mod:`~sardespeckle.mulog.denoisers`: the denoiser contract ``f(v, sigma)`` and BM3D, DnCNN and
  Gaussian-blur denoisers;
* :mod:`~sardespeckle.mulog.prox`: the Fisher–Tippett and Wishart data terms with their prox;
* :mod:`~sardespeckle.mulog.admm`: the generic plug-and-play ADMM and single-channel MuLoG;
* :mod:`~sardespeckle.mulog.matrix`: MuLoG for ``D × D`` covariance fields;
* :mod:`~sardespeckle.mulog.hermitian`: Hermitian matrix fields (log/exp, channels, Wishart draws);
* :mod:`~sardespeckle.mulog.method`: MuLoG as a registry method.

Importing this package does not import torch or bm3d.
"""

from sardespeckle.mulog.admm import MulogIterate, default_beta0, mulog, mulog_iterates, pnp_admm
from sardespeckle.mulog.denoisers import (
    Bm3dDenoiser,
    DnCNNDenoiser,
    DnCNNSetDenoiser,
    GaussianDenoiser,
    GaussianFilterDenoiser,
    MissingDependencyError,
    bm3d_denoiser,
    gaussian_filter_denoiser,
)
from sardespeckle.mulog.hermitian import matrix_exp, matrix_log, simulate_wishart
from sardespeckle.mulog.matrix import mulog_covariance, mulog_covariance_iterates
from sardespeckle.mulog.method import (
    DENOISER_NAMES,
    MULOG_DEFAULTS,
    MULOG_HALO,
    build_mulog,
    denoiser_from_name,
    make_mulog_method,
)
from sardespeckle.mulog.prox import FisherTippett, Wishart

__all__ = [
    "DENOISER_NAMES",
    "MULOG_DEFAULTS",
    "MULOG_HALO",
    "Bm3dDenoiser",
    "DnCNNDenoiser",
    "DnCNNSetDenoiser",
    "FisherTippett",
    "GaussianDenoiser",
    "GaussianFilterDenoiser",
    "MissingDependencyError",
    "MulogIterate",
    "Wishart",
    "bm3d_denoiser",
    "build_mulog",
    "default_beta0",
    "denoiser_from_name",
    "gaussian_filter_denoiser",
    "make_mulog_method",
    "matrix_exp",
    "matrix_log",
    "mulog",
    "mulog_covariance",
    "mulog_covariance_iterates",
    "mulog_iterates",
    "pnp_admm",
    "simulate_wishart",
]
