"""Classical speckle filters: each maps an intensity image to a float32 intensity image.

Every filter is a function ``name(intensity, *, window_size=..., ...)`` (``looks=...`` for
those that use it) taking a
``(rows, cols)`` real floating-point intensity image (finite, strictly positive) and returning
a float32 image of the same shape. Parameter names follow ESA SNAP's Speckle-Filter operator in
snake_case. :data:`FILTERS` maps each filter's name to a :class:`FilterSpec` holding its
function, defaults and halo (support radius), from which the method registry builds methods.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from sardespeckle.filters._boxcar import boxcar
from sardespeckle.filters._frost import frost
from sardespeckle.filters._gamma_map import gamma_map
from sardespeckle.filters._lee import enhanced_lee, kuan, lee
from sardespeckle.filters._lee_sigma import lee_sigma, sigma_range
from sardespeckle.filters._median import median
from sardespeckle.filters._refined_lee import refined_lee

__all__ = [
    "FILTERS",
    "FilterSpec",
    "boxcar",
    "enhanced_lee",
    "frost",
    "gamma_map",
    "kuan",
    "lee",
    "lee_sigma",
    "median",
    "refined_lee",
    "sigma_range",
]


@dataclass(frozen=True)
class FilterSpec:
    """A classical filter as the method registry sees it.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"refined-lee"``.
    function : callable
        ``function(intensity, **params) -> intensity`` (float32, same shape).
    description : str
        One line for listings.
    defaults : Mapping[str, Any]
        Every keyword parameter of ``function`` with its default (read-only).
    halo : callable
        ``halo(params) -> int``: support radius in pixels for the given parameters; missing
        parameters take their defaults. Tiles overlapping by the halo reproduce the
        whole-image result exactly.
    """

    name: str
    function: Callable[..., np.ndarray]
    description: str
    defaults: Mapping[str, Any]
    halo: Callable[[Mapping[str, Any]], int]


def _spec(
    name: str,
    function: Callable[..., np.ndarray],
    description: str,
    defaults: dict[str, Any],
    radius: Callable[[dict[str, Any]], int],
) -> FilterSpec:
    frozen = MappingProxyType(dict(defaults))

    def halo(params: Mapping[str, Any] | None = None) -> int:
        return int(radius({**frozen, **(params or {})}))

    return FilterSpec(name, function, description, frozen, halo)


def _window_radius(params: dict[str, Any]) -> int:
    return int(params["window_size"]) // 2


def _lee_sigma_radius(params: dict[str, Any]) -> int:
    # The point-target test reads window_size // 2 around a detection, which spreads by 1.
    return max(int(params["window_size"]) // 2 + 1, int(params["target_window_size"]) // 2)


_SPECS = (
    _spec(
        "boxcar",
        boxcar,
        "Moving average over a square window.",
        {"window_size": 3},
        _window_radius,
    ),
    _spec(
        "median",
        median,
        "Median over a square window (biased low on speckle).",
        {"window_size": 3},
        _window_radius,
    ),
    _spec(
        "lee",
        lee,
        "Lee 1980 local-statistics filter: mean + (1 - Cu²/Ci²)(pixel - mean).",
        {"window_size": 3, "looks": 1.0},
        _window_radius,
    ),
    _spec(
        "kuan",
        kuan,
        "Kuan 1985 linear MMSE filter for multiplicative noise.",
        {"window_size": 7, "looks": 1.0},
        _window_radius,
    ),
    _spec(
        "enhanced-lee",
        enhanced_lee,
        "Enhanced Lee (Lopes 1990): mean, damped mix or pixel by heterogeneity class.",
        {"window_size": 3, "looks": 1.0, "damping_factor": 1.0},
        _window_radius,
    ),
    _spec(
        "gamma-map",
        gamma_map,
        "Gamma-MAP (Lopes 1990): MAP estimate under a Gamma prior on the reflectivity.",
        {"window_size": 3, "looks": 1.0},
        _window_radius,
    ),
    _spec(
        "frost",
        frost,
        "Frost 1982: exponential kernel exp(-K Ci² |d|), normalised.",
        {"window_size": 3, "damping_factor": 2.0},
        _window_radius,
    ),
    _spec(
        "refined-lee",
        refined_lee,
        "Refined Lee 1981: MMSE in one of 8 edge-aligned half windows.",
        {"window_size": 7, "looks": 1.0},
        _window_radius,
    ),
    _spec(
        "lee-sigma",
        lee_sigma,
        "Improved Lee sigma 2009: MMSE on the pixels within the sigma range, point targets kept.",
        {
            "looks": 1.0,
            "window_size": 7,
            "sigma": 0.9,
            "target_window_size": 3,
            "point_target_threshold": None,
        },
        _lee_sigma_radius,
    ),
)

#: Registry of the classical filters by name.
FILTERS: Mapping[str, FilterSpec] = MappingProxyType({spec.name: spec for spec in _SPECS})
