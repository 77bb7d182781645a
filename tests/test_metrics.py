"""Quality measures: known values on hand-computed cases and on seeded simulated speckle."""

import math

import numpy as np
import pytest
from scipy import ndimage

from sardespeckle.errors import InvalidInputError
from sardespeckle.filters import boxcar
from sardespeckle.metrics import (
    auto_homogeneous_windows,
    boxes_mask,
    edge_preservation,
    enl,
    glcm_homogeneity,
    psnr,
    psnr_amplitude,
    radiometric_bias,
    ratio_image_stats,
    ssim,
)
from sardespeckle.speckle import simulate_speckle
from sardespeckle.window import Window


def edge_scene() -> np.ndarray:
    """192² reflectivity: a flat left half (room for homogeneous windows), a 16-px
    checkerboard of 10× contrast on the right (edges everywhere)."""
    reflectivity = np.full((192, 192), 50.0)
    rows, cols = np.indices((192, 96))
    reflectivity[:, 96:] = np.where((rows // 16 + cols // 16) % 2 == 0, 20.0, 200.0)
    return reflectivity


# --- PSNR -------------------------------------------------------------------------------------


def test_psnr_of_a_constant_offset_is_known():
    reference = np.random.default_rng(0).random((16, 16)) * 4.0
    # offset d: MSE = d², PSNR = 20 log10(P / d)
    assert psnr(reference, reference + 0.5, data_range=4.0) == pytest.approx(20 * math.log10(8))
    assert psnr(reference, reference - 0.5, data_range=4.0) == pytest.approx(20 * math.log10(8))


def test_psnr_on_log_intensity_of_a_gain():
    intensity = 1.0 + 99.0 * np.random.default_rng(1).random((32, 32))
    log_reference = np.log(intensity)
    data_range = float(np.ptp(log_reference))
    # a gain of 2 on intensity is an offset of ln 2 on log-intensity
    value = psnr(log_reference, np.log(2.0 * intensity), data_range=data_range)
    assert value == pytest.approx(20 * math.log10(data_range / math.log(2.0)))


def test_psnr_identical_is_infinite_and_errors_are_clear():
    image = np.ones((4, 4))
    assert psnr(image, image, data_range=1.0) == math.inf
    with pytest.raises(InvalidInputError, match="same shape"):
        psnr(image, np.ones((4, 5)), data_range=1.0)
    with pytest.raises(InvalidInputError, match="data_range"):
        psnr(image, image, data_range=0)
    with pytest.raises(InvalidInputError, match="finite"):
        psnr(image, np.full((4, 4), np.nan), data_range=1.0)


def test_psnr_amplitude_uses_the_99th_percentile_of_the_reference():
    reference = np.arange(1.0, 1001.0)
    estimate = reference + 2.0
    peak = np.percentile(reference, 99)  # 990.01
    assert psnr_amplitude(reference, estimate) == pytest.approx(20 * math.log10(peak / 2.0))
    # The brightest pixels do not set the peak: a far brighter maximum changes nothing.
    bright = reference.copy()
    bright[-1] = 1e6
    assert psnr_amplitude(bright, bright + 2.0) == pytest.approx(psnr_amplitude(reference,
                                                                                estimate))


def test_psnr_amplitude_refuses_negative_references():
    with pytest.raises(InvalidInputError, match="non-negative"):
        psnr_amplitude(np.array([-1.0, 2.0]), np.array([1.0, 2.0]))


# --- SSIM -------------------------------------------------------------------------------------


def _ssim_by_hand(x, y, data_range, weights=None):
    """SSIM of one window covering the whole image (sample covariances when unweighted)."""
    x, y = x.ravel(), y.ravel()
    if weights is None:
        mx, my = x.mean(), y.mean()
        vx, vy = x.var(ddof=1), y.var(ddof=1)
        cxy = np.sum((x - mx) * (y - my)) / (x.size - 1)
    else:
        w = weights.ravel()
        mx, my = np.sum(w * x), np.sum(w * y)
        vx, vy = np.sum(w * (x - mx) ** 2), np.sum(w * (y - my) ** 2)
        cxy = np.sum(w * (x - mx) * (y - my))
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))


def test_ssim_of_identical_images_is_one():
    image = np.random.default_rng(2).random((40, 40)) * 10
    assert ssim(image, image, data_range=10.0) == pytest.approx(1.0)
    assert ssim(image, image, data_range=10.0, window="gaussian") == pytest.approx(1.0)


def test_ssim_matches_a_hand_computed_7x7_example():
    x = np.arange(49, dtype=float).reshape(7, 7)
    y = np.sqrt(x) * 6 + np.random.default_rng(3).random((7, 7))
    # A 7×7 image with a 7×7 window: one window, the whole image.
    assert ssim(x, y, data_range=48.0) == pytest.approx(_ssim_by_hand(x, y, 48.0))


def test_gaussian_ssim_matches_a_hand_computed_11x11_example():
    rng = np.random.default_rng(4)
    x = rng.random((11, 11))
    y = 0.5 * x + 0.3 * rng.random((11, 11))
    offsets = np.arange(-5, 6)
    weights_1d = np.exp(-(offsets**2) / (2 * 1.5**2))
    weights = np.outer(weights_1d, weights_1d)
    weights /= weights.sum()
    # σ = 1.5 truncated at 3.5σ: an 11 × 11 window, the whole image.
    assert ssim(x, y, data_range=1.0, window="gaussian") == pytest.approx(
        _ssim_by_hand(x, y, 1.0, weights))


def test_ssim_falls_with_noise_and_checks_its_input():
    rng = np.random.default_rng(5)
    image = ndimage.gaussian_filter(rng.random((48, 48)), 2)
    slight = ssim(image, image + 0.01 * rng.standard_normal(image.shape), data_range=1.0)
    strong = ssim(image, image + 0.1 * rng.standard_normal(image.shape), data_range=1.0)
    assert 1.0 > slight > strong
    with pytest.raises(InvalidInputError, match="at least 7"):
        ssim(np.ones((5, 5)), np.ones((5, 5)), data_range=1.0)
    with pytest.raises(InvalidInputError, match="odd"):
        ssim(image, image, data_range=1.0, window_size=6)
    with pytest.raises(InvalidInputError, match="uniform' or 'gaussian"):
        ssim(image, image, data_range=1.0, window="box")


# --- ENL and homogeneous windows --------------------------------------------------------------


@pytest.mark.parametrize("looks", [1, 4])
def test_enl_of_pure_gamma_speckle_is_the_number_of_looks(looks):
    speckle = 7.0 * simulate_speckle((256, 256), looks, seed=10 + looks)
    assert enl(speckle) == pytest.approx(looks, rel=0.12)
    boxes = [Window(0, 0, 64, 64), Window(100, 120, 80, 100)]
    assert enl(speckle, boxes) == pytest.approx(looks, rel=0.12)


def test_homogeneous_windows_avoid_edges_and_do_not_overlap():
    noisy = edge_scene() * simulate_speckle((192, 192), 1, seed=6)
    boxes = auto_homogeneous_windows(noisy, window=32, count=6)
    assert 1 <= len(boxes) <= 6
    assert all(box.col + box.width <= 96 for box in boxes)  # the flat half only
    mask = np.zeros(noisy.shape, dtype=int)
    for box in boxes:
        mask[box.slices] += 1
    assert mask.max() == 1
    assert boxes_mask(noisy.shape, boxes).sum() == 32 * 32 * len(boxes)


def test_homogeneous_windows_skip_masked_pixels():
    noisy = simulate_speckle((96, 96), 1, seed=7)
    valid = np.ones(noisy.shape, dtype=bool)
    valid[:, :50] = False
    boxes = auto_homogeneous_windows(noisy, window=16, count=4, valid=valid)
    assert boxes and all(box.col >= 50 for box in boxes)
    with pytest.raises(InvalidInputError, match="at least one"):
        auto_homogeneous_windows(noisy, window=16, valid=np.zeros(noisy.shape, dtype=bool))
    with pytest.raises(InvalidInputError, match="at least 128"):
        auto_homogeneous_windows(noisy, window=128)


# --- ratio image ------------------------------------------------------------------------------


@pytest.mark.parametrize("looks", [1, 4])
def test_ratio_image_of_the_true_reflectivity_is_pure_speckle(looks):
    reflectivity = edge_scene()
    noisy = reflectivity * simulate_speckle(reflectivity.shape, looks, seed=20 + looks)
    stats = ratio_image_stats(noisy, reflectivity)
    assert stats.mean == pytest.approx(1.0, abs=0.02)
    assert stats.variance == pytest.approx(1.0 / looks, rel=0.06)
    assert stats.first_order < 0.15  # ENL and mean of the ratio match on flat areas
    assert stats.second_order < 1.0  # no structure: homogeneity as after a shuffle
    assert stats.structure < 1.2


def test_ratio_image_of_a_blurring_filter_shows_structure():
    reflectivity = edge_scene()
    noisy = (reflectivity * simulate_speckle(reflectivity.shape, 1, seed=30)).astype(np.float32)
    ideal = ratio_image_stats(noisy, reflectivity)
    blurred = ratio_image_stats(noisy, boxcar(noisy, window_size=7))
    # Edges smoothed away reappear in the ratio and make neighbours alike.
    assert blurred.second_order > 3.0
    assert blurred.structure > 4 * ideal.structure
    assert blurred.as_dict()["boxes"][0] == list(vars(blurred.boxes[0]).values())


def test_ratio_image_stats_refuse_mismatched_images():
    with pytest.raises(InvalidInputError, match="same shape"):
        ratio_image_stats(np.ones((40, 40)), np.ones((40, 41)))


def test_glcm_homogeneity_tells_noise_from_structure():
    rng = np.random.default_rng(8)
    noise = rng.random((96, 96))
    h, shuffled = glcm_homogeneity(noise)
    assert h == pytest.approx(shuffled, rel=0.02)
    smooth = ndimage.gaussian_filter(noise, 3)
    h_smooth, shuffled_smooth = glcm_homogeneity(smooth)
    assert h_smooth > 2 * shuffled_smooth
    # rank quantisation: a monotone change of the values changes nothing
    assert glcm_homogeneity(np.exp(5 * smooth)) == pytest.approx((h_smooth, shuffled_smooth))


def test_glcm_homogeneity_gives_tied_values_one_level_wherever_they_are():
    """A ratio image with many pixels exactly 1 (a filter that returned its input there), with
    no spatial structure: the measure must see none, in any pixel order."""
    rng = np.random.default_rng(4)
    ratio = rng.exponential(1.0, (256, 256))
    ratio[rng.random(ratio.shape) < 0.3] = 1.0
    h, shuffled = glcm_homogeneity(ratio)
    assert abs(h / shuffled - 1) < 0.01  # ranking the ties in raster order gave +23 %
    assert glcm_homogeneity(ratio.T) == pytest.approx((h, shuffled), rel=0.01)
    # integer amplitudes (a quantised product): many ties at every level
    quantised = np.round(np.sqrt(50 * rng.exponential(1.0, (256, 256)))) ** 2
    h_q, shuffled_q = glcm_homogeneity(quantised)
    assert abs(h_q / shuffled_q - 1) < 0.01


# --- edge preservation and bias ---------------------------------------------------------------


def test_edge_preservation_is_one_for_the_same_edges_and_falls_with_blur_and_noise():
    rng = np.random.default_rng(9)
    log_reflectivity = np.log(edge_scene())
    assert edge_preservation(log_reflectivity, 2 * log_reflectivity + 1) == pytest.approx(1.0)
    noisy = log_reflectivity + np.log(simulate_speckle(log_reflectivity.shape, 1, seed=9))
    blurred = ndimage.uniform_filter(log_reflectivity, 9)
    beta_noisy = edge_preservation(log_reflectivity, noisy)
    beta_blur = edge_preservation(log_reflectivity, blurred)
    assert beta_noisy < 0.5 and beta_blur < 0.9
    assert abs(edge_preservation(log_reflectivity, rng.random(log_reflectivity.shape))) < 0.1
    assert edge_preservation(log_reflectivity, log_reflectivity, sigma=0) == pytest.approx(1.0)
    # a flat estimate kept no edge (0); a flat reference has none to keep (undefined)
    flat = np.full(log_reflectivity.shape, 2.0)
    ramp = np.add.outer(np.arange(flat.shape[0]), 0.5 * np.arange(flat.shape[1])) / 7.0
    for edgeless in (flat, ramp):  # a ramp's Laplacian is only the kernel's truncation error
        assert edge_preservation(log_reflectivity, edgeless) == 0.0
        with pytest.raises(InvalidInputError, match="reference with some edges.*undefined"):
            edge_preservation(edgeless, log_reflectivity)
    # scale-free: the same edges, however faint beside an offset, keep their index
    assert edge_preservation(log_reflectivity, 1e3 + 1e-4 * log_reflectivity) == \
        pytest.approx(1.0)


def test_radiometric_bias_hand_values():
    noisy = np.array([[1.0, 3.0], [5.0, 100.0]])
    out = np.array([[2.0, 2.0], [3.0, 1.0]])
    mask = np.array([[True, True], [True, False]])
    assert radiometric_bias(noisy, out, mask) == pytest.approx(7.0 / 9.0 - 1.0)
    with pytest.raises(InvalidInputError, match="boolean"):
        radiometric_bias(noisy, out, mask.astype(int))


def test_masked_arrays_with_masked_pixels_are_refused_not_read_through():
    from sardespeckle.speckle import enl as region_enl

    reference = np.full((64, 64), 10.0)
    estimate = np.ma.masked_array(reference + 0.1, mask=np.zeros((64, 64), bool))
    estimate[:10] = np.ma.masked
    estimate.data[:10] = 1e6  # the hidden fill must never count as data
    with pytest.raises(InvalidInputError, match="masked array with masked pixels"):
        psnr(reference, estimate, data_range=10)
    with pytest.raises(InvalidInputError, match="masked array"):
        enl(estimate)
    with pytest.raises(InvalidInputError, match="masked array"):
        region_enl(estimate)
    # a masked array without masked pixels is a plain array
    unmasked = np.ma.masked_array(reference + 0.1, mask=False)
    assert psnr(reference, unmasked, data_range=10) == pytest.approx(40.0)
