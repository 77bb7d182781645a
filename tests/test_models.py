"""Tests of sardespeckle.models: DnCNN, SAR-CNN inference and the weights registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _random_dncnn import he_randomize
from torch import nn

from sardespeckle.errors import InvalidInputError, UsageError, WeightsError
from sardespeckle.models import (
    LOG_AMPLITUDE_MAX,
    LOG_AMPLITUDE_MIN,
    Architecture,
    DnCNN,
    SarCnnDenoiser,
    WeightsEntry,
    cn,
    denormalize,
    list_weights,
    load_weights,
    normalize_log_amplitude,
    save_weights,
    sha256_file,
)
from sardespeckle.models import weights as weights_module

SPAN = LOG_AMPLITUDE_MAX - LOG_AMPLITUDE_MIN
#: Std of single-look log-amplitude speckle, ½√ψ₁(1) (SAR_NOTES §1).
SPECKLE_LOG_AMPLITUDE_STD = 0.5 * math.pi / math.sqrt(6.0)


def randomize(net: DnCNN, seed: int, noise_std: float | None = None) -> DnCNN:
    """Give ``net`` random weights that keep the signal alive through its depth.

    PyTorch's default init makes a deep plain ReLU stack output an almost constant image, which
    would make every test below vacuous. He-normal weights and randomised batch-norm statistics
    keep activations of order one. With ``noise_std`` the last layer is rescaled so that the
    output on a typical normalised speckled image has that std and a mean of cn(1), like a
    trained SAR-CNN.
    """
    gen = torch.Generator().manual_seed(seed)
    he_randomize(net, gen)
    with torch.no_grad():
        net.eval()
        if noise_std is not None:
            x = torch.from_numpy(normalize_log_amplitude(speckled(64, seed=123)))[None, None].to(
                next(net.parameters()).dtype
            )
            out = net(x)
            last = net.layers[-1]
            scale = noise_std / float(out.std())
            last.weight.mul_(scale)
            last.bias.mul_(scale)
            last.bias.add_(cn(1) - float(net(x).mean()))
    return net


def speckled(size: int, seed: int, looks: int = 1) -> np.ndarray:
    """A float32 single-look speckled image over a log-normal, spatially smooth reflectivity."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(5.0, 1.0, (size // 8 + 2, size // 8 + 2))
    reflectivity = np.exp(np.kron(coarse, np.ones((8, 8)))[:size, :size])
    speckle = rng.gamma(looks, 1.0 / looks, (size, size))
    return (reflectivity * speckle).astype(np.float32)


@pytest.fixture(scope="module")
def sarcnn_net() -> DnCNN:
    return randomize(DnCNN(depth=19), seed=0, noise_std=0.056)


# ---------------------------------------------------------------------------------------- DnCNN


def expected_parameters(depth: int, channels: int, features: int) -> int:
    first = 9 * channels * features + features
    middle = (depth - 2) * (9 * features * features + 2 * features)  # conv without bias + BN γ, β
    last = 9 * features * channels + channels
    return first + middle + last


@pytest.mark.parametrize(("depth", "count"), [(19, 630_081), (17, 556_097)])
def test_parameter_count(depth: int, count: int) -> None:
    net = DnCNN(depth=depth)
    assert sum(p.numel() for p in net.parameters()) == expected_parameters(depth, 1, 64) == count
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == depth
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == depth - 2
    assert convs[0].bias is not None and convs[-1].bias is not None
    assert all(c.bias is None for c in convs[1:-1])


@pytest.mark.parametrize("depth", [4, 19])
def test_receptive_field(depth: int) -> None:
    """Changing one input pixel moves the centre output iff it is within ``radius`` (Chebyshev).

    Float64, so that the corner influence (a single chain of corner taps, ~1e-11 at depth 19)
    is still distinguishable from the exact zero outside the support.
    """
    net = randomize(DnCNN(depth=depth, features=8), seed=1).double()
    radius = net.receptive_field_radius
    assert radius == depth
    size = 2 * radius + 7
    centre = size // 2
    base = torch.rand(1, 1, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = net(base)[0, 0, centre, centre]

        def change_at(dr: int, dc: int) -> float:
            x = base.clone()
            x[0, 0, centre + dr, centre + dc] += 1.0
            return abs(float(net(x)[0, 0, centre, centre] - ref))

        for dr, dc in [(radius, 0), (0, -radius), (radius, 3)]:
            assert change_at(dr, dc) > 1e-9, (dr, dc)
        for dr, dc in [(-radius, radius), (radius, radius)]:
            assert change_at(dr, dc) > 0.0, (dr, dc)
        for dr, dc in [(radius + 1, 0), (0, -radius - 1), (radius + 1, radius + 1), (-radius - 2, 3)]:
            assert change_at(dr, dc) == 0.0, (dr, dc)

    # The whole support at once: the gradient of the centre output is non-zero exactly on the
    # (2·radius + 1)² square.
    x = base.clone().requires_grad_(True)
    net(x)[0, 0, centre, centre].backward()
    support = (x.grad[0, 0] != 0).numpy()
    expected = np.zeros_like(support)
    expected[centre - radius : centre + radius + 1, centre - radius : centre + radius + 1] = True
    np.testing.assert_array_equal(support, expected)


def test_fold_batchnorm_matches_eval_mode() -> None:
    net = randomize(DnCNN(depth=19), seed=3)
    net.train()  # folding must not depend on (nor change) the caller's mode
    folded = net.fold_batchnorm()
    assert net.training and not folded.training
    assert folded.is_folded and not net.is_folded
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    x = torch.from_numpy(normalize_log_amplitude(speckled(40, seed=4)))[None, None].repeat(2, 1, 1, 1)
    with torch.no_grad():
        expected = net.eval()(x)
        got = folded(x)
    assert float(expected.std()) > 1e-2  # the network does respond to its input
    error = float((got - expected).abs().max()) / float(expected.abs().max())
    assert error < 1e-5, error
    assert folded.fold_batchnorm().is_folded


def test_fold_batchnorm_stays_on_the_network_device() -> None:
    # A GPU training run's validation folded a CUDA network and failed with "found at least two
    # devices": the bias of a bias-free convolution was made on the CPU. The meta device shows the
    # same placement without a GPU.
    net = DnCNN(depth=5, features=8).to("meta")
    folded = net.fold_batchnorm()
    assert {p.device.type for p in folded.parameters()} == {"meta"}


def test_forward_is_noise_and_denoise_is_clean() -> None:
    net = randomize(DnCNN(depth=5, features=8), seed=5)
    x = torch.rand(2, 1, 12, 10)
    with torch.no_grad():
        assert torch.equal(net.denoise(x), x - net(x))
    direct = randomize(DnCNN(depth=5, features=8, residual=False), seed=5)
    with torch.no_grad():
        assert torch.equal(direct.denoise(x), direct(x))
    assert net(x).shape == (2, 1, 12, 10)


@pytest.mark.parametrize("bad", [torch.zeros(1, 12, 10), torch.zeros(1, 2, 8, 8), np.zeros((1, 1, 8, 8))])
def test_dncnn_rejects_bad_input(bad: object) -> None:
    with pytest.raises(InvalidInputError, match=r"expected a tensor of shape \(B, 1, H, W\), got"):
        DnCNN(depth=3, features=4)(bad)


@pytest.mark.parametrize("kwargs", [{"depth": 1}, {"features": 0}, {"channels": 1.5}, {"depth": True}])
def test_dncnn_rejects_bad_architecture(kwargs: dict) -> None:
    with pytest.raises(InvalidInputError, match="expected"):
        DnCNN(**kwargs)


# ------------------------------------------------------------------------- SAR-CNN normalisation


def test_normalize_denormalize_round_trip() -> None:
    intensity = np.geomspace(1e-6, 1e9, 1001).astype(np.float32).reshape(7, 143)
    x = normalize_log_amplitude(intensity)
    assert x.dtype == np.float32 and x.shape == intensity.shape
    back = denormalize(x)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, intensity, rtol=1e-5)
    # The normalisation bounds are the paper's log-amplitude extremes.
    bounds = normalize_log_amplitude(np.exp(2 * np.array([LOG_AMPLITUDE_MIN, LOG_AMPLITUDE_MAX])))
    np.testing.assert_allclose(bounds, [0.0, 1.0], atol=1e-7)


def test_denormalize_clip() -> None:
    x = np.array([-0.5, 0.0, 0.5, 1.5])
    clipped = denormalize(x, clip=True)
    np.testing.assert_allclose(clipped[[0, 3]], denormalize(np.array([0.0, 1.0])), rtol=1e-6)
    assert denormalize(x)[0] < clipped[0] and denormalize(x)[3] > clipped[3]


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, np.inf])
def test_normalize_rejects_non_positive(bad: float) -> None:
    intensity = np.ones((4, 4), np.float32)
    intensity[1, 2] = bad
    with pytest.raises(InvalidInputError, match="expected finite, strictly positive intensities, got 1 pixel"):
        normalize_log_amplitude(intensity)


def test_cn() -> None:
    assert cn(1) == pytest.approx(-0.0250563, abs=1e-6)
    assert cn(1) == pytest.approx(0.5 * -0.5772156649015329 / SPAN, rel=1e-12)
    values = [cn(looks) for looks in (0.5, 1, 2, 4.4, 100)]
    assert all(a < b < 0 for a, b in zip(values, values[1:]))  # bias shrinks as looks grow
    assert cn(1e6) == pytest.approx(-1 / (4e6 * SPAN), rel=1e-3)  # ψ(L) − ln L ≈ −1/(2L)
    for bad in (0, -1, float("nan"), "1", True):
        with pytest.raises(InvalidInputError, match="expected looks"):
            cn(bad)


# --------------------------------------------------------------------------- SAR-CNN denoiser


def test_denoiser_output_contract(sarcnn_net: DnCNN) -> None:
    denoiser = SarCnnDenoiser(sarcnn_net, looks=1)
    assert denoiser.halo == 19
    intensity = speckled(64, seed=6)[:, :53]  # interior (beyond the halo): 26 × 15
    out = denoiser(intensity)
    assert out.shape == intensity.shape and out.dtype == np.float32
    assert np.all(np.isfinite(out)) and np.all(out > 0)
    # The stated maths: exp(2((M − m)(g(x − n) − cn) + m)), n from the network on x mirrored by
    # the halo (reflect) and cropped back, g the guard: within [min − 0.02, max + 0.02] of x
    # over 9 × 9 (a random network leaves that range often).
    from scipy import ndimage

    from sardespeckle.models.sarcnn import GUARD_MARGIN, GUARD_WINDOW

    def guard(clean, x):
        high = ndimage.maximum_filter(x, GUARD_WINDOW, mode="nearest") + GUARD_MARGIN
        low = ndimage.minimum_filter(x, GUARD_WINDOW, mode="nearest") - GUARD_MARGIN
        return np.clip(clean, low, high)

    x = normalize_log_amplitude(intensity)
    mirrored = np.pad(x, 19, mode="reflect")
    with torch.no_grad():
        noise = sarcnn_net.eval()(torch.from_numpy(mirrored)[None, None])[0, 0].numpy()
    clean = guard(mirrored.astype(np.float64) - noise, mirrored)[19:-19, 19:-19]
    assert not np.allclose(clean, x - noise[19:-19, 19:-19])  # the guard binds somewhere
    expected = denormalize(clean - cn(1))
    np.testing.assert_allclose(out, expected, rtol=1e-4)
    # Without the mirror (the network's zero padding) the border pixels would differ, the
    # interior (farther than the halo from every border) would not.
    with torch.no_grad():
        zero_padded = sarcnn_net.eval()(torch.from_numpy(x)[None, None])[0, 0].numpy()
    plain = denormalize(guard(x.astype(np.float64) - zero_padded, x) - cn(1))
    assert not np.allclose(out[0], plain[0], rtol=1e-3)
    assert out[19:-19, 19:-19].size == 26 * 15
    np.testing.assert_allclose(out[19:-19, 19:-19], plain[19:-19, 19:-19], rtol=1e-4)


def test_denoiser_batch_equals_single_calls(sarcnn_net: DnCNN) -> None:
    denoiser = SarCnnDenoiser(sarcnn_net)
    tiles = [speckled(32, seed=s) for s in (7, 8, 9)]
    together = denoiser.batch(tiles)
    assert len(together) == 3
    # Batch size changes the float32 accumulation order of the convolutions, not the maths:
    # allow 1e-4 in log-amplitude (0.0009 dB); differences seen are ~2e-5.
    for tile, out in zip(tiles, together):
        np.testing.assert_allclose(np.log(out) / 2, np.log(denoiser(tile)) / 2, rtol=0, atol=1e-4)


@pytest.mark.parametrize("clip", [False, True])
def test_the_gpu_pre_and_post_processing_equals_numpys(sarcnn_net: DnCNN, clip: bool) -> None:
    """On CUDA the log, the mirror and the exp run in torch (``_despeckle_on_device``); run here
    on the CPU, that path gives what the numpy one gives, and refuses what it refuses."""
    denoiser = SarCnnDenoiser(sarcnn_net, looks=1, clip=clip)
    tiles = [speckled(48, seed=s)[:, :40] for s in (21, 22)]
    for pad in (0, denoiser.halo):
        numpy_path = denoiser._despeckle(tiles, pad=pad)
        torch_path = denoiser._despeckle_on_device(tiles, tiles[0].shape, pad)
        for a, b in zip(torch_path, numpy_path):
            assert a.dtype == np.float32 and a.shape == b.shape
            assert np.max(np.abs(a / b - 1)) < 1e-5
    bad = [tiles[0].copy()]
    bad[0][1, 2], bad[0][3, 4] = -1.0, np.inf
    with pytest.raises(InvalidInputError, match="got 2 pixel"):
        denoiser._despeckle_on_device(bad, bad[0].shape, 0)
    with pytest.raises(InvalidInputError, match="real intensities"):
        denoiser._despeckle_on_device([tiles[0].astype(np.complex64)], tiles[0].shape, 0)


def test_denoiser_bf16_close_to_fp32(sarcnn_net: DnCNN) -> None:
    """bf16 keeps the output well inside the speckle it removes.

    bf16 carries 8 significant bits (unit roundoff 2⁻⁹ ≈ 0.002); over 19 layers the predicted
    log-speckle picks up a few percent of relative error (measured ≈ 4 % with these random
    weights). Since normalisation and the residual subtraction stay in float32, the output
    error is that fraction of the speckle estimate, not of the image level. We require the mean
    absolute log-amplitude difference to stay below 5 % of the single-look speckle std (0.641),
    i.e. < 0.032 (≈ 0.28 dB in intensity); measured ≈ 0.02.
    """
    intensity = speckled(96, seed=10)
    fp32 = SarCnnDenoiser(sarcnn_net, precision="fp32")(intensity)
    bf16 = SarCnnDenoiser(sarcnn_net, precision="bf16")(intensity)
    assert bf16.dtype == np.float32 and np.all(bf16 > 0)
    log_fp32 = 0.5 * np.log(fp32.astype(np.float64))
    log_bf16 = 0.5 * np.log(bf16.astype(np.float64))
    diff = np.abs(log_bf16 - log_fp32)
    peak = np.ptp(log_fp32)
    psnr = 10 * np.log10(peak**2 / np.mean(diff**2))
    removed = np.std(0.5 * np.log(intensity.astype(np.float64)) - log_fp32)
    print(
        f"\nbf16 vs fp32 log-amplitude: mean |diff| {diff.mean():.4f}, max {diff.max():.4f}, "
        f"PSNR {psnr:.1f} dB (peak = range {peak:.2f}); std of removed log-speckle {removed:.3f}"
    )
    assert diff.mean() < 0.05 * SPECKLE_LOG_AMPLITUDE_STD, (diff.mean(), psnr)
    assert psnr > 40.0


def test_denoiser_threads_are_restored(sarcnn_net: DnCNN) -> None:
    before = torch.get_num_threads()
    SarCnnDenoiser(sarcnn_net, threads=1)(speckled(24, seed=11))
    assert torch.get_num_threads() == before


def test_denoiser_rejects_bad_input(sarcnn_net: DnCNN) -> None:
    denoiser = SarCnnDenoiser(sarcnn_net)
    with pytest.raises(InvalidInputError, match=r"expected tile 0 of shape \(rows, cols\), got \(1, 8, 8\)"):
        denoiser(np.ones((1, 8, 8), np.float32))
    with pytest.raises(InvalidInputError, match=r"expected all tiles of shape \(8, 8\), got \(8, 9\)"):
        denoiser.batch([np.ones((8, 8), np.float32), np.ones((8, 9), np.float32)])
    with pytest.raises(InvalidInputError, match="non-empty list"):
        denoiser.batch([])
    with pytest.raises(InvalidInputError, match="strictly positive"):
        denoiser(np.zeros((8, 8), np.float32))


def test_denoiser_rejects_bad_options(sarcnn_net: DnCNN) -> None:
    with pytest.raises(UsageError, match="expected precision"):
        SarCnnDenoiser(sarcnn_net, precision="int8")
    with pytest.raises(UsageError, match="CUDA only"):
        SarCnnDenoiser(sarcnn_net, precision="fp16", device="cpu")
    with pytest.raises(UsageError, match="expected device"):
        SarCnnDenoiser(sarcnn_net, device="tpu")
    with pytest.raises(UsageError, match="threads"):
        SarCnnDenoiser(sarcnn_net, threads=0)
    with pytest.raises(InvalidInputError, match="single-channel"):
        SarCnnDenoiser(DnCNN(depth=3, channels=2, features=4))


# ------------------------------------------------------------------------------------- weights


@pytest.fixture()
def small_net() -> DnCNN:
    return randomize(DnCNN(depth=5, features=8), seed=12)


def test_save_load_round_trip(tmp_path, small_net: DnCNN) -> None:
    path = tmp_path / "w.pt"
    digest = save_weights(small_net, path, name="tiny", looks=1.0, training_data="synthetic", validation_psnr=21.5)
    assert digest == sha256_file(path) and len(digest) == 64
    loaded, meta = load_weights(path, expected_architecture={"depth": 5, "features": 8})
    assert not loaded.training and isinstance(loaded, DnCNN)
    assert meta["architecture"] == Architecture(depth=5, features=8).as_dict()
    assert meta["looks"] == 1.0 and meta["validation_psnr"] == 21.5 and meta["domain"] == "log-amplitude"
    assert (meta["norm_min"], meta["norm_max"]) == (LOG_AMPLITUDE_MIN, LOG_AMPLITUDE_MAX)
    intensity = speckled(24, seed=13)
    np.testing.assert_array_equal(SarCnnDenoiser(small_net)(intensity), SarCnnDenoiser(loaded)(intensity))
    from_file = SarCnnDenoiser.from_weights(str(path))
    np.testing.assert_array_equal(from_file(intensity), SarCnnDenoiser(small_net)(intensity))
    # Plain torch with the safe loader reads it too.
    assert set(torch.load(path, weights_only=True)) == {"state_dict", "meta"}


def test_save_refuses_folded_model(tmp_path, small_net: DnCNN) -> None:
    with pytest.raises(InvalidInputError, match="unfolded"):
        save_weights(small_net.fold_batchnorm(), tmp_path / "w.pt")
    assert list(tmp_path.iterdir()) == []


def test_from_weights_refuses_other_domain(tmp_path, small_net: DnCNN) -> None:
    path = tmp_path / "mulog.pt"
    save_weights(small_net, path, domain="log-intensity-gaussian")
    with pytest.raises(WeightsError, match="expected SAR-CNN weights of domain 'log-amplitude'"):
        SarCnnDenoiser.from_weights(str(path))


@pytest.fixture()
def registry(tmp_path, monkeypatch, small_net: DnCNN):
    monkeypatch.setattr(weights_module, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(weights_module, "REGISTRY", {})
    digest = save_weights(small_net, tmp_path / "tiny-abc.pt", name="tiny", looks=1.0)
    entry = WeightsEntry(
        name="tiny",
        filename="tiny-abc.pt",
        sha256=digest,
        architecture=Architecture(depth=5, features=8),
        training_data="random",
        description="test weights",
    )
    weights_module.REGISTRY["tiny"] = entry
    return entry


def test_registry_load_and_list(registry: WeightsEntry, small_net: DnCNN) -> None:
    assert list_weights() == [registry]
    loaded, meta = load_weights("tiny")
    assert meta["name"] == "tiny"
    for key, value in small_net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_registry_sha_mismatch(registry: WeightsEntry) -> None:
    with open(registry.path, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(WeightsError, match=r"has sha256 [0-9a-f]{64}, expected [0-9a-f]{64} \(corrupt or modified\)"):
        load_weights("tiny")


def test_registry_missing_file(registry: WeightsEntry) -> None:
    registry.path.unlink()
    with pytest.raises(WeightsError, match="not found"):
        load_weights("tiny")


def test_registry_architecture_mismatch(registry: WeightsEntry) -> None:
    with pytest.raises(WeightsError, match=r"depth: 5 here, 19 there"):
        load_weights("tiny", expected_architecture=Architecture(depth=19, features=8))


def test_unknown_name() -> None:
    with pytest.raises(WeightsError, match="expected a registered weights name .* got 'no-such-weights'"):
        load_weights("no-such-weights")


def test_truncated_file(tmp_path, small_net: DnCNN) -> None:
    path = tmp_path / "w.pt"
    save_weights(small_net, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="cannot be read: it is truncated .*, corrupt or not a file written by torch.save"):
        load_weights(path)


def test_garbage_file(tmp_path) -> None:
    path = tmp_path / "w.pt"
    path.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(WeightsError, match=str(path)):
        load_weights(path)


class NotAllowed:
    """A class that weights_only loading must refuse to rebuild."""

    def __init__(self) -> None:
        self.payload = "anything"


def test_weights_only_rejects_pickled_objects(tmp_path, small_net: DnCNN) -> None:
    path = tmp_path / "w.pt"
    meta = {"format": "sardespeckle-weights", "format_version": 1, "architecture": {}, "extra": NotAllowed()}
    torch.save({"state_dict": small_net.state_dict(), "meta": meta}, path)
    with pytest.raises(WeightsError, match=r"refused by safe loading: it holds Python objects") as info:
        load_weights(path)
    # torch's own advice (load with weights_only=False, i.e. run the file's code) is not passed on.
    assert "weights_only=False" not in str(info.value)
    # A legacy (non-zip) pickle is refused the same way, without torch's warning on stderr.
    legacy = tmp_path / "legacy.pt"
    import pickle
    import warnings

    legacy.write_bytes(pickle.dumps({"state_dict": {}, "meta": NotAllowed()}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(WeightsError, match="refused by safe loading"):
            load_weights(legacy)


def test_a_modified_copy_never_passes_for_registered_weights(tmp_path):
    import shutil

    from sardespeckle.models.inference import weights_identity
    from sardespeckle.models.weights import REGISTRY, sha256_file

    entry = REGISTRY["sarcnn-s1-l1-v2"]
    copy = tmp_path / "copy.pt"
    shutil.copyfile(entry.path, copy)
    _, meta = load_weights(copy)
    assert meta["name"] == "sarcnn-s1-l1-v2"
    # An exact copy is the registered weights, under their name.
    assert weights_identity(str(copy), meta) == f"sarcnn-s1-l1-v2 sha256:{entry.sha256[:16]}"
    # A modified copy keeps the name inside, but is labelled by its file name.
    payload = torch.load(copy, weights_only=True)
    payload["state_dict"]["layers.0.bias"] = payload["state_dict"]["layers.0.bias"] + 1e-3
    torch.save(payload, copy)
    _, meta = load_weights(copy)
    assert weights_identity(str(copy), meta) == f"copy.pt sha256:{sha256_file(copy)[:16]}"


def test_a_users_weights_are_named_by_their_file(tmp_path, small_net: DnCNN):
    from sardespeckle.models.inference import weights_identity
    from sardespeckle.models.weights import sha256_file

    # 'sardespeckle train' stores the generic name "sarcnn" unless --name is given: the
    # provenance must not read like the method's shipped default.
    path = tmp_path / "mine.pt"
    save_weights(small_net, path, name="sarcnn")
    _, meta = load_weights(path)
    assert meta["name"] == "sarcnn"
    assert weights_identity(str(path), meta) == f"mine.pt sha256:{sha256_file(path)[:16]}"


def test_foreign_torch_file(tmp_path, small_net: DnCNN) -> None:
    path = tmp_path / "bare.pt"
    torch.save(small_net.state_dict(), path)  # a bare state_dict, no identity
    with pytest.raises(WeightsError, match=r"a torch file but not sardespeckle weights \(it holds "):
        load_weights(path)


def test_architecture_mismatch_in_file(tmp_path, small_net: DnCNN) -> None:
    path = tmp_path / "w.pt"
    save_weights(small_net, path)
    with pytest.raises(WeightsError, match=r"depth: 5 here, 19 there"):
        load_weights(path, expected_architecture=Architecture(depth=19, features=8))

    payload = torch.load(path, weights_only=True)
    payload["meta"]["architecture"]["depth"] = 6  # meta lies about the state it carries
    torch.save(payload, path)
    with pytest.raises(WeightsError, match=r"missing keys \[layers\.1[0-9]\."):
        load_weights(path)

    payload["meta"]["architecture"].update(depth=5, features=16)
    torch.save(payload, path)
    with pytest.raises(WeightsError, match=r"wrong shapes \[layers\.0\.bias: \(8,\) in the file, expected \(16,\)"):
        load_weights(path)

    payload["meta"]["architecture"].update(features=8, width=3)
    torch.save(payload, path)
    with pytest.raises(WeightsError, match=r"unknown \['width'\]"):
        load_weights(path)


def test_non_finite_weights(tmp_path, small_net: DnCNN) -> None:
    path = tmp_path / "w.pt"
    save_weights(small_net, path)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["layers.0.weight"][0, 0, 0, 0] = float("nan")
    torch.save(payload, path)
    with pytest.raises(WeightsError, match="layers.0.weight has non-finite values"):
        load_weights(path)


def test_forward_mixed_keeps_the_input_precision_and_a_float32_output(sarcnn_net: DnCNN) -> None:
    net = sarcnn_net.eval().fold_batchnorm()
    x = torch.from_numpy(normalize_log_amplitude(speckled(40, seed=12)))[None, None]
    x = x.to(torch.bfloat16).float()  # exactly representable in bf16
    nudged = x + 0.2 * torch.abs(x) * 2.0**-8  # below half a bf16 step: rounds back to x
    assert torch.equal(nudged.to(torch.bfloat16).float(), x)
    with torch.inference_mode():
        np.testing.assert_array_equal(net.forward_mixed(x, None).numpy(), net(x).numpy())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            plain, plain_nudged = net(x).float(), net(nudged).float()
        seen = {}
        hooks = [module.register_forward_hook(
            lambda module, args, output, index=index: seen.__setitem__(index, output.dtype))
            for index, module in enumerate(net.layers) if isinstance(module, nn.Conv2d)]
        try:
            out = net.forward_mixed(x, torch.bfloat16)
        finally:
            for hook in hooks:
                hook.remove()
        out_nudged = net.forward_mixed(nudged, torch.bfloat16)
    # Plain autocast cannot see a nudge below bf16's resolution; forward_mixed does.
    assert torch.equal(plain, plain_nudged)
    assert not torch.equal(out, out_nudged)
    # Every convolution in bf16 (the first one runs as a functional convolution over the two
    # input parts, not as its module); the output comes back as float32.
    convs = sorted(seen)
    assert out.dtype == torch.float32 and len(convs) == net.depth - 1
    assert {seen[i] for i in convs} == {torch.bfloat16}
    # And it stays close to float32 (bf16 rounding of the hidden layers only).
    reference = net(x)
    assert (out - reference).abs().mean() < 0.05 * reference.abs().mean()


def test_full_fp32_turns_tf32_off_for_the_block_and_restores_it():
    from sardespeckle.models.threads import full_fp32

    previous = torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = True
        with full_fp32(True):
            assert torch.backends.cudnn.allow_tf32 is False
        assert torch.backends.cudnn.allow_tf32 is True
        with full_fp32(False):
            assert torch.backends.cudnn.allow_tf32 is True
        with pytest.raises(RuntimeError), full_fp32(True):
            raise RuntimeError("inside")
        assert torch.backends.cudnn.allow_tf32 is True
    finally:
        torch.backends.cudnn.allow_tf32 = previous


def test_weights_are_deserialised_once_until_the_file_changes(tmp_path, monkeypatch):
    import os

    from _random_dncnn import random_network

    path = tmp_path / "w.pt"
    save_weights(random_network(0), path, name="first", training_data="none (random)")
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(a) or real_load(*a, **k))
    first, meta = load_weights(path)
    again, meta_again = load_weights(path)
    assert len(calls) == 1
    for a, b in zip(first.parameters(), again.parameters()):
        assert a is not b and torch.equal(a, b)
    meta["name"] = "edited by the caller"
    assert load_weights(path)[1]["name"] == "first"  # each call gets its own meta
    with torch.no_grad():
        next(first.parameters()).add_(1.0)  # a caller training the loaded network
    assert torch.equal(next(load_weights(path)[0].parameters()), next(again.parameters()))
    save_weights(random_network(1), path, name="second", training_data="none (random)")
    stamp = path.stat().st_mtime_ns + 1_000_000
    os.utime(path, ns=(stamp, stamp))
    second, meta_second = load_weights(path)
    assert len(calls) == 2 and meta_second["name"] == "second"
    assert not torch.equal(next(second.parameters()), next(again.parameters()))


def test_weights_with_impossible_looks_are_refused(tmp_path, small_net: DnCNN) -> None:
    path = tmp_path / "w.pt"
    save_weights(small_net, path)
    payload = torch.load(path, weights_only=True)
    for looks in (-1, 0, float("nan"), "one"):
        payload["meta"]["looks"] = looks
        torch.save(payload, path)
        with pytest.raises(WeightsError, match="expected looks .* a number > 0"):
            load_weights(path)
