"""One conformance suite applied to every registered method.

Whatever its family, a method built from the registry must honour the contract of
``docs/architecture.md``: float32 in the input's shape, finite positive values out of finite
positive values in, masked pixels kept masked without spreading, tiled output equal to the
whole-image output, the same output for the same input, and clear errors on bad input.

A method that cannot be built with its defaults because no weights are installed (a network) is
run on small seeded random weights when it takes a ``weights`` file: the contract is about the
plumbing, not the quality. When even that fails, it is skipped with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from sardespeckle.api import despeckle
from sardespeckle.errors import InvalidInputError, SardespeckleError, WeightsError
from sardespeckle.methods import BuiltMethod, build_method, get_method, list_methods

SHAPE = (70, 90)
METHODS = [spec.name for spec in list_methods()]

#: Overrides applied, when a method has these parameters, to run it on random weights: exact
#: float32 arithmetic on the CPU, and no input-dependent decorrelation (a separate concern).
RANDOM_WEIGHTS_OVERRIDES = {"precision": "fp32", "device": "cpu", "decorrelate": "none"}


@dataclass(frozen=True)
class Case:
    """A method under test: its name, family, the parameters it is run with, and it built."""

    name: str
    family: str
    built: BuiltMethod
    params: dict = field(default_factory=dict)

    def run(self, data, *, kind="intensity", tile=512, looks=1):
        return despeckle(data, method=self.name, looks=looks, kind=kind, tile=tile,
                         params=self.params)


_CASES: dict[str, Case | str] = {}


def random_weights_file(folder: Path) -> Path:
    """A small DnCNN with seeded random weights, saved in the package's weights format."""
    path = folder / "conformance-random.pt"
    if not path.exists():
        import torch

        from sardespeckle.models import DnCNN, save_weights

        torch.manual_seed(0)
        network = DnCNN(depth=5, features=8).eval()
        save_weights(network, path, name="conformance-random", training_data="none (random)")
    return path


def make_case(name: str, folder: Path) -> Case | str:
    """The method built with its defaults for one look; a method that has no weights here gets
    small random ones when it takes a ``weights`` file. A string says why it cannot be built."""
    spec = get_method(name)
    if "denoiser" in spec.defaults:
        # MuLoG: its default denoiser, BM3D, is a binary library whose output changes from call
        # to call (up to 0.011 on its 8-bit scale for the same input, measured with one thread),
        # which MuLoG's iterations amplify; the contract is about the plumbing, so it is checked
        # with a deterministic Gaussian denoiser (the seam error with BM3D is measured in
        # benchmarks/bench_mulog.py).
        from sardespeckle.mulog import gaussian_filter_denoiser

        params = {"denoiser": gaussian_filter_denoiser(width=1.5)}
        return Case(name, spec.family, build_method(name, looks=1, params=params), params)
    # Networks run in fp32 here: their default precision on a CPU with native bf16 is bf16, whose
    # roundings turn last-bit input differences (an intensity recomputed from dB) into output
    # differences of the size of bf16's own error, which is measured elsewhere
    # (tests/test_shipped_weights.py, benchmarks/bench_sarcnn.py); the contract is the plumbing.
    defaults = {"precision": "fp32"} if "precision" in spec.defaults else {}
    try:
        return Case(name, spec.family, build_method(name, looks=1, params=defaults), defaults)
    except WeightsError as error:
        reason = f"{name}: no usable weights here ({error})"
    if "weights" not in spec.defaults:
        return reason
    try:
        params = {"weights": str(random_weights_file(folder))}
        params.update({k: v for k, v in RANDOM_WEIGHTS_OVERRIDES.items() if k in spec.defaults})
        return Case(name, spec.family, build_method(name, looks=1, params=params), params)
    except Exception as error:  # noqa: BLE001 - any failure here means: cannot test it here
        return f"{reason}; random weights failed too: {type(error).__name__}: {error}"


@pytest.fixture(params=METHODS)
def method(request, tmp_path_factory) -> Case:
    name = request.param
    if name not in _CASES:
        _CASES[name] = make_case(name, tmp_path_factory.mktemp("weights"))
    case = _CASES[name]
    if isinstance(case, str):
        pytest.skip(case)
    return case


def tolerance(case: Case, *, masked: bool = False) -> dict:
    """How close the tiled output must be to the whole-image output.

    Networks may differ by float32 rounding (rtol 1e-5). Classical filters are bit-exact on
    fully valid images. Next to masked pixels they may differ by one float32 ulp: the engine fills
    masked pixels with box means from ``scipy.ndimage.uniform_filter``, a running sum whose last
    float64 bits depend on where the (tile's) array starts, and the float32 cast of the fill can
    then round the other way (seen: 6e-8 relative, boxcar/lee next to a hole).
    """
    if case.family != "filter":
        return {"rtol": 1e-5, "atol": 0.0}
    return {"rtol": 1e-6 if masked else 0.0, "atol": 0.0}


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """70×90 single-look intensity: two regions, a dark square, a bright point, an edge."""
    rng = np.random.default_rng(2024)
    reflectivity = np.full(SHAPE, 40.0)
    reflectivity[:, 45:] = 160.0
    reflectivity[15:35, 10:30] = 8.0
    reflectivity[52, 70] = 4000.0
    return (reflectivity * rng.exponential(1.0, SHAPE)).astype(np.float32)


@pytest.fixture(scope="module")
def holed(scene) -> np.ndarray:
    """The scene with a NaN block straddling the region edge and a NaN row at the border."""
    image = scene.copy()
    image[30:42, 40:55] = np.nan
    image[-1, :20] = np.nan
    return image


def hole_mask(image: np.ndarray) -> np.ndarray:
    return ~np.isfinite(image)


def test_registered_with_a_halo_and_parameters(method):
    built = method.built
    assert callable(built.function)
    assert isinstance(built.halo, int) and built.halo >= 0
    assert set(built.parameters) == set(get_method(method.name).defaults)


def test_shape_dtype_and_positivity(method, scene):
    out = np.asarray(method.built.function(scene.copy()))
    assert out.shape == scene.shape and out.dtype == np.float32
    assert np.isfinite(out).all() and (out > 0).all()
    via_api = method.run(scene.astype(np.float64))
    assert via_api.shape == scene.shape and via_api.dtype == np.float32
    assert np.isfinite(via_api).all() and (via_api > 0).all()


def test_input_is_not_modified(method, scene):
    image = scene.copy()
    method.built.function(image)
    np.testing.assert_array_equal(image, scene)


def test_nodata_kept_and_not_spreading(method, holed):
    out = method.run(holed)
    masked = hole_mask(holed)
    assert np.isnan(out[masked]).all()
    assert np.isfinite(out[~masked]).all() and (out[~masked] > 0).all()


def test_masked_values_do_not_matter(method, holed):
    # A masked pixel is masked whatever it holds (NaN, inf, zero): same output everywhere.
    masked = hole_mask(holed)
    reference = method.run(holed)
    for fill in (np.inf, 0.0):
        out = method.run(np.where(masked, fill, holed).astype(np.float32))
        np.testing.assert_array_equal(out, reference, err_msg=f"masked pixels = {fill}")


@pytest.mark.parametrize("tile", [24, 57])
def test_tiled_equals_whole_image(method, tile, scene, holed):
    for image, masked in ((scene, False), (holed, True)):
        whole = method.run(image, tile=None)
        tiled = method.run(image, tile=tile)
        np.testing.assert_array_equal(np.isnan(tiled), np.isnan(whole))
        np.testing.assert_allclose(tiled, whole, equal_nan=True, **tolerance(method, masked=masked))


def test_deterministic(method, holed):
    first = method.run(holed.copy(), tile=32)
    second = method.run(holed.copy(), tile=32)
    np.testing.assert_array_equal(first, second)


def test_kinds_round_trip(method, scene):
    # The method works on intensity whatever the kind: amplitude and dB outputs are the
    # intensity output converted.
    intensity = method.run(scene).astype(np.float64)
    amplitude = method.run(np.sqrt(scene), kind="amplitude")
    db = method.run(10 * np.log10(scene), kind="db")
    np.testing.assert_allclose(amplitude.astype(np.float64) ** 2, intensity, rtol=1e-4)
    np.testing.assert_allclose(10 ** (db.astype(np.float64) / 10), intensity, rtol=1e-4)


def test_bad_inputs(method, scene):
    with pytest.raises(InvalidInputError, match="2-D"):
        method.run(np.ones((2, *SHAPE), np.float32))
    complex_data = (np.sqrt(scene) * np.exp(1j * 0.3)).astype(np.complex64)
    with pytest.raises(SardespeckleError, match="complex"):
        method.run(complex_data)
    with pytest.raises(SardespeckleError, match="looks"):
        method.run(scene, looks=0)
    # Documented: masked pixels come back as NaN, so an all-masked image gives all NaN (and a
    # warning says so).
    with pytest.warns(UserWarning, match="no valid pixel"):
        out = method.run(np.full(SHAPE, np.nan, np.float32))
    assert out.shape == SHAPE and out.dtype == np.float32 and np.isnan(out).all()
