"""Shared fixtures. Tests that need ../shared/data skip cleanly when it is absent."""

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The shared data folder (../shared/data beside the checkout), or skip."""
    if not (SHARED_DATA / "sar").is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def speckled_scene(rng) -> np.ndarray:
    """A 96×80 piecewise-constant reflectivity with a bright point, times 1-look speckle."""
    reflectivity = np.full((96, 80), 50.0)
    reflectivity[:, 40:] = 200.0
    reflectivity[20:40, 10:30] = 10.0
    reflectivity[70, 60] = 5000.0
    return (reflectivity * rng.exponential(1.0, reflectivity.shape)).astype(np.float32)


@pytest.fixture
def references(tmp_path) -> list[str]:
    """Two 48² speckle-free amplitude references (.npy): texture plus a step (evaluation)."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    paths = []
    for index in range(2):
        texture = ndimage.gaussian_filter(rng.standard_normal((48, 48)), 3)
        reflectivity = 100.0 * np.exp(texture / texture.std())
        reflectivity[:, 24:] *= 4.0 + index
        path = tmp_path / f"ref{index}.npy"
        np.save(path, np.sqrt(reflectivity))
        paths.append(str(path))
    return paths


@pytest.fixture
def reference_file(tmp_path):
    """An 80 × 72 speckle-free intensity reference (ref.npy) and a 32² validation crop of it
    (val.npy), for tiny training runs."""
    rng = np.random.default_rng(0)
    clean = np.full((80, 72), 400.0, np.float32)
    clean[:, 36:] = 2500.0
    clean[30:50, 10:30] = 60.0
    clean *= np.exp(rng.normal(0, 0.05, clean.shape)).astype(np.float32)
    path = tmp_path / "ref.npy"
    np.save(path, clean)
    np.save(tmp_path / "val.npy", clean[:32, :32])
    return path
