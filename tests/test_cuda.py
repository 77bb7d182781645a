"""The networks on a CUDA GPU: the same results as on the CPU. Skipped without one.

Kept free of rasterio so that a bare GPU machine (torch, numpy, scipy, pytest) can run it:
``PYTHONPATH=src:tests python -m pytest tests/test_cuda.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _random_dncnn import random_network, speckled  # noqa: E402

from sardespeckle.api import despeckle  # noqa: E402
from sardespeckle.methods import build_method  # noqa: E402
from sardespeckle.models import DnCNN, save_weights  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("weights") / "random-sarcnn.pt"
    save_weights(random_network(0), path, name="random-sarcnn", training_data="none (random)")
    return str(path)


@pytest.fixture
def tf32_on():
    """cuDNN allowed to use TF32 (torch's default on recent GPUs), as a user may leave it: the
    networks' fp32 must still be fp32, and the setting must come back unchanged."""
    previous = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = True
    yield
    assert torch.backends.cudnn.allow_tf32 is True
    torch.backends.cudnn.allow_tf32 = previous


def _sarcnn(image, weights, tile=None, **params):
    return despeckle(image, method="sarcnn", looks=1, kind="intensity", tile=tile,
                     params={"weights": weights, "precision": "fp32", "device": "cpu", **params})


def test_sarcnn_on_cuda_matches_the_cpu(weights_file, tf32_on):
    image = speckled((300, 260), seed=4)
    cpu = _sarcnn(image, weights_file)
    for tile in (None, 128):
        gpu = _sarcnn(image, weights_file, tile=tile, device="cuda")
        assert gpu.dtype == np.float32 and gpu.shape == image.shape
        assert np.max(np.abs(np.log(gpu / cpu))) < 1e-4
    built = build_method("sarcnn", looks=1, params={"weights": weights_file, "device": "auto"})
    assert built.parameters["device"] == "cuda"


def test_sarcnn_reduced_precision_on_cuda_is_as_close_as_the_cpus_bf16(weights_file):
    # Random weights amplify rounding: the CPU's bf16 is ≈ 0.03 off in mean |Δ log I| here.
    image = speckled((300, 260), seed=4)
    cpu = _sarcnn(image, weights_file)
    bound = 2 * np.mean(np.abs(np.log(_sarcnn(image, weights_file, precision="bf16") / cpu)))
    for precision in ("bf16", "fp16"):
        gpu = _sarcnn(image, weights_file, device="cuda", precision=precision)
        assert np.all(np.isfinite(gpu)) and np.mean(np.abs(np.log(gpu / cpu))) < bound


def test_mulog_dncnn_on_cuda_matches_the_cpu(tf32_on):
    from sardespeckle.mulog.denoisers import DnCNNDenoiser

    torch.manual_seed(0)
    net = DnCNN(depth=3, features=8).eval()
    v = np.random.default_rng(5).normal(0.0, 1.0, (40, 56))
    on_cpu = DnCNNDenoiser(net, sigma_range=(0.0, 0.2), device="cpu")
    on_gpu = DnCNNDenoiser(net, sigma_range=(0.0, 0.2), device="cuda")
    assert next(on_gpu.network.parameters()).device.type == "cuda"
    a, b = on_cpu(v, 0.3), on_gpu(v, 0.3)
    assert b.dtype == np.float64 and b.shape == v.shape
    assert np.max(np.abs(a - b)) < 1e-4 * (np.max(np.abs(a)) + 1)


def test_sarcnn_on_cuda_refuses_bad_intensities_and_takes_tiny_images(weights_file, tf32_on):
    from sardespeckle.errors import InvalidInputError
    from sardespeckle.models.sarcnn import SarCnnDenoiser

    on_gpu = SarCnnDenoiser.from_weights(weights_file, device="cuda")
    on_cpu = SarCnnDenoiser.from_weights(weights_file, device="cpu")
    bad = speckled((64, 64), seed=1)
    bad[3, 4], bad[5, 6] = 0.0, np.nan
    with pytest.raises(InvalidInputError, match="got 2 pixel"):
        on_gpu(bad)
    # Smaller than the halo: mirrored on the CPU (torch cannot reflect by more than the size).
    tiny = speckled((12, 30), seed=2)
    assert np.max(np.abs(np.log(on_gpu(tiny) / on_cpu(tiny)))) < 1e-4
    # A batch of tiles with their context on the GPU path equals the CPU's.
    tiles = [speckled((80, 96), seed=s) for s in (3, 4)]
    for a, b in zip(on_gpu.batch_with_context(tiles), on_cpu.batch_with_context(tiles)):
        assert a.dtype == np.float32 and np.max(np.abs(np.log(a / b))) < 1e-4
