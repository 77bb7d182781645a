"""Properties of the speckle statistics module: simulation, moments, conversions, ENL, looks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from sardespeckle.errors import InvalidInputError
from sardespeckle.speckle import (
    add_speckle,
    amplitude_to_db,
    amplitude_to_intensity,
    coefficient_of_variation,
    complex_to_intensity,
    db_to_amplitude,
    db_to_intensity,
    enl,
    estimate_looks,
    intensity_to_amplitude,
    intensity_to_db,
    log_speckle_mean,
    log_speckle_std,
    log_speckle_var,
    looks_from_log_speckle_var,
    simulate_speckle,
    speckle_lag_correlation,
)

LOOKS = [1, 2.5, 4]
KINDS = ["intensity", "amplitude"]
SAMPLES = 200_000
TOLERANCE = 5  # standard errors


def _theory(looks: float, kind: str) -> tuple[float, float]:
    """Mean and variance of speckle of ``kind``."""
    if kind == "intensity":
        return 1.0, 1.0 / looks
    # Nakagami with E[A²] = 1: E[A] = Γ(L + ½) / (Γ(L) √L).
    mean = math.exp(special.gammaln(looks + 0.5) - special.gammaln(looks)) / math.sqrt(looks)
    return mean, 1.0 - mean * mean


def _assert_mean_close(sample: np.ndarray, expected: float) -> None:
    standard_error = sample.std() / math.sqrt(sample.size)
    assert abs(sample.mean() - expected) < TOLERANCE * standard_error, (sample.mean(), expected)


def _assert_var_close(sample: np.ndarray, expected: float) -> None:
    # Standard error of the sample variance: sqrt(Var[(x − μ)²] / n), estimated from the sample.
    squared = (sample - sample.mean()) ** 2
    standard_error = squared.std() / math.sqrt(sample.size)
    assert abs(sample.var(ddof=1) - expected) < TOLERANCE * standard_error, (
        sample.var(ddof=1),
        expected,
    )


# --------------------------------------------------------------------------------------------
# simulation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("looks", LOOKS)
def test_simulated_moments_match_theory(looks, kind):
    sample = simulate_speckle(SAMPLES, looks, kind=kind, seed=11)
    assert sample.dtype == np.float64 and sample.shape == (SAMPLES,)
    assert np.all(sample > 0)
    mean, var = _theory(looks, kind)
    _assert_mean_close(sample, mean)
    _assert_var_close(sample, var)
    log_sample = np.log(sample)
    _assert_mean_close(log_sample, log_speckle_mean(looks, kind=kind))
    _assert_var_close(log_sample, log_speckle_var(looks, kind=kind))


@pytest.mark.parametrize("looks", LOOKS)
def test_simulated_law_is_gamma_and_nakagami(looks):
    intensity = simulate_speckle(20_000, looks, seed=5)
    assert stats.kstest(intensity, stats.gamma(a=looks, scale=1 / looks).cdf).pvalue > 1e-3
    amplitude = simulate_speckle(20_000, looks, kind="amplitude", seed=6)
    assert stats.kstest(amplitude, stats.nakagami(nu=looks).cdf).pvalue > 1e-3


def test_non_integer_looks_are_not_rounded():
    sample = simulate_speckle(SAMPLES, 2.5, seed=2)
    # Var = 1 / 2.5 = 0.4; rounding to 2 or 3 looks would give 0.5 or 0.333.
    _assert_var_close(sample, 0.4)
    assert abs(sample.var() - 0.4) < 0.01
    assert log_speckle_mean(2) < log_speckle_mean(2.5) < log_speckle_mean(3)


def test_seed_reproduces_and_distinguishes_draws():
    first = simulate_speckle((32, 48), 2.5, seed=7)
    assert first.shape == (32, 48)
    np.testing.assert_array_equal(first, simulate_speckle((32, 48), 2.5, seed=7))
    np.testing.assert_array_equal(
        first, simulate_speckle((32, 48), 2.5, rng=np.random.default_rng(7))
    )
    assert not np.array_equal(first, simulate_speckle((32, 48), 2.5, seed=8))


def test_amplitude_speckle_is_root_of_intensity_speckle():
    intensity = simulate_speckle((16, 16), 3, seed=1)
    amplitude = simulate_speckle((16, 16), 3, kind="amplitude", seed=1)
    np.testing.assert_allclose(amplitude**2, intensity, rtol=1e-12)


def test_add_speckle_is_multiplicative_and_keeps_float32():
    clean = np.linspace(0.0, 9.0, 64 * 64).reshape(64, 64)
    noisy = add_speckle(clean, 4, seed=3)
    assert noisy.dtype == np.float64 and noisy.shape == clean.shape
    np.testing.assert_allclose(noisy, clean * simulate_speckle(clean.shape, 4, seed=3))
    assert noisy[0, 0] == 0.0

    noisy32 = add_speckle(clean.astype(np.float32), 4, seed=3)
    assert noisy32.dtype == np.float32
    np.testing.assert_allclose(noisy32, noisy, rtol=1e-6)

    assert add_speckle(np.ones((4, 4), dtype=np.int16), 1, seed=0).dtype == np.float64

    amplitude = add_speckle(np.sqrt(clean), 4, kind="amplitude", seed=3)
    np.testing.assert_allclose(amplitude**2, noisy, rtol=1e-10, atol=1e-12)


def test_add_speckle_preserves_mean_reflectivity():
    noisy = add_speckle(np.full(SAMPLES, 3.0), 1, seed=9)
    _assert_mean_close(noisy, 3.0)


# --------------------------------------------------------------------------------------------
# log-domain moments
# --------------------------------------------------------------------------------------------


def test_log_moments_single_look_values():
    assert log_speckle_mean(1) == pytest.approx(-np.euler_gamma, abs=1e-12)
    assert log_speckle_var(1) == pytest.approx(math.pi**2 / 6, abs=1e-12)
    assert log_speckle_std(1) == pytest.approx(1.2825, abs=1e-4)
    assert log_speckle_mean(1, kind="amplitude") == pytest.approx(-0.2886, abs=1e-4)
    assert log_speckle_std(1, kind="amplitude") == pytest.approx(0.6413, abs=1e-4)
    assert log_speckle_var(1, kind="amplitude") == pytest.approx(log_speckle_var(1) / 4)


@pytest.mark.parametrize("looks", [0.3, 1, 2.5, 4, 47.5, 1e4])
@pytest.mark.parametrize("kind", KINDS)
def test_looks_from_log_var_inverts_trigamma(looks, kind):
    recovered = looks_from_log_speckle_var(log_speckle_var(looks, kind=kind), kind=kind)
    assert recovered == pytest.approx(looks, rel=1e-9)


def test_looks_from_zero_log_var_is_infinite():
    assert looks_from_log_speckle_var(0.0) == math.inf


# --------------------------------------------------------------------------------------------
# conversions
# --------------------------------------------------------------------------------------------


def test_conversion_round_trips():
    intensity = simulate_speckle((20, 30), 1, seed=4) * 50
    np.testing.assert_allclose(amplitude_to_intensity(intensity_to_amplitude(intensity)), intensity)
    np.testing.assert_allclose(db_to_intensity(intensity_to_db(intensity)), intensity)
    amplitude = intensity_to_amplitude(intensity)
    np.testing.assert_allclose(db_to_amplitude(amplitude_to_db(amplitude)), amplitude)
    # Intensity and amplitude of the same pixel have the same dB value.
    np.testing.assert_allclose(amplitude_to_db(amplitude), intensity_to_db(intensity))


def test_conversion_values_and_dtypes():
    z = np.array([[3 + 4j, 1j], [0, -2]], dtype=np.complex64)
    intensity = complex_to_intensity(z)
    assert intensity.dtype == np.float32
    np.testing.assert_array_equal(intensity, [[25, 1], [0, 4]])
    assert complex_to_intensity(z.astype(np.complex128)).dtype == np.float64
    np.testing.assert_allclose(intensity_to_db([1.0, 10.0, 1000.0]), [0.0, 10.0, 30.0])
    assert intensity_to_db(np.ones(3, dtype=np.float32)).dtype == np.float32
    assert intensity_to_amplitude(np.array([4], dtype=np.uint16)).dtype == np.float64
    assert intensity_to_db([0.0])[0] == -np.inf


def test_conversions_reject_wrong_dtypes():
    with pytest.raises(InvalidInputError, match="expected complex data.*got dtype float64"):
        complex_to_intensity(np.ones(3))
    with pytest.raises(InvalidInputError, match="complex_to_intensity"):
        intensity_to_db(np.ones(3, dtype=np.complex64))
    with pytest.raises(InvalidInputError, match="real numeric array"):
        intensity_to_amplitude(np.array(["a"]))
    with pytest.raises(InvalidInputError, match="real numeric array, got dtype bool"):
        amplitude_to_intensity(np.ones(3, dtype=bool))


# --------------------------------------------------------------------------------------------
# ENL, coefficient of variation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("looks", LOOKS)
def test_enl_of_pure_speckle_is_looks(looks):
    intensity = 7.0 * simulate_speckle((512, 512), looks, seed=21)
    assert enl(intensity) == pytest.approx(looks, rel=0.05)
    assert coefficient_of_variation(intensity) == pytest.approx(1 / math.sqrt(enl(intensity)))


def test_enl_measures_only_the_masked_region():
    intensity = np.empty((256, 256))
    intensity[:, :128] = 2.0 * simulate_speckle((256, 128), 4, seed=1)
    intensity[:, 128:] = np.nan
    intensity[:5, 128:] = 1e6
    left = np.zeros(intensity.shape, dtype=bool)
    left[:, :128] = True
    assert enl(intensity, mask=left) == pytest.approx(4, rel=0.07)
    assert enl(np.full((8, 8), 3.0)) == math.inf


def test_enl_rejects_bad_regions():
    single = np.zeros((3, 3), dtype=bool)
    single[1, 1] = True
    with pytest.raises(InvalidInputError, match="at least 2 pixels.*got 1"):
        enl(np.ones((3, 3)), mask=single)
    with pytest.raises(InvalidInputError, match="finite"):
        enl(np.array([1.0, np.nan, 2.0]))
    with pytest.raises(InvalidInputError, match="non-negative"):
        enl(np.array([1.0, -1.0, 2.0]))
    with pytest.raises(InvalidInputError, match="positive mean"):
        enl(np.zeros(5))
    with pytest.raises(InvalidInputError, match="shape"):
        enl(np.ones((4, 4)), mask=np.ones((4, 5), dtype=bool))
    with pytest.raises(InvalidInputError, match="boolean"):
        enl(np.ones((4, 4)), mask=np.ones((4, 4)))


# --------------------------------------------------------------------------------------------
# looks estimation
# --------------------------------------------------------------------------------------------


def _piecewise_constant_scene(shape=(512, 512), seed=0) -> np.ndarray:
    """Blocks of random reflectivity over three decades, cut by a disc and a slanted edge."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    blocks = np.kron(10 ** rng.uniform(-1, 2, size=(8, 8)), np.ones((shape[0] // 8, shape[1] // 8)))
    disc = (rows - 300) ** 2 + (cols - 220) ** 2 < 140**2
    slant = cols + 0.6 * rows > 420
    return blocks * np.where(disc, 8.0, 1.0) * np.where(slant, 0.3, 1.0)


@pytest.mark.parametrize("looks", LOOKS)
def test_estimate_looks_on_pure_speckle(looks):
    intensity = 3.0 * simulate_speckle((512, 512), looks, seed=31)
    assert estimate_looks(intensity) == pytest.approx(looks, rel=0.1)
    assert estimate_looks(intensity, window_size=3) == pytest.approx(looks, rel=0.1)


@pytest.mark.parametrize("looks", LOOKS)
def test_estimate_looks_on_scene_with_edges(looks):
    scene = _piecewise_constant_scene()
    intensity = add_speckle(scene, looks, seed=32)
    assert estimate_looks(intensity) == pytest.approx(looks, rel=0.1)
    # The scene is far from homogeneous: its global ENL is no estimate of looks at all.
    assert enl(intensity) < 0.5 * looks


def test_estimate_looks_uses_the_valid_mask():
    intensity = simulate_speckle((256, 256), 2.5, seed=33)
    # A constant (e.g. saturated or filled) area is the most "homogeneous" of all...
    intensity[:, :128] = 1.0
    intensity[:8, :8] = np.nan
    intensity[8:16, :8] = 0.0
    valid = np.ones(intensity.shape, dtype=bool)
    valid[:, :128] = False
    assert estimate_looks(intensity) > 100
    # ...and must not count once masked out.
    assert estimate_looks(intensity, valid=valid, fraction=0.1) == pytest.approx(2.5, rel=0.1)


def test_estimate_looks_rejects_bad_inputs():
    image = simulate_speckle((64, 64), 1, seed=0)
    with pytest.raises(InvalidInputError, match=r"shape \(rows, cols\)"):
        estimate_looks(image.ravel())
    with pytest.raises(InvalidInputError, match="at least window_size"):
        estimate_looks(image[:5, :5])
    with pytest.raises(InvalidInputError, match="window_size to be an integer >= 3"):
        estimate_looks(image, window_size=2)
    with pytest.raises(InvalidInputError, match=r"fraction in \(0, 1\], got 0"):
        estimate_looks(image, fraction=0)
    with pytest.raises(InvalidInputError, match="non-negative intensities"):
        estimate_looks(np.log(image))
    with pytest.raises(InvalidInputError, match="at least one 7 × 7 window"):
        estimate_looks(image, valid=np.zeros(image.shape, dtype=bool))
    with pytest.raises(InvalidInputError, match="complex_to_intensity"):
        estimate_looks(image.astype(np.complex64))


# --------------------------------------------------------------------------------------------
# spatial correlation
# --------------------------------------------------------------------------------------------


def test_lag_correlation_of_white_and_correlated_speckle():
    white = simulate_speckle((256, 256), 1, seed=41)
    bound = TOLERANCE / math.sqrt(white.size)
    row_corr, col_corr = speckle_lag_correlation(white)
    assert abs(row_corr) < bound and abs(col_corr) < bound

    # Single-look complex speckle averaged over horizontal neighbours: correlated along rows only.
    rng = np.random.default_rng(42)
    z = rng.standard_normal((256, 257)) + 1j * rng.standard_normal((256, 257))
    correlated = complex_to_intensity(z[:, :-1] + z[:, 1:])
    row_corr, col_corr = speckle_lag_correlation(correlated)
    assert row_corr > 0.1  # about 0.16 in theory, standard error 0.004
    assert abs(col_corr) < bound
    row_corr, _ = speckle_lag_correlation(correlated, lag=2)
    assert abs(row_corr) < bound


def test_lag_correlation_validates():
    image = simulate_speckle((8, 8), 1, seed=0)
    with pytest.raises(InvalidInputError, match="lag to be an integer >= 1"):
        speckle_lag_correlation(image, lag=0)
    with pytest.raises(InvalidInputError, match="at least 3 pairs"):
        speckle_lag_correlation(image, lag=8)
    with pytest.raises(InvalidInputError, match="constant"):
        speckle_lag_correlation(np.ones((8, 8)))


# --------------------------------------------------------------------------------------------
# input validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("looks", [0, -1, float("nan"), float("inf")])
def test_bad_looks_raise(looks):
    with pytest.raises(InvalidInputError, match=r"expected looks to be a finite number > 0, got"):
        simulate_speckle(4, looks)
    with pytest.raises(InvalidInputError, match="expected looks"):
        log_speckle_mean(looks)
    with pytest.raises(InvalidInputError, match="expected looks"):
        add_speckle(np.ones(4), looks)


def test_bad_options_raise():
    with pytest.raises(InvalidInputError, match="expected looks to be a real number"):
        simulate_speckle(4, "4")
    with pytest.raises(InvalidInputError, match=r"expected kind to be one of.*got 'db'"):
        simulate_speckle(4, 1, kind="db")
    with pytest.raises(InvalidInputError, match="expected kind"):
        log_speckle_std(1, kind="complex")
    with pytest.raises(InvalidInputError, match="either seed or rng, got both"):
        simulate_speckle(4, 1, seed=1, rng=np.random.default_rng(1))
    with pytest.raises(InvalidInputError, match="numpy.random.Generator"):
        simulate_speckle(4, 1, rng=np.random.RandomState(1))
    with pytest.raises(InvalidInputError, match="non-negative integers"):
        simulate_speckle((4, -1), 1)


def test_add_speckle_rejects_bad_clean_images():
    with pytest.raises(InvalidInputError, match="non-negative clean intensity, got a minimum of"):
        add_speckle(np.array([1.0, -0.5]), 1, seed=0)
    with pytest.raises(InvalidInputError, match="finite clean image"):
        add_speckle(np.array([1.0, np.nan]), 1, seed=0)
    with pytest.raises(InvalidInputError, match="real array, got dtype complex128"):
        add_speckle(np.ones(3, dtype=complex), 1, seed=0)
