"""Gaussian-denoiser training (MuLoG's DnCNNs): data, configs, a tiny run, resume, weights."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sardespeckle.errors import InputFileError, InvalidInputError, UsageError, WeightsError
from sardespeckle.training import (
    GaussianPatchSampler,
    ReferenceSpec,
    TrainConfig,
    UnitImage,
    export_weights,
    load_unit_images,
    log_image_to_unit,
    train,
)
from sardespeckle.training.gaussian import (
    GaussianValidator,
    LogScalePatchSampler,
    centred_log_image,
    noisy_draw,
    source_paths,
    unit_psnr,
    validation_log_sigma,
)

ROOT = Path(__file__).resolve().parents[1]


def blocks(seed, shape=(48, 48)):
    """A piecewise-constant 8-bit grey scene: a background and four rectangles."""
    rng = np.random.default_rng(seed)
    image = np.full(shape, rng.uniform(0.2, 0.8))
    for _ in range(4):
        row, col = rng.integers(0, shape[0] - 8, 2)
        height, width = rng.integers(8, 24, 2)
        image[row:row + height, col:col + width] = rng.uniform(0, 1)
    return (image * 255).round().astype(np.uint8)


@pytest.fixture
def image_dirs(tmp_path):
    for folder, seeds in (("train", range(4)), ("val", (100, 101))):
        (tmp_path / folder).mkdir()
        for seed in seeds:
            Image.fromarray(blocks(seed)).save(tmp_path / folder / f"{seed:03d}.png")
    return tmp_path


def tiny_config(image_dirs, **overrides):
    values = dict(task="gaussian", references=[{"path": str(image_dirs / "train"), "kind": "grey"}],
                  validation=[{"path": str(image_dirs / "val" / "*.png"), "kind": "grey"}],
                  sigma_range=[0.05, 0.15], depth=4, features=8, patch_size=16, batch_size=4,
                  steps=6, threads=1, precision="fp32", validate_every=3, checkpoint_every=1,
                  log_every=1, seed=7, validation_draws=1)
    values.update(overrides)
    return TrainConfig.from_dict(values)


# --------------------------------------------------------------------------- data


def test_log_image_to_unit_maps_the_robust_range_to_the_span():
    rng = np.random.default_rng(0)
    intensity = rng.lognormal(3.0, 1.5, (64, 80)).astype(np.float32)
    intensity[:5] = np.nan
    intensity[10, 10] = 0.0
    unit = log_image_to_unit(intensity)
    valid = np.isfinite(intensity) & (np.nan_to_num(intensity) > 0)
    assert unit.dtype == np.float32 and np.isnan(unit[~valid]).all() and np.isfinite(unit[valid]).all()
    np.testing.assert_allclose(np.percentile(unit[valid], [0.5, 99.5]), [0.1, 0.9], atol=1e-5)
    np.testing.assert_allclose(np.percentile(log_image_to_unit(intensity, span=0.5)[valid], [0.5, 99.5]),
                               [0.25, 0.75], atol=1e-5)
    # Affine in log I: a gain (×k) or a power (looks, amplitude vs intensity) changes nothing.
    np.testing.assert_allclose(log_image_to_unit(7.5 * intensity), unit, atol=1e-5)
    np.testing.assert_allclose(log_image_to_unit(np.sqrt(intensity)), unit, atol=1e-5)
    with pytest.raises(InvalidInputError, match="valid"):
        log_image_to_unit(np.full((8, 8), np.nan))


def test_sar_training_images_match_what_the_mulog_wrapper_feeds_the_network():
    from sardespeckle.models import DnCNN
    from sardespeckle.mulog import DnCNNDenoiser

    from scipy.ndimage import gaussian_filter

    # A smooth clean scene: the wrapper measures the range of the 7×7 local mean of its input
    # (the signal's range when the input is noisy), which for a smooth image is the image's own.
    rng = np.random.default_rng(1)
    intensity = np.exp(2.0 + 12 * gaussian_filter(rng.standard_normal((64, 64)), 8, mode="reflect"))
    v = np.log(intensity) / 1.2825  # MuLoG's normalised log-image (unit noise for L = 1)
    wrapper = DnCNNDenoiser(DnCNN(depth=3, features=4), sigma_range=(0.0, 55 / 255))
    low, high = np.percentile(v, [0.5, 99.5])
    sigma = 0.1 * (high - low) / 0.8  # the network then sees σ·s = 0.1: no clipping of s
    center, scale = wrapper.scale_for(v, sigma)
    np.testing.assert_allclose((v - center) * scale + 0.5, log_image_to_unit(intensity), atol=0.03)
    # On a noisy input the range is that of the signal, not of the noise.
    noisy = v + rng.standard_normal(v.shape)
    # (within 20 % of the clean image's scale; the noisy image's own range would be 40 % off).
    assert wrapper.scale_for(noisy, sigma)[1] == pytest.approx(scale, rel=0.2)
    assert 0.8 / np.ptp(np.percentile(noisy, [0.5, 99.5])) < 0.6 * scale


def test_sources_folders_globs_and_errors(tmp_path, image_dirs):
    folder = source_paths(ReferenceSpec(str(image_dirs / "train"), "grey"))
    assert [p.name for p in folder] == ["000.png", "001.png", "002.png", "003.png"]
    assert [p.name for p in source_paths(ReferenceSpec(str(image_dirs / "val" / "1*.png"), "grey"))] == \
        ["100.png", "101.png"]
    images = load_unit_images(ReferenceSpec(str(folder[0]), "grey", (4, 8, 20, 30)), span=0.8)
    assert len(images) == 1 and images[0].values.shape == (20, 30)
    np.testing.assert_array_equal(images[0].values, blocks(0)[4:24, 8:38] / np.float32(255))
    with pytest.raises(InputFileError, match="no such training source"):
        source_paths(ReferenceSpec(str(tmp_path / "nope"), "grey"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="found none"):
        source_paths(ReferenceSpec(str(tmp_path / "empty"), "grey"))
    with pytest.raises(UsageError, match="folder"):
        source_paths(ReferenceSpec(str(image_dirs / "train"), "intensity"))
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(InvalidInputError, match="mode L"):
        load_unit_images(ReferenceSpec(str(tmp_path / "rgb.png"), "grey"), span=0.8)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(InputFileError, match="cannot read"):
        load_unit_images(ReferenceSpec(str(tmp_path / "bad.png"), "grey"), span=0.8)


def test_sar_sources_become_rescaled_log_images(tmp_path):
    rng = np.random.default_rng(2)
    amplitude = rng.lognormal(4.0, 0.8, (50, 60)).astype(np.float32)
    np.save(tmp_path / "ref.npy", amplitude)
    (image,) = load_unit_images(ReferenceSpec(str(tmp_path / "ref.npy"), "amplitude"), span=0.8)
    np.testing.assert_allclose(image.values, log_image_to_unit(amplitude**2), atol=1e-6)


def test_sampler_noise_levels_validity_and_determinism():
    clean = np.full((64, 64), 0.5, np.float32)
    clean[:, :24] = np.nan  # never inside a patch
    clean[:, 40:] = 0.0  # black is a valid grey value
    sampler = GaussianPatchSampler([UnitImage("half", clean)], patch_size=16, sigma_range=(0.1, 0.2))
    noisy, target = sampler.sample(256, np.random.default_rng(3))
    assert noisy.shape == target.shape == (256, 1, 16, 16) and noisy.dtype == np.float32
    assert np.isfinite(target).all() and (target == 0).any()
    stds = (noisy - target).std(axis=(1, 2, 3))
    assert stds.min() > 0.085 and stds.max() < 0.22
    assert np.mean(stds) == pytest.approx(0.15, abs=0.005)  # σ uniform in [0.1, 0.2]
    assert abs(float(np.mean(noisy - target))) < 0.002
    again, _ = sampler.sample(256, np.random.default_rng(3))
    np.testing.assert_array_equal(noisy, again)
    with pytest.raises(InvalidInputError, match="fully valid patch"):
        GaussianPatchSampler([UnitImage("holes", np.full((20, 20), np.nan, np.float32))], patch_size=8,
                             sigma_range=(0.0, 0.1))


def test_centred_log_image_centres_the_robust_range_and_marks_invalid_pixels():
    rng = np.random.default_rng(2)
    intensity = rng.lognormal(4.0, 1.5, (50, 50))
    intensity[0, :5] = [0.0, -1.0, np.nan, np.inf, 0.0]
    out = centred_log_image(intensity)
    assert out.dtype == np.float32 and np.isnan(out[0, :5]).all()
    valid = np.isfinite(out)
    low, high = np.percentile(out[valid], [0.5, 99.5])
    assert low + high == pytest.approx(0.0, abs=1e-4)
    # Log units are kept (no rescaling): only the offset differs from log I.
    np.testing.assert_allclose(out[valid] - np.log(intensity[valid]), (out - np.log(intensity))[5, 5],
                               atol=1e-4)
    with pytest.raises(InvalidInputError, match="valid"):
        centred_log_image(np.zeros((8, 8)))


def test_log_scale_sampler_scales_each_patch_by_its_noise_level():
    # A log-intensity ramp: every 16² patch (any flip/rotation) has the same std s0, so a
    # patch's clean std tells its scale t/σ.
    ramp = np.tile(np.arange(64, dtype=np.float32) * 0.05, (64, 1))
    ramp[:, :8] = np.nan
    t, low, high = 0.1, 0.25, 1.0
    sampler = LogScalePatchSampler([UnitImage("ramp", ramp - 2.0)], patch_size=16, trained_sigma=t,
                                   log_sigma_range=(low, high))
    noisy, clean = sampler.sample(512, np.random.default_rng(5))
    assert noisy.shape == clean.shape == (512, 1, 16, 16) and noisy.dtype == np.float32
    assert np.isfinite(clean).all()
    s0 = np.nanstd(ramp[:, 8:24])
    sigma = s0 * t / clean.std(axis=(1, 2, 3))
    assert sigma.min() >= low * 0.999 and sigma.max() <= high * 1.001
    # log-uniform: the mean of log σ is the middle of the log range, the spread is that of a uniform
    assert np.mean(np.log(sigma)) == pytest.approx(np.log(np.sqrt(low * high)), abs=0.04)
    assert np.std(np.log(sigma)) == pytest.approx(np.log(high / low) / np.sqrt(12), rel=0.1)
    # The noise is fixed at t whatever the scale, and the patches keep the image's centring.
    stds = (noisy - clean).std(axis=(1, 2, 3))
    assert np.mean(stds) == pytest.approx(t, rel=0.02) and stds.max() < 1.3 * t
    mid = clean.mean(axis=(1, 2, 3)) - 0.5
    patch_mean = sigma * mid / t  # back in log units: a 16-column window of the valid ramp
    first, last = -2.0 + 0.05 * (8 + 7.5), -2.0 + 0.05 * (48 + 7.5)
    assert first - 1e-3 < patch_mean.min() < first + 0.1 and last - 0.1 < patch_mean.max() < last + 1e-3
    again, _ = sampler.sample(512, np.random.default_rng(5))
    np.testing.assert_array_equal(noisy, again)


def test_validation_noise_is_fixed_and_psnr_is_on_the_8_bit_scale():
    clean = np.full((32, 32), 0.5, np.float32)
    noisy = noisy_draw(clean, sigma=25 / 255, seed=(0, 1000, 0))
    np.testing.assert_array_equal(noisy, noisy_draw(clean, sigma=25 / 255, seed=(0, 1000, 0)))
    assert unit_psnr(clean, noisy) == pytest.approx(20 * np.log10(255 / 25), abs=0.3)
    assert unit_psnr(clean, clean + 1 / 255) == pytest.approx(20 * np.log10(255), abs=1e-6)


def test_fixed_sigma_runs_are_validated_at_their_own_sigma(image_dirs):
    blind = GaussianValidator(tiny_config(image_dirs, sigma_range=[0.0, 0.2]))
    fixed = GaussianValidator(tiny_config(image_dirs, sigma_range=[0.3, 0.3]))
    assert blind.sigma == pytest.approx(25 / 255) and fixed.sigma == 0.3
    for validator, sigma in ((blind, 25 / 255), (fixed, 0.3)):
        clean, draws = validator.images[0]
        assert np.std(draws[0] - clean) == pytest.approx(sigma, rel=0.1)


# --------------------------------------------------------------------------- configuration


def test_gaussian_defaults_and_sarcnn_defaults(image_dirs):
    config = TrainConfig.from_dict({"task": "gaussian",
                                    "references": [{"path": str(image_dirs / "train"), "kind": "grey"}]})
    assert config.loss == "l2" and config.sigma_range == (0.0, 55 / 255) and config.span == 0.8
    again = TrainConfig.from_dict(json.loads(json.dumps(config.as_dict())))
    assert again == config
    sar = TrainConfig.from_dict({"references": ["ref.npy"]})
    assert sar.task == "sarcnn" and sar.loss == "l1" and sar.sigma_range is None and sar.span is None


@pytest.mark.parametrize("overrides, message", [
    ({"task": "denoise"}, "expected task in"),
    ({"sigma_range": [0.2, 0.1]}, "low <= high"),
    ({"sigma_range": [0.0, 1.5]}, "high < 1"),
    ({"sigma_range": [0.0, 0.0]}, "high > 0"),
    ({"sigma_range": [-0.1, 0.1]}, "0 <= low"),
    ({"sigma_range": 0.1}, r"\[low, high\]"),
    ({"sigma_range": ["0", "0.1"]}, r"\[low, high\]"),
    ({"loss": "huber"}, "expected loss in"),
    ({"span": 0.0}, "span in"),
    ({"references": [{"path": "x.png"}]}, "give its kind"),
    ({"validation": [{"path": "x.png", "kind": "gray"}]}, "got 'gray'"),
])
def test_bad_gaussian_configs(image_dirs, overrides, message):
    with pytest.raises(UsageError, match=message):
        tiny_config(image_dirs, **overrides)


def test_sarcnn_configs_refuse_gaussian_options(image_dirs):
    with pytest.raises(UsageError, match="sigma_range is an option of task 'gaussian'"):
        TrainConfig.from_dict({"references": ["ref.npy"], "sigma_range": [0, 0.2]})
    with pytest.raises(UsageError, match="need task 'gaussian'"):
        TrainConfig.from_dict({"references": [{"path": "a.png", "kind": "grey"}]})


def test_no_images_is_a_clear_error(tmp_path, image_dirs):
    (tmp_path / "empty").mkdir()
    config = tiny_config(image_dirs, references=[{"path": str(tmp_path / "empty"), "kind": "grey"}])
    with pytest.raises(InputFileError, match="found none"):
        train(config, tmp_path / "run")


@pytest.mark.parametrize("name", ["dncnn-natural", "dncnn-sar"])
def test_ready_to_launch_configs(name):
    config = TrainConfig.load(ROOT / "training_runs" / name / "config.json")
    assert config.task == "gaussian" and config.loss == "l2" and config.name == name
    assert (config.depth, config.features, config.batch_size, config.patch_size) == (17, 64, 32, 40)
    assert config.sigma_range == (0.0, 55 / 255) and config.precision == "fp32"
    assert config.learning_rate == 1e-3 and config.learning_rate * config.decay == pytest.approx(1e-4)
    assert (config.checkpoint_every, config.validate_every) == (50, 500) and config.validation
    kinds = {spec.kind for spec in config.references}
    assert kinds == ({"grey"} if name == "dncnn-natural" else {"intensity"})
    training = " ".join(spec.path for spec in config.references)
    held_out = {"dncnn-natural": "natural/bsd68/", "dncnn-sar": "sar/references/groundtruth/"}[name]
    assert all(held_out in spec.path for spec in config.validation) and held_out not in training
    assert "set12" not in training and "sar/references" not in training


def test_runs_written_before_the_gaussian_task_still_resume(tmp_path):
    """A config.json without the new keys (task, loss, sigma_range, span) is the same SAR-CNN run."""
    shipped = json.loads((ROOT / "training_runs" / "sarcnn-s1-l1" / "phase1" / "config.json").read_text())
    assert TrainConfig.from_dict(shipped).loss == "l1"
    rng = np.random.default_rng(0)
    np.save(tmp_path / "ref.npy", rng.uniform(100, 200, (40, 40)).astype(np.float32))
    old = {"references": [{"path": str(tmp_path / "ref.npy"), "kind": "intensity", "window": None}],
           "depth": 3, "features": 4, "patch_size": 16, "batch_size": 2, "steps": 2, "threads": 1,
           "precision": "fp32", "checkpoint_every": 1}
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps(old))
    result = train(TrainConfig.from_dict(old), tmp_path / "run", max_steps=1)
    assert result.step == 1


# --------------------------------------------------------------------------- training


def test_tiny_gaussian_run_learns_and_its_weights_serve_mulog(tmp_path, image_dirs, monkeypatch):
    config = tiny_config(image_dirs, features=16, batch_size=8, steps=40, validate_every=40,
                         learning_rate=3e-3, checkpoint_every=40, log_every=1)
    result = train(config, tmp_path / "run")
    assert result.finished and result.weights_path.name == "dncnn.pt"
    losses = [float(row.split(",")[1]) for row in (tmp_path / "run" / "log.csv").read_text().splitlines()[1:]]
    assert np.mean(losses[-5:]) < 0.3 * np.mean(losses[:5])
    # Validation PSNR (σ = 25/255) beats the noisy images it denoises.
    validator = GaussianValidator(config)
    noisy_psnr = np.mean([unit_psnr(clean, draw) for clean, draws in validator.images for draw in draws])
    assert result.last_validation_psnr > noisy_psnr + 1.0

    from sardespeckle.models import Architecture, WeightsEntry, load_weights
    from sardespeckle.models import weights as weights_module
    from sardespeckle.mulog.method import build_mulog, denoiser_from_name

    network, meta = load_weights(result.weights_path)
    assert meta["domain"] == "gaussian-01" and meta["sigma_range"] == [0.05, 0.15]
    assert "span" not in meta and network.depth == 4
    assert meta["validation_psnr"] == pytest.approx(result.last_validation_psnr)
    # The image folders by name, as SAR-CNN weights name their references: not where they were.
    assert meta["training_data"] == ", ".join(Path(r.path).name for r in config.references)
    assert "/" not in meta["training_data"] and str(tmp_path) not in meta["training_data"]
    monkeypatch.setattr(weights_module, "WEIGHTS_DIR", tmp_path / "run")
    monkeypatch.setattr(weights_module, "REGISTRY", {})
    weights_module.REGISTRY["dncnn-natural"] = WeightsEntry(
        name="dncnn-natural", filename=result.weights_path.name,
        sha256=weights_module.sha256_file(result.weights_path),
        architecture=Architecture(depth=4, features=16), domain="gaussian-01", sigma_range=(0.05, 0.15),
    )
    denoiser = denoiser_from_name("dncnn-natural-blind")
    assert denoiser.sigma_range == (0.05, 0.15) and denoiser.span == 0.8
    built = build_mulog(1.0, {"denoiser": "dncnn-natural-blind", "iterations": 2})
    noisy = (4.0 * np.random.default_rng(0).exponential(1.0, (24, 24))).astype(np.float32)
    out = built.function(noisy)
    assert out.dtype == np.float32 and out.shape == noisy.shape and (out > 0).all()
    # The registry entry must agree with the file.
    weights_module.REGISTRY["dncnn-natural"] = WeightsEntry(
        name="dncnn-natural", filename=result.weights_path.name,
        sha256=weights_module.sha256_file(result.weights_path),
        architecture=Architecture(depth=4, features=16), domain="gaussian-01", sigma_range=(0.0, 0.2),
    )
    with pytest.raises(WeightsError, match="registry says"):
        denoiser_from_name("dncnn-natural-blind")


def test_sar_log_run_fixed_sigma_export_and_init_from(tmp_path, image_dirs):
    from sardespeckle.models.weights import load_weights
    from sardespeckle.mulog import DnCNNDenoiser

    rng = np.random.default_rng(4)
    np.save(tmp_path / "ref.npy", rng.lognormal(3.0, 1.0, (40, 40)).astype(np.float32))
    config = tiny_config(image_dirs, references=[{"path": str(tmp_path / "ref.npy"), "kind": "intensity"}],
                         sigma_range=[0.1, 0.1], span=0.7, loss="l1", validation=[])
    train(config, tmp_path / "sar", max_steps=2)
    export_weights(tmp_path / "sar", tmp_path / "partial.pt")
    network, meta = load_weights(tmp_path / "partial.pt")
    assert meta["domain"] == "gaussian-01" and meta["trained_sigma"] == 0.1 and meta["span"] == 0.7
    assert "sigma_range" not in meta and "step 2 of 6" in meta["description"]
    assert DnCNNDenoiser(network, trained_sigma=meta["trained_sigma"]).trained_sigma == 0.1
    # A Gaussian run starts from Gaussian weights or checkpoints, never from SAR-CNN ones (and back).
    started = train(tiny_config(image_dirs, init_from=str(tmp_path / "sar")), tmp_path / "again", max_steps=0)
    assert started.step == 0
    with pytest.raises(WeightsError, match="SAR-CNN training needs log-amplitude"):
        train(TrainConfig.from_dict({"references": [str(tmp_path / "ref.npy")], "depth": 4,
                                     "features": 8, "init_from": str(tmp_path / "sar")}),
              tmp_path / "sarcnn", max_steps=0)


def log_scaled_config(tmp_path, image_dirs, **overrides):
    rng = np.random.default_rng(4)
    from scipy.ndimage import gaussian_filter

    np.save(tmp_path / "ref.npy", np.exp(3.0 + 20 * gaussian_filter(rng.standard_normal((48, 48)), 4))
            .astype(np.float32))
    values = dict(references=[{"path": str(tmp_path / "ref.npy"), "kind": "intensity"}],
                  validation=[{"path": str(tmp_path / "ref.npy"), "kind": "intensity"}],
                  sigma_range=[0.1, 0.1], log_sigma_range=[0.3, 1.2])
    values.update(overrides)
    return tiny_config(image_dirs, **values)


def test_log_scaled_configs_and_their_errors(tmp_path, image_dirs):
    config = log_scaled_config(tmp_path, image_dirs)
    assert config.log_sigma_range == (0.3, 1.2) and config.span is None
    again = TrainConfig.from_dict(json.loads(json.dumps(config.as_dict())))
    assert again == config
    for overrides, message in (
        ({"sigma_range": [0.0, 0.2]}, "fixed-noise network"),
        ({"span": 0.8}, "exclude each other"),
        ({"log_sigma_range": [0.0, 1.0]}, "0 < low"),
        ({"log_sigma_range": [1.0, 0.5]}, "low ≤ high"),
        ({"log_sigma_range": "wide"}, r"\[low, high\]"),
        ({"references": [{"path": str(image_dirs / "train"), "kind": "grey"}]}, "needs SAR references"),
    ):
        with pytest.raises(UsageError, match=message):
            log_scaled_config(tmp_path, image_dirs, **overrides)
    with pytest.raises(UsageError, match="log_sigma_range is an option of task 'gaussian'"):
        TrainConfig.from_dict({"references": ["ref.npy"], "log_sigma_range": [0.3, 1.2]})


def test_log_scaled_run_validates_exports_and_serves_mulog(tmp_path, image_dirs):
    from sardespeckle.models.weights import load_weights
    from sardespeckle.mulog import DnCNNDenoiser

    config = log_scaled_config(tmp_path, image_dirs)
    validator = GaussianValidator(config)
    clean, draws = validator.images[0]
    # Validation at σ_log = √(0.3·1.2) = 0.6: the centred log-image scaled by 0.1/0.6.
    reference = centred_log_image(np.load(tmp_path / "ref.npy"))
    np.testing.assert_allclose(clean, reference * (0.1 / validation_log_sigma((0.3, 1.2))) + 0.5,
                               atol=1e-6)
    assert np.std(draws[0] - clean) == pytest.approx(0.1, rel=0.1)
    result = train(config, tmp_path / "run")
    assert result.finished and np.isfinite(result.last_validation_psnr)
    network, meta = load_weights(result.weights_path)
    assert meta["trained_sigma"] == 0.1 and meta["log_sigma_range"] == [0.3, 1.2]
    assert meta.get("span") is None and "scaled by σ/σ_log" in meta["description"]
    denoiser = DnCNNDenoiser(network, trained_sigma=meta["trained_sigma"])
    v = np.log(np.load(tmp_path / "ref.npy")).astype(np.float64)
    assert np.isfinite(denoiser(v + np.random.default_rng(0).normal(0, 0.6, v.shape), 0.6)).all()


def test_weights_noise_metadata_is_checked(tmp_path):
    from sardespeckle.models import DnCNN, load_weights, save_weights

    network = DnCNN(depth=3, features=4)
    with pytest.raises(InvalidInputError, match="Gaussian denoisers"):
        save_weights(network, tmp_path / "a.pt", sigma_range=(0.0, 0.2))
    with pytest.raises(InvalidInputError, match="got both"):
        save_weights(network, tmp_path / "a.pt", domain="gaussian-01", sigma_range=(0.0, 0.2),
                     trained_sigma=0.1)
    with pytest.raises(InvalidInputError, match="0 <= low < high < 1"):
        save_weights(network, tmp_path / "a.pt", domain="gaussian-01", sigma_range=(0.3, 0.2))
    with pytest.raises(InvalidInputError, match="fixed-σ network"):
        save_weights(network, tmp_path / "a.pt", domain="gaussian-01", sigma_range=(0.0, 0.2),
                     log_sigma_range=(0.3, 1.2))
    with pytest.raises(InvalidInputError, match="0 < low <= high"):
        save_weights(network, tmp_path / "a.pt", domain="gaussian-01", trained_sigma=0.1,
                     log_sigma_range=(1.2, 0.3))
    save_weights(network, tmp_path / "ok.pt", domain="gaussian-01", sigma_range=(0.0, 0.2))
    payload = torch.load(tmp_path / "ok.pt", weights_only=True)
    payload["meta"]["trained_sigma"] = 2.0
    payload["meta"].pop("sigma_range")
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(WeightsError, match="trained_sigma in"):
        load_weights(tmp_path / "bad.pt")


def test_cli_trains_a_gaussian_config_and_refuses_bad_ones(tmp_path, image_dirs, capsys):
    from sardespeckle.cli.main import main

    path = tmp_path / "config.json"
    path.write_text(json.dumps(tiny_config(image_dirs, steps=2, name="dncnn-tiny").as_dict()))
    assert main(["train", str(path), "--run-dir", str(tmp_path / "run"), "-q"]) == 0
    weights = tmp_path / "run" / "dncnn-tiny.pt"
    assert f"--method mulog --denoiser {weights}" in capsys.readouterr().err
    assert weights.is_file()
    path.write_text(json.dumps({**tiny_config(image_dirs).as_dict(), "sigma_range": [0.3, 0.1]}))
    assert main(["train", str(path), "--run-dir", str(tmp_path / "bad")]) == 2
    assert "sigma_range" in capsys.readouterr().err


def test_set12_tool_reports_psnr_next_to_the_published_figures(tmp_path, image_dirs, capsys):
    import importlib.util

    from sardespeckle.models import DnCNN, save_weights

    spec = importlib.util.spec_from_file_location("eval_dncnn_set12", ROOT / "tools" / "eval_dncnn_set12.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    torch.manual_seed(0)
    network = DnCNN(depth=3, features=4)
    with torch.no_grad():
        network.layers[-1].weight.zero_()  # predicts no noise: the estimate is the noisy image
        network.layers[-1].bias.zero_()
    save_weights(network, tmp_path / "identity.pt", domain="gaussian-01", sigma_range=(0.0, 0.2))
    denoised, noisy, count = tool.evaluate(str(tmp_path / "identity.pt"), str(image_dirs / "val"))
    assert count == 2 and noisy[25] == pytest.approx(20 * np.log10(255 / 25), abs=0.3)
    assert all(denoised[s] >= noisy[s] for s in tool.SIGMAS)  # only clipping to [0, 1] helps
    assert tool.main([str(tmp_path / "identity.pt"), "--set12", str(image_dirs / "val")]) == 0
    out = capsys.readouterr().out
    assert "DnCNN-S" in out and "30.44" in out and "27.18" in out
    save_weights(network, tmp_path / "sarcnn.pt")
    assert tool.main([str(tmp_path / "sarcnn.pt"), "--set12", str(image_dirs / "val")]) == 2
    assert "expected Gaussian-denoiser weights" in capsys.readouterr().err
    assert tool.main([str(tmp_path / "identity.pt"), "--set12", str(tmp_path / "nope")]) == 1  # a missing input
