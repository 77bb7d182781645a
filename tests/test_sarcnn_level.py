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
    reference = despeckle(y.astype(np.float32), method="sarcnn", looks=1, kind="intensity", params={"precision": "fp32"})
    for c in (1e-6, 1e-3, 1e3):
        out = despeckle((c * y).astype(np.float32), method="sarcnn", looks=1, kind="intensity",
                        params={"precision": "fp32"}) / c
        np.testing.assert_allclose(out, reference, rtol=1e-4)
    # Without the level, the network alone drifts at σ⁰ scale (what the level is for).
    raw = despeckle((1e-6 * y).astype(np.float32), method="sarcnn", looks=1, kind="intensity",
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
    out = despeckle(y, method="sarcnn", looks=1, kind="intensity", params={"precision": "fp32"})
    given = despeckle(y, method="sarcnn", looks=1, kind="intensity", params={"precision": "fp32", "level": "none"})
    np.testing.assert_array_equal(out, given)
    assert np.isfinite(out[:, :30]).all() and np.isnan(out[:, 30:]).all()
    path = tmp_path / "edge.npy"
    np.save(path, y)
    with open_source(str(path), kind="intensity") as source:
        assert plan_run(source, looks=1.0).built.parameters["level"] == "none"


def test_user_weights_record_their_training_level_and_auto_brings_scenes_there(tmp_path,
                                                                             reference_file):
    # Weights trained on calibrated-σ⁰-like references (median ≈ 0.005): level=auto must bring
    # a scene to that level, not to the shipped weights' SCENE_LEVEL.
    from _tiny_training import tiny_train_values

    from sardespeckle.models.weights import load_weights
    from sardespeckle.training import TrainConfig, train

    sigma0 = tmp_path / "sigma0.npy"
    clean = np.load(reference_file) * 1e-5
    np.save(sigma0, clean)
    np.save(tmp_path / "val.npy", clean[:32, :32])
    config = TrainConfig.from_dict(tiny_train_values(sigma0, depth=4, features=8, batch_size=4,
                                                     steps=2, validate_every=2))
    weights = train(config, tmp_path / "run").weights_path
    _, meta = load_weights(weights)
    assert meta["training_level"] == pytest.approx(float(np.median(clean)), rel=1e-6)
    with_gains = TrainConfig.from_dict(tiny_train_values(sigma0, depth=4, features=8, batch_size=4,
                                                         steps=2, validate_every=2,
                                                         gain_range=[0.01, 100.0]))
    _, meta_gains = load_weights(train(with_gains, tmp_path / "gains").weights_path)
    assert meta_gains["training_level"] == pytest.approx(float(np.median(clean)), rel=1e-6)

    noisy = add_speckle(clean, 1, rng=np.random.default_rng(1)).astype(np.float32)
    as_trained = SarCnnDenoiser.from_weights(str(weights), level=None)(noisy)
    assert SarCnnDenoiser.from_weights(str(weights)).training_level == meta["training_level"]
    at_level = SarCnnDenoiser.from_weights(str(weights), level=meta["training_level"])(noisy)
    np.testing.assert_allclose(at_level, as_trained, rtol=1e-5)
    # Through the method with level=auto the scene goes to the training level, much nearer to
    # the levels the network saw than the shipped weights' SCENE_LEVEL, where it went before.
    auto = despeckle(noisy, method="sarcnn", looks=1, kind="intensity",
                     params={"weights": str(weights), "precision": "fp32"})
    network, _ = load_weights(weights)
    at_scene_level = SarCnnDenoiser(network, level=scene_level(noisy),
                                    training_level=SCENE_LEVEL)(noisy)
    assert (np.abs(np.log(auto / as_trained)).mean()
            < 0.5 * np.abs(np.log(at_scene_level / as_trained)).mean())


def test_training_level_is_checked(tmp_path):
    from sardespeckle.models.weights import save_weights

    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(InvalidInputError, match="training_level"):
            save_weights(random_network(0), tmp_path / "w.pt", training_level=bad)
    with pytest.raises(InvalidInputError, match="training_level only for SAR-CNN"):
        save_weights(random_network(0), tmp_path / "g.pt", domain="gaussian-01",
                     trained_sigma=0.1, training_level=5.0)
    with pytest.raises(UsageError, match="training_level"):
        SarCnnDenoiser(random_network(0), training_level=0.0)


def test_speckle_band_of_weights_is_checked_on_save_and_on_load(tmp_path):
    import torch

    from sardespeckle.errors import WeightsError
    from sardespeckle.models.weights import (load_weights, save_weights,
                                             trained_on_correlated_speckle)

    for band, share in (((0.0, 0.5), 1.0), ((0.8, 0.6), 1.0), ((0.5, 1.5), 1.0), ((0.5, 0.9), 2.0)):
        with pytest.raises(InvalidInputError, match="speckle_band"):
            save_weights(random_network(0), tmp_path / "w.pt", speckle_band=band,
                         speckle_band_share=share)
    with pytest.raises(InvalidInputError, match="speckle_band only for SAR-CNN"):
        save_weights(random_network(0), tmp_path / "g.pt", domain="gaussian-01",
                     trained_sigma=0.1, speckle_band=(0.6, 0.8))
    save_weights(random_network(0), tmp_path / "c.pt", speckle_band=(0.6, 0.8))
    meta = load_weights(tmp_path / "c.pt")[1]
    assert meta["speckle_band"] == [0.6, 0.8] and meta["speckle_band_share"] == 1.0
    assert trained_on_correlated_speckle(meta)
    assert not trained_on_correlated_speckle({**meta, "speckle_band_share": 0.0})
    # A file whose record was tampered with is refused when loaded.
    payload = torch.load(tmp_path / "c.pt", weights_only=True)
    payload["meta"]["speckle_band"] = [0.9, "x"]
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(WeightsError, match="speckle_band"):
        load_weights(tmp_path / "bad.pt")
