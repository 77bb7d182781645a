"""Training losses: values, level independence, weighting, and the config checks."""

import numpy as np
import pytest
import torch
from test_training import tiny_config

from sardespeckle.errors import UsageError
from sardespeckle.models.sarcnn import LOG_AMPLITUDE_MAX, LOG_AMPLITUDE_MIN
from sardespeckle.training import TrainConfig, train
from sardespeckle.training.losses import training_loss

SPAN = LOG_AMPLITUDE_MAX - LOG_AMPLITUDE_MIN


def batch(seed=0):
    generator = torch.Generator().manual_seed(seed)
    target = 0.3 + 0.3 * torch.rand((3, 1, 6, 5), generator=generator)
    error = 0.02 * torch.randn((3, 1, 6, 5), generator=generator)
    return error, target


def test_l1_and_l2_are_the_mean_absolute_and_squared_error():
    error, target = batch()
    assert float(training_loss("l1", error, target)) == pytest.approx(float(error.abs().mean()), rel=1e-6)
    assert float(training_loss("l2", error, target)) == pytest.approx(float((error**2).mean()), rel=1e-6)


def test_amplitude_loss_is_the_relative_squared_amplitude_error_per_patch():
    error, target = batch(1)
    amplitude = np.exp(SPAN * target.double().numpy())
    estimate = amplitude * np.exp(SPAN * error.double().numpy())
    expected = np.mean(((estimate - amplitude) ** 2).sum(axis=(1, 2, 3)) / (amplitude**2).sum(axis=(1, 2, 3)))
    assert float(training_loss("amplitude", error, target)) == pytest.approx(expected, rel=1e-4)
    assert float(training_loss("amplitude", torch.zeros_like(error), target)) == 0.0


def test_amplitude_loss_ignores_the_patch_level_and_weighs_bright_pixels_more():
    error, target = batch(2)
    # A gain on one patch shifts its normalised log-amplitude: the loss does not move.
    shifted = target.clone()
    shifted[1] += 0.4
    assert float(training_loss("amplitude", error, shifted)) == pytest.approx(
        float(training_loss("amplitude", error, target)), rel=1e-5)
    # The same log error costs more on the bright pixel of a patch than on a dark one.
    target = torch.full((1, 1, 4, 4), 0.4)
    target[0, 0, 0, 0] = 0.6
    on_bright, on_dark = torch.zeros_like(target), torch.zeros_like(target)
    on_bright[0, 0, 0, 0] = on_dark[0, 0, 3, 3] = 0.01
    assert float(training_loss("amplitude", on_bright, target)) > 10 * float(
        training_loss("amplitude", on_dark, target))
    # ℓ1 on log-amplitude counts them alike.
    assert float(training_loss("l1", on_bright, target)) == float(training_loss("l1", on_dark, target))


def test_amplitude_loss_stays_finite_and_differentiable_when_far_off():
    error, target = batch(3)
    error = (error * 1e4).requires_grad_()
    loss = training_loss("amplitude", error, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(error.grad).all()


def test_unknown_loss_names_are_refused():
    error, target = batch()
    with pytest.raises(ValueError, match="expected a loss"):
        training_loss("huber", error, target)


def test_amplitude_loss_config(reference_file, tmp_path):
    assert tiny_config(reference_file, loss="amplitude").loss == "amplitude"
    with pytest.raises(UsageError, match="option of task 'sarcnn'"):
        tiny_config(reference_file, task="gaussian", loss="amplitude")
    with pytest.raises(UsageError, match="expected loss in"):
        tiny_config(reference_file, loss="huber")
    result = train(tiny_config(reference_file, loss="amplitude", steps=3), tmp_path / "run")
    assert result.finished
    assert TrainConfig.load(tmp_path / "run" / "config.json").loss == "amplitude"
    losses = [float(row.split(",")[1]) for row in (tmp_path / "run" / "log.csv").read_text().splitlines()[1:]]
    assert losses and all(np.isfinite(losses))
