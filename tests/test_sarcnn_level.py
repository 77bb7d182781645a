"""SAR-CNN's scene level: the input is brought to the level the network was trained at, so the
result scales with the input (calibrated σ⁰ and digital numbers alike)."""

import numpy as np
import pytest

from _random_dncnn import random_network
from sardespeckle.api import despeckle, plan_run
from sardespeckle.errors import InvalidInputError, UsageError
from sardespeckle.io import open_source
from sardespeckle.methods import build_method
from sardespeckle.models.sarcnn import SCENE_LEVEL, SarCnnDenoiser, scene_level
from sardespeckle.speckle import add_speckle


def scene(seed=0, shape=(96, 80)):
    """Single-look intensity of a field with an edge and a bright square, mean ≈ 100."""
    clean = np.full(shape, 60.0)
    clean[:, shape[1] // 2:] = 150.0
    clean[30:40, 10:20] = 2000.0
    return add_speckle(clean, 1.0, seed=seed).astype(np.float64)


def test_scene_level_is_the_median_of_the_usable_intensities():
    values = np.array([[1.0, 2.0, 3.0], [np.nan, 0.0, 100.0]])
    assert scene_level(values) == 2.5  # median of 1, 2, 3, 100
    valid = np.array([[True, True, True], [True, True, False]])
    assert scene_level(values, valid) == 2.0
    with pytest.raises(InvalidInputError, match="scene level"):
        scene_level(np.zeros((4, 4)))


def test_the_level_scales_the_input_to_the_training_level_and_back():
    network = random_network(3)
    y = scene()
    plain = SarCnnDenoiser(network)(y)
    # A scene already at SCENE_LEVEL is not moved: the same output as without a level.
    np.testing.assert_array_equal(SarCnnDenoiser(network, level=SCENE_LEVEL)(y), plain)
    # Given its own level, a scene at any scale gives that scale times the same estimate.
    at_level = SarCnnDenoiser(network, level=scene_level(y))(y)
    for c in (1e-6, 3.7e-3, 1e4):
        scaled = SarCnnDenoiser(network, level=scene_level(c * y))(c * y)
        np.testing.assert_allclose(scaled / c, at_level, rtol=2e-5)
    # and the random network is not scale-invariant by itself (so the above is not vacuous)
    assert np.max(np.abs(SarCnnDenoiser(network)(1e-6 * y) / 1e-6 / plain - 1)) > 0.05
    # The ensemble and the level compose.
    ensemble = SarCnnDenoiser(network, level=scene_level(y), ensemble=8)
    np.testing.assert_allclose(SarCnnDenoiser(network, level=1e-3 * scene_level(y), ensemble=8)(1e-3 * y)
                               / 1e-3, ensemble(y), rtol=2e-5)


@pytest.mark.parametrize("level", [0.0, -1.0, float("nan"), float("inf"), True, "1"])
def test_the_denoiser_refuses_a_bad_level(level):
    with pytest.raises(UsageError, match="level"):
        SarCnnDenoiser(random_network(1, depth=3), level=level)


def test_the_shipped_weights_keep_the_scale_of_the_input():
    # Calibrated σ⁰ (1e-4 … 1) and digital numbers: one result up to the scale.
    y = scene(seed=4)
    reference = despeckle(y.astype(np.float32), method="sarcnn", looks=1, params={"precision": "fp32"})
    for c in (1e-6, 1e-3, 1e3):
        out = despeckle((c * y).astype(np.float32), method="sarcnn", looks=1,
                        params={"precision": "fp32"}) / c
        np.testing.assert_allclose(out, reference, rtol=1e-4)
    # Without the level, the network alone drifts at σ⁰ scale (what the level is for).
    raw = despeckle((1e-6 * y).astype(np.float32), method="sarcnn", looks=1,
                    params={"precision": "fp32", "level": "none"}) / 1e-6
    assert np.max(np.abs(raw / reference - 1)) > 0.05


@pytest.mark.parametrize("value, expected", [("auto", "none"), ("none", "none"), (250.0, 250.0),
                                             ("250", 250.0)])
def test_build_method_records_the_level_it_runs_with(value, expected):
    built = build_method("sarcnn", looks=1.0, params={"level": value, "precision": "fp32"})
    # "auto" is resolved from the input by the API; unresolved it means none.
    assert built.parameters["level"] == expected
    again = build_method("sarcnn", looks=1.0, params=built.parameters)
    assert again.parameters == built.parameters


@pytest.mark.parametrize("value", [0, -5.0, "abc", float("nan"), True])
def test_build_method_refuses_a_bad_level(value):
    with pytest.raises(UsageError, match="expected level to be 'auto', 'none' or an intensity > 0"):
        build_method("sarcnn", looks=1.0, params={"level": value, "precision": "fp32"})


def test_a_run_measures_the_level_on_the_central_window_and_records_it(tmp_path):
    y = scene(seed=5, shape=(64, 64)).astype(np.float32)
    path = tmp_path / "scene.npy"
    np.save(path, y)
    with open_source(str(path), kind="intensity") as source:
        plan = plan_run(source, looks=1.0, params={"precision": "fp32"})
        given = plan_run(source, looks=1.0, params={"precision": "fp32", "level": 40})
    assert plan.built.parameters["level"] == pytest.approx(scene_level(y))
    assert '"level": ' in plan.tags["SARDESPECKLE_PARAMETERS"]
    assert given.built.parameters["level"] == 40.0
    # The in-memory API measures the same window, so file and array runs agree.
    with open_source(str(path), kind="intensity") as source:
        assert plan_run(source, looks=1.0).built.parameters["level"] == pytest.approx(scene_level(y))


def test_a_central_window_without_valid_pixels_takes_the_intensities_as_given(tmp_path):
    # Valid pixels only at the left end of a 1100-px wide scene: the central 1024 columns are
    # nodata, so there is no level to measure; the run goes on with level none, and says so.
    y = np.full((8, 1100), np.nan, np.float32)
    y[:, :30] = scene(seed=6, shape=(8, 30))
    out = despeckle(y, method="sarcnn", looks=1, params={"precision": "fp32"})
    given = despeckle(y, method="sarcnn", looks=1, params={"precision": "fp32", "level": "none"})
    np.testing.assert_array_equal(out, given)
    assert np.isfinite(out[:, :30]).all() and np.isnan(out[:, 30:]).all()
    path = tmp_path / "edge.npy"
    np.save(path, y)
    with open_source(str(path), kind="intensity") as source:
        assert plan_run(source, looks=1.0).built.parameters["level"] == "none"
