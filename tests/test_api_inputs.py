"""Bad inputs to the Python API: sardespeckle errors with clear messages, never a bare numpy
error or a silent wrong result (found by an audit of the public functions)."""

import warnings

import numpy as np
import pytest

from sardespeckle.api import despeckle
from sardespeckle.errors import InvalidInputError, UsageError
from sardespeckle.filters import boxcar, frost, lee, refined_lee
from sardespeckle.methods import build_method, get_method


@pytest.fixture
def image():
    return np.random.default_rng(0).gamma(1.0, 1.0, (16, 16)) + 0.1


@pytest.mark.parametrize("filter_fn", [boxcar, lee, frost, refined_lee])
def test_filters_refuse_values_they_cannot_use(filter_fn, image):
    for value in (np.nan, np.inf, 0.0, -5.0):
        bad = image.copy()
        bad[4, 4] = value
        with pytest.raises(InvalidInputError, match="finite intensities > 0"):
            filter_fn(bad)
    with pytest.raises(InvalidInputError, match="non-empty"):
        filter_fn(np.zeros((0, 0)))
    with pytest.raises(InvalidInputError, match="float32 or float64"):
        filter_fn(image.astype(np.float16))
    # What the engine hands them (valid pixels only) still works, float32 too.
    assert filter_fn(image.astype(np.float32)).shape == image.shape


def test_looks_method_and_params_are_checked(image):
    for looks in ("1", True, None, 0, -1, float("nan")):
        with pytest.raises(UsageError, match="looks"):
            despeckle(image, method="boxcar", looks=looks)
        with pytest.raises(UsageError, match="looks"):
            build_method("boxcar", looks=looks)
    with pytest.raises(UsageError, match="unknown method"):
        get_method(["boxcar"])
    with pytest.raises(UsageError, match="params as a mapping"):
        build_method("lee", looks=1, params="window_size=3")


def test_tile_sizes_are_integers(image, tmp_path):
    from sardespeckle.api import despeckle_file

    path = tmp_path / "in.npy"
    np.save(path, image.astype(np.float32))
    for tile in (float("nan"), 2.5, "16", True, 0, -1):
        with pytest.raises(UsageError, match="tile size"):
            despeckle(image, method="boxcar", looks=1, tile=tile)
        with pytest.raises(UsageError, match="tile size"):
            despeckle_file(path, tmp_path / "out.npy", method="boxcar", looks=1, kind="intensity",
                           tile=tile)
    assert not (tmp_path / "out.npy").exists()


def test_an_input_without_valid_pixels_warns(image):
    with pytest.warns(UserWarning, match="no valid pixel"):
        out = despeckle(np.zeros((8, 8)), method="boxcar", looks=1)
    assert np.isnan(out).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        despeckle(image, method="boxcar", looks=1)


def test_metrics_seeds_and_byte_order():
    from sardespeckle.metrics import psnr_amplitude
    from sardespeckle.mulog import gaussian_filter_denoiser, mulog
    from sardespeckle.speckle import simulate_speckle

    with pytest.raises(InvalidInputError, match="non-negative estimated amplitude"):
        psnr_amplitude(np.ones((8, 8)), -np.ones((8, 8)))
    with pytest.raises(InvalidInputError, match="seed"):
        simulate_speckle((4, 4), 1, seed=-1)
    noisy = np.random.default_rng(1).gamma(1.0, 1.0, (16, 16)).astype(">f4")
    out = mulog(noisy, looks=1, denoiser=gaussian_filter_denoiser(), iterations=1)
    assert out.dtype == np.float32
    with pytest.raises(UsageError, match="beta0"):
        mulog(noisy, looks=1, denoiser=gaussian_filter_denoiser(), iterations=1, beta0=True)


def test_covariance_and_stack_inputs_are_checked():
    from sardespeckle.mulog import gaussian_filter_denoiser, mulog_covariance
    from sardespeckle.references import build_reference

    field = np.zeros((8, 8, 2, 2), complex)
    field[..., 0, 0] = field[..., 1, 1] = 1.0
    field[..., 0, 1] = 5.0  # and C[..., 1, 0] = 0: not a covariance
    with pytest.raises(InvalidInputError, match="expected Hermitian covariance matrices"):
        mulog_covariance(field, looks=1, denoiser=gaussian_filter_denoiser(), iterations=1)
    field[..., 0, 1], field[..., 1, 0] = 0.3 + 0.1j, 0.3 - 0.1j
    out = mulog_covariance(field, looks=1, denoiser=gaussian_filter_denoiser(), iterations=1)
    assert out.shape == field.shape
    for stack in (np.zeros((3, 8, 8)), np.full((3, 8, 8), np.nan)):
        with pytest.raises(InvalidInputError, match="expected a stack with valid pixels"):
            build_reference(stack, looks=1)


def test_paths_callbacks_and_boxes_are_checked(image, tmp_path):
    from sardespeckle.api import despeckle_file
    from sardespeckle.metrics import enl

    for path in (None, 3):
        with pytest.raises(UsageError, match="expected a file path"):
            despeckle_file(path, tmp_path / "out.npy", method="boxcar", looks=1)
    with pytest.raises(UsageError, match="expected progress as a function"):
        despeckle(image, method="boxcar", looks=1, progress=3)
    with pytest.raises(InvalidInputError, match="the window size is the keyword window="):
        enl(image, 5)


def test_mulog_denoiser_signature_and_callback_are_checked_before_work(image):
    from sardespeckle.mulog import gaussian_filter_denoiser, mulog, mulog_covariance

    calls = []

    def one_argument(v):
        calls.append(v)
        return v

    with pytest.raises(UsageError, match=r"two positional arguments f\(v, sigma\).*one_argument"):
        mulog(image, looks=1, denoiser=one_argument)
    assert calls == []  # refused before the first call
    with pytest.raises(UsageError, match="callback must be a function"):
        mulog(image, looks=1, denoiser=gaussian_filter_denoiser(), callback=3)
    field = np.zeros((8, 8, 2, 2), complex)
    field[..., 0, 0] = field[..., 1, 1] = 1.0
    with pytest.raises(UsageError, match="callback must be a function"):
        mulog_covariance(field, looks=1, denoiser=gaussian_filter_denoiser(), callback="x")
    # Denoisers with defaults, *args or keyword extras still pass the check.
    for fine in (lambda v, sigma, extra=1: v, lambda *args: args[0], lambda v, s, **kw: v):
        assert mulog(image, looks=1, denoiser=fine, iterations=1).shape == image.shape


def test_the_entry_points_are_importable_from_the_package(image):
    import sardespeckle
    from sardespeckle import api

    assert sardespeckle.despeckle is api.despeckle
    assert sardespeckle.despeckle_file is api.despeckle_file
    from sardespeckle import despeckle as top_level

    np.testing.assert_array_equal(top_level(image, method="kuan", looks=1, kind="intensity"),
                                  despeckle(image, method="kuan", looks=1, kind="intensity"))
    with pytest.raises(AttributeError, match="no attribute 'despeckel'"):
        sardespeckle.despeckel  # noqa: B018
