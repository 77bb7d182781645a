"""Three cheap probes of trained SAR-CNN weights (no training), for #4's remaining gap.

``bn``: does batch norm cost anything at inference? The ℓ1 training loss of the same batches
(patches, gains and speckle as the shipped weights were trained) with the batch statistics of
each batch (how the loss was minimised) and with the running statistics (how inference runs).
Patches with gains over six decades make batch statistics vary; a gap would call for
recalibrated statistics.

``soup WEIGHTS... -o OUT``: the uniform average of several weight files of one architecture
(a "model soup": fine-tunes of one parent often average to a better single network). Score the
result with ``tools/tuning_crops.py``.

``gain-tta WEIGHTS``: a test-time ensemble over input gains: the network is level-independent
only as far as training made it, so despeckling ``g·y`` and dividing by ``g`` for a few ``g``
and averaging in the log domain could act as the geometric self-ensemble does. Scored on the
tuning crops (``tools/tuning_crops.py``'s ten clipped crops, 2 draws).

Usage (from the repository root, with the training references of ``runs/references``)::

    python tools/sarcnn_probes.py bn sarcnn-s1-l1-v3 --batches 10
    python tools/sarcnn_probes.py soup A.pt B.pt -o /tmp/soup.pt
    python tools/sarcnn_probes.py gain-tta sarcnn-s1-l1-v3
"""

from __future__ import annotations

import argparse
import copy
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from sardespeckle.api import despeckle
from sardespeckle.metrics import psnr_amplitude
from sardespeckle.models.sarcnn import cn
from sardespeckle.models.weights import load_weights, save_weights
from sardespeckle.training.data import PatchSampler, ReferenceSpec, load_reference

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from tuning_crops import tuning_crops  # noqa: E402

GAIN_SETS = {"1": (1.0,), "0.5,1,2": (0.5, 1.0, 2.0), "1e-2,1,1e2": (1e-2, 1.0, 1e2),
             "1e-3..10": (1e-3, 1e-2, 1e-1, 1.0, 10.0)}


def batch_norm_probe(weights: str, batches: int, seed: int = 123) -> tuple[float, float]:
    """Mean ℓ1 loss ``(running statistics, batch statistics)`` over the same ``batches``."""
    network, _ = load_weights(weights)
    references = [load_reference(ReferenceSpec.from_dict(
        {"path": str(ROOT / "runs" / "references" / f"{site}_train_intensity.npy"),
         "kind": "intensity", "window": None})) for site in ("lely", "marais2")]
    sampler = PatchSampler(references, patch_size=50, looks=1.0, gain_range=(1e-4, 100.0))
    batch_stats = copy.deepcopy(network).train()
    for module in batch_stats.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 0.0  # normalise by each batch; leave the running statistics alone
    rng = np.random.default_rng(seed)
    losses: dict[int, list[float]] = {0: [], 1: []}
    with torch.no_grad():
        for _ in range(batches):
            noisy, target = (torch.from_numpy(a) for a in sampler.sample(64, rng))
            for index, model in enumerate((network, batch_stats)):
                estimate = noisy - model(noisy)
                losses[index].append(float((estimate - (target + cn(1.0))).abs().mean()))
    return float(np.mean(losses[0])), float(np.mean(losses[1]))


def soup(files: list[str], out: str) -> str:
    """Write the uniform average of ``files`` to ``out``; return its sha256."""
    networks = [load_weights(f)[0] for f in files]
    states = [n.state_dict() for n in networks]
    averaged = {key: (sum(s[key] for s in states) / len(states) if value.is_floating_point() else value)
                for key, value in states[0].items()}
    networks[0].load_state_dict(averaged)
    return save_weights(networks[0], out, name=Path(out).stem,
                        training_data="uniform weight average of " + ", ".join(files))


def gain_tta(weights: str, shared: Path, draws: int = 2) -> dict[str, tuple[float, float]]:
    """Mean PSNR ``(train, unseen)`` per gain set of :data:`GAIN_SETS`, same draws for all."""
    crops = tuning_crops(shared)
    rng = np.random.default_rng(7)
    noisy = [[clean * rng.gamma(1.0, 1.0, clean.shape) for _, clean in crops] for _ in range(draws)]
    groups = np.array([group for group, _ in crops])

    def estimate(y: np.ndarray, gains) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            logs = [np.log(despeckle((y * g).astype(np.float32), method="sarcnn", looks=1.0, kind="intensity",
                                     params={"weights": weights}) / g) for g in gains]
        return np.exp(np.mean(logs, axis=0))

    scores = {}
    for label, gains in GAIN_SETS.items():
        psnr = np.mean([[psnr_amplitude(np.sqrt(clean), np.sqrt(estimate(y, gains)))
                         for (_, clean), y in zip(crops, draw)] for draw in noisy], axis=0)
        scores[label] = (float(psnr[groups == "train"].mean()), float(psnr[groups == "unseen"].mean()))
        print(f"gains {label:12s} train {scores[label][0]:.3f} unseen {scores[label][1]:.3f}", flush=True)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    bn = commands.add_parser("bn", help="batch-norm statistics: running vs per batch")
    bn.add_argument("weights")
    bn.add_argument("--batches", type=int, default=10)
    mix = commands.add_parser("soup", help="uniform average of weight files")
    mix.add_argument("weights", nargs="+")
    mix.add_argument("-o", "--output", required=True)
    tta = commands.add_parser("gain-tta", help="test-time ensemble over input gains")
    tta.add_argument("weights")
    tta.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    tta.add_argument("--draws", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.command == "bn":
        running, batch = batch_norm_probe(args.weights, args.batches)
        print(f"l1 loss, running statistics {running:.6f}, batch statistics {batch:.6f}")
    elif args.command == "soup":
        if Path(args.output).exists():
            parser.error(f"{args.output} exists; choose another output")
        print(soup(args.weights, args.output))
    else:
        gain_tta(args.weights, args.shared, args.draws)


if __name__ == "__main__":
    main()
