"""A file's tiles computed by Dask workers, the client writing the output.

:func:`sardespeckle.api.despeckle_file` with ``client=`` opens the input, plans the run and
creates the output's temporary file exactly as it does alone, then hands the tiles to
:func:`run_on_cluster` instead of the in-process engine. Each task is one core tile: the worker
opens the input itself, reads the tile with its halo, runs the method (built once per worker
process) and returns the tile. The client writes each tile as it arrives; the sink renames the
file when all are written.

Only the client writes, and only into its temporary file: a worker that dies costs the
scheduler a recomputation of its tasks (tasks are pure) and can never leave a partial output.
At most :func:`in_flight` tiles are submitted and not yet written, so no process holds the scene.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sardespeckle.api import GDAL_CACHE_MB
from sardespeckle.errors import InputFileError, SardespeckleError
from sardespeckle.scale.cluster import ClusterError, describe, require_dask
from sardespeckle.scale.workers import MethodRecipe, TileJob
from sardespeckle.tiling import ProgressFn, WriteFn, plan_tiles
from sardespeckle.window import Window


@dataclass(frozen=True, kw_only=True)
class FileJob(TileJob):
    """A :class:`TileJob` reading its tiles from a file that every worker can open."""

    path: str
    complex_layout: str | None = None
    band: int = 1


def despeckle_tile(job: FileJob, core: Window) -> tuple[np.ndarray, np.ndarray]:
    """Run on a worker: read ``core`` of the input with its halo, despeckle, crop.

    Returns what the single-process engine would write for this tile: ``(intensity float32,
    valid bool)`` of ``core.shape``. A :class:`~sardespeckle.errors.SardespeckleError` leaves
    the worker as a fresh one of the same type and message, without the exception it was
    raised from: Dask sends the chain too, and one from rasterio (``CPLE_AppDefinedError``)
    cannot be rebuilt on the client, which then got a plain ``Exception`` and reported an
    "internal error" for a file that could not be read.
    """
    import rasterio

    from sardespeckle.io import open_source

    try:
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), \
                open_source(job.path, kind=job.kind, complex_layout=job.complex_layout,
                            band=job.band) as source:
            return job.run(core, source)
    except SardespeckleError as error:
        kind, message = type(error), str(error)
    raise kind(message)  # outside the handler: no __context__ either


def in_flight(client) -> int:
    """Tiles submitted but not yet written: enough to keep every worker thread busy while the
    client writes, few enough that finished tiles waiting for the client stay a small part of
    the scene."""
    return max(2 * sum(client.nthreads().values()), 2)


def run_tiles_on(
    client,
    job: FileJob,
    cores: Sequence[Window],
    write: WriteFn,
    *,
    progress: ProgressFn | None = None,
) -> None:
    """Despeckle ``cores`` on the cluster of ``client``, calling ``write`` for each in turn.

    ``write(window, intensity, valid)`` is called in the client, once per core, in the order
    the tiles finish. On any error the tiles still pending are cancelled and the error raised.
    """
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    run = uuid.uuid4().hex[:8]
    todo = iter(enumerate(cores))
    pending: dict[str, tuple[Any, Window]] = {}

    def submit(index: int, core: Window):
        future = client.submit(despeckle_tile, job, core, key=f"sardespeckle-{run}-{index}")
        pending[future.key] = (future, core)
        return future

    # the client's own loop: without it as_completed asks for the default client, and a
    # client made with set_as_default=False (or not the latest one made) is not it
    finished = as_completed([submit(i, c) for i, c in itertools.islice(todo, in_flight(client))],
                            loop=client.loop)
    done, total = 0, len(cores)
    try:
        for future in finished:
            _, core = pending.pop(future.key)
            values, valid = future.result()
            future.release()
            write(core, values, valid)
            done += 1
            if progress is not None:
                progress(done, total)
            following = next(todo, None)
            if following is not None:
                finished.add(submit(*following))
    except KilledWorker as error:
        raise ClusterError(
            f"Dask workers died repeatedly while despeckling {job.path} ({error}); the output "
            "was not written; hint: check the workers' memory limit and logs"
        ) from None
    except InputFileError as error:
        raise InputFileError(
            f"{error} (read by a Dask worker: the input must be readable by every worker at "
            "the same path)"
        ) from None
    finally:
        if pending:
            client.cancel([future for future, _ in pending.values()])


def run_on_cluster(client, source, plan, sink, *, complex_layout: str | None = None,
                   progress: ProgressFn | None = None) -> None:
    """Despeckle the opened ``source`` into ``sink`` as ``plan`` says, on ``client``'s cluster.

    The tiles are those :func:`sardespeckle.api.despeckle_file` runs alone (aligned on the
    output blocks), so the output is the same, bit for bit for the classical filters. The
    input is sent to the workers as an absolute path.
    """
    require_dask()
    job = FileJob(recipe=MethodRecipe.of(plan.built), kind=source.kind,
                  shape=tuple(source.shape), halo=plan.built.halo, whitening=plan.whitening,
                  path=os.path.abspath(source.path), complex_layout=complex_layout,
                  band=int(getattr(source, "band", 1)))
    cores = plan_tiles(source.shape, tile=plan.report.tile,
                       align=getattr(sink, "block_size", None))
    run_tiles_on(client, job, cores, sink.write, progress=progress)
    plan.report.notes.append(f"tiles computed by {describe(client)}")
