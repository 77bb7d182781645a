"""Many scenes into one output folder: expand folders and globs, skip finished outputs, keep going.

A batch is a list of ``(input, output)`` pairs. Each scene is run by a callable the caller
provides (single process or on a cluster); a scene that fails is recorded with its error and the
batch goes on, so that one bad file does not cost the others.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sardespeckle.errors import InputFileError, OutputExistsError, UsageError
from sardespeckle.io.base import GEOTIFF_SUFFIXES, NPY_SUFFIXES, file_format

_GLOB_CHARS = frozenset("*?[")
_SUFFIXES = GEOTIFF_SUFFIXES + NPY_SUFFIXES


def _is_pattern(text: str) -> bool:
    return bool(_GLOB_CHARS & set(text)) and not os.path.exists(text)


def is_batch(inputs: Sequence[str], output: str) -> bool:
    """Whether ``run INPUT... -o OUTPUT`` is a batch: several inputs, a folder, a glob pattern,
    or an existing folder as the output."""
    if len(inputs) != 1:
        return True
    only = inputs[0]
    return os.path.isdir(only) or _is_pattern(only) or os.path.isdir(output)


def expand_inputs(inputs: Sequence[str]) -> list[str]:
    """Files named by ``inputs``: files as given, the rasters of a folder (not recursive, hidden
    files left out), the rasters matching a glob pattern; sorted per argument, duplicates once.

    A file that does not exist is kept: it fails as a scene, not the whole batch.
    """
    found: list[str] = []
    for text in inputs:
        if os.path.isdir(text):
            names = sorted(n for n in os.listdir(text) if not n.startswith("."))
            matches = [os.path.join(text, n) for n in names if file_format(n) is not None]
            if not matches:
                raise InputFileError(f"expected rasters ({', '.join(_SUFFIXES)}) in {text}, "
                                     "found none")
        elif _is_pattern(text):
            matches = sorted(p for p in glob.glob(text) if os.path.isfile(p)
                             and file_format(p) is not None)
            if not matches:
                raise InputFileError(f"expected rasters ({', '.join(_SUFFIXES)}) matching "
                                     f"{text!r}, found none")
        else:
            matches = [text]
        found.extend(m for m in matches if m not in found)
    return found


def batch_pairs(inputs: Sequence[str], output_dir: str) -> list[tuple[str, str]]:
    """``(input, output)`` for each input: same file name, in ``output_dir`` (created if needed).

    Raises :class:`UsageError` when the output folder is a file, holds one of the inputs (they
    are never overwritten), or two inputs have the same name.
    """
    files = expand_inputs(inputs)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise UsageError(f"expected an output folder for several inputs, got the file {output_dir}")
    if not os.path.exists(output_dir) and file_format(output_dir) is not None:
        raise UsageError(f"expected an output folder for several inputs, got the file name "
                         f"{output_dir!r}")
    target = os.path.realpath(output_dir)
    pairs: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for path in files:
        name = os.path.basename(path)
        if os.path.realpath(os.path.dirname(os.path.abspath(path))) == target:
            raise UsageError(f"output folder {output_dir} holds the input {path}; choose another "
                             "folder (inputs are never overwritten)")
        if name in seen:
            raise UsageError(f"two inputs would write {name} in {output_dir}: {seen[name]} and "
                             f"{path}")
        seen[name] = path
        pairs.append((path, os.path.join(output_dir, name)))
    os.makedirs(output_dir, exist_ok=True)
    return pairs


@dataclass
class BatchReport:
    """What a batch did: outputs written, outputs that existed (skipped), scenes that failed."""

    written: list[tuple[str, object]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, BaseException]] = field(default_factory=list)


def despeckle_batch(
    pairs: Sequence[tuple[str, str]],
    run: Callable[[str, str], object],
    *,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    on_scene: Callable[[str, str, object], None] | None = None,
) -> BatchReport:
    """Run ``run(input, output)`` for each pair; skip existing outputs unless ``overwrite``.

    ``run`` returns a report (kept in :attr:`BatchReport.written`); an exception from it is kept
    in :attr:`BatchReport.failed` and the batch goes on (``KeyboardInterrupt`` stops it).
    ``progress(done, total)`` is called after each scene, ``on_scene(input, status, detail)``
    with status ``"written"``, ``"skipped"`` or ``"failed"``.
    """
    report = BatchReport()
    total = len(pairs)
    for done, (source, target) in enumerate(pairs, start=1):
        if os.path.lexists(target) and not overwrite:
            report.skipped.append(target)
            status, detail = "skipped", target
        else:
            try:
                detail = run(source, target)
            except OutputExistsError as error:
                # without overwrite: written meanwhile by another process (two batches into
                # one folder), whole (outputs are published in one rename); with it, ``run``
                # itself did not overwrite: a failure to report
                if overwrite:
                    report.failed.append((source, error))
                    status, detail = "failed", error
                else:
                    report.skipped.append(target)
                    status, detail = "skipped", target
            except Exception as error:  # noqa: BLE001 - one scene's failure must not stop the rest
                report.failed.append((source, error))
                status, detail = "failed", error
            else:
                report.written.append((target, detail))
                status = "written"
        if on_scene is not None:
            on_scene(source, status, detail)
        if progress is not None:
            progress(done, total)
    return report
