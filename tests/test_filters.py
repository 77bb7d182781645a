"""Property tests of the classical speckle filters (``sardespeckle.filters``).

Seeded, small images: shape/dtype/positivity, constants kept, radiometry and ENL on simulated
speckle, edges, exact tiling with the declared halo, input validation, and per-pixel reference
implementations of Lee, refined Lee and Lee sigma on tiny images.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
from scipy import integrate, stats

from sardespeckle.errors import InvalidInputError
from sardespeckle.filters import (
    FILTERS,
    FilterSpec,
    boxcar,
    lee,
    lee_sigma,
    refined_lee,
    sigma_range,
)

NAMES = sorted(FILTERS)
WITH_LOOKS = [name for name in NAMES if "looks" in FILTERS[name].defaults]
WITH_DAMPING = [name for name in NAMES if "damping_factor" in FILTERS[name].defaults]


def speckle(reflectivity: np.ndarray, *, looks: float = 1.0, seed: int = 0) -> np.ndarray:
    """Intensity R·S with S ~ Gamma(looks, 1/looks), as float32."""
    rng = np.random.default_rng(seed)
    noise = rng.gamma(looks, 1.0 / looks, size=np.shape(reflectivity))
    return (np.asarray(reflectivity) * noise).astype(np.float32)


def scene(shape: tuple[int, int]) -> np.ndarray:
    """A reflectivity map with flat areas, edges in several orientations and a point target."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    reflectivity = np.full(shape, 2.0)
    reflectivity[:, cols[0] >= shape[1] // 2] = 12.0
    reflectivity[rows + cols < shape[0] // 2] = 0.5
    reflectivity[(rows - shape[0] * 3 // 4) ** 2 + (cols - shape[1] // 4) ** 2 < 25] = 30.0
    row, col = shape[0] // 3, shape[1] // 3
    reflectivity[row - 1 : row + 2, col - 1 : col + 2] = 500.0
    return reflectivity


def run(name: str, image: np.ndarray, **overrides) -> np.ndarray:
    spec = FILTERS[name]
    return spec.function(image, **{**spec.defaults, **overrides})


# --- registry -------------------------------------------------------------------------------


def test_registry_holds_the_classical_filters():
    assert set(FILTERS) == {
        "boxcar",
        "median",
        "lee",
        "kuan",
        "enhanced-lee",
        "gamma-map",
        "frost",
        "refined-lee",
        "lee-sigma",
    }


@pytest.mark.parametrize("name", NAMES)
def test_spec_describes_its_function(name):
    spec = FILTERS[name]
    assert isinstance(spec, FilterSpec)
    assert spec.name == name
    assert spec.description and "\n" not in spec.description
    parameters = list(inspect.signature(spec.function).parameters.values())
    assert parameters[0].name == "intensity"
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters[1:])
    assert {p.name: p.default for p in parameters[1:]} == dict(spec.defaults)
    with pytest.raises(TypeError):
        spec.defaults["window_size"] = 99  # read-only


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("boxcar", {}, 1),
        ("lee", {"window_size": 9}, 4),
        ("frost", {"window_size": 5}, 2),
        ("refined-lee", {}, 3),
        ("refined-lee", {"window_size": 11}, 5),
        ("lee-sigma", {}, 4),
        ("lee-sigma", {"window_size": 3, "target_window_size": 5}, 2),
    ],
)
def test_halo_is_the_support_radius(name, params, expected):
    assert FILTERS[name].halo(params) == expected


# --- output contract ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_output_keeps_shape_is_float32_finite_positive(name, dtype):
    image = speckle(scene((37, 53)), seed=1).astype(dtype)
    before = image.copy()
    out = run(name, image)
    assert out.shape == image.shape
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out))
    assert np.all(out > 0)
    np.testing.assert_array_equal(image, before)  # input untouched


@pytest.mark.parametrize("name", NAMES)
def test_constant_image_is_kept(name):
    image = np.full((21, 26), 3.7, dtype=np.float32)
    np.testing.assert_allclose(run(name, image), 3.7, rtol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_single_look_speckle_keeps_radiometry_and_raises_enl(name):
    reflectivity = 5.0
    image = speckle(np.full((160, 160), reflectivity), seed=2)
    out = run(name, image).astype(np.float64)
    if name == "median":
        # The median of 9 Exp(R) samples has mean R·(1/5 + ... + 1/9): a known bias.
        expected = reflectivity * sum(1.0 / i for i in range(5, 10))
    else:
        expected = reflectivity
    assert out.mean() == pytest.approx(expected, rel=0.05)
    enl = out.mean() ** 2 / out.var()
    assert enl > 2.0


@pytest.mark.parametrize("name", [n for n in NAMES if n != "boxcar"])
def test_noise_free_step_edge_stays_sharper_than_boxcar(name):
    truth = np.ones((24, 32), dtype=np.float32)
    truth[:, 16:] = 10.0
    # A noise-free image is the limit of many looks.
    overrides = {"looks": 16.0} if "looks" in FILTERS[name].defaults else {}
    out = run(name, truth, **overrides)
    box = boxcar(truth, window_size=2 * FILTERS[name].halo(overrides) + 1)
    # Frost has no heterogeneity threshold: it only narrows its kernel at the edge.
    ratio = 0.75 if name == "frost" else 0.5
    assert np.abs(out - truth).sum() < ratio * np.abs(box - truth).sum()


@pytest.mark.parametrize("name", ["refined-lee", "lee-sigma"])
def test_speckled_step_edge_keeps_more_contrast_than_boxcar(name):
    truth = np.ones((128, 40))
    truth[:, 20:] = 10.0
    image = speckle(truth, seed=3)
    profile = run(name, image).mean(axis=0)
    box_profile = boxcar(image, window_size=7).mean(axis=0)
    # Contrast between the first bright and the last dark column (10 without any blur).
    assert profile[20] / profile[19] > 1.5 * (box_profile[20] / box_profile[19])


# --- tiling ---------------------------------------------------------------------------------

TILING_CASES = [(name, {}) for name in NAMES] + [
    ("lee", {"window_size": 9}),
    ("frost", {"window_size": 7}),
    ("refined-lee", {"window_size": 11}),
    ("lee-sigma", {"window_size": 3, "target_window_size": 5}),
    ("lee-sigma", {"looks": 2.0, "point_target_threshold": 40.0}),
]


@pytest.mark.parametrize(("name", "overrides"), TILING_CASES)
def test_tiles_overlapping_by_the_halo_reproduce_the_whole_image(name, overrides):
    image = speckle(scene((45, 61)), seed=4)
    whole = run(name, image, **overrides)
    halo = FILTERS[name].halo(overrides)
    tiled = np.zeros_like(whole)
    rows, cols = image.shape
    for top in range(0, rows, 16):
        for left in range(0, cols, 20):
            bottom, right = min(top + 16, rows), min(left + 20, cols)
            r0, c0 = max(top - halo, 0), max(left - halo, 0)
            r1, c1 = min(bottom + halo, rows), min(right + halo, cols)
            piece = run(name, image[r0:r1, c0:c1], **overrides)
            tiled[top:bottom, left:right] = piece[top - r0 : bottom - r0, left - c0 : right - c0]
    np.testing.assert_allclose(tiled, whole, rtol=1e-5, atol=0)


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_rejects_arrays_that_are_not_2d(name):
    with pytest.raises(InvalidInputError, match=r"expected \(rows, cols\)"):
        run(name, np.ones((2, 8, 8), dtype=np.float32))
    with pytest.raises(InvalidInputError, match=r"expected \(rows, cols\)"):
        run(name, np.ones(8, dtype=np.float32))


@pytest.mark.parametrize("dtype", [np.int32, np.uint16, np.complex64, np.bool_])
@pytest.mark.parametrize("name", NAMES)
def test_rejects_non_real_float_dtypes(name, dtype):
    with pytest.raises(InvalidInputError, match=r"expected \(rows, cols\).*got"):
        run(name, np.ones((8, 8), dtype=dtype))


@pytest.mark.parametrize("window_size", [4, 1, 0, -3, 2.0, True, "7"])
@pytest.mark.parametrize("name", NAMES)
def test_rejects_bad_window_sizes(name, window_size):
    with pytest.raises(InvalidInputError, match="window_size"):
        run(name, np.ones((8, 8), dtype=np.float32), window_size=window_size)


def test_refined_lee_needs_a_window_of_at_least_five():
    with pytest.raises(InvalidInputError, match="window_size >= 5"):
        refined_lee(np.ones((8, 8)), window_size=3)


@pytest.mark.parametrize("looks", [0, -1.0, math.nan, math.inf, None])
@pytest.mark.parametrize("name", WITH_LOOKS)
def test_rejects_bad_looks(name, looks):
    with pytest.raises(InvalidInputError, match="looks"):
        run(name, np.ones((8, 8), dtype=np.float32), looks=looks)


@pytest.mark.parametrize("damping_factor", [0, -1.0, math.nan])
@pytest.mark.parametrize("name", WITH_DAMPING)
def test_rejects_bad_damping_factors(name, damping_factor):
    with pytest.raises(InvalidInputError, match="damping_factor"):
        run(name, np.ones((8, 8), dtype=np.float32), damping_factor=damping_factor)


@pytest.mark.parametrize(
    "overrides",
    [
        {"sigma": 0.0},
        {"sigma": 1.0},
        {"sigma": 1.5},
        {"target_window_size": 4},
        {"target_window_size": 7},
        {"point_target_threshold": -1.0},
    ],
)
def test_lee_sigma_rejects_bad_options(overrides):
    with pytest.raises(InvalidInputError):
        lee_sigma(np.ones((8, 8)), **overrides)


# --- per-pixel references -------------------------------------------------------------------


def windows(image: np.ndarray, size: int):
    """Yield (row, col, window) with the filters' half-sample reflection at the borders."""
    radius = size // 2
    padded = np.pad(image.astype(np.float64), radius, mode="symmetric")
    for row in range(image.shape[0]):
        for col in range(image.shape[1]):
            yield row, col, padded[row : row + size, col : col + size]


def reference_mmse(pixel, values, noise_variation2):
    mean, variance = values.mean(), values.var()
    if variance == 0:
        return mean
    weight = (variance - mean**2 * noise_variation2) / (variance * (1 + noise_variation2))
    return mean + min(max(weight, 0.0), 1.0) * (pixel - mean)


@pytest.mark.parametrize(("window_size", "looks"), [(3, 1.0), (5, 2.0), (7, 4.5)])
def test_lee_matches_a_per_pixel_reference(window_size, looks):
    image = speckle(scene((12, 12)), looks=looks, seed=5)
    expected = np.empty(image.shape)
    for row, col, window in windows(image, window_size):
        mean, variance = window.mean(), window.var()
        gain = 0.0 if variance == 0 else min(max(1 - mean**2 / (looks * variance), 0.0), 1.0)
        expected[row, col] = mean + gain * (image[row, col] - mean)
    actual = lee(image, window_size=window_size, looks=looks)
    np.testing.assert_allclose(actual, expected, rtol=1e-6)


def reference_refined_lee(image, window_size, looks):
    side = {5: 3, 7: 3, 9: 5, 11: 5}[window_size]
    step = (window_size - side) // 2
    radius = window_size // 2
    ii, jj = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    halves = {
        "left": jj <= 0, "right": jj >= 0, "top": ii <= 0, "bottom": ii >= 0,
        "upper-left": ii + jj <= 0, "lower-right": ii + jj >= 0,
        "upper-right": jj >= ii, "lower-left": jj <= ii,
    }  # fmt: skip
    out = np.empty(image.shape)
    for row, col, window in windows(image, window_size):
        m = np.array(
            [[window[a * step : a * step + side, b * step : b * step + side].mean()
              for b in range(3)]
             for a in range(3)]
        )  # fmt: skip
        candidates = [  # (|gradient|, side whose subwindow is closer to the centre one)
            (abs(m[:, 2].sum() - m[:, 0].sum()),
             "left" if abs(m[1, 0] - m[1, 1]) <= abs(m[1, 2] - m[1, 1]) else "right"),
            (abs(m[2, :].sum() - m[0, :].sum()),
             "top" if abs(m[0, 1] - m[1, 1]) <= abs(m[2, 1] - m[1, 1]) else "bottom"),
            (abs(m[1, 2] + m[2, 2] + m[2, 1] - m[1, 0] - m[0, 0] - m[0, 1]),
             "upper-left" if abs(m[0, 0] - m[1, 1]) <= abs(m[2, 2] - m[1, 1]) else "lower-right"),
            (abs(m[0, 1] + m[0, 2] + m[1, 2] - m[1, 0] - m[2, 0] - m[2, 1]),
             "upper-right" if abs(m[0, 2] - m[1, 1]) <= abs(m[2, 0] - m[1, 1]) else "lower-left"),
        ]  # fmt: skip
        best = max(range(4), key=lambda k: (candidates[k][0], -k))
        values = window[halves[candidates[best][1]]]
        out[row, col] = reference_mmse(image[row, col], values, 1.0 / looks)
    return out


@pytest.mark.parametrize(("window_size", "looks"), [(7, 1.0), (5, 3.0), (9, 1.0)])
def test_refined_lee_matches_a_per_pixel_reference(window_size, looks):
    image = speckle(scene((12, 12)), looks=looks, seed=6)
    expected = reference_refined_lee(image, window_size, looks)
    actual = refined_lee(image, window_size=window_size, looks=looks)
    np.testing.assert_allclose(actual, expected, rtol=1e-6)


def reference_lee_sigma(image, *, looks, window_size, sigma, target_window_size):
    low, high, eta = sigma_range(looks=looks, sigma=sigma)
    bright_quantile = stats.gamma(looks, scale=1.0 / looks).ppf(0.98)
    image64 = image.astype(np.float64)
    radius = window_size // 2
    big = {(r, c): w for r, c, w in windows(image64, window_size)}
    small = {(r, c): w for r, c, w in windows(image64, target_window_size)}
    three = {(r, c): w for r, c, w in windows(image64, 3)}
    detected = np.zeros(image.shape)
    for (row, col), window in big.items():
        centre = window[radius - 1 : radius + 2, radius - 1 : radius + 2]
        if window.size > 9:
            surroundings = (window.sum() - centre.sum()) / (window.size - 9)
        else:
            surroundings = window.mean()
        bright = three[row, col] >= bright_quantile * surroundings
        detected[row, col] = np.count_nonzero(bright) >= 5
    near_target = {(r, c): w.any() for r, c, w in windows(detected, 3)}
    out = np.empty(image.shape)
    for (row, col), window in big.items():
        pixel = image64[row, col]
        if near_target[row, col]:
            out[row, col] = pixel
            continue
        prior = reference_mmse(pixel, small[row, col], 1.0 / looks)
        values = window[(window >= low * prior) & (window <= high * prior)]
        out[row, col] = reference_mmse(pixel, values, eta**2) if values.size else prior
    return out


@pytest.mark.parametrize(
    ("looks", "window_size", "sigma", "target_window_size"),
    [(1.0, 7, 0.9, 3), (2.0, 5, 0.7, 5), (3.5, 9, 0.5, 3)],
)
def test_lee_sigma_matches_a_per_pixel_reference(looks, window_size, sigma, target_window_size):
    image = speckle(scene((12, 12)), looks=looks, seed=7)
    options = dict(
        looks=looks, window_size=window_size, sigma=sigma, target_window_size=target_window_size
    )
    expected = reference_lee_sigma(image, **options)
    np.testing.assert_allclose(lee_sigma(image, **options), expected, rtol=1e-6)


# --- Lee sigma specifics --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sigma", "expected"),
    [(0.5, (0.694, 1.385, 0.1921)), (0.7, (0.560, 1.627, 0.2825)), (0.9, (0.378, 2.094, 0.3991))],
)
def test_sigma_range_matches_the_published_four_look_table(sigma, expected):
    low, high, eta = sigma_range(looks=4.0, sigma=sigma)
    assert low == pytest.approx(expected[0], abs=0.003)
    assert high == pytest.approx(expected[1], abs=0.006)
    assert eta == pytest.approx(expected[2], abs=0.001)


@pytest.mark.parametrize(("looks", "sigma"), [(1.0, 0.9), (1.7, 0.6), (12.0, 0.8)])
def test_sigma_range_holds_sigma_of_the_speckle_with_unit_mean(looks, sigma):
    low, high, eta = sigma_range(looks=looks, sigma=sigma)
    density = stats.gamma(looks, scale=1.0 / looks).pdf
    mass = integrate.quad(density, low, high)[0]
    mean = integrate.quad(lambda s: s * density(s), low, high)[0] / mass
    second = integrate.quad(lambda s: s * s * density(s), low, high)[0] / mass
    assert mass == pytest.approx(sigma, abs=1e-7)
    assert mean == pytest.approx(1.0, abs=1e-7)
    assert eta == pytest.approx(math.sqrt(second - mean**2), abs=1e-6)


def test_lee_sigma_keeps_point_targets_and_filters_around_them():
    reflectivity = np.ones((31, 31))
    reflectivity[14:17, 14:17] = 400.0
    image = speckle(reflectivity, seed=8)
    for threshold in (None, float(np.percentile(image, 98))):
        out = lee_sigma(image, point_target_threshold=threshold)
        np.testing.assert_array_equal(out[14:17, 14:17], image[14:17, 14:17])
        background = out[:8, :8]
        assert background.var() < 0.2 * image[:8, :8].var()
