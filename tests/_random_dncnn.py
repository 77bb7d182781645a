"""Random DnCNN weights that keep the signal alive through the depth (shared by the tests).

PyTorch's default init makes a deep plain ReLU stack output an almost constant image, which would
make tests of a network's plumbing vacuous. He-normal weights and randomised batch-norm
statistics keep activations of order one.
"""

import math

import numpy as np
import torch
from torch import nn


def he_randomize(net: nn.Module, generator: torch.Generator) -> None:
    """Draw every convolution and batch norm of ``net`` from ``generator`` (in module order)."""
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.normal_(0.0, math.sqrt(2.0 / module.weight[0].numel()), generator=generator)
                if module.bias is not None:
                    module.bias.normal_(0.0, 0.05, generator=generator)
            elif isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.2, generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)
                module.weight.uniform_(0.7, 1.3, generator=generator)
                module.bias.normal_(0.0, 0.1, generator=generator)


def random_network(seed: int, *, depth: int = 19, features: int = 16):
    """A SAR-CNN-shaped DnCNN with random weights whose output varies with its input: He-normal
    weights, random batch-norm statistics, and the last layer scaled so that the network removes
    a speckle-sized component (std 0.05 of the normalised log-amplitude), like a trained
    SAR-CNN. Narrow (16 features) but full depth by default, so that the halo is the real one."""
    from sardespeckle.models import DnCNN, normalize_log_amplitude

    net = DnCNN(depth=depth, features=features)
    gen = torch.Generator().manual_seed(seed)
    he_randomize(net, gen)
    with torch.no_grad():
        net.eval()
        x = torch.from_numpy(normalize_log_amplitude(speckled((64, 64), seed=seed + 1)))[None, None]
        last = net.layers[-1]
        scale = 0.05 / float(net(x).std())
        last.weight.mul_(scale)
        last.bias.mul_(scale)
    return net


def speckled(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Single-look intensity over a blocky log-normal reflectivity with an edge."""
    rng = np.random.default_rng(seed)
    rows, cols = shape
    coarse = rng.normal(5.0, 1.0, (rows // 8 + 2, cols // 8 + 2))
    reflectivity = np.exp(np.kron(coarse, np.ones((8, 8)))[:rows, :cols])
    return (reflectivity * rng.exponential(1.0, shape)).astype(np.float32)
