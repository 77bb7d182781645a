"""Bright point/line targets added to clean SAR-CNN training patches."""

import numpy as np
import pytest

from sardespeckle.errors import UsageError
from sardespeckle.training import PatchSampler, Reference, TrainConfig, train
from sardespeckle.training.targets import (RATIO_MAX, RATIO_MIN, TAIL, add_bright_targets,
                                           peak_ratios, target_footprint)


def test_peak_ratios_follow_the_pareto_tail_within_bounds():
    ratios = peak_ratios(200_000, np.random.default_rng(0))
    assert ratios.min() >= RATIO_MIN and ratios.max() <= RATIO_MAX
    # P(ratio > x) = (x / RATIO_MIN) ** -TAIL below the cap.
    for x in (4.0, 6.0, 12.0):
        assert np.mean(ratios > x) == pytest.approx((x / RATIO_MIN) ** -TAIL, rel=0.05)
    assert np.median(ratios) == pytest.approx(RATIO_MIN * 2 ** (1 / TAIL), rel=0.02)


def test_footprints_have_unit_peak_and_documented_shapes():
    rng = np.random.default_rng(0)
    assert target_footprint("point", rng).shape == (1, 1)
    assert target_footprint("block", rng).shape == (2, 2)
    blob = target_footprint("blob", rng)
    assert blob.max() == 1.0 and blob[1, 1] == 1.0 and blob[0, 0] == 0.25
    lines = [target_footprint("line", rng).shape for _ in range(200)]
    assert {min(s) for s in lines} == {1} and {max(s) for s in lines} <= set(range(3, 11))
    assert any(s[0] == 1 for s in lines) and any(s[1] == 1 for s in lines)
    with pytest.raises(ValueError, match="unknown target shape"):
        target_footprint("disc", rng)


def test_targets_brighten_never_darken_and_come_at_the_asked_rate():
    rng = np.random.default_rng(3)
    clean = np.full((3000, 40, 40), 100.0, np.float32)  # amplitude 10
    clean[:, :, 20:] = 400.0  # amplitude 20 on the right half: median amplitude 15
    out = add_bright_targets(clean, 5e-4, rng)
    assert out.shape == clean.shape and out.dtype == np.float32
    assert (out >= clean).all()
    changed = out > clean
    # Poisson(rate · P²) targets per patch: P(no target) = exp(-0.8).
    assert np.mean(~changed.any(axis=(1, 2))) == pytest.approx(np.exp(-0.8), abs=0.03)
    # Peaks are ≥ 3 × the patch's median amplitude (15) and ≤ 100 × (a target cut by the
    # border may show only the ½ or ¼ flank of a blob: look at patches changed inside only).
    inside = changed.any(axis=(1, 2)) & ~changed[:, [0, -1], :].any(axis=(1, 2)) \
        & ~changed[:, :, [0, -1]].any(axis=(1, 2))
    peak = np.sqrt(out.max(axis=(1, 2)))[inside]
    assert inside.sum() > 1000
    assert peak.min() >= RATIO_MIN * 15 * (1 - 1e-5) and peak.max() <= RATIO_MAX * 15 * (1 + 1e-5)
    # Most changed patches change a few pixels (points, blocks, blobs, short lines).
    sizes = changed.sum(axis=(1, 2))[changed.any(axis=(1, 2))]
    assert np.median(sizes) <= 9 and sizes.max() < 60
    np.testing.assert_array_equal(add_bright_targets(clean, 0.0, rng), clean)


def test_targets_are_deterministic_and_checked():
    clean = np.full((8, 32, 32), 50.0, np.float32)
    a = add_bright_targets(clean, 2e-3, np.random.default_rng(5))
    b = add_bright_targets(clean, 2e-3, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, clean)
    with pytest.raises(ValueError, match="rate"):
        add_bright_targets(clean, 0.5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="batch"):
        add_bright_targets(clean[0], 1e-3, np.random.default_rng(0))


def test_sampler_adds_targets_after_every_other_draw():
    clean = np.full((64, 64), 100.0, np.float32)
    plain = PatchSampler([Reference("flat", clean)], patch_size=16, looks=1.0)
    bright = PatchSampler([Reference("flat", clean)], patch_size=16, looks=1.0, bright_targets=5e-3)
    noisy, target = bright.sample(128, np.random.default_rng(2))
    plain_noisy, plain_target = plain.sample(128, np.random.default_rng(2))
    # Same patches and speckle: the log-speckle (noisy - target) is unchanged everywhere ...
    np.testing.assert_allclose(noisy - target, plain_noisy - plain_target, atol=1e-5)
    # ... and the targets only raise the clean patches, in some of them.
    assert (target >= plain_target - 1e-7).all()
    raised = (target > plain_target + 1e-4).any(axis=(1, 2, 3))
    assert 0.5 < raised.mean() < 0.95  # Poisson(1.28): P(≥ 1) = 0.72


def test_bright_targets_config_checks_and_a_run(tmp_path):
    clean = np.full((48, 48), 400.0, np.float32)
    np.save(tmp_path / "ref.npy", clean)
    values = dict(references=[{"path": str(tmp_path / "ref.npy"), "kind": "intensity"}],
                  depth=3, features=4, patch_size=16, batch_size=2, steps=2, threads=1,
                  precision="fp32", checkpoint_every=1, log_every=1)
    assert TrainConfig.from_dict(values).bright_targets is None
    assert TrainConfig.from_dict({**values, "bright_targets": 5e-4}).bright_targets == 5e-4
    for bad in (-1e-4, 0.5, "many", True, [1e-4]):
        with pytest.raises(UsageError, match="bright_targets"):
            TrainConfig.from_dict({**values, "bright_targets": bad})
    with pytest.raises(UsageError, match="bright_targets is an option of task .sarcnn. and"):
        TrainConfig.from_dict({**values, "task": "gaussian", "bright_targets": 1e-3})
    result = train(TrainConfig.from_dict({**values, "bright_targets": 1e-3}), tmp_path / "run")
    assert result.finished
    assert TrainConfig.load(tmp_path / "run" / "config.json").bright_targets == 1e-3


def test_log_domain_targets_match_the_intensity_ones():
    from sardespeckle.training.targets import add_bright_targets_log

    rng = np.random.default_rng(0)
    intensity = np.exp(rng.normal(0, 0.3, (16, 24, 24))).astype(np.float32) * 50
    logs = np.log(intensity.astype(np.float64)).astype(np.float32) - 3.0  # centred log-intensity
    from_log = add_bright_targets_log(logs, 3e-3, np.random.default_rng(9))
    direct = add_bright_targets(intensity / np.median(intensity, axis=(1, 2), keepdims=True),
                                3e-3, np.random.default_rng(9))
    expected = np.log(direct.astype(np.float64)) + np.median(logs, axis=(1, 2), keepdims=True)
    assert from_log.dtype == logs.dtype and (from_log >= logs - 1e-5).all()
    np.testing.assert_allclose(from_log, expected, atol=1e-4)
    assert (from_log > logs + 1.0).any()  # targets ≥ 3 × amplitude: + log 9 in intensity


def test_gaussian_sar_sampler_takes_targets_and_keeps_its_draws():
    from sardespeckle.training.gaussian import LogScalePatchSampler, UnitImage

    values = np.zeros((48, 48), np.float32)
    kwargs = dict(patch_size=16, trained_sigma=0.1, log_sigma_range=(0.2, 0.2))
    plain = LogScalePatchSampler([UnitImage("flat", values)], **kwargs)
    bright = LogScalePatchSampler([UnitImage("flat", values)], bright_targets=5e-3, **kwargs)
    noisy, clean = bright.sample(64, np.random.default_rng(4))
    plain_noisy, plain_clean = plain.sample(64, np.random.default_rng(4))
    np.testing.assert_allclose(noisy - clean, plain_noisy - plain_clean, atol=1e-6)  # same noise
    assert (clean >= plain_clean - 1e-6).all() and (clean > plain_clean + 0.1).any()


def test_gaussian_task_takes_targets_only_on_sar_log_scaling(tmp_path):
    np.save(tmp_path / "ref.npy", np.full((48, 48), 400.0, np.float32))
    values = dict(references=[{"path": str(tmp_path / "ref.npy"), "kind": "intensity"}],
                  task="gaussian", depth=3, features=4, patch_size=16, batch_size=2, steps=2,
                  threads=1, precision="fp32", checkpoint_every=1, log_every=1,
                  sigma_range=[0.1, 0.1], bright_targets=1e-3)
    with pytest.raises(UsageError, match="log_sigma_range"):
        TrainConfig.from_dict(values)
    config = TrainConfig.from_dict({**values, "log_sigma_range": [0.2, 1.0]})
    assert config.bright_targets == 1e-3
    assert train(config, tmp_path / "run").finished
