"""The training loop: SAR-CNN (ℓ1 on normalised log-amplitude) or a Gaussian DnCNN for MuLoG
(ℓ2 on ``[0, 1]`` images), Adam, exact checkpoint/resume.

A run lives in a folder: ``config.json`` (the configuration, written once and checked on
resume), ``log.csv`` (one line per logged step), ``checkpoint.pt`` (model, optimiser, step and
every random state; written atomically every ``checkpoint_every`` steps and when interrupted)
and, at the end, ``<name>.pt`` (weights in the registry format with their identity).
Killing the process at any time loses at most ``checkpoint_every`` steps; restarting the same
command continues exactly where the checkpoint was taken.
"""

from __future__ import annotations

import contextlib
import csv
import inspect
import json
import math
import os
import signal
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputFileError, InvalidInputError, OutputFileError, UsageError
from ..io.base import OVERWRITE_HINT, atomic_output, check_output_folder, same_file
from .config import GREY, TrainConfig
from .data import PatchSampler, Reference, load_reference
from .losses import training_loss
from .targets import MIN_CLIPPED

CHECKPOINT = "checkpoint.pt"
LOG_COLUMNS = ("step", "loss", "learning_rate", "seconds", "validation_psnr")


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    finished: bool
    weights_path: Path | None
    last_validation_psnr: float | None
    interrupted_by: int | None = None  # the signal (SIGINT, SIGTERM, SIGHUP) that stopped it


def amplitude_psnr(reference_amplitude: np.ndarray, estimate_amplitude: np.ndarray) -> float:
    """PSNR on amplitude with the 99th percentile of the reference as peak (SAR-CNN paper)."""
    peak = np.percentile(reference_amplitude, 99)
    error = np.mean((estimate_amplitude.astype(np.float64) - reference_amplitude) ** 2)
    return float(10 * np.log10(peak**2 / error))


class _Validator:
    """Fixed noisy draws of the validation references, scored with the inference path users get."""

    def __init__(self, config: TrainConfig):
        self.images = []
        for index, spec in enumerate(config.validation):
            clean, valid = _filled_validation_reference(spec)
            draws = []
            for draw in range(config.validation_draws):
                rng = np.random.default_rng([config.seed, 1000 + index, draw])
                draws.append((clean * rng.gamma(config.looks, 1 / config.looks, clean.shape))
                             .astype(np.float32))
            self.images.append((np.sqrt(clean), draws, valid))
        self.looks = config.looks

    def __bool__(self) -> bool:
        return bool(self.images)

    def score(self, network) -> float:
        from ..models.sarcnn import SarCnnDenoiser

        # Scored on the network's own device: on a GPU, CPU validation would cost more than training.
        device = next(network.parameters()).device.type
        denoiser = SarCnnDenoiser(network, looks=self.looks, precision="fp32", device=device)
        scores = []
        for amplitude, draws, valid in self.images:
            for noisy in draws:
                estimate = np.sqrt(denoiser(noisy))
                scores.append(amplitude_psnr(amplitude, estimate) if valid is None
                              else amplitude_psnr(amplitude[valid], estimate[valid]))
        return float(np.mean(scores))


def _warn_validation_in_training(config: TrainConfig) -> None:
    """A validation reference that is also a training reference measures fit, not
    generalisation: said, not refused (a quick check of a recipe may want exactly that)."""
    trained = {os.path.realpath(spec.path) for spec in config.references}
    for spec in config.validation:
        if os.path.realpath(spec.path) in trained:
            warnings.warn(f"validation reference {spec.path} is also a training reference: its "
                          f"PSNR measures how well the network fits it, not how it does on "
                          f"unseen data", UserWarning, stacklevel=3)


def _filled_validation_reference(spec) -> tuple[np.ndarray, np.ndarray | None]:
    """A validation reference's intensity with its nodata pixels (NaN, as ``references build``
    writes them) filled with the nearest valid value, so the network sees a whole scene, and the
    mask of the pixels its PSNR counts (``None``: all of them)."""
    from scipy import ndimage

    clean = load_reference(spec, role="validation reference").intensity
    valid = np.isfinite(clean) & (clean > 0)
    if valid.all():
        return clean, None
    if not valid.any():
        raise InvalidInputError(f"validation reference {spec.path} has no valid pixel")
    warnings.warn(f"validation reference {spec.path}: {int((~valid).sum())} nodata pixel(s) "
                  f"filled for the network and left out of its PSNR", UserWarning, stacklevel=3)
    nearest = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
    return clean[tuple(nearest)], valid


def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    max_steps: int | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    on_start: Callable[[int, str, str], None] | None = None,
) -> TrainResult:
    """Train (or resume) SAR-CNN or a Gaussian DnCNN (``config.task``) in ``run_dir``.

    Parameters
    ----------
    config : TrainConfig
        The run's configuration; must equal ``run_dir/config.json`` when resuming.
    run_dir : path
        Folder of the run (created if missing).
    max_steps : int, optional
        Stop (with a checkpoint) after this many steps in this call, to train in chunks.
    progress : callable, optional
        ``progress(step, total_steps, loss)`` after every step.
    on_start : callable, optional
        ``on_start(step, precision, device)`` once, before the first step of this call: the
        step it starts from (0 for a new run, the checkpoint's step when resuming), the
        precision (``"bf16"``/``"fp32"``) and the device (``"cpu"``/``"cuda"``) it trains with.

    Notes
    -----
    SIGINT (Ctrl-C), SIGTERM and SIGHUP (unless ignored, as under ``nohup``) end the call
    between two steps with a checkpoint; the result's ``interrupted_by`` says which. On resume, ``log.csv`` rows after the checkpoint's step (left
    by a process killed outright) are dropped, since those steps are trained again. A folder
    whose log goes past its first checkpoint but has no ``checkpoint.pt`` (removed, as in the
    committed run records) is refused rather than restarted over its log.
    """
    import torch

    from ..models.dncnn import DnCNN

    run_dir = Path(run_dir)
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int)
                                  or max_steps < 0):
        raise UsageError(f"expected max_steps as an integer ≥ 0, got {max_steps!r}")
    # Everything the run needs (config, folder, device, data, initial weights) is checked before
    # the run folder is touched: a call that fails on its inputs leaves no config.json behind to
    # refuse the corrected retry.
    check_run_folder(run_dir)
    _check_distinct_references(config)
    resuming = _check_config(config, run_dir)
    if resuming:
        _check_log_without_checkpoint(config, run_dir)
    else:
        _check_nothing_to_clobber(config, run_dir)
    if config.threads:
        torch.set_num_threads(int(config.threads))
    if config.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("expected a CUDA GPU for device 'cuda', but torch sees none; use device "
                         "'auto' or 'cpu'")
    device = torch.device("cuda" if config.device == "cuda" or (
        config.device == "auto" and torch.cuda.is_available()) else "cpu")

    torch.manual_seed(config.seed)
    model = DnCNN(depth=config.depth, features=config.features)
    if config.init_from is not None:
        model.load_state_dict(initial_state(config))
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    rng = np.random.default_rng(config.seed)
    _warn_validation_in_training(config)
    try:
        sampler, validator, offset = _task_data(config)  # reads and checks every reference
    except InputFileError as error:
        relative = [spec.path for spec in (*config.references, *config.validation)
                    if not os.path.isabs(spec.path) and not os.path.exists(spec.path)]
        if not (resuming and relative):
            raise
        raise InputFileError(
            f"{error}; the run's {run_dir / 'config.json'} names its references relative to the "
            f"folder it was started in: resume from that folder (now in {os.getcwd()})") from error
    checkpoint_path = run_dir / CHECKPOINT
    log_path = run_dir / "log.csv"
    created = _create_run_folder(run_dir)
    try:
        lock = _RunLock(run_dir)  # held until this call returns: one process per run folder
    except BaseException:
        for folder in created:  # only the folders this call created, if empty: nothing else
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    _remove_stale_temporaries(run_dir, config)
    new_log = not log_path.exists()
    try:
        if not resuming:
            config.save(run_dir / "config.json")
        return _run(config, run_dir, max_steps, progress, on_start, model, optimizer, rng, device,
                    sampler, validator, offset)
    except BaseException:
        if not resuming and not checkpoint_path.exists():
            # Nothing was trained: leave the folder as it was, so a corrected retry starts afresh.
            _remove_new_run(run_dir, created, new_log)
        raise
    finally:
        lock.release()


def _run(config: TrainConfig, run_dir: Path, max_steps, progress, on_start, model, optimizer,
         rng, device, sampler, validator, offset) -> TrainResult:
    """The training loop of :func:`train`, once everything is checked and config.json written."""
    import torch

    from ..models.weights import save_weights

    step = 0
    checkpoint_path = run_dir / CHECKPOINT
    if checkpoint_path.exists():
        state = _load_checkpoint(checkpoint_path, device)
        _load_network(model, state, checkpoint_path, config)
        optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = json.loads(state["numpy_rng"])
        torch.set_rng_state(state["torch_rng"].cpu())  # map_location may have moved it
        step = int(state["step"])
        if getattr(sampler, "fingerprint", None) is not None:
            _check_same_references(state.get("references"), sampler.fingerprint, config, run_dir)
    _drop_log_rows_after(run_dir / "log.csv", step)

    from ..models.inference import resolve_precision

    precision = resolve_precision(config.precision, device.type)
    autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16)
                if precision == "bf16" else contextlib.nullcontext())
    model = model.to(memory_format=torch.channels_last)
    if on_start is not None:
        on_start(step, precision, device.type)

    def save_checkpoint() -> None:
        _atomic_torch_save({
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "numpy_rng": json.dumps(rng.bit_generator.state),
            "torch_rng": torch.get_rng_state(),
            "step": step,
            # for an export of this checkpoint without the references at hand (SAR-CNN runs)
            **({"training_level": float(sampler.training_level)}
               if getattr(sampler, "training_level", None) is not None else {}),
            **({"references": sampler.fingerprint}
               if getattr(sampler, "fingerprint", None) is not None else {}),
        }, checkpoint_path)

    # SIGTERM, Ctrl-C and a hang-up (the terminal closed, an SSH session dropped) end the run
    # between two steps, with a checkpoint; a crash keeps the last periodic checkpoint (never a
    # half-updated model). A hang-up ignored by the caller (nohup) stays ignored.
    stop = {"now": False, "signal": None}
    previous_handlers = {}
    if _main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            if signum != signal.SIGTERM and signal.getsignal(signum) == signal.SIG_IGN:
                continue  # ignored by the caller (nohup; a script's background job): it stays
            previous_handlers[signum] = signal.signal(
                signum, lambda received, _: stop.update(now=True, signal=int(received)))
    log_path = run_dir / "log.csv"
    # A run killed before its first flush leaves an empty log: it gets its header too.
    new_log = not log_path.exists() or log_path.stat().st_size == 0
    last_psnr = None
    finished_before = step >= config.steps
    steps_this_call = 0
    started = time.perf_counter()
    try:
        with open(log_path, "a", newline="") as log_file:
            log = csv.writer(log_file)
            if new_log:
                log.writerow(LOG_COLUMNS)
            model.train()
            while step < config.steps and not stop["now"]:
                if max_steps is not None and steps_this_call >= max_steps:
                    break
                for group in optimizer.param_groups:
                    group["lr"] = config.learning_rate_at(step)
                noisy, target = sampler.sample(config.batch_size, rng)
                noisy_t = torch.from_numpy(noisy).to(device).contiguous(memory_format=torch.channels_last)
                target_t = torch.from_numpy(target).to(device)
                with autocast:
                    predicted_noise = model(noisy_t)
                # The clean estimate x − f(x) is trained towards clean + E[log speckle] (cn), so
                # the network learns zero-mean noise and inference subtracts cn (SAR-CNN; the
                # offset is 0 for Gaussian noise).
                estimate = noisy_t.float() - predicted_noise.float()
                loss = training_loss(config.loss, estimate - (target_t + offset), target_t)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                steps_this_call += 1
                loss_value = float(loss.detach())
                if not math.isfinite(loss_value):
                    raise InvalidInputError(
                        f"training diverged at step {step} (loss {loss_value}): the learning "
                        f"rate ({config.learning_rate:g}) is too high for these data"
                        + (f", or the looks ({config.looks:g}) are implausible"
                           if config.task == "sarcnn" else "")
                        + "; lower --learning-rate (the "
                        "shipped networks used 1e-3 to 5e-5) and train again, or resume with a "
                        "lower one from a new run folder initialised from the last checkpoint "
                        "(--init-from)")
                psnr = None
                if validator and (step % config.validate_every == 0 or step == config.steps):
                    model.eval()
                    psnr = last_psnr = validator.score(model)
                    model.train()
                if step % config.log_every == 0 or psnr is not None or step == config.steps:
                    log.writerow([step, f"{loss_value:.6f}", f"{config.learning_rate_at(step - 1):.3g}",
                                  f"{time.perf_counter() - started:.1f}",
                                  "" if psnr is None else f"{psnr:.3f}"])
                    log_file.flush()
                if step % config.checkpoint_every == 0:
                    save_checkpoint()
                if progress is not None:
                    progress(step, config.steps, loss_value)
        save_checkpoint()
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)

    weights_path = None
    finished = step >= config.steps
    if finished:
        model.eval()
        weights_path = run_dir / f"{config.name}.pt"
    if finished and finished_before and weights_path.exists():
        # A finished run called again keeps its weights file as it is.
        from ..models.weights import load_weights

        last_psnr = load_weights(weights_path)[1].get("validation_psnr")
    elif finished:
        if last_psnr is None and validator:
            last_psnr = validator.score(model)
        save_weights(model.cpu(), weights_path, name=config.name, validation_psnr=last_psnr,
                     **weights_identity(config, f"{config.steps} steps of "
                                                f"{config.batch_size}×{config.patch_size}² patches",
                                        level=getattr(sampler, "training_level", None)))
    return TrainResult(run_dir, step, finished, weights_path, last_psnr,
                       interrupted_by=None if finished else stop["signal"])


def _logged_steps(log_path: Path) -> list[int]:
    """The step of every row of a run's ``log.csv`` (empty when there is none)."""
    if not log_path.exists():
        return []
    with open(log_path, newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    return [int(row[0]) for row in rows if row and row[0].isdigit()]


def _check_log_without_checkpoint(config: TrainConfig, run_dir: Path) -> None:
    """Refuse to restart, over its log, a run whose checkpoint is gone (see :func:`train`)."""
    if (run_dir / CHECKPOINT).exists():
        return
    last = max(_logged_steps(run_dir / "log.csv"), default=0)
    if last >= config.checkpoint_every:
        raise UsageError(
            f"{run_dir} holds a log up to step {last} but no {CHECKPOINT} to resume from (a "
            f"finished or recorded run whose checkpoint was removed); put the checkpoint back, "
            f"or train its configuration in a new folder: sardespeckle train "
            f"{run_dir / 'config.json'} --run-dir {run_dir.parent / (run_dir.name + '-again')}"
        )


def _check_distinct_references(config: TrainConfig) -> None:
    """Refuse a reference (or validation reference) named twice with the same window: the same
    file under another spelling would silently count twice."""
    from ..io.base import repeated_file

    for what, specs in (("reference", config.references), ("validation reference", config.validation)):
        for window in {spec.window for spec in specs}:
            same_window = [spec.path for spec in specs if spec.window == window]
            repeated = repeated_file(same_window)
            if repeated is not None:
                first, again = (same_window[i] for i in repeated)
                raise UsageError(f"expected each {what} once, got {again}, the same file as "
                                 f"{first}" + ("" if window is None else f" with the same window "
                                 f"{list(window)}") + "; give it once")


def _remove_stale_temporaries(run_dir: Path, config: TrainConfig) -> None:
    """Delete the hidden partial files (``.checkpoint.pt.<hex>.partial.pt`` and the like) that
    a process killed outright while writing leaves in its run folder: this call writes its
    own, and nothing else names them."""
    from ..io.base import remove_stale_partials

    remove_stale_partials([run_dir / base for base in
                           (CHECKPOINT, "log.csv", "config.json", f"{config.name}.pt")])


def _check_nothing_to_clobber(config: TrainConfig, run_dir: Path) -> None:
    """Refuse a new run in a folder that holds files a run writes (weights, log, checkpoint)
    but no config.json: they belong to something else, and the run would replace them."""
    names = [CHECKPOINT, "log.csv", f"{config.name}.pt"]
    found = [name for name in names if os.path.lexists(run_dir / name)]
    if found:
        raise UsageError(
            f"expected a new or empty run folder, got {run_dir} holding {', '.join(found)} but "
            "no config.json (not a run of this command): a new run would replace them; use "
            "another --run-dir")


def _drop_log_rows_after(log_path: Path, step: int) -> None:
    """Rewrite ``log.csv`` without its rows past ``step`` (trained again from the checkpoint)
    and without rows that are not rows of the log (a line appended by something else, half a
    row left by a process killed outright)."""
    if not log_path.exists():
        return
    with open(log_path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return
    width = len(rows[0])
    kept = [rows[0]] + [row for row in rows[1:]
                        if len(row) == width and row[0].isdigit() and int(row[0]) <= step]
    if kept == rows:
        return
    with atomic_output(log_path) as temp, open(temp, "w", newline="") as handle:
        csv.writer(handle).writerows(kept)


def _task_data(config: TrainConfig):
    """``(sampler, validator, offset)`` of the run's task: the patch sampler, the validation
    scorer and the constant added to the clean target (SAR-CNN's log-speckle mean ``cn``)."""
    if config.task == "gaussian":
        from .gaussian import (GaussianPatchSampler, GaussianValidator, LogScalePatchSampler,
                               load_unit_images)

        images = [image for spec in config.references for image in load_unit_images(spec, span=config.span)]
        if config.log_sigma_range is not None:
            sampler = LogScalePatchSampler(images, patch_size=config.patch_size,
                                           trained_sigma=config.sigma_range[0],
                                           log_sigma_range=config.log_sigma_range,
                                           bright_targets=config.bright_targets)
        else:
            sampler = GaussianPatchSampler(images, patch_size=config.patch_size,
                                           sigma_range=config.sigma_range)
        sampler.fingerprint = references_fingerprint(
            [Reference(name=image.name, intensity=image.values) for image in images])
        return sampler, GaussianValidator(config), 0.0
    from ..models.sarcnn import cn

    references = [load_reference(s) for s in config.references]
    for spec, reference in zip(config.references, references):
        _warn_if_speckled(spec.path, reference.intensity)
    sampler = PatchSampler(references,
                           patch_size=config.patch_size, looks=config.looks,
                           gain_range=config.gain_range, bright_targets=config.bright_targets,
                           bright_oversample=config.bright_oversample,
                           uncap_clipped=config.uncap_clipped,
                           speckle_band=config.speckle_band,
                           speckle_band_share=(1.0 if config.speckle_band_share is None
                                               else config.speckle_band_share))
    if config.uncap_clipped is not None and not any(sampler.clipped_pixels):
        raise UsageError(
            "uncap_clipped is set but no training reference is clipped (a clipping level is a "
            f"maximum held by at least {MIN_CLIPPED} pixels); remove the option")
    sampler.training_level = training_level(references, config.gain_range)
    sampler.fingerprint = references_fingerprint(references)
    return sampler, _Validator(config), cn(config.looks)


def references_fingerprint(references) -> list[list]:
    """What a checkpoint records of the references it was trained on, to tell on resuming
    that they still hold the same data: per reference its name, shape, valid pixels and the
    float64 sum of their intensities."""
    return [[reference.name, *map(int, reference.intensity.shape),
             int(np.count_nonzero(np.isfinite(reference.intensity))),
             float(np.nansum(reference.intensity, dtype=np.float64))]
            for reference in references]


def _check_same_references(recorded, now, config: TrainConfig, run_dir: Path) -> None:
    """UsageError when the references a run resumes on differ from those its checkpoint was
    trained on (rebuilt, overwritten, replaced): the steps to come would train on other data
    than the ones done, and the weights would record a level the first steps never saw."""
    if recorded is None:  # a checkpoint written before fingerprints were recorded
        return
    if len(recorded) != len(now):  # a Gaussian run's images: a file gained or lost some
        raise UsageError(
            f"the training references of the run in {run_dir} hold another number of images "
            f"than when it was checkpointed ({len(recorded)}, now {len(now)}); restore them, or "
            f"start a new run: sardespeckle train {run_dir / 'config.json'} --run-dir "
            f"{run_dir.parent / (run_dir.name + '-again')}")
    specs = config.references if len(config.references) == len(now) else [None] * len(now)
    for spec, before, after in zip(specs, recorded, now):
        # the name is not compared: the same file named another way (a link) is the same data
        if before[1:4] != after[1:4] or not math.isclose(before[4], after[4], rel_tol=1e-9):
            what = f"training reference {spec.path}" if spec is not None else "a training image"
            raise UsageError(
                f"{what} holds other data than when the run in "
                f"{run_dir} was checkpointed (shape, valid pixels or values changed: rebuilt or "
                "overwritten?); resuming would train on other data than the steps done. Restore "
                "it, or start a new run on it: sardespeckle train "
                f"{run_dir / 'config.json'} --run-dir {run_dir.parent / (run_dir.name + '-again')}")


#: A training reference whose most homogeneous windows fluctuate like fewer looks than this
#: still holds speckle (a single date is ≈ 1; a 5-date mean ≈ 5; a long stack's mean far more).
SPECKLED_REFERENCE_LOOKS = 2.0


def _warn_if_speckled(path: str, intensity: np.ndarray) -> None:
    """Warn about a "speckle-free" reference that is a speckled image: the network would learn
    to keep its speckle."""
    from ..speckle import estimate_looks

    try:
        looks = float(estimate_looks(intensity, valid=np.isfinite(intensity) & (intensity > 0)))
    except (InvalidInputError, ValueError):
        return
    if looks < SPECKLED_REFERENCE_LOOKS:
        warnings.warn(
            f"{path} looks speckled (its most homogeneous 7×7 windows fluctuate like {looks:.2f} "
            "looks): SAR-CNN learns to keep what its references hold; build a reference from a "
            "stack of dates ('sardespeckle references build')", UserWarning, stacklevel=2)


def training_level(references, gain_range) -> float:
    """The scene level a SAR-CNN run trains at, for ``level="auto"`` at inference: the median
    of the references' valid intensities, times the geometric middle of the training gains."""
    values = np.concatenate([r.intensity[np.isfinite(r.intensity) & (r.intensity > 0)].ravel()
                             for r in references])
    middle = 1.0 if gain_range is None else math.sqrt(gain_range[0] * gain_range[1])
    return float(np.median(values)) * middle


def reference_names(config: TrainConfig) -> str:
    """The training data as a weights file records it: the base names of the references
    (files or image folders), comma-separated; the folders they were in stay private."""
    return ", ".join(Path(r.path).resolve().name or str(r.path) for r in config.references)


def weights_identity(config: TrainConfig, trained: str, level: float | None = None) -> dict:
    """The ``save_weights`` keywords that describe a run's network (``trained``: how far).

    Both: the reference names (:func:`reference_names`). SAR-CNN: looks, ``training_level``
    (:func:`training_level`, from the references unless ``level`` is given). Gaussian DnCNN:
    domain ``"gaussian-01"``, its noise (``sigma_range``, or ``trained_sigma`` when
    ``low == high``) and, when trained on SAR log-images, their ``span`` (or
    ``log_sigma_range``): what :func:`sardespeckle.mulog.method.denoiser_from_name` reads.
    """
    if config.task != "gaussian":
        if level is None:
            level = training_level([load_reference(s) for s in config.references],
                                   config.gain_range)
        correlated = ({} if config.speckle_band is None else
                      {"speckle_band": config.speckle_band,
                       "speckle_band_share": config.speckle_band_share})
        recipe = "".join([
            f", fine-tuned from {config.init_from}" if config.init_from else "",
            f", gains {config.gain_range[0]:g}-{config.gain_range[1]:g}" if config.gain_range else "",
            (f", correlated speckle on {config.speckle_band_share:.0%} of the patches (band "
             f"{config.speckle_band[0]:g}-{config.speckle_band[1]:g})") if config.speckle_band else ""])
        return {"looks": config.looks, "training_level": level, **correlated,
                "training_data": reference_names(config),
                "description": f"SAR-CNN depth {config.depth}, {trained}{recipe}"}
    low, high = config.sigma_range
    noise = {"trained_sigma": low} if low == high else {"sigma_range": (low, high)}
    sar = any(spec.kind != GREY for spec in config.references)
    images = "SAR log-images" if sar else "grey images"
    if config.log_sigma_range is not None:
        noise["log_sigma_range"] = config.log_sigma_range
        images += f" scaled by σ/σ_log, σ_log in [{config.log_sigma_range[0]:g}, {config.log_sigma_range[1]:g}]"
    return {"domain": "gaussian-01", "span": config.span if sar else None, **noise,
            "training_data": reference_names(config),
            "description": f"Gaussian DnCNN depth {config.depth} ({config.loss}, σ in "
                           f"[{low * 255:g}, {high * 255:g}]/255, {images}), {trained}"}


def initial_state(config: TrainConfig) -> dict:
    """The network state ``config.init_from`` names (weights file/name or run checkpoint),
    checked against the run's architecture (depth and features). Weights of the same depth
    but fewer features are widened to the run's width (:meth:`DnCNN.widened`: the same function
    at the start, the added channels seeded by ``config.seed``)."""
    import torch

    from ..errors import WeightsError
    from ..models.dncnn import DnCNN
    from ..models.weights import GAUSSIAN_DOMAINS, REGISTRY, load_weights

    source = str(config.init_from)
    if source in REGISTRY:
        network, meta = load_weights(source)
        state = network.state_dict()
    else:
        path = Path(source)
        if path.is_dir():
            path = path / CHECKPOINT
        if not path.is_file():
            raise WeightsError(f"init_from: no such weights file, run checkpoint or registered name: {source}")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - any unreadable file is the same user error
            raise WeightsError(f"init_from: cannot read {path}: {type(error).__name__}: {error}") from None
        if isinstance(payload, dict) and "model" in payload and "optimizer" in payload:
            state, meta = payload["model"], _checkpoint_meta(path.parent)
        else:
            network, meta = load_weights(path)
            state = network.state_dict()
    expected = GAUSSIAN_DOMAINS if config.task == "gaussian" else ("log-amplitude",)
    if meta.get("domain", expected[0]) not in expected:
        needs = ("a Gaussian DnCNN needs Gaussian-denoiser weights" if config.task == "gaussian"
                 else "SAR-CNN training needs log-amplitude weights")
        raise WeightsError(f"init_from: {source} holds weights of domain {meta.get('domain')!r}; {needs}")
    # Weights of the same depth but fewer features are embedded, computing what they computed.
    width = min(_hidden_width(state) or config.features, config.features)
    network = DnCNN(depth=config.depth, features=width)
    try:
        network.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError) as error:
        convolutions = sorted({key.split(".")[1] for key in state
                               if key.startswith("layers.") and key.endswith(".weight")
                               and getattr(state[key], "ndim", 0) == 4}, key=int)
        theirs = (f"it holds a DnCNN of depth {len(convolutions)} with {_hidden_width(state)} "
                  "features" if convolutions and _hidden_width(state) else
                  f"{str(error).splitlines()[0].rstrip(':')}")
        raise WeightsError(f"init_from: {source} does not fit a DnCNN of depth {config.depth} with "
                           f"{width} features ({theirs}); set depth (and features) to the "
                           "weights' or train from scratch") from None
    if width < config.features:
        return network.widened(config.features, seed=config.seed).state_dict()
    return state


def _hidden_width(state: dict) -> int | None:
    """The hidden width of a DnCNN state (output channels of its first convolution), or None."""
    first = state.get("layers.0.weight") if isinstance(state, dict) else None
    return int(first.shape[0]) if getattr(first, "ndim", 0) == 4 else None


def _checkpoint_meta(run_dir: Path) -> dict:
    """The domain of a run checkpoint's network, from the run's config.json when it has one."""
    try:
        task = TrainConfig.load(run_dir / "config.json").task
    except UsageError:
        return {}
    return {"domain": "gaussian-01" if task == "gaussian" else "log-amplitude"}


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


#: Settings that say where and how fast a run computes, not what it computes: a run may resume
#: with other values (results then match to floating-point reduction order, not bit for bit).
RUNTIME_SETTINGS = ("threads", "device")


def check_run_folder(run_dir: Path) -> None:
    """UsageError unless ``run_dir`` is a folder or does not exist yet."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"expected a run folder for --run-dir, got the file {run_dir}")


#: Differences of configuration spelled out when a run folder holds another run (the others
#: are named).
MAX_SHOWN = 6


def _check_config(config: TrainConfig, run_dir: Path) -> bool:
    """Whether ``run_dir`` holds this run already (its config.json equals ``config``, runtime
    settings aside); UsageError if it holds another one."""
    path = run_dir / "config.json"
    if not path.exists():
        return False
    existing = TrainConfig.load(path).as_dict()
    wanted = config.as_dict()
    for key in RUNTIME_SETTINGS:
        existing.pop(key, None)
        wanted.pop(key, None)
    differing = sorted(k for k in wanted.keys() | existing.keys()
                       if _comparable(k, existing.get(k)) != _comparable(k, wanted.get(k)))
    if differing:
        if "task" in differing:  # the cause of every other difference: said alone
            raise UsageError(
                f"{run_dir} holds a run of task {existing.get('task')!r} (SAR-CNN is 'sarcnn', "
                f"the Gaussian DnCNN 'gaussian'), this call trains task {wanted.get('task')!r}; "
                "use a new run folder")
        shown = "; ".join(f"{key}: the run has {_short(existing.get(key))}, this call gives "
                          f"{_short(wanted.get(key))}" for key in differing[:MAX_SHOWN])
        if len(differing) > MAX_SHOWN:
            shown += f"; and {len(differing) - MAX_SHOWN} more: {', '.join(differing[MAX_SHOWN:])}"
        raise UsageError(
            f"{run_dir} holds a run with another configuration ({shown}); use a new run folder "
            "or the same configuration (relative paths are read from the current folder: resume "
            "from the folder the run was started in)"
        )
    return True


def _short(value, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + " ...]"


def _comparable(key: str, value):
    """A config value with its file paths resolved, so that a path spelled another way (relative
    or absolute, through a link) naming the same existing file compares equal."""
    def resolved(path):
        return os.path.realpath(path) if isinstance(path, str) and os.path.exists(path) else path

    if key in ("references", "validation") and isinstance(value, list):
        return [{**spec, "path": resolved(spec.get("path"))} if isinstance(spec, dict) else spec
                for spec in value]
    if key == "init_from":
        return resolved(value)
    return value


class _RunLock:
    """An exclusive ``flock`` on a run folder, held until :meth:`release` (or the process
    ends, however it ends: the kernel drops it): two ``train`` processes on one
    folder would interleave their log rows and checkpoints, and each would take the other's
    half-written checkpoint for a stale one."""

    def __init__(self, run_dir: Path) -> None:
        import fcntl

        import errno

        self._fd = os.open(run_dir, os.O_RDONLY)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(self._fd)
            self._fd = None
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                return  # a filesystem without locks (NFS may refuse one): run unguarded
            raise OutputFileError(
                f"the run folder {run_dir} is in use by another 'sardespeckle train' process; "
                "wait for it to end (or stop it: it checkpoints), then rerun to resume") from None

    def release(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None

    __del__ = release


def _create_run_folder(run_dir: Path) -> list[Path]:
    """Create ``run_dir`` (and missing parents); return the folders created, deepest first."""
    created = []
    folder = run_dir
    while not os.path.lexists(folder) and folder != folder.parent:
        created.append(folder)
        folder = folder.parent
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create the run folder {run_dir}: {error.strerror or error}") from None
    return created


def _remove_new_run(run_dir: Path, created: list[Path], new_log: bool) -> None:
    """Undo a fresh run that failed before its first checkpoint: its config.json, the log.csv
    this call started, and the folders this call created if they are empty again."""
    names = ["config.json", "log.csv"] if new_log else ["config.json"]
    for name in names:
        with contextlib.suppress(OSError):
            (run_dir / name).unlink()
    for folder in created:
        try:
            folder.rmdir()  # only ever removes an empty folder
        except OSError:
            break


def _load_checkpoint(path: Path, device) -> dict:
    """A run checkpoint (model, optimiser, step, random states), or InputFileError naming it."""
    import torch

    from ..models.weights import damaged_member

    again = (f"sardespeckle train {path.parent / 'config.json'} --run-dir "
             f"{path.parent.parent / (path.parent.name + '-again')}")
    damaged = damaged_member(path)
    if damaged is not None:
        raise InputFileError(
            f"the run checkpoint {path} is damaged: its member {damaged} does not match its "
            f"checksum (a disk or copy error); put back a good copy, or train the run's "
            f"configuration in a new folder ({again})")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is the same user error
        # torch's own text (advice to load with weights_only=False, miniz internals) is no help.
        raise InputFileError(
            f"cannot read the run checkpoint {path} ({type(error).__name__}): it is "
            f"truncated or corrupt; put back a good copy, or train the run's configuration in a "
            f"new folder (sardespeckle train {path.parent / 'config.json'} --run-dir "
            f"{path.parent.parent / (path.parent.name + '-again')})") from None
    missing = [key for key in ("model", "optimizer", "numpy_rng", "torch_rng", "step")
               if not isinstance(state, dict) or key not in state]
    if missing:
        raise InputFileError(f"expected a training checkpoint in {path}, got a file without "
                             f"{missing} (was it replaced by another file?)")
    bad = [name for name, tensor in state["model"].items()
           if torch.is_tensor(tensor) and tensor.is_floating_point()
           and not bool(torch.isfinite(tensor).all())]
    if bad:
        raise InputFileError(
            f"the run checkpoint {path} holds non-finite values ({bad[0]}"
            + (f" and {len(bad) - 1} more" if len(bad) > 1 else "") + "): a run that diverged "
            f"before it was saved, or a damaged file; put back a good copy, or train anew "
            f"({again})")
    return state


def _load_network(model, state: dict, path: Path, config) -> None:
    """Load a checkpoint's network into ``model``, built from the run's ``config.json``;
    InputFileError when they do not match (a checkpoint copied from another run)."""
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as error:
        first = str(error).strip().splitlines()[-1].strip()[:160]
        raise InputFileError(
            f"the run checkpoint {path} does not fit the network of {path.parent / 'config.json'} "
            f"(depth {config.depth}, {config.features} features): it comes from another run "
            f"({first}); put back this run's checkpoint, or train anew in another folder") from None


def _atomic_torch_save(payload, path: Path) -> None:
    from ..models.weights import atomic_torch_save

    atomic_torch_save(payload, path)


def export_weights(run_dir: str | Path, path: str | Path, *, name: str | None = None,
                   overwrite: bool = False) -> str:
    """Write the weights of a run's latest checkpoint (finished or not) in the registry format.
    A finished run without its checkpoint (brought back from another machine without it)
    exports the final weights it wrote, renamed (:func:`_export_finished_weights`).

    Returns the file's sha256. Lets a partially trained run be used with ``--weights`` and
    evaluated while training goes on. An existing ``path`` is replaced only with ``overwrite``
    (else :class:`OutputExistsError`); the run's own files (``checkpoint.pt``, ``config.json``,
    ``log.csv``) and its references, validation files and ``init_from`` weights are never
    replaced (:class:`UsageError`). The file is written next to ``path`` and renamed onto it.
    """
    from ..models.dncnn import DnCNN
    from ..models.weights import save_weights

    run_dir = Path(run_dir)
    check_run_folder(run_dir)
    if not (run_dir / "config.json").is_file():
        raise UsageError(f"no run in {run_dir} (no config.json); expected the --run-dir of a "
                         "started run")
    config = TrainConfig.load(run_dir / "config.json")
    checkpoint = run_dir / CHECKPOINT
    if not os.fspath(path):
        raise UsageError("expected a weights file path to export to, got ''")
    _check_export_path(Path(path), run_dir, config, overwrite=overwrite)
    if not checkpoint.exists():
        return _export_finished_weights(run_dir, config, Path(path), name)
    state = _load_checkpoint(checkpoint, "cpu")
    model = DnCNN(depth=config.depth, features=config.features)
    _load_network(model, state, checkpoint, config)
    model.eval()
    return save_weights(
        model, path, name=name or config.name,
        **weights_identity(config, f"checkpoint at step {int(state['step'])} of {config.steps} "
                                   f"({config.batch_size}×{config.patch_size}² patches)",
                           level=state.get("training_level")),
    )


def _export_finished_weights(run_dir: Path, config: TrainConfig, path: Path,
                             name: str | None) -> str:
    """:func:`export_weights` for a run without its checkpoint (a run on another machine,
    brought back without it): the final weights it wrote, ``RUN_DIR/NAME.pt``, renamed, their
    identity otherwise as written. Only a run that finished (its log reaches ``steps``) and a
    file that is this run's weights (the identity and description its configuration gives:
    looks, training data, correlated band, steps, patches, init_from, gains) are exported."""
    from ..errors import WeightsError
    from ..models.weights import load_weights, save_weights

    finished = run_dir / f"{config.name}.pt"
    last = max(_logged_steps(run_dir / "log.csv"), default=0)
    if not finished.exists():
        logged = (f" (its log reaches step {last} of {config.steps}: the checkpoint stayed "
                  "where the run trained, or it has not started)") if last else ""
        raise UsageError(f"no {CHECKPOINT} and no finished weights {finished.name} in "
                         f"{run_dir}{logged}; nothing to export")
    if last < config.steps:
        raise UsageError(
            f"{run_dir} has no {CHECKPOINT}, and its log reaches step {last} of {config.steps}: "
            f"{finished.name} is not the weights of this configuration's last step (an earlier "
            "run's, before the steps were raised?); export needs the checkpoint")
    try:
        model, meta = load_weights(finished, expected_architecture={
            "depth": config.depth, "features": config.features})
    except WeightsError as error:
        if "is a training checkpoint" in str(error):
            raise UsageError(f"{finished} holds a training checkpoint, not weights: move it to "
                             f"{run_dir / CHECKPOINT} and export again") from error
        raise
    # the level is the file's own (the run measured it on its references), never re-measured;
    # the description is the one train writes (steps, patches, init_from, gains, band)
    expected = weights_identity(config, f"{config.steps} steps of "
                                        f"{config.batch_size}×{config.patch_size}² patches",
                                level=meta.get("training_level") or 0.0)
    for key, value in expected.items():
        if key == "training_level":
            continue
        held = meta.get(key)
        same = (held == value if not isinstance(value, (tuple, list)) or held is None
                else tuple(held) == tuple(value))
        if not same:
            raise UsageError(
                f"{finished} is not this run's weights: its {key} is {held!r}, the run's "
                f"configuration gives {value!r}; export needs the run's checkpoint")
    # Every identity field save_weights takes, as the file holds it; validation_psnr stays out,
    # as in an export of a checkpoint: the file's was the trainer's validator's (its draws, its
    # precision), not a measurement of the released network.
    fields = set(inspect.signature(save_weights).parameters) - {
        "model", "path", "name", "validation_psnr"}
    keep = {key: meta[key] for key in fields if meta.get(key) is not None}
    return save_weights(model, path, name=name or config.name, **keep)


def _check_export_path(path: Path, run_dir: Path, config: TrainConfig, *, overwrite: bool) -> None:
    """UsageError if ``path`` is one of the run's inputs or own files (whatever ``overwrite``
    says), a folder or empty; OutputExistsError if it exists without ``overwrite``."""
    from ..errors import OutputExistsError

    protected = [(run_dir / CHECKPOINT, "the run's checkpoint"),
                 (run_dir / "config.json", "the run's config"),
                 (run_dir / "log.csv", "the run's log"),
                 (run_dir / f"{config.name}.pt", "the weights the run writes when it finishes")]
    for what, specs in (("a training reference", config.references),
                        ("a validation reference", config.validation)):
        protected += [(source, what) for spec in specs for source in _source_files(spec.path)]
    if config.init_from is not None:
        source = Path(config.init_from)
        protected += [(source / CHECKPOINT if source.is_dir() else source, "the run's init_from")]
    for source, what in protected:
        if same_file(path, source):
            raise UsageError(f"expected an export path other than {what} ({source}), got {path}; "
                             "a run's own files and inputs are never overwritten")
    if path.is_dir():
        raise UsageError(f"expected a weights file to export to, got the folder {path}")
    if path.suffix.lower() not in (".pt", ".pth"):
        raise UsageError(f"expected a weights file ending in .pt or .pth to export to, got {path}")
    check_output_folder(path)  # like every output: a mistyped folder is reported, not created
    if os.path.lexists(path) and not overwrite:
        raise OutputExistsError(f"output {path} exists; {OVERWRITE_HINT}")


def _source_files(source: str) -> list[Path]:
    """The files a reference source may name: the path itself, a glob's matches, a folder's PNGs."""
    import glob

    path = Path(source)
    files = [path]
    if glob.has_magic(source):
        files += [Path(match) for match in glob.glob(source)]
    elif path.is_dir():
        files += sorted(path.glob("*.png"))
    return files
