"""Tests of sardespeckle.mulog: denoisers, data-fidelity proxes, single- and multi-channel MuLoG."""

from __future__ import annotations

import importlib.util
import math
import sys

import numpy as np
import pytest

from sardespeckle.errors import InvalidInputError, UsageError, WeightsError
from sardespeckle.mulog import (
    MULOG_DEFAULTS,
    MULOG_HALO,
    FisherTippett,
    MissingDependencyError,
    Wishart,
    bm3d_denoiser,
    build_mulog,
    gaussian_filter_denoiser,
    make_mulog_method,
    matrix_exp,
    matrix_log,
    mulog,
    mulog_covariance,
    mulog_covariance_iterates,
    mulog_iterates,
    simulate_wishart,
)
from sardespeckle.mulog.hermitian import (
    condition_field,
    exp_divided_differences,
    exp_second_divided_differences,
    from_channels,
    to_channels,
)
from sardespeckle.mulog.matrix import (
    _calibration_looks,
    initial_covariance,
    safeguard_covariance,
    start_log_bias,
)
from sardespeckle.speckle import add_speckle

HAS_BM3D = importlib.util.find_spec("bm3d") is not None
needs_bm3d = pytest.mark.skipif(not HAS_BM3D, reason="optional bm3d package not installed")


def psnr(reference: np.ndarray, estimate: np.ndarray) -> float:
    peak = np.percentile(reference, 99)
    return float(10 * np.log10(peak**2 / np.mean((estimate - reference) ** 2)))


def pieces() -> tuple[np.ndarray, np.ndarray]:
    """A 96×96 piecewise-constant reflectivity and its region labels."""
    labels = np.zeros((96, 96), dtype=int)
    labels[:, 48:] = 1
    labels[20:44, 10:34] = 2
    reflectivity = np.array([50.0, 200.0, 10.0])[labels]
    return reflectivity, labels


def region_oracle(labels: np.ndarray):
    """A denoiser that knows the segmentation: the mean of v over each true region."""

    def denoise(v, sigma):
        out = np.empty_like(v, dtype=np.float64)
        for label in np.unique(labels):
            out[labels == label] = v[labels == label].mean()
        return out

    return denoise


def random_hermitian_pd(rng, size: int, count: int) -> np.ndarray:
    raw = rng.normal(size=(count, size, size)) + 1j * rng.normal(size=(count, size, size))
    return raw @ np.conj(np.swapaxes(raw, -1, -2)) + 0.5 * np.eye(size)


# --- denoisers ------------------------------------------------------------------------------


def test_a_denoiser_that_works_in_place_cannot_touch_mulogs_iterates():
    from scipy.ndimage import gaussian_filter

    noisy = add_speckle(np.full((48, 48), 100.0), looks=1, seed=0)

    def pure(v, sigma):
        return gaussian_filter(v, 1.5)

    def in_place(v, sigma):
        gaussian_filter(v, 1.5, output=v)
        return v

    def halving(v, sigma):
        result = gaussian_filter(v, 1.5)
        v *= 0.5  # scribbles on its input after use
        return result

    expected = mulog(noisy, looks=1, denoiser=pure)
    np.testing.assert_allclose(mulog(noisy, looks=1, denoiser=in_place), expected, rtol=1e-12)
    np.testing.assert_allclose(mulog(noisy, looks=1, denoiser=halving), expected, rtol=1e-12)


def test_an_estimate_beyond_float_range_is_refused_not_returned_as_inf():
    noisy = add_speckle(np.full((16, 16), 100.0), looks=1, seed=0)
    with pytest.raises(InvalidInputError, match="overflows float64.*denoiser"):
        mulog(noisy, looks=1, denoiser=lambda v, sigma: v * 1e6)


def test_mulog_covariance_says_when_no_pixel_is_valid():
    truth = np.broadcast_to(np.array([[2.0, 0.5j], [-0.5j, 1.0]]), (24, 24, 2, 2))
    field = simulate_wishart(truth, 4, seed=0)
    with pytest.raises(InvalidInputError, match="no|none"):
        mulog_covariance(field, looks=4, denoiser=gaussian_filter_denoiser(width=1.0),
                         valid=np.zeros((24, 24), bool))
    with pytest.raises(InvalidInputError, match=r"\(24, 24\) mask, got shape \(24, 25\)"):
        mulog_covariance(field, looks=4, denoiser=gaussian_filter_denoiser(width=1.0),
                         valid=np.ones((24, 25), bool))


def test_gaussian_filter_denoiser_contract(rng):
    v = rng.normal(size=(40, 30))
    f = gaussian_filter_denoiser(width=2.0)
    out = f(v, 1.0)
    assert out.shape == v.shape and out.dtype == np.float64
    assert out.std() < 0.5 * v.std()
    assert np.array_equal(f(v, 0.0), v)
    with pytest.raises(InvalidInputError, match="sigma"):
        f(v, -1.0)
    with pytest.raises(InvalidInputError, match=r"shape \(rows, cols\)"):
        f(v[None], 1.0)
    with pytest.raises(UsageError):
        gaussian_filter_denoiser(width=0)


@needs_bm3d
def test_bm3d_denoiser_is_affine_equivariant(rng):
    clean = np.zeros((48, 48))
    clean[:, 24:] = 4.0
    v = clean + rng.normal(size=clean.shape)
    f = bm3d_denoiser()
    out = f(v, 1.0)
    assert out.shape == v.shape
    assert np.sqrt(np.mean((out - clean) ** 2)) < 0.5
    # The map to BM3D's scale depends on sigma only: scaling v and sigma together is exact.
    scaled = f(3.0 * v + 7.0, 3.0)
    np.testing.assert_allclose(scaled, 3.0 * out + 7.0, atol=0.05)


def test_bm3d_missing_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "bm3d", None)  # makes `import bm3d` fail
    with pytest.raises(MissingDependencyError, match=r"pip install sardespeckle\[bm3d\].*non-commercial"):
        bm3d_denoiser()
    with pytest.raises(ImportError):
        make_mulog_method(looks=1, denoiser="bm3d")


@pytest.fixture(scope="module")
def tiny_dncnn():
    torch = pytest.importorskip("torch")
    from sardespeckle.models import DnCNN

    torch.manual_seed(0)
    net = DnCNN(depth=3, features=8)
    with torch.no_grad():
        for bn in net.modules():
            if isinstance(bn, torch.nn.BatchNorm2d):
                bn.running_var.uniform_(0.5, 2.0)
    return net.eval()


def test_dncnn_denoiser_contract_and_rescaling(tiny_dncnn, rng):
    from sardespeckle.mulog import DnCNNDenoiser

    v = 5.0 + rng.normal(size=(33, 47))
    fixed = DnCNNDenoiser(tiny_dncnn, trained_sigma=25 / 255)
    out = fixed(v, 1.0)
    assert out.shape == v.shape and out.dtype == np.float64 and np.all(np.isfinite(out))
    assert fixed.scale_for(v, 2.0)[1] == pytest.approx(25 / 255 / 2.0)
    # Percentile centring and a sigma-only scale make the wrapper affine-equivariant.
    np.testing.assert_allclose(fixed(4.0 * v - 3.0, 4.0), 4.0 * out - 3.0, rtol=0, atol=1e-4)
    assert np.array_equal(fixed(v, 0.0), v)

    blind = DnCNNDenoiser(tiny_dncnn, sigma_range=(0.0, 55 / 255))
    for sigma in (1e-3, 0.3, 1.0, 30.0):
        noise_seen = sigma * blind.scale_for(v, sigma)[1]
        assert 1 / 255 - 1e-12 <= noise_seen <= 55 / 255 + 1e-12
    assert blind(v, 0.5).shape == v.shape
    bf16 = DnCNNDenoiser(tiny_dncnn, trained_sigma=25 / 255, precision="bf16", threads=1)
    assert np.abs(bf16(v, 1.0) - out).max() < 0.1 * np.abs(out - v).max() + 0.5

    with pytest.raises(UsageError, match="exactly one of"):
        DnCNNDenoiser(tiny_dncnn)
    with pytest.raises(UsageError, match="exactly one of"):
        DnCNNDenoiser(tiny_dncnn, trained_sigma=0.1, sigma_range=(0, 0.2))
    with pytest.raises(UsageError, match="precision"):
        DnCNNDenoiser(tiny_dncnn, trained_sigma=0.1, precision="fp8")
    with pytest.raises(InvalidInputError, match="DnCNN"):
        DnCNNDenoiser(object(), trained_sigma=0.1)


def test_dncnn_set_picks_the_largest_sigma_within_the_training_contrast(tiny_dncnn, rng):
    from sardespeckle.mulog import DnCNNDenoiser, DnCNNSetDenoiser
    from sardespeckle.mulog.denoisers import NATURAL_MAX_CONTRAST, signal_range

    members = [DnCNNDenoiser(tiny_dncnn, trained_sigma=k / 255) for k in (70, 35)]
    chosen = DnCNNSetDenoiser(members)
    assert chosen.max_contrast == NATURAL_MAX_CONTRAST == 0.87
    assert [m.trained_sigma for m in chosen.members] == [35 / 255, 70 / 255]  # sorted
    # A ramp whose signal range is ≈ 4: member k sees the contrast 4·σ_k/σ.
    v = np.tile(np.linspace(0.0, 4.0, 200), (60, 1)) + 0.01 * rng.normal(size=(60, 200))
    low, high = signal_range(v)
    extent = high - low
    assert extent == pytest.approx(0.99 * 4.0, rel=0.02)
    fits_70 = extent * (70 / 255) / 0.87  # smallest σ at which σ_k = 70/255 fits
    fits_35 = extent * (35 / 255) / 0.87
    assert chosen.select(v, 1.02 * fits_70).trained_sigma == 70 / 255
    assert chosen.select(v, 0.98 * fits_70).trained_sigma == 35 / 255
    assert chosen.select(v, 1.02 * fits_35).trained_sigma == 35 / 255
    assert chosen.select(v, 0.5 * fits_35).trained_sigma == 35 / 255  # none fits: the smallest
    assert chosen.select(np.ones((8, 8)), 0.3) is chosen.members[-1]  # flat: all fit
    # A call is the chosen member's call; σ = 0 returns v.
    np.testing.assert_array_equal(chosen(v, 2 * fits_70), chosen.members[1](v, 2 * fits_70))
    assert np.array_equal(chosen(v, 0.0), v)
    with pytest.raises(UsageError, match="fixed-σ"):
        DnCNNSetDenoiser([DnCNNDenoiser(tiny_dncnn, sigma_range=(0, 0.2))])
    with pytest.raises(UsageError, match="fixed-σ"):
        DnCNNSetDenoiser([])
    with pytest.raises(UsageError, match="distinct"):
        DnCNNSetDenoiser([members[0], DnCNNDenoiser(tiny_dncnn, trained_sigma=70 / 255)])
    with pytest.raises(UsageError, match="max_contrast"):
        DnCNNSetDenoiser(members, max_contrast=0)
    with pytest.raises(UsageError, match="range_window"):
        DnCNNSetDenoiser([members[0], DnCNNDenoiser(tiny_dncnn, trained_sigma=0.5, range_window=1)])


def test_mulog_runs_with_a_dncnn(tiny_dncnn):
    from sardespeckle.mulog import DnCNNDenoiser

    noisy = add_speckle(np.full((32, 32), 3.0), 1, seed=1).astype(np.float32)
    out = mulog(noisy, looks=1, denoiser=DnCNNDenoiser(tiny_dncnn, sigma_range=(0, 0.2)),
                iterations=2)
    assert out.shape == noisy.shape and out.dtype == np.float32 and np.all(out > 0)


# --- Fisher–Tippett prox --------------------------------------------------------------------


@pytest.mark.parametrize("looks", [1.0, 0.7, 4.5])
@pytest.mark.parametrize("gamma", [0.01, 0.3, 1.0, 10.0])
def test_fisher_tippett_prox_solves_its_optimality_condition(rng, looks, gamma):
    y = 3.0 * rng.normal(size=2000)
    v = 3.0 * rng.normal(size=2000)
    term = FisherTippett(y, looks, scale=1.28, offset=0.3)
    x = term.prox(v, gamma)
    residual = x - v + gamma * term.gradient(x)
    assert np.abs(residual).max() < 1e-9


def test_fisher_tippett_gradient_matches_finite_differences(rng):
    term = FisherTippett(rng.normal(size=50), 2.0, scale=0.8, offset=-0.5)
    x = rng.normal(size=50)
    numeric = (term.value(x + 1e-6) - term.value(x - 1e-6)) / 2e-6
    np.testing.assert_allclose(term.gradient(x), numeric, rtol=1e-6, atol=1e-7)


def test_wishart_term_reduces_to_fisher_tippett_for_one_channel(rng):
    intensity = rng.exponential(size=300) * 5.0
    ft = FisherTippett(np.log(intensity), 2.0, scale=1.3, offset=0.4)
    wi = Wishart(intensity.reshape(-1, 1, 1).astype(complex), 2.0, offset=np.array([0.4]),
                 basis=np.array([[1.3]]))
    x = rng.normal(size=300)
    np.testing.assert_allclose(wi.value(x[:, None]), ft.value(x), rtol=1e-12)
    np.testing.assert_allclose(wi.gradient(x[:, None])[:, 0], ft.gradient(x), rtol=1e-10, atol=1e-12)
    v = rng.normal(size=300)
    np.testing.assert_allclose(wi.prox(v[:, None], 0.5)[:, 0], ft.prox(v, 0.5), atol=1e-8)


# --- Hermitian fields and the Wishart prox --------------------------------------------------


@pytest.mark.parametrize("size", [2, 3])
def test_channels_are_an_isometry(rng, size):
    field = random_hermitian_pd(rng, size, 20)
    channels = to_channels(field)
    assert channels.shape == (20, size * size)
    np.testing.assert_allclose(from_channels(channels, size), field, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(channels, axis=-1),
                               np.linalg.norm(field, axis=(-2, -1)), rtol=1e-12)


def test_matrix_log_and_exp_are_inverse(rng):
    field = random_hermitian_pd(rng, 3, 30)
    np.testing.assert_allclose(matrix_exp(matrix_log(field)), field, rtol=1e-10, atol=1e-10)


def test_divided_differences_of_exp(rng):
    values = np.array([[0.3, 1.7, -0.4]])
    first = exp_divided_differences(values)[0]
    assert first[0, 1] == pytest.approx((math.exp(0.3) - math.exp(1.7)) / (0.3 - 1.7), rel=1e-13)
    assert first[2, 2] == pytest.approx(math.exp(-0.4), rel=1e-13)
    second = exp_second_divided_differences(values)[0]
    a, b, c = values[0]
    expected = ((math.exp(a) - math.exp(b)) / (a - b) - (math.exp(b) - math.exp(c)) / (b - c)) / (a - c)
    assert second[0, 1, 2] == pytest.approx(expected, rel=1e-12)
    assert second[1, 1, 1] == pytest.approx(math.exp(1.7) / 2, rel=1e-13)
    # Continuity across the switch between the difference formula and the series.
    for spread in (0.009, 0.011, 1e-5, 0.0):
        near = exp_second_divided_differences(np.array([[0.5, 0.5 + spread / 2, 0.5 + spread]]))
        reference = math.exp(0.5 + spread / 2) / 2  # exp[p, q, r] = e^ξ/2 for some ξ in [p, r]
        assert near[0, 0, 1, 2] == pytest.approx(reference, rel=spread + 1e-12)


@pytest.mark.parametrize("size", [2, 3])
def test_wishart_derivatives_match_finite_differences(rng, size):
    channels = size * size
    truth = random_hermitian_pd(rng, size, 1)[0]
    data = condition_field(simulate_wishart(np.broadcast_to(truth, (12, size, size)), 1, seed=2))
    rotation = np.linalg.qr(rng.normal(size=(channels, channels)))[0]
    term = Wishart(data, 1.0, offset=0.3 * rng.normal(size=channels),
                   basis=rotation * rng.uniform(0.5, 2.0, channels))
    x = 0.5 * rng.normal(size=(12, channels))
    gradient, hessian = term.gradient(x), term.hessian(x)
    step = 1e-6
    for a in range(channels):
        dx = np.zeros(channels)
        dx[a] = step
        numeric_grad = (term.value(x + dx) - term.value(x - dx)) / (2 * step)
        numeric_hess = (term.gradient(x + dx) - term.gradient(x - dx)) / (2 * step)
        np.testing.assert_allclose(gradient[:, a], numeric_grad, rtol=1e-6,
                                   atol=1e-6 * np.abs(gradient).max())
        np.testing.assert_allclose(hessian[:, :, a], numeric_hess, rtol=1e-5,
                                   atol=1e-6 * np.abs(hessian).max())


@pytest.mark.parametrize("size", [2, 3])
def test_wishart_prox_is_a_stationary_point_and_decreases(rng, size):
    channels = size * size
    truth = random_hermitian_pd(rng, size, 1)[0]
    data = condition_field(simulate_wishart(np.broadcast_to(truth, (400, size, size)), 1, seed=3))
    rotation = np.linalg.qr(rng.normal(size=(channels, channels)))[0]
    term = Wishart(data, 1.0, offset=0.3 * rng.normal(size=channels),
                   basis=rotation * rng.uniform(0.5, 2.0, channels))
    v = rng.normal(size=(400, channels))
    for gamma in (0.3, 1.0):
        x = term.prox(v, gamma)
        residual = x - v + gamma * term.gradient(x)
        assert np.abs(residual).max() < 1e-5
        before = gamma * term.value(v)
        after = 0.5 * np.sum((x - v) ** 2, axis=-1) + gamma * term.value(x)
        assert np.all(after <= before + 1e-9)


def test_simulate_wishart_moments_and_seeding(rng):
    truth = np.array([[2.0, 0.6 + 0.3j], [0.6 - 0.3j, 1.0]])
    field = np.broadcast_to(truth, (128, 128, 2, 2))
    for looks in (1, 3, 2.5):
        noisy = simulate_wishart(field, looks, seed=4)
        np.testing.assert_allclose(noisy.mean(axis=(0, 1)), truth, atol=0.04)
        assert np.allclose(noisy, np.conj(np.swapaxes(noisy, -1, -2)))
        # Diagonal intensities are Gamma(L, 1/L)-speckled: variance R²/L.
        assert noisy[..., 0, 0].real.var() == pytest.approx(4.0 / looks, rel=0.08)
    assert np.array_equal(simulate_wishart(field, 2, seed=7), simulate_wishart(field, 2, seed=7))
    single = simulate_wishart(field, 1, seed=5)
    assert np.allclose(np.linalg.det(single), 0, atol=1e-9)  # one look: rank one
    with pytest.raises(InvalidInputError, match="looks > D"):
        simulate_wishart(field, 0.5, seed=0)


# --- single-channel MuLoG -------------------------------------------------------------------


def test_mulog_improves_psnr_on_piecewise_constant_scene():
    reflectivity, _ = pieces()
    noisy = add_speckle(reflectivity, 1, seed=3)
    out = mulog(noisy, looks=1, denoiser=gaussian_filter_denoiser(width=2.0))
    before = psnr(np.sqrt(reflectivity), np.sqrt(noisy))
    after = psnr(np.sqrt(reflectivity), np.sqrt(out))
    assert after > before + 12


@needs_bm3d
def test_mulog_with_bm3d_improves_psnr_strongly():
    reflectivity, _ = pieces()
    reflectivity = reflectivity[16:80, 16:80]
    noisy = add_speckle(reflectivity, 1, seed=5)
    out = mulog(noisy, looks=1, denoiser=bm3d_denoiser(), iterations=3)
    assert psnr(np.sqrt(reflectivity), np.sqrt(out)) > psnr(np.sqrt(reflectivity), np.sqrt(noisy)) + 15


def test_mulog_with_region_oracle_converges_to_maximum_likelihood():
    # With the segmentation as "denoiser", MuLoG's fixed point is the ML estimate of each
    # region, the arithmetic mean of its intensities: the debiasing is right by construction.
    reflectivity, labels = pieces()
    noisy = add_speckle(reflectivity, 1, seed=6)
    out = mulog(noisy, looks=1, denoiser=region_oracle(labels), iterations=20)
    for label in range(3):
        region = labels == label
        assert out[region].mean() == pytest.approx(noisy[region].mean(), rel=1e-3)
        assert np.ptp(np.log(out[region])) < 0.05  # x is the last prox, close to z


@pytest.mark.parametrize("looks", [1, 2.5])
def test_mulog_mean_is_unbiased_on_a_flat_area(looks):
    noisy = add_speckle(np.full((128, 128), 40.0), looks, seed=8)
    out = mulog(noisy, looks=looks, denoiser=gaussian_filter_denoiser(width=3.0))
    assert out[16:-16, 16:-16].mean() == pytest.approx(40.0, rel=0.04)
    assert np.std(np.log(out)) < 0.3 * np.std(np.log(noisy))


def test_iterator_yields_every_iterate_and_matches_the_plain_call():
    reflectivity, _ = pieces()
    noisy = add_speckle(reflectivity, 1, seed=9)
    denoiser = gaussian_filter_denoiser()
    items = list(mulog_iterates(noisy, looks=1, denoiser=denoiser, iterations=4))
    assert [item.k for item in items] == [1, 2, 3, 4]
    assert all(item.iterations == 4 for item in items)
    assert items[0].beta == pytest.approx(3.0)  # β₀ = 1 + 2/L
    assert all(b.beta >= a.beta for a, b in zip(items, items[1:]))
    assert all(item.x.shape == noisy.shape and item.change >= 0 for item in items)
    seen = []
    out = mulog(noisy, looks=1, denoiser=denoiser, iterations=4, callback=seen.append)
    assert len(seen) == 4
    np.testing.assert_allclose(out, items[-1].intensity, rtol=1e-12)


def test_beta_grows_when_iterates_stall():
    # A denoiser that keeps moving (alternating shifts) stalls the change: β must grow.
    calls = []

    def restless(v, sigma):
        calls.append(sigma)
        return v + (1.0 if len(calls) % 2 else -1.0)

    noisy = add_speckle(np.full((16, 16), 5.0), 1, seed=0)
    items = list(mulog_iterates(noisy, looks=1, denoiser=restless, iterations=6))
    assert items[-1].beta > items[0].beta
    assert calls[0] == 1.0 and calls[1] == pytest.approx(math.sqrt(1 / 3))


def test_mulog_dtype_zeros_and_non_integer_looks():
    noisy = add_speckle(np.full((48, 40), 7.0, dtype=np.float32), 2.5, seed=10)
    noisy[3, 4] = 0.0
    out = mulog(noisy, looks=2.5, denoiser=gaussian_filter_denoiser())
    assert out.dtype == np.float32 and out.shape == noisy.shape
    assert np.all(np.isfinite(out)) and np.all(out > 0)
    assert mulog(noisy.astype(np.float64), looks=2.5,
                 denoiser=gaussian_filter_denoiser()).dtype == np.float64


def test_mulog_bad_inputs():
    good = np.ones((8, 8))
    f = gaussian_filter_denoiser()
    with pytest.raises(InvalidInputError, match=r"shape \(rows, cols\)"):
        mulog(np.ones((2, 8, 8)), looks=1, denoiser=f)
    with pytest.raises(InvalidInputError, match="finite"):
        mulog(np.full((8, 8), np.nan), looks=1, denoiser=f)
    with pytest.raises(InvalidInputError, match="strictly positive"):
        mulog(np.zeros((8, 8)), looks=1, denoiser=f)
    with pytest.raises(InvalidInputError, match="looks"):
        mulog(good, looks=0, denoiser=f)
    with pytest.raises(InvalidInputError, match="complex"):
        mulog(good.astype(complex), looks=1, denoiser=f)
    with pytest.raises(UsageError, match="denoiser"):
        mulog(good, looks=1, denoiser=3)
    with pytest.raises(UsageError, match="unknown MuLoG denoiser"):
        mulog(good, looks=1, denoiser="nlm")
    with pytest.raises(UsageError, match="iterations"):
        mulog(good, looks=1, denoiser=f, iterations=0)
    with pytest.raises(InvalidInputError, match="denoiser returned an array of .* expected one of"):
        mulog(good, looks=1, denoiser=lambda v, s: v[:4])


# --- multi-channel MuLoG --------------------------------------------------------------------


def covariance_scene(size: int, rows: int = 48) -> np.ndarray:
    """Piecewise-constant covariance field: three regions with different polarimetry."""
    rng = np.random.default_rng(100 + size)
    matrices = random_hermitian_pd(rng, size, 3)
    labels = np.zeros((rows, rows), dtype=int)
    labels[:, rows // 2:] = 1
    labels[rows // 4: rows // 2, rows // 8: rows // 2] = 2
    return matrices[labels]


def log_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Frobenius distance between matrix logarithms."""
    return float(np.mean(np.linalg.norm(matrix_log(a) - matrix_log(b), axis=(-2, -1))))


@pytest.mark.parametrize("size", [2, 3])
def test_mulog_covariance_reduces_the_error(size):
    truth = covariance_scene(size)
    looks = 4
    noisy = simulate_wishart(truth, looks, seed=11)
    out = mulog_covariance(noisy, looks=looks, denoiser=gaussian_filter_denoiser(width=2.0))
    assert out.shape == truth.shape and out.dtype == np.complex128
    np.testing.assert_allclose(out, np.conj(np.swapaxes(out, -1, -2)), atol=1e-12)
    assert np.linalg.eigvalsh(out).min() > 0
    assert log_distance(out, truth) < 0.5 * log_distance(noisy, truth)


def test_mulog_covariance_single_look_is_full_rank_and_better():
    truth = covariance_scene(2)
    noisy = simulate_wishart(truth, 1, seed=12).astype(np.complex64)
    noisy[5, 5] = 0.0  # a dead pixel: the safeguards must cope
    items = []
    out = mulog_covariance(noisy, looks=1, denoiser=gaussian_filter_denoiser(width=2.0),
                           iterations=4, callback=items.append)
    assert [item.k for item in items] == [1, 2, 3, 4]
    assert items[-1].x.shape == truth.shape
    assert out.dtype == np.complex64
    assert np.linalg.eigvalsh(out.astype(np.complex128)).min() > 0
    conditioned = condition_field(noisy.astype(np.complex128) + 1e-12 * np.eye(2))
    assert log_distance(out.astype(np.complex128), truth) < 0.5 * log_distance(conditioned, truth)


def test_mulog_covariance_is_scale_equivariant():
    noisy = simulate_wishart(covariance_scene(2, rows=24), 2, seed=13)
    f = gaussian_filter_denoiser()
    out = mulog_covariance(noisy, looks=2, denoiser=f, iterations=3)
    scaled = mulog_covariance(1e4 * noisy, looks=2, denoiser=f, iterations=3)
    np.testing.assert_allclose(scaled, 1e4 * out, rtol=1e-6, atol=1e-6 * np.abs(1e4 * out).max())


COHERENT = np.array([[1.0, 0.9, 0.8], [0.9, 1.0, 0.85], [0.8, 0.85, 1.0]], dtype=complex)


def coherent_truth() -> np.ndarray:
    """A D = 3 covariance with coherences 0.8-0.9 and unequal powers 2, 1, 0.5."""
    root = np.sqrt(np.array([2.0, 1.0, 0.5]))
    return root[:, None] * COHERENT * root[None, :]


def test_start_log_bias_removes_the_start_bias_of_coherent_fields():
    truth = coherent_truth()
    noisy = safeguard_covariance(simulate_wishart(np.broadcast_to(truth, (128, 128, 3, 3)), 1,
                                                  seed=5))
    start_log = matrix_log(initial_covariance(noisy, 1))
    bias = start_log_bias(noisy, 1)
    np.testing.assert_allclose(bias, np.conj(bias.T), atol=1e-12)

    def level(log_field):  # against the maximum-likelihood level, the sample mean
        return (np.real(np.diag(matrix_exp(log_field.mean(axis=(0, 1)))))
                / np.real(np.diag(noisy.mean(axis=(0, 1)))))

    assert np.all(level(start_log) < 0.93)  # the box coherence darkens the start ...
    np.testing.assert_allclose(level(start_log - bias), 1.0, atol=0.025)  # ... by this much
    # a common scale changes nothing
    np.testing.assert_allclose(start_log_bias(1e3 * noisy, 1), bias, atol=1e-9)


@pytest.mark.parametrize("looks, size, expected", [
    (1.0, 3, 1.0), (3.0, 3, 3.0), (2.7, 3, 2.7), (1.2, 3, 1.0), (0.89, 2, 1.0), (1.5, 2, 1.5),
    (0.3, 2, 1.0)])
def test_calibration_looks_are_drawable(looks, size, expected):
    assert _calibration_looks(looks, size) == expected
    simulate_wishart(np.broadcast_to(np.eye(size, dtype=complex), (2, 2, size, size)), expected,
                     seed=0)


def test_start_log_bias_of_undrawable_looks_is_the_coherence_bias_only():
    # 1.2 looks cannot be drawn for D = 3: the calibration draws 1 and debiases for 1, so the
    # bias is the one-look coherence bias, not the 0.11 log gap between ψ(1) and ψ(1.2) − log 1.2
    noisy = simulate_wishart(np.broadcast_to(coherent_truth(), (64, 64, 3, 3)), 1, seed=8)
    np.testing.assert_allclose(start_log_bias(noisy, 1.2), start_log_bias(noisy, 1.0),
                               atol=1e-12)


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_mulog_covariance_keeps_the_level_of_coherent_flat_fields(seed):
    noisy = simulate_wishart(np.broadcast_to(coherent_truth(), (64, 64, 3, 3)), 1, seed=seed)
    out = mulog_covariance(noisy, looks=1, denoiser=gaussian_filter_denoiser(width=2.0))

    def powers(field):
        return np.real(np.diagonal(field[8:-8, 8:-8], axis1=2, axis2=3)).mean(axis=(0, 1))

    # the maximum-likelihood level of a flat field is its sample mean; the uncalibrated
    # start left the output 0.91-0.94 of it after 6 iterations
    ratio = powers(out) / powers(noisy)
    assert np.all((ratio > 0.96) & (ratio < 1.03)), ratio


def test_mulog_covariance_bad_inputs():
    f = gaussian_filter_denoiser()
    with pytest.raises(InvalidInputError, match=r"\(rows, cols, D, D\)"):
        mulog_covariance(np.ones((8, 8, 2, 3)), looks=1, denoiser=f)
    with pytest.raises(InvalidInputError, match="D >= 2"):
        mulog_covariance(np.ones((8, 8, 1, 1)), looks=1, denoiser=f)
    bad = np.tile(np.eye(2, dtype=complex), (8, 8, 1, 1))
    bad[0, 0, 0, 1] = np.nan
    with pytest.raises(InvalidInputError, match="finite"):
        mulog_covariance(bad, looks=1, denoiser=f)
    with pytest.raises(InvalidInputError, match=r"channel 2 \(C22, the diagonal\)"):
        mulog_covariance(np.tile(np.diag([1.0, 0.0]).astype(complex), (8, 8, 1, 1)), looks=1,
                         denoiser=f)
    assert len(list(mulog_covariance_iterates(np.tile(np.eye(2, dtype=complex), (8, 8, 1, 1)),
                                              looks=1, denoiser=f, iterations=2))) == 2


# --- registry method ------------------------------------------------------------------------


def test_method_contract_and_tiling():
    from sardespeckle.tiling import process_array

    noisy = add_speckle(pieces()[0], 1, seed=14).astype(np.float32)
    method = make_mulog_method(looks=1, denoiser=gaussian_filter_denoiser(), iterations=4)
    whole = method(noisy)
    assert whole.dtype == np.float32 and whole.shape == noisy.shape and np.all(whole > 0)
    tiled = process_array(noisy, method, halo=MULOG_HALO, tile=48)
    assert np.max(np.abs(tiled / whole - 1)) < 1e-3


def test_build_mulog_and_missing_dncnn_weights(monkeypatch):
    from sardespeckle.models import weights as weights_module

    monkeypatch.setattr(weights_module, "REGISTRY", {})
    for name, weights in (("dncnn-natural", "dncnn-natural-s35"), ("dncnn-natural-blind", "dncnn-natural"),
                          ("dncnn-sar", "dncnn-sar-s25"), ("dncnn-sar-blind", "dncnn-sar")):
        with pytest.raises(WeightsError, match=f"denoiser '{name}': weights '{weights}' are not installed"):
            make_mulog_method(looks=1, denoiser=name)
    assert MULOG_DEFAULTS == {"denoiser": "bm3d", "iterations": 6, "precision": "auto",
                              "device": "auto", "decorrelate": "none", "lam": "auto"}
    with pytest.raises(UsageError, match="no parameter"):
        build_mulog(1.0, {"window": 3})
    if HAS_BM3D:
        built = build_mulog(1.0, {"iterations": 2})
        assert built.name == "mulog" and built.halo == MULOG_HALO and built.weights is None
        assert built.parameters == {"denoiser": "bm3d", "iterations": 2, "precision": "fp32",
                                     "device": "cpu", "decorrelate": "none", "lam": 1.0}


def test_dncnn_weights_are_loaded_once_registered(tmp_path, monkeypatch, tiny_dncnn):
    from sardespeckle.models import Architecture, WeightsEntry, save_weights
    from sardespeckle.models import weights as weights_module

    monkeypatch.setattr(weights_module, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(weights_module, "REGISTRY", {})
    digest = save_weights(tiny_dncnn, tmp_path / "dncnn-sar-test.pt", name="dncnn-sar",
                          domain="log-intensity-gaussian")
    weights_module.REGISTRY["dncnn-sar"] = WeightsEntry(
        name="dncnn-sar", filename="dncnn-sar-test.pt", sha256=digest,
        architecture=Architecture(depth=3, features=8), domain="log-intensity-gaussian",
    )
    built = build_mulog(1.0, {"denoiser": "dncnn-sar-blind", "iterations": 2})
    assert built.weights == f"dncnn-sar sha256:{digest[:16]}"
    out = built.function(add_speckle(np.full((24, 24), 2.0, dtype=np.float32), 1, seed=0))
    assert out.dtype == np.float32 and np.all(out > 0)
    # device auto resolves where the network runs and the records say so.
    import torch

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert built.parameters["device"] == expected
    on_cpu = build_mulog(1.0, {"denoiser": "dncnn-sar-blind", "iterations": 2, "device": "cpu",
                               "precision": "fp32"})
    assert on_cpu.parameters["device"] == "cpu"


def test_mulog_dncnn_on_cuda_without_a_gpu_is_refused(tiny_dncnn):
    import torch

    from sardespeckle.mulog.denoisers import DnCNNDenoiser

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")

    with pytest.raises(UsageError, match="expected a CUDA device, got none available"):
        DnCNNDenoiser(tiny_dncnn, sigma_range=(0.0, 0.2), device="cuda")
    denoiser = DnCNNDenoiser(tiny_dncnn, sigma_range=(0.0, 0.2), device="auto")
    assert denoiser.device == "cpu" and "device='cpu'" in repr(denoiser)
    assert next(denoiser.network.parameters()).device.type == "cpu"


# --------------------------------------------------------------------------- registry and CLI


def test_mulog_is_a_registered_method_with_its_parameters():
    from sardespeckle.methods import build_method, get_method

    spec = get_method("mulog")
    assert spec.family == "plug-and-play" and spec.uses_looks
    assert dict(spec.defaults) == {"denoiser": "bm3d", "iterations": 6, "precision": "auto",
                                   "device": "auto", "decorrelate": "none", "lam": "auto"}
    for bad in ("strong", "0", "-1", "nan"):
        with pytest.raises(UsageError, match="lam"):
            build_method("mulog", looks=1, params={"denoiser": gaussian_filter_denoiser(),
                                                   "lam": bad})
    with pytest.raises(UsageError, match="has no parameter 'window_size'"):
        build_method("mulog", looks=1, params={"window_size": 3})
    with pytest.raises(UsageError, match="unknown MuLoG denoiser 'foo'"):
        build_method("mulog", looks=1, params={"denoiser": "foo"})
    with pytest.raises(UsageError, match=r"'sarcnn-s1-l1-v3' is SAR-CNN weights .*--method "
                                         r"sarcnn --weights sarcnn-s1-l1-v3"):
        build_method("mulog", looks=1, params={"denoiser": "sarcnn-s1-l1-v3"})
    with pytest.raises(UsageError, match="iterations"):
        build_method("mulog", looks=1, params={"iterations": 0})
    with pytest.raises(UsageError, match="precision"):
        build_method("mulog", looks=1, params={"precision": "fp64"})
    with pytest.raises(UsageError, match="expected device in"):
        build_method("mulog", looks=1, params={"device": "tpu"})
    # BM3D and callables run on the CPU: asking for CUDA is an error, not a silent no-op.
    with pytest.raises(UsageError, match="runs on the CPU only; device='cuda' is for the DnCNN"):
        build_method("mulog", looks=1, params={"denoiser": gaussian_filter_denoiser(),
                                               "device": "cuda"})
    # A callable denoiser through the API: the built method despeckles with the stated halo.
    built = build_method("mulog", looks=2,
                         params={"denoiser": gaussian_filter_denoiser(width=3.0), "iterations": 3})
    assert built.name == "mulog" and built.halo == 64 and built.tile == 512 and built.looks == 2.0
    noisy = add_speckle(np.full((96, 96), 7.0), 2, seed=3)
    out = built.function(noisy)
    assert out.dtype == np.float32 and out.shape == noisy.shape
    assert np.std(np.log(out)) < 0.3 * np.std(np.log(noisy))


@pytest.mark.parametrize("name,weights", [("dncnn-natural", "dncnn-natural-s70"),
                                          ("dncnn-natural-blind", "dncnn-natural"),
                                          ("dncnn-sar", "dncnn-sar-s25"),
                                          ("dncnn-sar-blind", "dncnn-sar")])
def test_cli_mulog_without_dncnn_weights_explains(tmp_path, name, weights, monkeypatch, capsys):
    from sardespeckle.cli.main import main
    from sardespeckle.models import weights as weights_module

    monkeypatch.delitem(weights_module.REGISTRY, weights, raising=False)
    src = tmp_path / "in.npy"
    np.save(src, add_speckle(np.full((40, 40), 3.0), 1, seed=1).astype(np.float32))
    out = tmp_path / "out.npy"
    code = main(["run", str(src), "-o", str(out), "--kind", "intensity", "--looks", "1",
                 "--method", "mulog", "--denoiser", name])
    assert code == 1 and not out.exists()
    assert f"denoiser {name!r}: weights {weights!r} are not installed" in capsys.readouterr().err


def test_cli_mulog_unknown_denoiser_is_a_usage_error(tmp_path, capsys):
    from sardespeckle.cli.main import main

    src = tmp_path / "in.npy"
    np.save(src, np.ones((40, 40), np.float32))
    code = main(["run", str(src), "-o", str(tmp_path / "o.npy"), "--kind", "intensity",
                 "--looks", "1", "--method", "mulog", "--denoiser", "foo"])
    assert code == 2 and "unknown MuLoG denoiser 'foo'" in capsys.readouterr().err


@needs_bm3d
def test_cli_mulog_bm3d_despeckles_a_file(tmp_path):
    from sardespeckle.cli.main import main

    reflectivity, _ = pieces()
    reflectivity = reflectivity[:72, :72]
    src, out = tmp_path / "in.npy", tmp_path / "out.npy"
    noisy = add_speckle(reflectivity, 1, seed=12).astype(np.float32)
    np.save(src, noisy)
    assert main(["run", str(src), "-o", str(out), "--kind", "intensity", "--looks", "1",
                 "--method", "mulog", "--iterations", "2", "-q"]) == 0
    result = np.load(out)
    assert result.shape == noisy.shape
    assert psnr(np.sqrt(reflectivity), np.sqrt(result)) > psnr(np.sqrt(reflectivity), np.sqrt(noisy)) + 10


# --------------------------------------------------------------------------- user weights files


def _gaussian_file(path, tiny_dncnn, **noise):
    from sardespeckle.models import save_weights

    save_weights(tiny_dncnn, path, name="mine", domain="gaussian-01", **noise)
    return path


def test_mulog_log_sigmas_are_the_noise_levels_the_admm_asks_for():
    from sardespeckle.mulog.method import mulog_log_sigmas

    low, high = mulog_log_sigmas(1.0, 6)
    assert high == pytest.approx(np.pi / np.sqrt(6), rel=1e-6)  # √ψ₁(1)
    assert low == pytest.approx(high / np.sqrt(3 * 1.05 ** 4), rel=1e-6)
    # Record what the ADMM asks for: σ = 1 then √(1/β), in units of √ψ₁(L).
    asked = []

    def spy(v, sigma):
        asked.append(sigma)
        return v

    mulog(add_speckle(np.full((16, 16), 3.0), 4, seed=0), looks=4, denoiser=spy, iterations=6)
    unit_low, unit_high = mulog_log_sigmas(4.0, 6)
    scale = np.sqrt(float(__import__("scipy").special.polygamma(1, 4)))
    assert max(asked) * scale == pytest.approx(unit_high)
    assert min(asked) * scale >= unit_low * (1 - 1e-9)


def test_fixed_sigma_prior_weight_rule():
    from sardespeckle.mulog.denoisers import fixed_sigma_prior_weight

    assert fixed_sigma_prior_weight(1) == pytest.approx(0.82 ** 2)
    assert fixed_sigma_prior_weight(2) == pytest.approx(0.91 ** 2)
    assert fixed_sigma_prior_weight(1.5) == pytest.approx((0.82 + 0.09 * math.log2(1.5)) ** 2)
    assert fixed_sigma_prior_weight(0.5) == fixed_sigma_prior_weight(1)  # below one look: L = 1
    assert fixed_sigma_prior_weight(4) == fixed_sigma_prior_weight(40) == 1.0
    with pytest.raises(InvalidInputError, match="looks"):
        fixed_sigma_prior_weight(0)


def test_prior_weight_sets_the_noise_level_asked_after_the_first_iteration():
    asked = []

    def spy(v, sigma):
        asked.append(sigma)
        return v

    noisy = add_speckle(np.full((16, 16), 3.0), 1, seed=0)
    mulog(noisy, looks=1, denoiser=spy, iterations=3)
    plain = list(asked)
    assert plain[0] == 1.0 and plain[1] == pytest.approx(math.sqrt(1 / 3))  # λ = 1 by default

    # A denoiser stating its prior weight gets it; an explicit lam wins over it.
    spy.prior_weight = lambda looks: 0.25 if looks == 1 else 1.0
    asked.clear()
    mulog(noisy, looks=1, denoiser=spy, iterations=3)
    assert asked[0] == 1.0 and asked[1] == pytest.approx(0.5 * plain[1])
    asked.clear()
    mulog(noisy, looks=1, denoiser=spy, iterations=3, lam=4.0)
    assert asked[1] == pytest.approx(2.0 * plain[1])
    # The covariance path follows the same rule.
    asked.clear()
    field = simulate_wishart(np.broadcast_to(np.diag([2.0, 1.0]).astype(complex), (12, 12, 2, 2)),
                             1, seed=0)
    mulog_covariance(field, looks=1, denoiser=spy, iterations=3)
    first = [s for s in asked if s == 1.0]
    assert len(first) == 4 and min(asked) == pytest.approx(0.5 * plain[1])
    for bad in (0, -1.0, float("nan"), True):
        with pytest.raises(UsageError, match="lam"):
            mulog(noisy, looks=1, denoiser=gaussian_filter_denoiser(), lam=bad)
    spy.prior_weight = lambda looks: float("inf")
    with pytest.raises(InvalidInputError, match="prior_weight"):
        mulog(noisy, looks=1, denoiser=spy)


def test_dncnn_prior_weights_and_the_built_method_records_it(tiny_dncnn):
    from sardespeckle.mulog import DnCNNDenoiser, DnCNNSetDenoiser
    from sardespeckle.mulog.denoisers import fixed_sigma_prior_weight

    fixed = DnCNNDenoiser(tiny_dncnn, trained_sigma=25 / 255)
    blind = DnCNNDenoiser(tiny_dncnn, sigma_range=(0, 55 / 255))
    chosen = DnCNNSetDenoiser([fixed, DnCNNDenoiser(tiny_dncnn, trained_sigma=70 / 255)])
    assert fixed.prior_weight(1) == chosen.prior_weight(1) == fixed_sigma_prior_weight(1) < 1
    assert blind.prior_weight(1) == 1.0 and fixed.prior_weight(8) == 1.0
    assert make_mulog_method(looks=1, denoiser=fixed).lam == pytest.approx(0.82 ** 2)
    assert make_mulog_method(looks=1, denoiser=fixed, lam=0.5).lam == 0.5
    assert make_mulog_method(looks=1, denoiser=gaussian_filter_denoiser()).lam == 1.0
    built = build_mulog(2.0, {"denoiser": "dncnn-sar", "iterations": 2})
    assert built.parameters["lam"] == pytest.approx(0.91 ** 2, abs=1e-6)
    assert build_mulog(2.0, {"denoiser": "dncnn-sar", "lam": "0.9"}).parameters["lam"] == 0.9


def test_mulog_precision_auto_is_bf16_only_for_dncnn_on_a_bf16_cpu(monkeypatch):
    from sardespeckle.models import inference
    from sardespeckle.mulog.method import resolve_mulog_precision

    for fast, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(inference, "cpu_has_fast_bf16", lambda fast=fast: fast)
        assert resolve_mulog_precision("auto", "dncnn-sar") == expected
        assert resolve_mulog_precision("auto", "/some/where/my-denoiser.pt") == expected
        assert resolve_mulog_precision("auto", "bm3d") == "fp32"
        assert resolve_mulog_precision("auto", gaussian_filter_denoiser()) == "fp32"
        assert resolve_mulog_precision("fp32", "dncnn-sar") == "fp32"
        assert resolve_mulog_precision("bf16", "dncnn-sar") == "bf16"
        built = build_mulog(1.0, {"denoiser": "dncnn-sar", "iterations": 1})
        assert built.parameters["precision"] == expected
        assert make_mulog_method(looks=1, denoiser="dncnn-natural").precision == expected
    with pytest.raises(UsageError, match="precision"):
        resolve_mulog_precision("fp16", "dncnn-sar")


def test_a_weights_file_is_a_mulog_denoiser(tmp_path, tiny_dncnn, capsys, monkeypatch):
    import warnings

    from sardespeckle.cli.main import main
    from sardespeckle.models.weights import sha256_file
    from sardespeckle.mulog import DnCNNDenoiser, denoiser_from_name

    path = _gaussian_file(tmp_path / "mine.pt", tiny_dncnn, trained_sigma=0.1,
                          log_sigma_range=(0.5, 1.5))
    denoiser = denoiser_from_name(str(path))
    assert isinstance(denoiser, DnCNNDenoiser) and denoiser.trained_sigma == 0.1
    assert denoiser.log_sigma_range == (0.5, 1.5)
    built = build_mulog(1.0, {"denoiser": str(path), "iterations": 2})
    assert built.weights == f"mine.pt sha256:{sha256_file(path)[:16]}"
    # A relative path is recorded (and shipped to workers) as an absolute one.
    monkeypatch.chdir(tmp_path)
    relative = build_mulog(1.0, {"denoiser": "mine.pt", "iterations": 2})
    assert relative.parameters["denoiser"] == str(path.resolve())
    # L = 1 asks for 0.67–1.28: inside the trained range, no warning; L = 10 is far outside.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_mulog_method(looks=1, denoiser=str(path), iterations=6)
    with pytest.warns(UserWarning, match=r"trained for log-intensity noise std in \[0.5, 1.5\]"):
        make_mulog_method(looks=10, denoiser=str(path), iterations=6)
    src, out = tmp_path / "in.npy", tmp_path / "out.npy"
    np.save(src, add_speckle(np.full((40, 40), 3.0), 1, seed=1).astype(np.float32))
    code = main(["run", str(src), "-o", str(out), "--kind", "intensity", "--looks", "1",
                 "--method", "mulog", "--denoiser", str(path), "--iterations", "2"])
    assert code == 0 and np.all(np.load(out) > 0)
    with pytest.raises(WeightsError, match="no such weights file"):
        denoiser_from_name(str(tmp_path / "missing.pt"))
    with pytest.raises(WeightsError, match="SAR-CNN log-amplitude weights"):
        save = __import__("sardespeckle.models", fromlist=["save_weights"]).save_weights
        save(tiny_dncnn, tmp_path / "sarcnn.pt", name="x")
        denoiser_from_name(str(tmp_path / "sarcnn.pt"))
    with pytest.raises(UsageError, match="give trained_sigma too"):
        DnCNNDenoiser(tiny_dncnn, sigma_range=(0.0, 0.2), log_sigma_range=(0.5, 1.5))


def test_registered_gaussian_weights_are_denoisers_by_name():
    from sardespeckle.mulog import DnCNNDenoiser, denoiser_from_name
    from sardespeckle.mulog.method import _is_dncnn

    # The hybrid's network under its registry name is the same denoiser as the alias dncnn-sar.
    by_name = denoiser_from_name("dncnn-sar-s25")
    alias = denoiser_from_name("dncnn-sar")
    assert isinstance(by_name, DnCNNDenoiser) and by_name.trained_sigma == alias.trained_sigma
    v = np.random.default_rng(0).normal(size=(48, 48))
    assert np.array_equal(by_name(v, 1.0), alias(v, 1.0))
    assert _is_dncnn("dncnn-natural-s35")
    # SAR-CNN weights are registered too, but are no Gaussian denoiser.
    with pytest.raises(UsageError, match=r"'sarcnn-s1-l1-v2' is SAR-CNN weights \(a despeckler "
                                         r"of its own, not a Gaussian denoiser"):
        denoiser_from_name("sarcnn-s1-l1-v2")


@needs_bm3d
def test_bm3d_denoiser_takes_images_smaller_than_its_blocks(rng):
    # bm3d itself raises below 8 px and segfaults at 8: the wrapper mirrors small images up.
    denoiser = bm3d_denoiser()
    for shape in ((8, 8), (3, 20), (1, 1), (15, 40)):
        v = rng.normal(size=shape)
        out = denoiser(v, 1.0)
        assert out.shape == shape and np.isfinite(out).all()
        assert np.std(out) < np.std(v) or v.size == 1  # it denoised
    # Through MuLoG, a 4 × 7 intensity image despeckles.
    out = build_mulog(1.0, {"denoiser": "bm3d", "iterations": 2}).function(
        rng.gamma(1.0, 1.0, (4, 7)).astype(np.float32))
    assert out.shape == (4, 7) and np.all(out > 0)


def test_mulog_refuses_db_and_what_a_denoiser_should_not_return():
    from sardespeckle.mulog import gaussian_filter_denoiser

    intensity = np.random.default_rng(1).exponential(3.0, (32, 32))
    with pytest.raises(InvalidInputError, match="negative value.*10 \\*\\* \\(db / 10\\)"):
        mulog(10 * np.log10(intensity), looks=1, denoiser=gaussian_filter_denoiser())
    with pytest.raises(InvalidInputError, match="returned complex values"):
        mulog(intensity, looks=1, denoiser=lambda v, s: v + 0j)
    with pytest.raises(InvalidInputError, match="returned values of type str"):
        mulog(intensity, looks=1, denoiser=lambda v, s: np.full(v.shape, "x"))


def test_mulog_refuses_masked_pixels_it_would_read_as_data():
    image = np.ma.masked_array(np.full((32, 32), 5.0), mask=np.zeros((32, 32), bool))
    image.data[3, 3], image.mask[3, 3] = 1e12, True  # a hidden fill
    with pytest.raises(InvalidInputError, match="masked array with masked pixels"):
        mulog(image, looks=1, denoiser=gaussian_filter_denoiser(width=1.0))
