"""DnCNN: the residual convolutional denoiser behind SAR-CNN.

Tensors are ``(B, C, H, W)`` throughout this module.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn import functional as F

from sardespeckle.errors import InvalidInputError

__all__ = ["DnCNN"]


class DnCNN(nn.Module):
    """Plain DnCNN stack of 3×3 convolutions with zero "same" padding.

    Layout, with ``D = depth`` convolutions in total::

        conv3×3 (channels → features, bias) + ReLU
        (D − 2) × [conv3×3 (features → features, no bias) + BatchNorm2d + ReLU]
        conv3×3 (features → channels, bias)

    Parameters
    ----------
    depth : int
        Total number of convolution layers, at least 2. DnCNN uses 17, SAR-CNN uses 19.
    channels : int
        Number of image channels in and out.
    features : int
        Width of the hidden layers.
    residual : bool
        Whether the stack is trained to predict the noise (``True``, DnCNN and SAR-CNN) or the
        clean image directly.

    Notes
    -----
    ``forward(x)`` returns the raw output of the stack: the **noise estimate** when ``residual``
    is true, the clean estimate otherwise. ``denoise(x)`` always returns the clean estimate
    (``x − forward(x)`` in the residual case). Each 3×3 convolution widens the support by one
    pixel on each side, so one output pixel depends on the input within a radius of ``depth``
    pixels (a ``(2·depth + 1)²`` window, 39 × 39 for SAR-CNN).

    :meth:`fold_batchnorm` gives an inference copy in which every batch norm (in eval mode, an
    affine map per channel) is merged into the convolution before it.

    References
    ----------
    K. Zhang, W. Zuo, Y. Chen, D. Meng, L. Zhang, "Beyond a Gaussian denoiser: residual learning
    of deep CNN for image denoising", IEEE TIP 26(7), 2017.
    """

    def __init__(
        self,
        depth: int = 17,
        channels: int = 1,
        features: int = 64,
        residual: bool = True,
    ) -> None:
        super().__init__()
        for label, value, low in (("depth", depth, 2), ("channels", channels, 1), ("features", features, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidInputError(f"expected {label} to be an integer >= {low}, got {value!r}")
        self.depth = depth
        self.channels = channels
        self.features = features
        self.residual = bool(residual)
        self._folded = False

        layers: list[nn.Module] = [
            nn.Conv2d(channels, features, kernel_size=3, padding=1, bias=True),
            nn.ReLU(inplace=True),
        ]
        for _ in range(depth - 2):
            layers += [
                nn.Conv2d(features, features, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(features),
                nn.ReLU(inplace=True),
            ]
        layers.append(nn.Conv2d(features, channels, kernel_size=3, padding=1, bias=True))
        self.layers = nn.Sequential(*layers)

    @property
    def receptive_field_radius(self) -> int:
        """Radius in pixels of the input window that one output pixel depends on (= depth)."""
        return self.depth

    @property
    def is_folded(self) -> bool:
        """Whether this is an inference copy made by :meth:`fold_batchnorm`."""
        return self._folded

    def extra_repr(self) -> str:
        return (
            f"depth={self.depth}, channels={self.channels}, features={self.features}, "
            f"residual={self.residual}, folded={self._folded}"
        )

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != self.channels:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InvalidInputError(f"expected a tensor of shape (B, {self.channels}, H, W), got {got}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw output of the stack, ``(B, C, H, W)`` → ``(B, C, H, W)``.

        The noise estimate when ``residual`` is true (the clean image is ``x − forward(x)``,
        see :meth:`denoise`), the clean estimate otherwise.
        """
        self._check_input(x)
        return self.layers(x)

    def denoise(self, x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Clean estimate, ``(B, C, H, W)`` → ``(B, C, H, W)``; with ``dtype`` (bf16/fp16) the
        network runs as in :meth:`forward_mixed` and the residual is taken in float32."""
        out = self.forward(x) if dtype is None else self.forward_mixed(x, dtype)
        if not self.residual:
            return out
        return x - out if dtype is None else x.float() - out

    def forward_mixed(self, x: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
        """:meth:`forward` with the convolutions in ``dtype`` (bf16/fp16, autocast) but the input
        read at float32 precision; float32 output. ``dtype=None`` is plain :meth:`forward`.

        Rounded to bf16 (8 significant bits), a normalised log-amplitude of 0.6 loses ±0.001,
        i.e. ±1 % of amplitude after the ×(M − m) de-normalisation, before the network has seen
        it. So the input is split as ``x = hi + lo`` (``hi`` = ``x`` rounded to ``dtype``,
        ``lo`` = the remainder rounded, together ≈ 16 significant bits) and the first
        convolution reads both as two channels with the same kernel: one ``dtype`` convolution
        that accumulates ``W∗hi + W∗lo`` in float32 and rounds once, which costs next to nothing
        (2 input channels against 64 for each hidden layer).

        Why not a float32 first convolution: its results vary in the last bit with the tile
        shape (oneDNN picks other kernels for other shapes), which flips bf16 roundings of the
        next layer; tiles then differed from the whole image by up to 7 % at a few pixels near
        the raster corners, and converting its 64 float32 feature maps cost ≈ 10 % of the time.
        Measured with sarcnn-s1-l1-v2 (``benchmarks/bench_sarcnn.py --only b``: simulated
        single-look speckle on a real 1024² crop, 3 draws): bf16 − fp32 PSNR −0.065 dB with the
        input rounded to bf16, −0.03 dB so; tiled and whole-image outputs stay identical.
        """
        if dtype is None:
            return self.forward(x).float()
        self._check_input(x)
        layers = list(self.layers)
        first = layers[0]
        x = x.float()
        hi = x.to(dtype)
        lo = (x - hi.float()).to(dtype)
        split = torch.cat([hi, lo], dim=1)
        if x.is_contiguous(memory_format=torch.channels_last):
            split = split.contiguous(memory_format=torch.channels_last)
        weight = first.weight.to(dtype)
        weight = torch.cat([weight, weight], dim=1)
        with torch.autocast(device_type=x.device.type, dtype=dtype):
            h = F.conv2d(split, weight, first.bias, stride=first.stride, padding=first.padding,
                         dilation=first.dilation, groups=first.groups)
            out = nn.Sequential(*layers[1:])(h)
        return out.float()

    def widened(self, features: int, seed: int = 0) -> DnCNN:
        """A copy with ``features`` hidden channels that computes exactly what this one does.

        The first ``self.features`` channels of every hidden layer keep this network's weights
        and batch-norm state. The added channels get random (Kaiming-normal, seeded) weights
        from every channel of the layer before them, fresh batch norms, and zero weights into
        the old channels and into the output: their activations change nothing until training
        moves those zeros, which their gradient does from the first step. A way to give a
        trained network more capacity without starting over.

        Parameters
        ----------
        features : int
            Hidden width of the copy, at least ``self.features``.
        seed : int
            Seed of the added channels' weights.
        """
        if self._folded:
            raise InvalidInputError("cannot widen a batch-norm-folded copy; widen the trained network")
        if isinstance(features, bool) or not isinstance(features, int) or features < self.features:
            raise InvalidInputError(f"expected features to be an integer >= {self.features}, got {features!r}")
        wide = DnCNN(depth=self.depth, channels=self.channels, features=features, residual=self.residual)
        wide = wide.to(device=self.layers[0].weight.device, dtype=self.layers[0].weight.dtype)
        old = self.features
        generator = torch.Generator(device="cpu").manual_seed(seed)
        with torch.no_grad():
            for mine, theirs in zip(self.layers, wide.layers):
                if isinstance(mine, nn.Conv2d):
                    fan_in = theirs.in_channels * 9
                    fresh = torch.randn(theirs.weight.shape, generator=generator) * math.sqrt(2.0 / fan_in)
                    theirs.weight.copy_(fresh.to(theirs.weight))
                    out_old = min(mine.out_channels, theirs.out_channels)
                    theirs.weight[:out_old].zero_()  # old outputs: nothing from the new inputs ...
                    theirs.weight[:out_old, :mine.in_channels] = mine.weight  # ... and their own weights
                    if theirs.bias is not None:
                        theirs.bias.zero_()
                        theirs.bias[:out_old] = mine.bias
                elif isinstance(mine, nn.BatchNorm2d):
                    for name in ("weight", "bias", "running_mean", "running_var"):
                        getattr(theirs, name)[:old] = getattr(mine, name)
                    theirs.num_batches_tracked.copy_(mine.num_batches_tracked)
        wide.train(self.training)
        return wide

    def fold_batchnorm(self) -> DnCNN:
        """Return an eval-mode copy with each batch norm merged into the convolution before it.

        Notes
        -----
        In eval mode a batch norm is ``y = γ (z − μ) / √(σ² + ε) + β`` per channel. With
        ``s = γ / √(σ² + ε)`` and ``z = W ∗ x (+ b)``, the pair equals one convolution with
        weights ``s·W`` and bias ``β + s·(b − μ)``. The products are formed in float64 so that the
        folded copy matches the eval-mode network to float32 rounding. The copy has no batch
        norm left, cannot be trained as a DnCNN and is refused by ``save_weights``.
        """
        folded = copy.deepcopy(self).eval()
        if folded._folded:
            return folded
        modules = list(folded.layers)
        out: list[nn.Module] = []
        i = 0
        # a new Conv2d draws a random initialisation (overwritten at once): from a forked
        # generator, so that folding leaves the caller's seeded torch stream alone
        with torch.random.fork_rng(devices=[]):
            while i < len(modules):
                module = modules[i]
                nxt = modules[i + 1] if i + 1 < len(modules) else None
                if isinstance(module, nn.Conv2d) and isinstance(nxt, nn.BatchNorm2d):
                    out.append(_merge_conv_bn(module, nxt))
                    i += 2
                else:
                    out.append(module)
                    i += 1
        folded.layers = nn.Sequential(*out)
        folded._folded = True
        return folded


def _merge_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    weight = conv.weight.detach().double()
    bias = conv.bias.detach().double() if conv.bias is not None else torch.zeros(weight.shape[0], dtype=torch.float64, device=weight.device)
    mean = bn.running_mean.detach().double()
    var = bn.running_var.detach().double()
    gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(mean)
    beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + bn.eps)

    merged = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        kernel_size=conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        merged.weight.copy_(weight * scale.reshape(-1, 1, 1, 1))
        merged.bias.copy_(beta + scale * (bias - mean))
    return merged.eval()
