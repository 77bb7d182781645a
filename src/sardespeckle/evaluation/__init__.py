"""Evaluation and comparison of despecklers: protocols, peers and the report writer.

* :mod:`.protocol`: the full-reference protocol of the SAR-CNN paper (simulated speckle on
  speckle-free references, PSNR/SSIM per draw), the no-reference protocol on real images (ENL,
  ratio image, radiometric bias) and the speed/memory probe;
* :mod:`.peers`: adapters to other packages' despecklers, used when they are installed;
* :mod:`.report`: ``report.md``, ``report.html``, ``results.json``, ``results.csv`` and figures.

Typical use::

    from sardespeckle.evaluation import run_evaluation, write_report

    result = run_evaluation(references=["ref.npy"], kind="amplitude", methods=["kuan", "lee"],
                            looks=1, draws=3, seed=0)
    write_report(result, "out/")
"""

from .peers import PEERS, Peer, PeerError, peer_status
from .protocol import (
    Candidate,
    EvaluationResult,
    FullReferenceResult,
    LoadedImage,
    NoReferenceResult,
    SpeedResult,
    SummaryTable,
    evaluate_full_reference,
    evaluate_no_reference,
    load_image,
    measure_speed,
    resolve_candidates,
    run_evaluation,
    speed_scene,
)
from .report import check_report_folder, write_report

__all__ = [
    "PEERS",
    "Candidate",
    "EvaluationResult",
    "FullReferenceResult",
    "LoadedImage",
    "NoReferenceResult",
    "Peer",
    "PeerError",
    "SpeedResult",
    "SummaryTable",
    "check_report_folder",
    "evaluate_full_reference",
    "evaluate_no_reference",
    "load_image",
    "measure_speed",
    "peer_status",
    "resolve_candidates",
    "run_evaluation",
    "speed_scene",
    "write_report",
]
