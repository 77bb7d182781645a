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
            despeckle(image, method="boxcar", looks=looks, kind="intensity")
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
            despeckle(image, method="boxcar", looks=1, kind="intensity", tile=tile)
        with pytest.raises(UsageError, match="tile size"):
            despeckle_file(path, tmp_path / "out.npy", method="boxcar", looks=1, kind="intensity",
                           tile=tile)
    assert not (tmp_path / "out.npy").exists()


def test_an_input_without_valid_pixels_warns(image):
    with pytest.warns(UserWarning, match="no valid pixel"):
        out = despeckle(np.zeros((8, 8)), method="boxcar", looks=1, kind="intensity")
    assert np.isnan(out).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        despeckle(image, method="boxcar", looks=1, kind="intensity")


def test_an_empty_array_is_refused_without_a_warning_and_tiny_values_are_explained():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InvalidInputError, match="at least 1×1 pixels, got 0×0"):
            despeckle(np.ones((4, 4))[:0, :0], method="kuan", looks=1, kind="amplitude")
    amplitude = np.random.default_rng(0).rayleigh(1, (16, 16)) * 1e-30
    with pytest.warns(UserWarning, match="too small for float32"):
        assert np.isnan(despeckle(amplitude, method="kuan", looks=1, kind="amplitude")).all()


def test_first_calls_from_two_threads_both_find_the_methods():
    # In a fresh process: the registry is filled on first use, and two threads racing to it
    # must not see it half filled ("unknown method 'kuan'; available methods: ").
    import subprocess
    import sys

    code = """
import threading
import numpy as np
from sardespeckle import despeckle
image = np.random.default_rng(0).exponential(100, (32, 32))
barrier, errors = threading.Barrier(4), []
def work():
    barrier.wait()
    try:
        despeckle(image, method="kuan", looks=1, kind="intensity")
    except Exception as error:
        errors.append(repr(error))
threads = [threading.Thread(target=work) for _ in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
print(errors)
"""
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "[]", done.stdout


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
        despeckle(image, method="boxcar", looks=1, kind="intensity", progress=3)
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


def test_the_kind_of_an_array_is_given_or_told_by_its_values(image):
    from sardespeckle.errors import UnknownKindError

    amplitude = np.sqrt(image)
    # float data: amplitude and intensity cannot be told apart, so no silent default
    with pytest.raises(UnknownKindError, match="pass kind='intensity' or kind='amplitude'"):
        despeckle(amplitude, method="boxcar", looks=1)
    # a complex dtype is complex, an integer dtype amplitude, negative values dB (as for files)
    slc = amplitude * np.exp(1j * np.linspace(0, 6, amplitude.size).reshape(amplitude.shape))
    np.testing.assert_array_equal(despeckle(slc, method="boxcar", looks=1),
                                  despeckle(slc, method="boxcar", looks=1, kind="complex"))
    counts = np.round(100 * amplitude).astype(np.uint16)
    np.testing.assert_array_equal(despeckle(counts, method="boxcar", looks=1),
                                  despeckle(counts, method="boxcar", looks=1, kind="amplitude"))
    db = 10 * np.log10(image) - 3
    np.testing.assert_array_equal(despeckle(db, method="boxcar", looks=1),
                                  despeckle(db, method="boxcar", looks=1, kind="db"))


def test_masked_values_are_never_read(image):
    """rasterio's read(masked=True) hides fills such as -9999 or 1e30 under the mask: they are
    nodata, not negative or huge values to refuse."""
    expected = despeckle(np.where(np.arange(16)[:, None] < 3, np.nan, image), method="lee",
                         looks=1, kind="intensity")
    for fill in (-9999.0, 1e30):
        filled = image.copy()
        filled[:3] = fill
        got = despeckle(np.ma.masked_equal(filled, fill), method="lee", looks=1,
                        kind="intensity")
        np.testing.assert_array_equal(got, expected)
    assert np.isnan(expected[:3]).all() and np.isfinite(expected[3:]).all()


def test_networks_leave_the_callers_torch_random_stream_alone(image):
    import torch

    torch.manual_seed(0)
    first = torch.rand(3)
    torch.manual_seed(0)
    despeckle(np.tile(image, (2, 2)), method="sarcnn", looks=1, kind="intensity")
    assert torch.equal(torch.rand(3), first)


def test_weights_must_be_a_name_or_a_path(image):
    import torch

    from sardespeckle.errors import WeightsError

    with pytest.raises(WeightsError, match="got Linear .*save_weights"):
        despeckle(image, method="sarcnn", looks=1, kind="intensity",
                  params={"weights": torch.nn.Linear(2, 2)})


def test_the_package_lists_its_entry_points_and_ships_its_type_hints():
    import pathlib

    import sardespeckle

    assert {"despeckle", "despeckle_file"} <= set(dir(sardespeckle))
    assert (pathlib.Path(sardespeckle.__file__).parent / "py.typed").is_file()


def test_masked_integer_arrays_are_amplitude_like_unmasked_ones():
    counts = np.random.default_rng(2).integers(50, 3000, (24, 24)).astype(np.int16)
    filled = counts.copy()
    filled[:3] = -9999
    masked = np.ma.masked_equal(filled, -9999)
    got = despeckle(masked, method="lee", looks=1)  # no kind: integers are amplitude
    expected = despeckle(np.where(np.arange(24)[:, None] < 3, np.nan, counts.astype(float)),
                         method="lee", looks=1, kind="amplitude")
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_a_few_negative_values_do_not_decide_db():
    """Mostly positive data with a few negative pixels may be σ⁰ after thermal-noise removal
    or dB above 0: without a kind it is refused, saying both; more negatives are dB when they
    reach dB depths, not when they all stay within a unit of 0 (thermal-noise negatives)."""
    from sardespeckle.errors import UnknownKindError

    values = np.random.default_rng(3).exponential(1.0, (20, 20))
    values[:1] = -0.01  # 5 %
    with pytest.raises(UnknownKindError, match="a few values are negative \\(5 %\\).*kind='db'"):
        despeckle(values, method="boxcar", looks=1)
    values[:4] = -0.01  # 20 %, but all within a hundredth of 0: thermal-noise negatives?
    with pytest.raises(UnknownKindError, match="20 % of the values are negative.*all within"):
        despeckle(values, method="boxcar", looks=1)
    values[:4] = -np.random.default_rng(4).exponential(5.0, (4, 20))  # 20 %, dB deep: dB
    np.testing.assert_array_equal(despeckle(values, method="boxcar", looks=1),
                                  despeckle(values, method="boxcar", looks=1, kind="db"))


def test_complex_kind_for_real_parts_says_how_to_make_complex_in_python():
    import numpy as np
    import pytest

    from sardespeckle import despeckle
    from sardespeckle.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match=r"re \+ 1j \* im") as error:
        despeckle(np.ones((32, 32), np.float32), method="kuan", looks=1, kind="complex")
    assert "--complex-layout" not in str(error.value)


def test_python_callers_are_told_the_python_spelling():
    import numpy as np
    import pytest
    import torch

    from sardespeckle import despeckle
    from sardespeckle.errors import UsageError

    image = np.random.default_rng(0).exponential(1.0, (32, 32)).astype(np.float32)
    with pytest.raises(UsageError, match="use method 'sarcnn' with weights='sarcnn-s1-l1-v3'"):
        despeckle(image, method="mulog", looks=1, kind="intensity",
                  params={"denoiser": "sarcnn-s1-l1-v3"})
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="use device 'cpu' or 'auto'"):
            despeckle(image, method="sarcnn", looks=1, kind="intensity",
                      params={"device": "cuda"})


def test_a_registry_load_that_fails_midway_leaves_no_half_registry(monkeypatch):
    from sardespeckle import methods

    monkeypatch.setattr(methods, "_loaded", False)
    monkeypatch.setattr(methods, "_REGISTRY", {})

    def broken():
        raise KeyboardInterrupt  # a Ctrl-C while the MuLoG module imports, say

    real = methods._register_mulog
    monkeypatch.setattr(methods, "_register_mulog", broken)
    with pytest.raises(KeyboardInterrupt):
        get_method("lee")
    assert methods._REGISTRY == {} and not methods._loaded
    monkeypatch.setattr(methods, "_register_mulog", real)
    assert get_method("lee").name == "lee" and get_method("mulog").name == "mulog"
