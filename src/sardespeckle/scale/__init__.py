"""Scale out: xarray/Dask arrays, files on a Dask cluster, batches of scenes.

* :mod:`~sardespeckle.scale.arrays`: :func:`despeckle_dataarray`, lazy despeckling of an
  ``xarray.DataArray`` with ``dask.array.map_overlap`` and the method's halo;
* :mod:`~sardespeckle.scale.files`: a file's tiles computed by Dask workers and written by the
  client into an atomic output (``sardespeckle.api.despeckle_file(..., client=client)``);
* :mod:`~sardespeckle.scale.cluster`: :func:`dask_client`, connect to a scheduler or start a
  local cluster;
* :mod:`~sardespeckle.scale.workers`: a tile through the engine in a worker, with the
  per-process cache that builds a method once per worker process;
* :mod:`~sardespeckle.scale.batch`: many scenes into one folder.

Dask, distributed and xarray (the ``dask`` extra) are imported only when a function needs them;
importing this package does not import them, nor torch. See ``docs/distributed.md``.
"""

from sardespeckle.scale.arrays import ArraySource, despeckle_dataarray
from sardespeckle.scale.batch import BatchReport, batch_pairs, despeckle_batch, is_batch
from sardespeckle.scale.cluster import ClusterError, dask_client
from sardespeckle.scale.workers import MethodRecipe, built_method, cache_info

__all__ = [
    "ArraySource",
    "BatchReport",
    "ClusterError",
    "MethodRecipe",
    "batch_pairs",
    "built_method",
    "cache_info",
    "dask_client",
    "despeckle_batch",
    "despeckle_dataarray",
    "is_batch",
]
