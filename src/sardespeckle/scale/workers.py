"""What runs inside a Dask worker: one tile through the engine, with methods built once.

Building a method can be expensive (SAR-CNN reads and checks its weights, MuLoG with DnCNN
builds a network), while a scene is cut into hundreds of chunks. A task therefore carries a
:class:`MethodRecipe` (name, looks, parameters: a few bytes) instead of the built method, and
:func:`built_method` builds it the first time a process sees the recipe and hands the same
object to every later task of that process. Threads of one process share it.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sardespeckle.api import intensity_reader
from sardespeckle.methods import BuiltMethod, build_method
from sardespeckle.tiling import process_tile
from sardespeckle.window import Window

#: Built methods kept per process; the least recently used is dropped beyond this (a network
#: holds its weights, so a worker serving many different recipes must not keep them all).
CACHE_SIZE = 4

_lock = threading.Lock()
_cache: OrderedDict[str, BuiltMethod] = OrderedDict()
_builds: Counter[str] = Counter()


@dataclass(frozen=True)
class MethodRecipe:
    """How to build a method again in another process: registry name, looks, parameters.

    ``key`` names the recipe in the per-process cache; it is made once, on the client, from the
    name, the looks and the parameters, so every task of a run shares it.
    """

    name: str
    looks: float
    parameters: dict[str, Any] = field(hash=False)
    key: str

    @classmethod
    def of(cls, built: BuiltMethod) -> "MethodRecipe":
        """The recipe of a method built on the client (its parameters fully resolved).

        A weights file is named by its absolute path: workers do not share the client's
        working directory.
        """
        parameters = dict(built.parameters)
        weights = parameters.get("weights")
        if isinstance(weights, str) and os.path.isfile(weights):
            parameters["weights"] = os.path.abspath(weights)
        described = json.dumps(parameters, sort_keys=True, default=repr)
        key = f"{built.name} looks={float(built.looks):g} {described}"
        return cls(name=built.name, looks=float(built.looks), parameters=parameters, key=key)


def built_method(recipe: MethodRecipe) -> BuiltMethod:
    """The method of ``recipe``, built at the first call in this process and reused after."""
    with _lock:
        built = _cache.get(recipe.key)
        if built is None:
            built = build_method(recipe.name, looks=recipe.looks, params=recipe.parameters)
            _builds[recipe.key] += 1
            _cache[recipe.key] = built
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
        else:
            _cache.move_to_end(recipe.key)
        return built


def cache_info() -> dict[str, int]:
    """How many times this process has built each recipe (``{recipe key: builds}``)."""
    with _lock:
        return dict(_builds)


@dataclass(frozen=True, kw_only=True)
class TileJob:
    """What a task needs to despeckle any core tile of one raster: the method's recipe, the
    input kind, the raster's shape, the halo and the whitening filter (``None`` for none)."""

    recipe: MethodRecipe
    kind: str
    shape: tuple[int, int]
    halo: int
    whitening: Any = None

    def run(self, core: Window, source) -> tuple[np.ndarray, np.ndarray]:
        """``(intensity, valid)`` of ``core``, read from ``source`` (raster coordinates) exactly
        as the single-process engine reads, fills, despeckles and crops it."""
        read = intensity_reader(source, self.whitening)
        method = built_method(self.recipe).function
        return process_tile(core, self.shape, read, method, halo=self.halo)
