"""SAR-CNN training: patch sampling, a tiny end-to-end run, exact kill-and-resume."""

import json
from pathlib import Path

import numpy as np
import pytest
from _tiny_training import tiny_train_values
import torch

from sardespeckle.errors import InputFileError, InvalidInputError, UsageError
from sardespeckle.speckle import speckle_lag_correlation
from sardespeckle.training import PatchSampler, Reference, TrainConfig, export_weights, train
from sardespeckle.training.data import _dihedral, _fully_valid_starts



def tiny_config(reference_file, **overrides):
    return TrainConfig.from_dict(tiny_train_values(
        reference_file, **{"depth": 4, "features": 8, "batch_size": 4, "steps": 6,
                           "validate_every": 3, **overrides}))


def test_fully_valid_starts_excludes_invalid_pixels():
    valid = np.ones((6, 6), bool)
    valid[2, 3] = False
    starts = {tuple(s) for s in _fully_valid_starts(valid, 3)}
    assert (0, 0) in starts and (3, 3) in starts and (0, 1) not in starts
    assert all(not (r <= 2 < r + 3 and c <= 3 < c + 3) for r, c in starts)
    assert len(starts) == 16 - 9  # the 9 windows covering (2, 3) among the 4×4 are gone


def test_dihedral_gives_eight_distinct_transforms():
    patch = np.arange(9).reshape(3, 3)
    assert len({_dihedral(patch, k).tobytes() for k in range(8)}) == 8


def test_sampler_speckle_statistics_and_determinism():
    clean = np.full((64, 64), 100.0, np.float32)
    sampler = PatchSampler([Reference("flat", clean)], patch_size=16, looks=1.0)
    noisy, target = sampler.sample(64, np.random.default_rng(1))
    assert noisy.shape == target.shape == (64, 1, 16, 16)
    from sardespeckle.models.sarcnn import LOG_AMPLITUDE_MAX, LOG_AMPLITUDE_MIN, cn

    # The mean normalised log-speckle is cn(L): E[½ log S] = ½(ψ(L) − ln L).
    assert np.mean(noisy - target) == pytest.approx(cn(1.0), abs=0.002)
    again, _ = sampler.sample(64, np.random.default_rng(1))
    np.testing.assert_array_equal(noisy, again)
    assert np.allclose(target, (0.5 * np.log(100.0) - LOG_AMPLITUDE_MIN) /
                       (LOG_AMPLITUDE_MAX - LOG_AMPLITUDE_MIN))


def test_sampler_gains_move_whole_patches_and_keep_speckle_and_draw_order():
    from sardespeckle.models.sarcnn import LOG_AMPLITUDE_MAX, LOG_AMPLITUDE_MIN, cn

    clean = np.full((64, 64), 100.0, np.float32)
    plain = PatchSampler([Reference("flat", clean)], patch_size=16, looks=1.0)
    gained = PatchSampler([Reference("flat", clean)], patch_size=16, looks=1.0, gain_range=(1e-3, 10.0))
    noisy, target = gained.sample(256, np.random.default_rng(1))
    plain_noisy, plain_target = plain.sample(256, np.random.default_rng(1))
    span = LOG_AMPLITUDE_MAX - LOG_AMPLITUDE_MIN
    # Each patch is one flat level 100·g, g log-uniform in [1e-3, 10]: ½ log g spans ±.
    shift = (target - plain_target)[:, 0] * span  # = ½ log g per pixel
    assert np.allclose(shift, shift[:, :1, :1], atol=1e-5)  # one gain per patch
    log_gains = 2 * shift[:, 0, 0]
    assert log_gains.min() >= np.log(1e-3) - 1e-4 and log_gains.max() <= np.log(10.0) + 1e-4
    assert np.ptp(log_gains) > 0.8 * np.log(1e4)  # spread over the range
    # The speckle is the same draw as without gains (gains are drawn last) ...
    np.testing.assert_allclose(noisy - target, plain_noisy - plain_target, atol=1e-5)
    assert np.mean(noisy - target) == pytest.approx(cn(1.0), abs=0.002)


def test_gain_range_config_checks(reference_file):
    assert tiny_config(reference_file, gain_range=[0.01, 100]).gain_range == (0.01, 100.0)
    assert tiny_config(reference_file).gain_range is None
    for bad in ([0, 1], [2, 1], [1], "x", [1, float("inf")]):
        with pytest.raises(UsageError, match="gain_range"):
            tiny_config(reference_file, gain_range=bad)
    with pytest.raises(UsageError, match="gain_range is an option of task 'sarcnn'"):
        tiny_config(reference_file, task="gaussian", gain_range=[0.1, 10])


def test_a_run_with_gains_trains_and_resumes(tmp_path, reference_file):
    config = tiny_config(reference_file, gain_range=[0.01, 100], steps=4)
    result = train(config, tmp_path / "run")
    assert result.finished and result.weights_path.exists()
    saved = TrainConfig.load(tmp_path / "run" / "config.json")
    assert saved.gain_range == (0.01, 100.0)
    from sardespeckle.models.weights import load_weights

    assert "gains 0.01-100" in load_weights(result.weights_path)[1]["description"]


def test_bright_oversample_draws_patches_with_bright_pixels_more_often():
    # A flat scene with one bright 4 x 4 block: with k = 0 a patch holds it at the rate of the
    # positions that cover it; with k = 20 far more often; NaN regions stay out either way.
    clean = np.full((60, 60), 10.0, np.float32)
    clean[30:34, 30:34] = 1000.0
    clean[:, :6] = np.nan
    def share(k):
        sampler = PatchSampler([Reference("block", clean)], patch_size=8, looks=1.0,
                               bright_oversample=k)
        noisy, target = sampler.sample(2000, np.random.default_rng(1))
        assert np.isfinite(noisy).all()
        return np.mean(target.reshape(2000, -1).max(axis=1) > target.min() + 0.1)
    covering = 11 * 11 / (53 * 47)  # positions whose 8 x 8 patch holds part of the block
    assert share(None) == pytest.approx(covering, abs=0.02)
    assert share(0) == pytest.approx(covering, abs=0.02)
    # Weights 1 + k b / mean(b): the 121 covering positions hold on average b = 1024 / 121 of the
    # block's pixels (each is in 64 windows), mean(b) = 1024 / 2491 over all positions.
    for k in (4, 20):
        weight = 1 + k * (1024 / 121) / (1024 / 2491)
        assert share(k) == pytest.approx(121 * weight / (121 * weight + 2491 - 121), abs=0.03)


def test_bright_oversample_config_checks_and_trains(tmp_path, reference_file):
    assert tiny_config(reference_file).bright_oversample is None
    assert tiny_config(reference_file, bright_oversample=4).bright_oversample == 4.0
    for bad in (-1, "4", True, float("inf")):
        with pytest.raises(UsageError, match="bright_oversample"):
            tiny_config(reference_file, bright_oversample=bad)
    with pytest.raises(UsageError, match="bright_oversample is an option of task 'sarcnn'"):
        tiny_config(reference_file, task="gaussian", bright_oversample=2)
    result = train(tiny_config(reference_file, bright_oversample=4, steps=3), tmp_path / "run")
    assert result.finished
    assert TrainConfig.load(tmp_path / "run" / "config.json").bright_oversample == 4.0


def test_clipped_level_needs_a_maximum_held_by_many_pixels():
    from sardespeckle.training.targets import MIN_CLIPPED, clipped_level

    image = np.linspace(1.0, 50.0, 400, dtype=np.float32).reshape(20, 20)
    assert clipped_level(image) is None  # one brightest pixel: not clipped
    image[:2, :MIN_CLIPPED // 2] = 80.0  # MIN_CLIPPED pixels at the maximum
    assert clipped_level(image) == 80.0
    image[0, 0] = np.nan
    assert clipped_level(image) is None  # one fewer
    assert clipped_level(np.full((4, 4), np.nan, np.float32)) is None


def test_uncap_clipped_lifts_each_clipped_group_by_one_pareto_factor():
    from sardespeckle.training.targets import RATIO_MAX, uncap_clipped

    clean = np.full((300, 12, 12), 5.0, np.float32)
    clipped = np.zeros(clean.shape, bool)
    clipped[:, 1:3, 1:4] = True  # one group of 6 pixels ...
    clipped[:, 8, 8] = True      # ... and a single pixel, apart from it
    clipped[-1] = False          # a patch without clipped pixels
    out = uncap_clipped(clean, clipped, 4.0, np.random.default_rng(5))
    assert out.dtype == np.float32 and out.shape == clean.shape
    np.testing.assert_array_equal(out[~clipped], 5.0)  # nothing else moves
    np.testing.assert_array_equal(out, uncap_clipped(clean, clipped, 4.0, np.random.default_rng(5)))
    factors = np.sqrt(out / 5.0)  # amplitude factors
    block = factors[:-1, 1:3, 1:4].reshape(299, -1)
    assert np.allclose(block, block[:, :1], rtol=1e-6)  # one factor per group
    assert (factors[:-1] >= 1 - 1e-6).all() and (factors <= RATIO_MAX * (1 + 1e-6)).all()
    both = np.concatenate([block[:, 0], factors[:-1, 8, 8]])
    assert np.corrcoef(block[:, 0], factors[:-1, 8, 8])[0, 1] == pytest.approx(0, abs=0.15)
    # Pareto(4) above 1: median 2^(1/4) = 1.19, P(f > 2) = 2^-4.
    assert np.median(both) == pytest.approx(2 ** 0.25, abs=0.03)
    assert np.mean(both > 2) == pytest.approx(2.0 ** -4, abs=0.025)
    with pytest.raises(ValueError, match="same shape"):
        uncap_clipped(clean, clipped[:, :5], 4.0, np.random.default_rng(0))


def test_sampler_uncap_clipped_lifts_only_the_clipped_pixels_and_keeps_the_draws():
    clean = np.full((40, 40), 10.0, np.float32)
    clean[18:22, 18:22] = 100.0  # a clipped block: 16 pixels at the maximum
    plain = PatchSampler([Reference("clip", clean)], patch_size=12, looks=1.0)
    lifted = PatchSampler([Reference("clip", clean)], patch_size=12, looks=1.0, uncap_clipped=4.0)
    assert lifted.clipped_pixels == [16]
    noisy, target = lifted.sample(400, np.random.default_rng(2))
    plain_noisy, plain_target = plain.sample(400, np.random.default_rng(2))
    # Same patches and speckle: the log-speckle noisy - target is the same draw.
    np.testing.assert_allclose(noisy - target, plain_noisy - plain_target, atol=1e-5)
    moved = ~np.isclose(target, plain_target, atol=1e-6)
    block = np.isclose(plain_target, plain_target.max(), atol=1e-6)
    assert (moved <= block).all()  # only clipped pixels move ...
    assert (target >= plain_target - 1e-6).all()  # ... and only up
    has_block = block.reshape(400, -1).any(axis=1)
    assert 0.1 < np.mean(moved.reshape(400, -1).any(axis=1)[has_block]) <= 1
    unclipped = np.linspace(1.0, 9.0, 1600, dtype=np.float32).reshape(40, 40)
    assert PatchSampler([Reference("smooth", unclipped)], patch_size=12, looks=1.0,
                        uncap_clipped=4.0).clipped_pixels == [0]


def test_uncap_clipped_config_checks_and_trains(tmp_path, reference_file):
    assert tiny_config(reference_file).uncap_clipped is None
    for bad in (0, -1, "4", True, float("inf")):
        with pytest.raises(UsageError, match="uncap_clipped"):
            tiny_config(reference_file, uncap_clipped=bad)
    with pytest.raises(UsageError, match="uncap_clipped is an option of task 'sarcnn'"):
        tiny_config(reference_file, task="gaussian", uncap_clipped=4)
    # The fixture has no clipping level: the option would do nothing, the run refuses it.
    with pytest.raises(UsageError, match="no training reference is clipped"):
        train(tiny_config(reference_file, uncap_clipped=4, steps=2), tmp_path / "refused")
    clipped = np.load(reference_file)
    clipped = np.minimum(clipped, np.percentile(clipped, 99))
    path = tmp_path / "clipped.npy"
    np.save(path, clipped)
    config = tiny_config(reference_file, uncap_clipped=4, steps=3,
                         references=[{"path": str(path), "kind": "intensity"}])
    result = train(config, tmp_path / "run")
    assert result.finished
    assert TrainConfig.load(tmp_path / "run" / "config.json").uncap_clipped == 4.0


def test_sampler_speckle_band_correlates_the_chosen_share_and_keeps_the_other_draws():
    from sardespeckle.models.sarcnn import LOG_AMPLITUDE_MAX, LOG_AMPLITUDE_MIN

    clean = np.full((80, 80), 100.0, np.float32)
    plain = PatchSampler([Reference("flat", clean)], patch_size=48, looks=1.0, gain_range=(0.1, 10))
    banded = PatchSampler([Reference("flat", clean)], patch_size=48, looks=1.0, gain_range=(0.1, 10),
                          speckle_band=(0.5, 0.6), speckle_band_share=0.5)
    noisy, target = banded.sample(200, np.random.default_rng(4))
    plain_noisy, plain_target = plain.sample(200, np.random.default_rng(4))
    # The clean patches (and their gains) are the draws of a run without the option.
    np.testing.assert_array_equal(target, plain_target)
    span = LOG_AMPLITUDE_MAX - LOG_AMPLITUDE_MIN
    speckle = np.exp(2 * span * (noisy - target)[:, 0]).astype(np.float64)
    same = np.all(np.isclose(noisy, plain_noisy, atol=1e-6), axis=(1, 2, 3))
    correlated = ~same
    assert 0.4 < correlated.mean() < 0.6  # the share
    lag1 = np.array([max(speckle_lag_correlation(s)) for s in speckle])
    assert lag1[correlated].mean() > 0.35 and abs(lag1[same].mean()) < 0.03
    assert speckle[correlated].mean() == pytest.approx(1, abs=0.03)  # still mean-1 speckle
    with pytest.raises(UsageError, match="one look or more"):
        PatchSampler([Reference("flat", clean)], patch_size=16, looks=0.8, speckle_band=(0.6, 0.8))


def test_sampler_speckle_band_with_looks_draws_correlated_multilooked_speckle():
    from sardespeckle.models.sarcnn import LOG_AMPLITUDE_MAX, LOG_AMPLITUDE_MIN

    clean = np.full((80, 80), 100.0, np.float32)
    banded = PatchSampler([Reference("flat", clean)], patch_size=64, looks=4.4,
                          speckle_band=(0.6, 0.7), speckle_band_share=1.0)
    white = PatchSampler([Reference("flat", clean)], patch_size=64, looks=4.4)
    span = LOG_AMPLITUDE_MAX - LOG_AMPLITUDE_MIN
    fields = []
    for sampler in (banded, white):
        noisy, target = sampler.sample(64, np.random.default_rng(5))
        fields.append(np.exp(2 * span * (noisy - target)[:, 0]).astype(np.float64))
    banded_speckle, white_speckle = fields
    for speckle in fields:  # 4.4-look speckle either way: mean 1, variance 1/4.4
        assert speckle.mean() == pytest.approx(1, abs=0.02)
        assert 1 / speckle.var() == pytest.approx(4.4, rel=0.1)
    lag1 = np.array([max(speckle_lag_correlation(s)) for s in banded_speckle])
    white_lag1 = np.array([max(speckle_lag_correlation(s)) for s in white_speckle])
    assert lag1.mean() > 0.3 and abs(white_lag1.mean()) < 0.03


def test_speckle_band_config_checks_and_trains(tmp_path, reference_file, capsys):
    config = tiny_config(reference_file)
    assert config.speckle_band is None and config.speckle_band_share is None
    assert tiny_config(reference_file, speckle_band=[0.6, 1]).speckle_band_share == 1.0
    for bad in ([0, 1], [0.8, 0.6], [0.5, 1.2], "x", [0.7]):
        with pytest.raises(UsageError, match="speckle_band"):
            tiny_config(reference_file, speckle_band=bad)
    for bad in (-0.1, 1.5, "half", True):
        with pytest.raises(UsageError, match="speckle_band_share"):
            tiny_config(reference_file, speckle_band=[0.6, 0.8], speckle_band_share=bad)
    with pytest.raises(UsageError, match="needs speckle_band"):
        tiny_config(reference_file, speckle_band_share=0.5)
    with pytest.raises(UsageError, match="one look or more"):
        tiny_config(reference_file, speckle_band=[0.6, 0.8], looks=0.5)
    assert tiny_config(reference_file, speckle_band=[0.6, 0.8], looks=4.4).looks == 4.4
    with pytest.raises(UsageError, match="option of task 'sarcnn'"):
        tiny_config(reference_file, task="gaussian", speckle_band=[0.6, 0.8])
    result = train(tiny_config(reference_file, speckle_band=[0.6, 0.9], speckle_band_share=0.5,
                               steps=3), tmp_path / "run")
    assert result.finished and result.weights_path.exists()
    saved = TrainConfig.load(tmp_path / "run" / "config.json")
    assert (saved.speckle_band, saved.speckle_band_share) == ((0.6, 0.9), 0.5)
    # The weights say so, and decorrelate=auto then gives them correlated single-look input as
    # it is (full resolution), where weights trained on white speckle get it subsampled.
    from sardespeckle.decorrelate import (resolve_decorrelation, sarcnn_handles_correlation,
                                          simulate_correlated_slc)
    from sardespeckle.methods import get_method
    from sardespeckle.models.weights import load_weights

    meta = load_weights(result.weights_path)[1]
    assert (meta["speckle_band"], meta["speckle_band_share"]) == ([0.6, 0.9], 0.5)
    assert "correlated speckle on 50% of the patches (band 0.6-0.9)" in meta["description"]
    white = train(tiny_config(reference_file, steps=2), tmp_path / "white")
    assert "speckle_band" not in load_weights(white.weights_path)[1]
    slc = simulate_correlated_slc(np.full((128, 128), 50.0), band=(0.6, 0.7), seed=1)
    intensity = (np.abs(slc) ** 2).astype(np.float32)
    defaults = get_method("sarcnn").defaults
    for weights, mode, why in ((result.weights_path, "none", "weights trained on correlated"),
                               (white.weights_path, "subsample", "subsampled ×2")):
        params, note = resolve_decorrelation(
            defaults, {"weights": str(weights)}, kind="intensity", looks=1.0,
            sample=lambda: (intensity, np.ones(intensity.shape, bool)),
            correlated_network=sarcnn_handles_correlation(1.0))
        assert params["decorrelate"] == mode and why in note, note
    from sardespeckle.cli.main import main

    assert main(["weights", str(result.weights_path), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    record = record[0] if isinstance(record, list) else record
    assert (record["speckle_band"], record["speckle_band_share"]) == ([0.6, 0.9], 0.5)
    assert main(["weights", str(result.weights_path)]) == 0
    assert "spatially correlated on 50% of the training patches" in capsys.readouterr().out


def test_nan_regions_are_never_sampled():
    clean = np.full((40, 40), 10.0, np.float32)
    clean[:, :20] = np.nan
    sampler = PatchSampler([Reference("half", clean)], patch_size=8, looks=1.0)
    noisy, target = sampler.sample(200, np.random.default_rng(0))
    assert np.isfinite(noisy).all() and np.isfinite(target).all()


def test_tiny_training_runs_end_to_end_and_learns(tmp_path, reference_file):
    config = tiny_config(reference_file, steps=40, validate_every=40, learning_rate=3e-3)
    result = train(config, tmp_path / "run")
    assert result.finished and result.step == 40
    assert result.weights_path.exists()
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,loss")
    losses = [float(r.split(",")[1]) for r in rows[1:]]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["steps"] == 40
    # The weights are usable by the inference path.
    from sardespeckle.api import despeckle

    noisy = np.load(reference_file) * np.random.default_rng(3).exponential(1.0, (80, 72))
    out = despeckle(noisy.astype(np.float32), method="sarcnn", looks=1, kind="intensity",
                    params={"weights": str(result.weights_path), "precision": "fp32"})
    assert out.shape == noisy.shape and np.isfinite(out).all() and (out > 0).all()
    assert result.last_validation_psnr is not None and np.isfinite(result.last_validation_psnr)


def gaussian_tiny_config(folder):
    """The tiny run as a Gaussian-denoiser run on a few random 8-bit grey PNGs."""
    from PIL import Image

    rng = np.random.default_rng(5)
    for split, count in (("train", 3), ("val", 1)):
        (folder / split).mkdir()
        for index in range(count):
            pixels = rng.integers(0, 256, (32, 40), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / split / f"{index}.png")
    values = tiny_config(folder / "unused.npy").as_dict()
    values.update(task="gaussian", references=[{"path": str(folder / "train"), "kind": "grey"}],
                  validation=[{"path": str(folder / "val"), "kind": "grey"}])
    return TrainConfig.from_dict(values)


@pytest.mark.parametrize("task", ["sarcnn", "gaussian"])
def test_kill_and_resume_continues_identically(tmp_path, reference_file, task):
    config = tiny_config(reference_file) if task == "sarcnn" else gaussian_tiny_config(tmp_path)
    straight = train(config, tmp_path / "straight")
    first = train(config, tmp_path / "chunked", max_steps=4)
    assert not first.finished and first.step == 4
    second = train(config, tmp_path / "chunked")
    assert second.finished and second.step == 6
    a = torch.load(straight.weights_path, weights_only=True)
    b = torch.load(second.weights_path, weights_only=True)
    for key in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][key], b["state_dict"][key], rtol=0, atol=0, msg=key)
    assert a["meta"] == b["meta"] and a["meta"]["validation_psnr"] is not None
    log = (tmp_path / "chunked" / "log.csv").read_text().splitlines()
    assert [int(r.split(",")[0]) for r in log[1:]] == [1, 2, 3, 4, 5, 6]
    # Byte for byte, so the sha256 in a despeckled file's provenance names these weights
    # whichever way they were trained (torch.save used to name its archive after a random
    # temporary file).
    assert straight.weights_path.read_bytes() == second.weights_path.read_bytes()


def test_a_finished_run_called_again_keeps_its_weights_file(tmp_path, reference_file):
    config = tiny_config(reference_file, steps=3)
    first = train(config, tmp_path / "run")
    before = first.weights_path.stat()
    again = train(config, tmp_path / "run")
    after = again.weights_path.stat()
    assert again.finished and again.step == 3
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert again.last_validation_psnr == pytest.approx(first.last_validation_psnr)


def test_the_last_step_is_logged_and_an_empty_log_gets_its_header(tmp_path, reference_file):
    config = tiny_config(reference_file, steps=5, log_every=3, checkpoint_every=100,
                         validation=[])
    run = tmp_path / "run"
    train(config, run, max_steps=0)  # the folder and config of a new run, no step trained
    (run / "checkpoint.pt").unlink()
    (run / "log.csv").write_text("")  # a process killed before its first flush
    train(config, run)
    rows = (run / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,loss")
    assert [int(r.split(",")[0]) for r in rows[1:]] == [3, 5]


def test_precision_auto_is_the_default_and_trains_as_the_resolved_precision(tmp_path, reference_file):
    from sardespeckle.models.inference import resolve_precision

    values = {"references": [str(reference_file)]}
    assert TrainConfig.from_dict(values).precision == "auto"
    assert TrainConfig.from_dict(values).device == "auto"
    resolved = resolve_precision("auto", "cpu")
    auto = train(tiny_config(reference_file, precision="auto", steps=2), tmp_path / "auto")
    explicit = train(tiny_config(reference_file, precision=resolved, steps=2), tmp_path / "explicit")
    other = train(tiny_config(reference_file, precision="fp32" if resolved == "bf16" else "bf16",
                              steps=2), tmp_path / "other")
    a, b, c = (torch.load(r.weights_path, weights_only=True)["state_dict"] for r in (auto, explicit, other))
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert not all(torch.equal(a[key], c[key]) for key in a)
    assert json.loads((tmp_path / "auto" / "config.json").read_text())["precision"] == "auto"


def test_resume_drops_log_rows_past_the_checkpoint_and_says_where_it_starts(tmp_path, reference_file):
    config = tiny_config(reference_file, checkpoint_every=2)
    starts = []
    train(config, tmp_path / "run", max_steps=4, on_start=lambda *a: starts.append(a))
    log_path = tmp_path / "run" / "log.csv"
    # A process killed outright after logging steps 5 and 6 but before checkpointing them:
    with open(log_path, "a") as log:
        log.write("5,0.1,0.001,1.0,\n6,0.1,0.001,1.0,\n")
        log.write("a line from elsewhere\n7,0.1")  # and rows that are not the log's
    result = train(config, tmp_path / "run", on_start=lambda *a: starts.append(a))
    assert result.finished and result.interrupted_by is None
    assert starts == [(0, "fp32", "cpu"), (4, "fp32", "cpu")]
    steps = [int(row.split(",")[0]) for row in log_path.read_text().splitlines()[1:]]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_a_run_folder_without_its_checkpoint_is_not_restarted_over_its_log(tmp_path, reference_file):
    config = tiny_config(reference_file, checkpoint_every=2)
    train(config, tmp_path / "run")
    (tmp_path / "run" / "checkpoint.pt").unlink()  # as in the committed run records
    log_before = (tmp_path / "run" / "log.csv").read_text()
    with pytest.raises(UsageError, match="holds a log up to step 6 but no checkpoint.pt"):
        train(config, tmp_path / "run")
    assert (tmp_path / "run" / "log.csv").read_text() == log_before
    # Killed before its first checkpoint: nothing to keep, the run starts afresh.
    train(config, tmp_path / "early", max_steps=1)
    (tmp_path / "early" / "checkpoint.pt").unlink()
    assert train(config, tmp_path / "early").finished
    steps = [int(row.split(",")[0]) for row in (tmp_path / "early" / "log.csv").read_text().splitlines()[1:]]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_resume_refuses_another_config(tmp_path, reference_file):
    train(tiny_config(reference_file), tmp_path / "run", max_steps=1)
    with pytest.raises(UsageError, match=r"another configuration \(learning_rate: the run has "
                                         r"0.001, this call gives 0.5\)"):
        train(tiny_config(reference_file, learning_rate=0.5), tmp_path / "run", max_steps=1)


def test_resume_accepts_the_same_files_spelled_another_way(tmp_path, reference_file, monkeypatch):
    # Started with paths relative to the data folder, resumed with absolute ones (or the other
    # way round): the same files, the same run.
    monkeypatch.chdir(reference_file.parent)
    relative = tiny_config(Path(reference_file.name), steps=3)
    assert train(relative, tmp_path / "run", max_steps=1).step == 1
    assert train(tiny_config(reference_file.resolve(), steps=3), tmp_path / "run",
                 max_steps=1).step == 2
    other = tmp_path / "other.npy"
    other.write_bytes(reference_file.read_bytes())  # equal content, another file
    with pytest.raises(UsageError, match="references: the run has"):
        train(tiny_config(other, steps=3, validation=relative.as_dict()["validation"]),
              tmp_path / "run", max_steps=1)


def test_export_partial_run(tmp_path, reference_file):
    train(tiny_config(reference_file), tmp_path / "run", max_steps=2)
    from sardespeckle.models.weights import load_weights

    export_weights(tmp_path / "run", tmp_path / "partial.pt")
    network, meta = load_weights(tmp_path / "partial.pt")
    assert network.depth == 4 and "step 2" in meta["description"]
    # The run's own final weights file is never an export target, even with overwrite.
    config = tiny_config(reference_file)
    final = tmp_path / "run" / f"{config.name}.pt"
    with pytest.raises(UsageError, match="the weights the run writes when it finishes"):
        export_weights(tmp_path / "run", final, overwrite=True)
    assert not final.exists()


def test_export_finished_run_brought_back_without_its_checkpoint(tmp_path, reference_file):
    """A run trained elsewhere comes back with its final weights but no checkpoint: export
    renames those weights (same tensors, the identity they were written with, no validation
    PSNR, as an export of a checkpoint) instead of refusing."""
    from sardespeckle.models.weights import load_weights

    config = tiny_config(reference_file, steps=2, speckle_band=[0.5, 1.0], speckle_band_share=0.5)
    train(config, tmp_path / "run")
    (tmp_path / "run" / "checkpoint.pt").unlink()
    export_weights(tmp_path / "run", tmp_path / "released.pt", name="released-name")
    final, final_meta = load_weights(tmp_path / "run" / f"{config.name}.pt")
    released, meta = load_weights(tmp_path / "released.pt")
    assert meta["name"] == "released-name" and final_meta["name"] == config.name
    assert final_meta["validation_psnr"] is not None and meta.get("validation_psnr") is None
    for key in ("training_level", "description", "looks", "training_data", "speckle_band",
                "speckle_band_share"):
        assert meta[key] == final_meta[key], key
    assert tuple(meta["speckle_band"]) == (0.5, 1.0)
    final_state, state = final.state_dict(), released.state_dict()
    assert final_state.keys() == state.keys() and len(state) > 0
    for key in state:
        assert torch.equal(final_state[key], state[key]), key


def test_export_without_checkpoint_refuses_weights_that_are_not_the_runs(tmp_path, reference_file):
    """Without a checkpoint, only the run's own final weights are exported: weights of another
    configuration (same architecture) put in its place, or those of an earlier, shorter run
    whose steps were raised since, are refused with the reason; with neither file the message
    says how far the log went."""
    from sardespeckle.cli.main import main

    white = tiny_config(reference_file, steps=2)
    train(white, tmp_path / "white")
    correlated = tiny_config(reference_file, steps=2, speckle_band=[0.5, 1.0])
    run = tmp_path / "correlated"
    train(correlated, run, max_steps=1)
    (run / "checkpoint.pt").unlink()
    with pytest.raises(UsageError, match=r"log reaches step 1 of 2: the checkpoint stayed"):
        export_weights(run, tmp_path / "out.pt")
    # A finished white-speckle network put where the correlated run's weights belong.
    (run / "log.csv").write_text((tmp_path / "white" / "log.csv").read_text())
    (run / f"{correlated.name}.pt").write_bytes((tmp_path / "white" / f"{white.name}.pt").read_bytes())
    with pytest.raises(UsageError, match=r"not this run's weights: its speckle_band is None"):
        export_weights(run, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()
    # The CLI says the same and exits non-zero.
    assert main(["train", "--run-dir", str(run), "--export", str(tmp_path / "out.pt")]) == 2
    assert not (tmp_path / "out.pt").exists()
    # Another recipe's finished weights (fewer steps, same looks and data) in a finished run.
    other = tiny_config(reference_file, steps=3)
    train(other, tmp_path / "other")
    (tmp_path / "other" / "checkpoint.pt").unlink()
    (tmp_path / "other" / f"{other.name}.pt").write_bytes(
        (tmp_path / "white" / f"{white.name}.pt").read_bytes())
    with pytest.raises(UsageError, match=r"its description is .*2 steps"):
        export_weights(tmp_path / "other", tmp_path / "out.pt")
    # A finished run continued to more steps, stopped before the end, its checkpoint gone: the
    # weights file is the earlier run's.
    longer = json.loads((tmp_path / "white" / "config.json").read_text())
    longer["steps"] = 4
    (tmp_path / "white" / "config.json").write_text(json.dumps(longer))
    train(TrainConfig.load(tmp_path / "white" / "config.json"), tmp_path / "white", max_steps=1)
    (tmp_path / "white" / "checkpoint.pt").unlink()
    with pytest.raises(UsageError, match=r"log reaches step 3 of 4: .* not the weights of this"):
        export_weights(tmp_path / "white", tmp_path / "out.pt")


def test_cli_export_of_a_run_brought_back_without_its_checkpoint(tmp_path, reference_file, capsys):
    from sardespeckle.cli.main import main
    from sardespeckle.models.weights import load_weights

    config = tiny_config(reference_file, steps=2)
    train(config, tmp_path / "run")
    (tmp_path / "run" / "checkpoint.pt").unlink()
    assert main(["train", "--run-dir", str(tmp_path / "run"), "--export",
                 str(tmp_path / "mine.pt")]) == 0
    network, meta = load_weights(tmp_path / "mine.pt")
    assert network.depth == 4 and meta["name"] == config.name


def test_bad_configs(tmp_path, reference_file):
    with pytest.raises(UsageError, match="unknown training option.*'stepz' \\(did you mean "
                                         "'steps'\\?\\)"):
        TrainConfig.from_dict({"references": [str(reference_file)], "stepz": 3})
    # a Gaussian DnCNN is not named like a SAR-CNN unless asked
    gaussian = {"references": [{"path": str(reference_file), "kind": "intensity"}],
                "task": "gaussian"}
    assert TrainConfig.from_dict(gaussian).name == "dncnn"
    assert TrainConfig.from_dict({"references": [str(reference_file)]}).name == "sarcnn"
    with pytest.raises(UsageError, match="at least one"):
        TrainConfig.from_dict({"references": []})
    with pytest.raises(UsageError, match="precision"):
        tiny_config(reference_file, precision="int8")
    with pytest.raises(InputFileError, match="no such training config"):
        TrainConfig.load(tmp_path / "nope.json")
    with pytest.raises(InputFileError, match="got the folder"):
        TrainConfig.load(tmp_path)
    twice = tmp_path / "twice.json"
    twice.write_text(json.dumps({"references": [str(reference_file)]})[:-1] + ', "steps": 4, "steps": 5}')
    with pytest.raises(UsageError, match="gives 'steps' twice"):
        TrainConfig.load(twice)
    with pytest.raises(UsageError, match="patch_size"):
        tiny_config(reference_file, patch_size=4)


def test_init_from_a_checkpoint_or_weights_file(tmp_path, reference_file):
    from sardespeckle.errors import WeightsError
    from sardespeckle.models.weights import load_weights

    train(tiny_config(reference_file), tmp_path / "first", max_steps=3)
    export_weights(tmp_path / "first", tmp_path / "first.pt")
    first, _ = load_weights(tmp_path / "first.pt")
    for source in (tmp_path / "first", tmp_path / "first" / "checkpoint.pt", tmp_path / "first.pt"):
        run = tmp_path / f"second-{source.name}"
        # max_steps=0 writes the initial checkpoint: the network starts as the source's.
        result = train(tiny_config(reference_file, init_from=str(source), learning_rate=1e-4),
                       run, max_steps=0)
        assert result.step == 0
        export_weights(run, run / "start.pt")
        started, started_meta = load_weights(run / "start.pt")
        assert f"fine-tuned from {source}" in started_meta["description"]
        for key, value in first.state_dict().items():
            torch.testing.assert_close(started.state_dict()[key], value, rtol=0, atol=0, msg=key)
        assert json.loads((run / "config.json").read_text())["init_from"] == str(source)
    with pytest.raises(WeightsError, match="init_from: no such"):  # as a missing --weights: exit 1
        train(tiny_config(reference_file, init_from=str(tmp_path / "nope.pt")), tmp_path / "x")
    with pytest.raises(WeightsError, match=r"does not fit a DnCNN of depth 5 .*\(it holds a "
                                           r"DnCNN of depth 4 with 8 features\)"):
        train(tiny_config(reference_file, init_from=str(tmp_path / "first.pt"), depth=5),
              tmp_path / "y")
    (tmp_path / "garbage.pt").write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="cannot read"):
        train(tiny_config(reference_file, init_from=str(tmp_path / "garbage.pt")), tmp_path / "z")


def test_widened_network_computes_the_same_and_its_new_channels_learn():
    from sardespeckle.errors import InvalidInputError
    from sardespeckle.models.dncnn import DnCNN

    torch.manual_seed(0)
    narrow = DnCNN(depth=5, features=6)
    narrow.train()
    for _ in range(3):  # non-trivial batch-norm statistics
        narrow(torch.randn(4, 1, 12, 12))
    wide = narrow.widened(10, seed=3)
    assert wide.features == 10 and wide.depth == 5 and wide.training
    x = torch.randn(2, 1, 12, 12)
    for mode in ("train", "eval"):
        getattr(narrow, mode)(), getattr(wide, mode)()
        torch.testing.assert_close(wide(x), narrow(x), rtol=0, atol=0)
    # The copy is independent, seeded, and the zero weights out of the new channels get a gradient.
    assert torch.equal(narrow.widened(10, seed=3).layers[2].weight, wide.layers[2].weight)
    assert not torch.equal(narrow.widened(10, seed=4).layers[2].weight, wide.layers[2].weight)
    wide.train()
    wide(x).square().sum().backward()
    assert wide.layers[-1].weight.grad[:, 6:].abs().sum() > 0
    assert torch.count_nonzero(wide.layers[-1].weight[:, 6:]) == 0
    with pytest.raises(InvalidInputError, match="features"):
        narrow.widened(4)
    with pytest.raises(InvalidInputError, match="folded"):
        narrow.fold_batchnorm().widened(10)


def test_init_from_narrower_weights_widens_them(tmp_path, reference_file):
    from sardespeckle.errors import WeightsError
    from sardespeckle.models.weights import load_weights

    train(tiny_config(reference_file), tmp_path / "first", max_steps=3)
    export_weights(tmp_path / "first", tmp_path / "first.pt")
    first, _ = load_weights(tmp_path / "first.pt")
    run = tmp_path / "wide"
    train(tiny_config(reference_file, init_from=str(tmp_path / "first.pt"), features=12), run, max_steps=0)
    export_weights(run, run / "start.pt")
    started, _ = load_weights(run / "start.pt")
    assert started.features == 12
    x = torch.randn(1, 1, 20, 20)
    first.eval(), started.eval()
    torch.testing.assert_close(started(x), first(x), rtol=0, atol=0)
    # Wider weights than the run, or another depth, are refused.
    with pytest.raises(WeightsError, match="does not fit a DnCNN of depth 4 with 4 features"):
        train(tiny_config(reference_file, init_from=str(tmp_path / "first.pt"), features=4), tmp_path / "n")
    with pytest.raises(WeightsError, match="does not fit a DnCNN of depth 6 with 8 features"):
        train(tiny_config(reference_file, init_from=str(tmp_path / "first.pt"), depth=6, features=16),
              tmp_path / "d")


def test_a_validation_reference_with_nodata_is_scored_on_its_valid_pixels(tmp_path, reference_file):
    # references build writes NaN where no date was valid: such a reference validates a run,
    # its nodata pixels filled for the network and left out of the PSNR.
    clean = np.load(tmp_path / "val.npy")
    holed = clean.copy()
    holed[:, :4] = np.nan
    np.save(tmp_path / "holed.npy", holed)
    spec = {"path": str(tmp_path / "holed.npy"), "kind": "intensity"}
    config = tiny_config(reference_file, steps=2, validation=[spec])
    with pytest.warns(UserWarning, match=r"holed.npy: 128 nodata pixel\(s\) filled"):
        result = train(config, tmp_path / "run")
    assert np.isfinite(result.last_validation_psnr)
    from sardespeckle.training.trainer import _filled_validation_reference

    filled, valid = _filled_validation_reference(type(config.validation[0])(**spec, window=None))
    assert np.isfinite(filled).all() and valid.sum() == holed.size - 128
    np.testing.assert_array_equal(filled[:, :4], np.repeat(clean[:, 4:5], 4, axis=1))
    np.save(tmp_path / "empty.npy", np.full_like(clean, np.nan))
    with pytest.raises(InvalidInputError, match="empty.npy has no valid pixel"):
        train(tiny_config(reference_file, validation=[{"path": str(tmp_path / "empty.npy"),
                                                       "kind": "intensity"}]), tmp_path / "run2")


def test_a_folder_of_other_files_is_not_clobbered_by_a_new_run(tmp_path, reference_file):
    folder = tmp_path / "D"
    folder.mkdir()
    (folder / "sarcnn.pt").write_bytes(b"someone else's weights")
    with pytest.raises(UsageError, match="holding sarcnn.pt but no config.json"):
        train(tiny_config(reference_file), folder)
    assert (folder / "sarcnn.pt").read_bytes() == b"someone else's weights"
    assert sorted(p.name for p in folder.iterdir()) == ["sarcnn.pt"]


def test_the_hint_for_a_run_without_checkpoint_names_another_folder(tmp_path, reference_file):
    config = tiny_config(reference_file, checkpoint_every=2)
    train(config, tmp_path / "nock")
    (tmp_path / "nock" / "checkpoint.pt").unlink()
    with pytest.raises(UsageError, match=r"--run-dir \S*nock-again") as info:
        train(config, tmp_path / "nock")
    hinted = Path(str(info.value).split("--run-dir ")[-1])
    assert train(TrainConfig.load(tmp_path / "nock" / "config.json"), hinted).finished


def test_a_corrupt_checkpoint_is_explained_and_stale_partial_files_go(tmp_path, reference_file):

    run = tmp_path / "run"
    train(tiny_config(reference_file), run, max_steps=2)
    stale = run / ".checkpoint.pt.0123456789ab.partial.pt"  # a kill -9 during a write
    stale.write_bytes(b"x" * 100)
    kept = run / "notes.partial.pt"  # not a name the run writes
    kept.write_bytes(b"mine")
    assert train(tiny_config(reference_file), run, max_steps=1).step == 3
    assert not stale.exists() and kept.exists()
    (run / "checkpoint.pt").write_bytes(b"garbage" * 100)
    with pytest.raises(InputFileError) as info:
        train(tiny_config(reference_file), run, max_steps=1)
    message = str(info.value)
    assert "truncated or corrupt; put back a good copy" in message and "run-again" in message
    assert "weights_only" not in message and "arbitrary code" not in message


def test_every_difference_of_another_config_is_named(tmp_path, reference_file):
    train(tiny_config(reference_file), tmp_path / "run", max_steps=1)
    with pytest.raises(UsageError) as info:
        train(tiny_config(reference_file, learning_rate=0.5, steps=9, log_every=2,
                          checkpoint_every=3), tmp_path / "run", max_steps=1)
    for key in ("learning_rate", "steps", "log_every", "checkpoint_every"):
        assert f"{key}: the run has" in str(info.value)
    # Beyond six differences the others are named; another task is said alone.
    with pytest.raises(UsageError) as info:
        train(tiny_config(reference_file, learning_rate=0.5, steps=9, log_every=2, seed=4,
                          checkpoint_every=3, validate_every=7, decay=0.5, patch_size=20),
              tmp_path / "run", max_steps=1)
    assert str(info.value).count(": the run has") == 6 and "and 2 more: " in str(info.value)
    with pytest.raises(UsageError, match="holds a run of task 'sarcnn'.*this call trains task "
                                         "'gaussian'; use a new run folder$"):
        train(tiny_config(reference_file, task="gaussian",
                          references=[{"path": str(reference_file), "kind": "intensity"}]),
              tmp_path / "run", max_steps=1)


def test_export_needs_a_weights_file_name(tmp_path, reference_file):
    train(tiny_config(reference_file), tmp_path / "run", max_steps=1)
    with pytest.raises(UsageError, match="ending in .pt or .pth"):
        export_weights(tmp_path / "run", tmp_path / "weights.tif")
    export_weights(tmp_path / "run", tmp_path / "weights.pth")


def test_a_speckled_reference_is_warned_about(tmp_path, reference_file):
    from sardespeckle.speckle import simulate_speckle

    speckled = tmp_path / "one_date.npy"
    clean = np.load(reference_file)
    np.save(speckled, (clean * simulate_speckle(clean.shape, 1, seed=2)).astype(np.float32))
    with pytest.warns(UserWarning, match="one_date.npy looks speckled .*references build"):
        train(tiny_config(speckled, steps=1), tmp_path / "run")


def test_a_reference_named_twice_is_refused_unless_windows_differ(tmp_path, reference_file, monkeypatch):
    monkeypatch.chdir(reference_file.parent)
    twice = [{"path": str(reference_file), "kind": "intensity"},
             {"path": f"./{reference_file.name}", "kind": "intensity"}]
    with pytest.raises(UsageError, match=r"each reference once, got \./ref.npy, the same file"):
        train(tiny_config(reference_file, references=twice), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    halves = [dict(spec, window=window) for spec, window in zip(twice, ([0, 0, 40, 72], [40, 0, 40, 72]))]
    assert train(tiny_config(reference_file, references=halves, steps=1), tmp_path / "run").finished


def test_one_reference_path_alone_is_a_list_of_one(reference_file):
    from pathlib import Path

    values = {key: value for key, value in tiny_config(reference_file).__dict__.items()
              if key not in ("references", "validation")}
    for given in (str(reference_file), Path(reference_file), [Path(reference_file)]):
        config = TrainConfig(references=given, validation=Path(reference_file), **values)
        assert [spec.path for spec in config.references] == [str(reference_file)]
        assert [spec.path for spec in config.validation] == [str(reference_file)]


def test_resuming_on_references_that_changed_is_refused(tmp_path, reference_file):
    config = tiny_config(reference_file, steps=6)
    first = train(config, tmp_path / "run", max_steps=3)
    assert not first.finished
    original = np.load(reference_file)
    np.save(reference_file, original * 4)  # rebuilt with --overwrite, say
    with pytest.raises(UsageError, match="holds other data than when the run.*-again"):
        train(config, tmp_path / "run")
    np.save(reference_file, original)  # restored: the run goes on
    assert train(config, tmp_path / "run").finished


def test_a_reference_with_a_few_negative_pixels_says_they_are_left_out(tmp_path, reference_file):
    from sardespeckle.training import ReferenceSpec
    from sardespeckle.training.data import load_reference

    reference = np.load(reference_file)
    reference[0, :6] = -1.0
    np.save(tmp_path / "neg.npy", reference)
    with pytest.warns(UserWarning, match=r"training reference .*neg\.npy: .* pixels are negative"):
        loaded = load_reference(ReferenceSpec(str(tmp_path / "neg.npy"), kind="intensity"))
    assert np.isnan(loaded.intensity[0, :6]).all()


def test_a_speckle_band_share_of_zero_draws_no_correlated_speckle(tmp_path, reference_file):
    from sardespeckle.models.weights import load_weights, trained_on_correlated_speckle
    from sardespeckle.training.trainer import _task_data

    config = tiny_config(reference_file, speckle_band=[0.6, 0.8], speckle_band_share=0.0)
    sampler = _task_data(config)[0]
    assert sampler.speckle_band_share == 0.0
    plain = _task_data(tiny_config(reference_file))[0]
    np.testing.assert_array_equal(sampler.sample(8, np.random.default_rng(1))[0],
                                  plain.sample(8, np.random.default_rng(1))[0])
    result = train(tiny_config(reference_file, speckle_band=[0.6, 0.8], speckle_band_share=0.0,
                               steps=2), tmp_path / "run")
    assert not trained_on_correlated_speckle(load_weights(result.weights_path)[1])


def test_resuming_through_a_link_to_the_same_references_goes_on(tmp_path, reference_file):
    link = tmp_path / "alias.npy"
    link.symlink_to(reference_file)
    first = train(tiny_config(reference_file, steps=4), tmp_path / "run", max_steps=2)
    assert not first.finished
    again = tiny_config(reference_file, steps=4,
                        references=[{"path": str(link), "kind": "intensity"}])
    assert train(again, tmp_path / "run").finished


def test_a_gaussian_run_refuses_to_resume_on_changed_images(tmp_path, reference_file):
    config = tiny_config(reference_file, task="gaussian", steps=4,
                         references=[{"path": str(reference_file), "kind": "intensity"}])
    assert not train(config, tmp_path / "run", max_steps=2).finished
    np.save(reference_file, np.load(reference_file)[::-1] * 7 + 3)
    with pytest.raises(UsageError, match="holds other data than when the run"):
        train(config, tmp_path / "run")


def test_a_validation_reference_with_negatives_is_named_as_such(tmp_path, reference_file):
    reference = np.load(reference_file)[:32, :32]
    reference[0, :4] = -1.0
    np.save(tmp_path / "valneg.npy", reference)
    config = tiny_config(reference_file, steps=1,
                         validation=[{"path": str(tmp_path / "valneg.npy"), "kind": "intensity"}])
    with pytest.warns(UserWarning, match=r"validation reference .*valneg\.npy: .*negative .*not "
                                         r"scored"):
        train(config, tmp_path / "run")

