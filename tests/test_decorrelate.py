"""Correlated speckle: measures, polyphase subsampling, whitening of complex data, defaults."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from sardespeckle.decorrelate import (
    CORRELATION_MARGIN,
    CORRELATION_THRESHOLD,
    SINGLE_LOOK_MAX,
    Subsampled,
    WhitenedSource,
    WhiteningFilter,
    check_whitening_input,
    choose_decorrelation,
    correlated_speckle,
    estimate_speckle_correlation,
    estimate_whitening_filter,
    homogeneous_lag_correlations,
    measure_residual_correlation,
    resolve_decorrelation,
    simulate_correlated_slc,
    trained_correlation,
)
from sardespeckle.errors import InvalidInputError, UsageError
from sardespeckle.filters import boxcar
from sardespeckle.io import open_source
from sardespeckle.speckle import simulate_speckle, speckle_lag_correlation
from sardespeckle.tiling import process_array
from sardespeckle.window import Window


def correlated_intensity(shape=(256, 256), *, band=(0.6, 0.7), seed=0, level=1.0):
    slc = simulate_correlated_slc(np.full(shape, level), band=band, seed=seed)
    return slc, (np.abs(slc) ** 2).astype(np.float32)


def smooth_121(image):
    padded = np.pad(image.astype(np.float64), 1, mode="reflect")
    rows = 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]
    return (0.25 * rows[:, :-2] + 0.5 * rows[:, 1:-1] + 0.25 * rows[:, 2:]).astype(np.float32)


# ------------------------------------------------------------------------------- simulation


def test_simulated_slc_has_sar_like_correlation():
    slc, intensity = correlated_intensity(band=(0.6, 0.8))
    along_rows, along_cols = speckle_lag_correlation(intensity)
    # Narrower band in azimuth (axis 0) → stronger correlation between vertical neighbours.
    assert 0.15 < along_rows < along_cols < 0.45
    assert abs(intensity.mean() - 1) < 0.05
    lag2 = speckle_lag_correlation(intensity, lag=2)
    assert max(abs(v) for v in lag2) < 0.05


@pytest.mark.parametrize("looks", [1.0, 2.0, 2.5, 4.4, 5.0])
def test_multilook_weights_give_the_equivalent_number_of_looks(looks):
    from sardespeckle.decorrelate import multilook_weights

    weights = multilook_weights(looks)
    assert weights.size == int(np.ceil(looks)) and weights.sum() == pytest.approx(1)
    assert np.all(weights > 0) and np.all(weights[:-1] == weights[0]) and weights[-1] <= weights[0]
    assert weights.sum() ** 2 / np.sum(weights**2) == pytest.approx(looks)


def test_multilook_weights_refuse_fewer_than_one_look():
    from sardespeckle.decorrelate import multilook_weights

    for bad in (0.5, 0.0, float("nan")):
        with pytest.raises(InvalidInputError, match="looks >= 1"):
            multilook_weights(bad)


def test_correlated_multilooked_speckle_keeps_the_band_correlation_and_the_looks():
    from sardespeckle.decorrelate import correlated_speckle

    bands = np.full((12, 2), 0.6)
    single = correlated_speckle(12, 128, bands, np.random.default_rng(2))
    again = correlated_speckle(12, 128, bands, np.random.default_rng(2), looks=1.0)
    np.testing.assert_array_equal(single, again)  # looks 1: the draws of before
    multi = correlated_speckle(12, 128, bands, np.random.default_rng(2), looks=4.4)
    assert multi.shape == (12, 128, 128) and multi.dtype == np.float32
    assert multi.mean() == pytest.approx(1, abs=0.02)
    assert 1 / multi.var() == pytest.approx(4.4, rel=0.08)
    # Averaging independent looks of one band keeps the intensity correlation of a look:
    # the lag-1 correlation of the intensity (not of its log) is the single look's.
    def intensity_lag1(fields):
        centred = fields - fields.mean(axis=(1, 2), keepdims=True)
        return float((centred[:, :, 1:] * centred[:, :, :-1]).mean() / (centred**2).mean())
    assert intensity_lag1(multi) == pytest.approx(intensity_lag1(single), abs=0.03)
    assert intensity_lag1(multi) > 0.2


def test_correlated_speckle_fields_have_the_band_correlation_and_the_exponential_law():
    from sardespeckle.decorrelate import correlated_speckle

    rng = np.random.default_rng(21)
    bands = np.array([[1.0, 1.0], [0.6, 0.6], [0.5, 0.9]] * 6)
    fields = correlated_speckle(len(bands), 96, bands, rng)
    assert fields.shape == (18, 96, 96) and fields.dtype == np.float32
    # Single-look intensity speckle: exponential, mean 1 and variance 1, whatever the band.
    for row in range(3):
        chosen = fields[row::3]
        assert chosen.mean() == pytest.approx(1, abs=0.04)
        assert chosen.var() == pytest.approx(1, abs=0.1)
        assert np.mean(chosen > 1) == pytest.approx(np.exp(-1), abs=0.02)
    lag1 = np.array([speckle_lag_correlation(field) for field in fields])
    assert np.all(np.abs(lag1[0::3].mean(0) - 0.06) < 0.03)  # Hamming weighting alone
    assert np.all(np.abs(lag1[1::3].mean(0) - 0.33) < 0.04)  # as simulate_correlated_slc's
    rows, cols = lag1[2::3].mean(0)
    assert cols > 0.35 and rows < 0.15  # the narrow azimuth band correlates vertical neighbours
    # An unweighted full band is white speckle; the same rng state draws the same fields.
    white = correlated_speckle(8, 96, np.ones((8, 2)), np.random.default_rng(3), hamming=1.0)
    assert np.max(np.abs(np.mean([speckle_lag_correlation(f) for f in white], axis=0))) < 0.02
    again = correlated_speckle(8, 96, np.ones((8, 2)), np.random.default_rng(3), hamming=1.0)
    np.testing.assert_array_equal(white, again)
    assert correlated_speckle(0, 8, np.empty((0, 2)), rng).shape == (0, 8, 8)


# ---------------------------------------------------------------------------------- measures


def test_measure_residual_correlation():
    rng = np.random.default_rng(1)
    reflectivity = np.exp(rng.normal(3, 1, (128, 128)))
    white = reflectivity * simulate_speckle((128, 128), 1, seed=2)
    assert max(map(abs, measure_residual_correlation(white, reflectivity))) < 0.03
    _, speckle = correlated_intensity((128, 128), seed=3)
    rows, cols = measure_residual_correlation(reflectivity * speckle, reflectivity)
    np.testing.assert_allclose((rows, cols), speckle_lag_correlation(speckle), atol=1e-6)
    valid = np.ones((128, 128), bool)
    valid[:, :64] = False
    half = measure_residual_correlation(reflectivity * speckle, reflectivity, valid=valid)
    np.testing.assert_allclose(half, speckle_lag_correlation(speckle[:, 64:]), atol=1e-6)
    with pytest.raises(InvalidInputError, match="same shape"):
        measure_residual_correlation(white, reflectivity[:10])


def test_estimate_speckle_correlation_tells_white_from_slc():
    rng = np.random.default_rng(4)
    texture = np.kron(np.exp(rng.normal(4, 1, (16, 16))), np.ones((16, 16)))
    white = texture * simulate_speckle(texture.shape, 1, seed=5)
    assert max(estimate_speckle_correlation(white)) < 0.05
    _, speckle = correlated_intensity(texture.shape, seed=6)
    measured = estimate_speckle_correlation(texture * speckle)
    np.testing.assert_allclose(measured, speckle_lag_correlation(speckle), atol=0.05)
    assert min(measured) > CORRELATION_THRESHOLD
    with pytest.raises(InvalidInputError, match="at least 16×16"):
        estimate_speckle_correlation(np.ones((8, 8)))


def test_estimate_speckle_correlation_sets_smooth_texture_apart_from_speckle_correlation():
    # A scene without flat areas: a smooth log-normal texture (correlation length 3 px). Its
    # most homogeneous windows still carry texture, which correlates lag 1 and lag 2 alike.
    rng = np.random.default_rng(11)
    field = ndimage.gaussian_filter(rng.standard_normal((256, 256)), 3.0)
    reflectivity = np.exp(2.0 * field / field.std())
    white = reflectivity * simulate_speckle(reflectivity.shape, 1, seed=12)
    assert max(estimate_speckle_correlation(white)) < CORRELATION_THRESHOLD
    assert min(speckle_lag_correlation(white)) > 3 * CORRELATION_THRESHOLD  # lag 1 alone
    # The same texture under Sentinel-1-like speckle (band 0.7) still reads as correlated.
    slc = simulate_correlated_slc(reflectivity, band=(0.7, 0.7), seed=13)
    assert min(estimate_speckle_correlation(np.abs(slc) ** 2)) > CORRELATION_THRESHOLD


def test_trained_correlation_separates_the_training_band_from_a_narrower_one():
    fields = correlated_speckle(8, 256, np.full((8, 2), 0.5), np.random.default_rng(21))
    narrower = [max(homogeneous_lag_correlations(f).lag1) for f in fields]
    limit = trained_correlation(0.55) + CORRELATION_MARGIN
    assert 0.32 < trained_correlation(0.55) < 0.38
    assert np.mean([value > limit for value in narrower]) >= 0.75
    fields = correlated_speckle(8, 256, np.full((8, 2), 0.55), np.random.default_rng(22))
    assert all(max(homogeneous_lag_correlations(f).lag1) <= limit for f in fields)
    # Narrower still, the lag-1 ceiling keeps rising where the texture-corrected estimate falls.
    assert trained_correlation(0.2) > trained_correlation(0.3) > trained_correlation(0.5)


def upsampled(slc: np.ndarray, factor: int) -> np.ndarray:
    """Band-limited interpolation (FFT zero-padding) of an SLC onto a grid ``factor`` × finer."""
    rows, cols = slc.shape
    spectrum = np.zeros((rows * factor, cols * factor), complex)
    top, left = (rows * factor - rows) // 2, (cols * factor - cols) // 2
    spectrum[top:top + rows, left:left + cols] = np.fft.fftshift(np.fft.fft2(slc))
    return np.fft.ifft2(np.fft.ifftshift(spectrum)) * factor**2


@pytest.mark.parametrize("factor", [1, 3, 4])
def test_auto_keeps_oversampled_speckle_from_the_correlated_speckle_network(factor):
    # Sentinel-1-like speckle (band 0.7) interpolated onto a grid 3-4× finer: its lag-2
    # correlation is high, so the texture-corrected estimate falls back to a Sentinel-1 value,
    # but lag 1 (0.7-0.8) is far beyond what the correlated-speckle weights learnt: subsample, as before.
    slc = simulate_correlated_slc(np.full((192, 192), 100.0), band=(0.7, 0.7), seed=3)
    intensity = np.abs(upsampled(slc, factor)) ** 2
    params, reason = resolve_decorrelation(
        {"decorrelate": "auto", "weights": None}, {}, kind="intensity", looks=1.0,
        sample=lambda: (intensity, np.ones(intensity.shape, bool)),
        correlated_network=lambda params, lag1: (
            {"weights": "corr"} if max(lag1) <= trained_correlation(0.55) + CORRELATION_MARGIN
            else None))
    lags = homogeneous_lag_correlations(intensity)
    assert max(lags.speckle) > CORRELATION_THRESHOLD
    if factor == 1:
        assert params == {"decorrelate": "none", "weights": "corr"}, reason
    else:
        assert min(lags.lag1) > 0.6 and params == {"decorrelate": "subsample"}, reason
        assert "lag 1 0." in reason and "oversampling" in reason

@pytest.mark.parametrize(("kind", "looks", "correlation", "expected"), [
    ("complex", 1.0, None, "whiten"),
    ("amplitude", 1.0, (0.3, 0.4), "subsample"),
    ("intensity", 1.0, (0.02, 0.01), "none"),
    ("intensity", 4.4, None, "none"),  # multilooked, not measured (methods other than SAR-CNN)
    ("intensity", 4.4, (0.12, 0.15), "none"),  # correlated, but under the subsampling threshold
    ("intensity", 4.4, (0.5, 0.5), "subsample"),
    ("db", 1.0, None, "none"),
])
def test_choose_decorrelation(kind, looks, correlation, expected):
    mode, reason = choose_decorrelation(kind, looks, correlation)
    assert mode == expected and reason


def test_multilooked_correlated_input_goes_to_a_correlated_network_where_one_is_given():
    mode, reason = choose_decorrelation("intensity", 4.4, (0.3, 0.25), correlated_network=True)
    assert mode == "none" and "4.4-look (multilooked) input" in reason and "full resolution" in reason
    mode, reason = choose_decorrelation("intensity", 4.4, (0.03, 0.02), correlated_network=True)
    assert mode == "none" and "not decorrelated" in reason and "trained on correlated" not in reason


def test_resolve_decorrelation_measures_multilooked_input_only_for_sarcnn():
    from sardespeckle.decorrelate import correlated_speckle

    field = 50.0 * correlated_speckle(1, 128, np.array([[0.6, 0.6]]), np.random.default_rng(3),
                                      looks=4.4)[0]
    calls = []

    def sample():
        calls.append(1)
        return field, np.ones(field.shape, bool)

    defaults = {"decorrelate": "auto"}
    params, reason = resolve_decorrelation(defaults, None, kind="intensity", looks=4.4, sample=sample)
    assert params == {"decorrelate": "none"} and calls == [] and "not decorrelated" in reason
    params, reason = resolve_decorrelation(defaults, None, kind="intensity", looks=4.4, sample=sample,
                                           correlated_network=lambda params, lag1: None)
    assert params == {"decorrelate": "subsample"} and calls == [1] and "subsampled" in reason
    params, reason = resolve_decorrelation(defaults, None, kind="intensity", looks=4.4, sample=sample,
                                           correlated_network=lambda params, lag1: {"weights": "c"})
    assert params == {"decorrelate": "none", "weights": "c"} and "full resolution" in reason


def test_resolve_decorrelation():
    defaults = {"decorrelate": "auto", "weights": None}
    calls = []

    def sample():
        calls.append(1)
        return correlated_intensity((128, 128), seed=7)[1], np.ones((128, 128), bool)

    params, reason = resolve_decorrelation(defaults, None, kind="amplitude", looks=1.0, sample=sample)
    assert params == {"decorrelate": "subsample"} and reason.startswith("decorrelate=subsample (")
    params, reason = resolve_decorrelation(defaults, {"decorrelate": "none"}, kind="amplitude",
                                           looks=1.0, sample=sample)
    assert params == {"decorrelate": "none"} and reason is None
    params, reason = resolve_decorrelation(defaults, {}, kind="complex", looks=1.0, sample=sample)
    assert params["decorrelate"] == "whiten"
    assert resolve_decorrelation({"window_size": 7}, {"window_size": 5}, kind="amplitude", looks=1.0,
                                 sample=sample) == ({"window_size": 5}, None)
    assert len(calls) == 1  # the sample is read only when the correlation must be measured


# ------------------------------------------------------------------------------ subsampling


def test_subsampled_components_and_batching():
    seen = []

    class Recorder:
        def __call__(self, intensity):
            raise AssertionError("batch should be used")

        def batch(self, tiles):
            seen.append([tile.shape for tile in tiles])
            return [tile * 2 for tile in tiles]

    tiles = [np.arange(5 * 7, dtype=np.float32).reshape(5, 7) + 1, np.ones((5, 7), np.float32)]
    out = Subsampled(Recorder(), halo=3, combine="interleave").batch(tiles)
    # Components of a 5×7 tile: 3×4, 3×3, 2×4, 2×3, each shape one call holding both tiles.
    assert sorted(map(tuple, seen)) == sorted([((3, 4),) * 2, ((3, 3),) * 2, ((2, 4),) * 2, ((2, 3),) * 2])
    for tile, result in zip(tiles, out):
        np.testing.assert_array_equal(result, tile * 2)
    seen.clear()
    Subsampled(Recorder(), halo=3).batch([np.ones((6, 8), np.float32)] * 3)
    assert seen == [[(3, 4)] * 12]  # even sides: all four components of all tiles in one call


def test_average_is_interleave_smoothed_121():
    image = np.random.default_rng(8).exponential(1.0, (9, 12)).astype(np.float32) + 0.1

    def method(intensity):
        return np.sqrt(intensity)

    interleaved = Subsampled(method, halo=0, combine="interleave")(image)
    np.testing.assert_allclose(interleaved, np.sqrt(image), rtol=1e-6)
    averaged = Subsampled(method, halo=0)(image)
    np.testing.assert_allclose(averaged, smooth_121(np.sqrt(image)), rtol=1e-6)
    assert Subsampled(method, halo=5).halo == 11
    assert Subsampled(method, halo=5, combine="interleave").halo == 10


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (4, 1), (2, 2)])
def test_subsampled_tiny_images(shape):
    image = np.full(shape, 3.0, np.float32)
    np.testing.assert_allclose(Subsampled(lambda x: x * 2, halo=1)(image), 6.0)


@pytest.mark.parametrize("combine", ["average", "interleave"])
def test_subsampled_tiled_equals_whole(combine):
    _, intensity = correlated_intensity((203, 190), seed=9)
    sub = Subsampled(lambda x: boxcar(x, window_size=5), halo=2, combine=combine)
    whole = process_array(intensity, sub, halo=sub.halo, tile=None)
    for tile in (31, 50, 64):  # odd and even tile sides, odd tile origins
        np.testing.assert_allclose(process_array(intensity, sub, halo=sub.halo, tile=tile), whole,
                                   rtol=1e-6, err_msg=f"tile {tile}")
    short = process_array(intensity, sub, halo=sub.halo - 2, tile=31)
    assert np.max(np.abs(short / whole - 1)) > 1e-3


def test_components_see_less_correlated_speckle():
    _, intensity = correlated_intensity((256, 256), band=(0.6, 0.7), seed=10)
    full = speckle_lag_correlation(intensity)
    components = [speckle_lag_correlation(intensity[dr::2, dc::2]) for dr in (0, 1) for dc in (0, 1)]
    assert min(full) > 0.2
    assert max(abs(v) for pair in components for v in pair) < 0.06


# -------------------------------------------------------------------------------- whitening


@pytest.mark.parametrize("band", [(0.8, 0.8), (0.9, 0.85)])
def test_whitening_decorrelates_and_keeps_the_mean(band):
    slc = simulate_correlated_slc(np.full((256, 256), 7.0), band=band, hamming=0.6, doppler=0.15, seed=11)
    before = speckle_lag_correlation(np.abs(slc) ** 2)
    whitening = estimate_whitening_filter(slc)
    white = whitening.whitened_intensity(slc, np.ones(slc.shape, bool))
    after = speckle_lag_correlation(white)
    assert min(before) > 0.2
    assert max(map(abs, after)) < 0.06, (before, after)
    assert abs(white.mean() / 7.0 - 1) < 0.05


@pytest.mark.parametrize("band", [(0.5, 0.5), (0.7, 0.7), (0.67, 0.86)])
def test_whitening_keeps_the_mean_on_narrow_bands(band):
    # Designed on one half of a flat scene, applied to the other: the whitened intensity keeps
    # the mean (the spectrum-based scaling alone lost 8 % at 0.5 × 0.5 and 3 % at 0.7 × 0.7,
    # which SAR-CNN passed on to flat areas).
    # Mean over three scenes: a 0.5 band leaves few independent samples in a 256² half.
    ratios = []
    for seed in (14, 15, 16):
        slc = simulate_correlated_slc(np.full((512, 256), 50.0), band=band, seed=seed)
        whitening = estimate_whitening_filter(slc[:256])
        white = whitening.whitened_intensity(slc, np.ones(slc.shape, bool))[256 + 16:-16, 16:-16]
        ratios.append(white.mean() / np.mean(np.abs(slc[256 + 16:-16, 16:-16]) ** 2))
    assert np.mean(ratios) == pytest.approx(1, abs=0.015), ratios


def test_whitening_filter_is_a_convolution_with_zero_outside():
    rng = np.random.default_rng(12)
    taps = rng.normal(size=5) + 1j * rng.normal(size=5)
    filt = WhiteningFilter(azimuth=taps, range=taps[::-1].copy())
    impulse = np.zeros((11, 11), complex)
    impulse[5, 5] = 1
    np.testing.assert_allclose(filt.apply(impulse)[3:8, 3:8], np.outer(taps, taps[::-1]))
    assert filt.radius == 2
    with pytest.raises(InvalidInputError, match="odd length"):
        WhiteningFilter(azimuth=np.ones(4), range=np.ones(4))


def test_whitened_source_tiles_equal_whole(tmp_path):
    slc = simulate_correlated_slc(np.full((70, 90), 3.0), band=(0.7, 0.8), seed=13).astype(np.complex64)
    slc[10:14, 20:30] = 0  # masked pixels are zeroed before filtering and stay masked
    path = tmp_path / "slc.npy"
    np.save(path, slc)
    with open_source(path) as source:
        whitening = estimate_whitening_filter(slc)
        white = WhitenedSource(source, whitening)
        whole, valid = white.read_intensity(Window.full(source.shape))
        for window in (Window(0, 0, 33, 41), Window(31, 47, 39, 43), Window(5, 3, 1, 1)):
            part, part_valid = white.read_intensity(window)
            np.testing.assert_allclose(part, whole[window.slices], rtol=1e-5)
            np.testing.assert_array_equal(part_valid, valid[window.slices])
    assert not valid[10:14, 20:30].any() and valid.sum() == 70 * 90 - 40


def test_whitening_refuses_intensity():
    with pytest.raises(UsageError, match="expected complex \\(SLC\\) input"):
        check_whitening_input("amplitude")
    with pytest.raises(InvalidInputError, match="expected a complex"):
        estimate_whitening_filter(np.ones((64, 64)))
    with pytest.raises(InvalidInputError, match="at least 32 pixels"):
        estimate_whitening_filter(np.ones((16, 64), complex))


def test_estimate_looks_of_speckle_reads_correlated_single_look_speckle_as_one_look():
    """The plain estimator takes correlated speckle for multilooked (band 0.4: 1.6 looks,
    above SINGLE_LOOK_MAX); measured on the ×2 polyphase grids it is one look again. White
    speckle keeps the plain estimate, whatever its looks."""
    from sardespeckle.decorrelate import estimate_looks_of_speckle
    from sardespeckle.speckle import estimate_looks

    for band in (0.7, 0.45, 0.4):
        intensity = np.abs(simulate_correlated_slc(np.full((512, 512), 50.0), band=(band, band),
                                                   seed=31)) ** 2
        looks, correlated = estimate_looks_of_speckle(intensity)
        assert correlated and 0.9 < looks < 1.12, (band, looks)
    assert estimate_looks(intensity) > SINGLE_LOOK_MAX  # band 0.4, the plain estimate
    for nominal in (1.0, 2.0, 4.4):
        white = 50.0 * simulate_speckle((512, 512), nominal, seed=32)
        looks, correlated = estimate_looks_of_speckle(white)
        assert not correlated and looks == estimate_looks(white)
        assert abs(looks - nominal) < 0.1 * nominal
    # White 4.4-look speckle on a strong texture (3 px, log-intensity std 2) reads above 0.1
    # too, but every other row and column does not decorrelate texture: its looks stay the
    # plain estimate, multilooked (on the grids they read about 1.2, single-look).
    rng = np.random.default_rng(33)
    field = ndimage.gaussian_filter(rng.standard_normal((512, 512)), 3.0)
    textured = np.exp(2.0 * field / field.std()) * simulate_speckle((512, 512), 4.4, seed=34)
    assert max(estimate_speckle_correlation(textured)) > CORRELATION_THRESHOLD  # the premise
    looks, correlated = estimate_looks_of_speckle(textured)
    assert not correlated and looks == estimate_looks(textured) and looks > 2


def test_multilooked_texture_reaching_lag_2_is_not_subsampled():
    # White 4.4-look speckle on a scene textured at the pixel scale reads as a strong lag-1
    # correlation (the speckle's own log-variance is small), but lag 2 correlates too: not a
    # processor's correlation, and subsampling would blur the texture (3.8 dB in an audit).
    mode, reason = choose_decorrelation("intensity", 4.4, (0.20, 0.17), lag1=(0.33, 0.33),
                                        lag2=(0.13, 0.16))
    assert mode == "none" and "reaches lag 2" in reason
    # The same lag 1 confined to it, as a processor's: subsampled.
    mode, reason = choose_decorrelation("intensity", 4.4, (0.32, 0.30), lag1=(0.33, 0.31),
                                        lag2=(0.01, 0.01))
    assert mode == "subsample" and "subsampled ×2" in reason and "4.4-look" in reason
    # One axis with a processor's shape is enough.
    mode, _ = choose_decorrelation("intensity", 2.0, (0.25, 0.10), lag1=(0.26, 0.20),
                                   lag2=(0.01, 0.10))
    assert mode == "subsample"


def test_texture_of_white_multilooked_speckle_stays_at_full_resolution_end_to_end():
    from sardespeckle.decorrelate import correlated_network_for

    rng = np.random.default_rng(1)
    texture = ndimage.gaussian_filter(rng.standard_normal((256, 256)), 1.0)
    scene = 100.0 * np.exp(0.5 * texture / texture.std())
    white = (scene * rng.gamma(4.4, 1 / 4.4, scene.shape)).astype(np.float32)
    correlated = (scene.mean() * correlated_speckle_fields(np.array([[0.7, 0.7]]), 4.4, seed=2)[0])
    for image, expected in ((white, "none"), (correlated, "subsample")):
        params, reason = resolve_decorrelation(
            {"decorrelate": "auto"}, None, kind="intensity", looks=4.4,
            sample=lambda image=image: (image, image > 0),
            correlated_network=lambda params, lag1: None)
        assert params["decorrelate"] == expected, reason


def correlated_speckle_fields(bands, looks, seed):
    from sardespeckle.decorrelate import correlated_speckle

    return correlated_speckle(len(bands), 256, bands, np.random.default_rng(seed), looks=looks)


def test_a_multilooked_input_too_small_to_measure_says_so():
    tiny = np.random.default_rng(0).gamma(4.0, 25.0, (12, 12))
    params, reason = resolve_decorrelation(
        {"decorrelate": "auto"}, None, kind="intensity", looks=4.0,
        sample=lambda: (tiny, tiny > 0), correlated_network=lambda params, lag1: None)
    assert params == {"decorrelate": "none"} and "speckle correlation not measured" in reason


def test_multilooked_speckle_oversampled_past_the_shape_test_is_still_subsampled():
    # Narrow bands (speckle oversampled onto a finer grid) correlate lag 2 as texture does,
    # but their estimate stays high: a processor's (band 0.3, 4.4 looks: lag 1 0.75, lag 2 0.31).
    mode, reason = choose_decorrelation("intensity", 4.4, (0.44, 0.44), lag1=(0.75, 0.75),
                                        lag2=(0.31, 0.31))
    assert mode == "subsample", reason
    # Strong texture a pixel wide under white speckle reads lower (contrast 1.5: 0.39).
    mode, reason = choose_decorrelation("intensity", 4.4, (0.39, 0.39), lag1=(0.65, 0.65),
                                        lag2=(0.26, 0.26))
    assert mode == "none" and "reaches lag 2" in reason


def test_multilooked_routing_is_monotonic_in_the_band_for_the_default_weights():
    # Speckle beyond what the correlated 4.4-look weights learnt (band under their 0.4) is not
    # left at full resolution with the white-speckle weights: subsampled.
    from sardespeckle.decorrelate import correlated_network_for, correlated_speckle

    clean = np.exp(ndimage.gaussian_filter(np.random.default_rng(4).standard_normal((256, 256)), 8) * 3)
    for band, expected in ((0.7, "none"), (0.45, "none"), (0.3, "subsample")):
        image = 100.0 * clean * correlated_speckle(1, 256, np.array([[band, band]]),
                                                   np.random.default_rng(5), looks=4.4)[0]
        params, reason = resolve_decorrelation(
            {"decorrelate": "auto", "weights": None}, None, kind="intensity", looks=4.4,
            sample=lambda image=image: (image, image > 0),
            correlated_network=correlated_network_for("sarcnn", 4.4))
        assert params["decorrelate"] == expected, (band, reason)
        assert (params.get("weights") == "sarcnn-s1-l4-corr") == (expected == "none"), (band, params)


def test_looks_of_narrow_band_multilooked_speckle_are_measured_on_the_grids():
    # Band 0.4, 4.4 looks, over a scene with some fine texture: the x2 grids keep part of the
    # correlation (as a band of 0.8 does; with the texture, 0.51-0.54 of full resolution's,
    # which the former threshold of one half refused), while full resolution's plain estimate
    # reads about twice the looks.
    from sardespeckle.decorrelate import correlated_speckle, estimate_looks_of_speckle
    from sardespeckle.speckle import estimate_looks

    for seed in range(3):
        rng = np.random.default_rng(seed + 10)
        scene = np.exp(ndimage.gaussian_filter(rng.standard_normal((256, 256)), 6) * 4
                       + 0.2 * ndimage.gaussian_filter(rng.standard_normal((256, 256)), 1.5) / 0.19)
        image = 100.0 * scene * correlated_speckle(1, 256, np.array([[0.4, 0.4]]),
                                                   np.random.default_rng(seed), looks=4.4)[0]
        looks, correlated = estimate_looks_of_speckle(image)
        assert correlated and 3.3 < looks < 5.8, (seed, looks)
        assert estimate_looks(image) > 7
