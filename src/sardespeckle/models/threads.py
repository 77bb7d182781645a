"""Torch settings for the duration of one network call: CPU threads, full fp32 on CUDA."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads, restoring the previous count after;
    ``None`` leaves the setting alone."""
    if threads is None:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def full_fp32(active: bool) -> Iterator[None]:
    """Run the block with cuDNN's TF32 convolutions off when ``active``, restoring the setting
    after. torch lets cuDNN run float32 convolutions in TF32 (10-bit mantissa) by default on
    recent GPUs; for SAR-CNN on an H100 that put "fp32" 0.006 off the CPU in log-amplitude
    (max; mean 0.0009) and made 128-px tiles differ from the whole image by as much, against
    7e-6 with TF32 off, at no measured cost (``benchmarks/bench_cuda.py``). bf16 and fp16 are
    there for speed; fp32 means fp32."""
    if not active:
        yield
        return
    import torch

    previous = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = previous
