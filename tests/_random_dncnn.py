"""Random DnCNN weights that keep the signal alive through the depth (shared by the tests).

PyTorch's default init makes a deep plain ReLU stack output an almost constant image, which would
make tests of a network's plumbing vacuous. He-normal weights and randomised batch-norm
statistics keep activations of order one.
"""

import math

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
