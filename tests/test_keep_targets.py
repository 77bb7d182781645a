"""keep_targets: strong scatterers keep their input value, whatever the method made of them."""

import numpy as np
import pytest

from sardespeckle.errors import UsageError
from sardespeckle.methods import build_method
from sardespeckle.speckle import simulate_speckle
from sardespeckle.tiling import process_array


def scene_with_targets():
    """Homogeneous single-look speckle (reflectivity 10) with 20 deterministic point targets
    at 300 (not speckled: a corner reflector's intensity does not fluctuate)."""
    image = (10.0 * simulate_speckle((256, 256), 1, seed=4)).astype(np.float32)
    rng = np.random.default_rng(5)
    targets = [tuple(p) for p in rng.integers(16, 240, size=(20, 2))]
    for row, col in targets:
        image[row, col] = 300.0
    return image, targets


def test_point_targets_keep_their_value_and_speckle_rarely_passes():
    image, targets = scene_with_targets()
    plain = build_method("boxcar", looks=1, params={"window_size": 7})
    kept = build_method("boxcar", looks=1, params={"window_size": 7, "keep_targets": 1e-5})
    assert kept.parameters["keep_targets"] == 1e-5
    assert kept.halo == plain.halo + 3  # the median's window
    before, after = plain.function(image), kept.function(image)
    rows, cols = np.array(targets).T
    assert np.all(before[rows, cols] < 0.2 * 300)  # the boxcar dims a lone target to ~1/7
    np.testing.assert_array_equal(after[rows, cols], 300.0)
    changed = after != before
    changed[rows, cols] = False
    assert changed.sum() <= 3  # speckle alone: about 1e-5 of 65 536 pixels
    # Off by default, and with 0; a bad rate is refused.
    assert "keep_targets" not in plain.parameters
    assert "keep_targets" not in build_method("boxcar", looks=1, params={"keep_targets": 0}).parameters
    for bad in (0.5, -1e-5, "many", True):
        with pytest.raises(UsageError, match="keep_targets"):
            build_method("boxcar", looks=1, params={"keep_targets": bad})


def test_tiled_output_equals_the_whole_image_output():
    image, _ = scene_with_targets()
    kept = build_method("kuan", looks=1, params={"keep_targets": 1e-4})
    whole = kept.function(image)
    tiled = process_array(image, kept.function, halo=kept.halo, tile=64)
    np.testing.assert_array_equal(tiled, whole)


def test_the_command_line_option_reaches_the_method_and_the_provenance(tmp_path, capsys):
    import json

    from sardespeckle.cli.main import main

    image, targets = scene_with_targets()
    np.save(tmp_path / "in.npy", image)
    out = tmp_path / "out.npy"
    assert main(["run", str(tmp_path / "in.npy"), "--kind", "intensity", "--looks", "1",
                 "-m", "boxcar", "--keep-targets", "1e-5", "-o", str(out), "-q"]) == 0
    result = np.load(out)
    rows, cols = np.array(targets).T
    np.testing.assert_allclose(result[rows, cols], 300.0)
    assert main(["run", str(tmp_path / "in.npy"), "--kind", "intensity", "--looks", "1",
                 "-m", "boxcar", "--keep-targets", "1e-5", "-o", str(tmp_path / "o.tif"),
                 "-q"]) == 0
    assert main(["info", str(tmp_path / "o.tif"), "--json"]) == 0
    tags = json.loads(capsys.readouterr().out)["tags"]
    assert json.loads(tags["SARDESPECKLE_PARAMETERS"])["keep_targets"] == 1e-5


def test_a_network_with_context_tiles_gives_the_whole_image_result():
    # SAR-CNN hands the engine batch_with_context (mirrored context, no padding of its own):
    # the wrapper keeps it, and the median's window is covered by the larger halo.
    image, targets = scene_with_targets()
    image = image[:128, :128]
    inside = [(r, c) for r, c in targets if r < 128 and c < 128]
    kept = build_method("sarcnn", looks=1, params={"keep_targets": 1e-5, "precision": "fp32",
                                                   "decorrelate": "none"})
    assert callable(getattr(kept.function, "batch_with_context", None))
    whole = process_array(image, kept.function, halo=kept.halo, tile=None,
                          batch_size=kept.batch_size)
    tiled = process_array(image, kept.function, halo=kept.halo, tile=48,
                          batch_size=kept.batch_size)
    # The network itself differs by ~1e-6 between tile shapes (oneDNN picks its kernels by
    # shape); the restored targets are the same pixels with the same values.
    np.testing.assert_allclose(tiled, whole, rtol=1e-5)
    np.testing.assert_array_equal(tiled == image, whole == image)
    rows, cols = np.array(inside).T
    assert len(inside) >= 3 and np.all(whole[rows, cols] == 300.0)  # SAR-CNN's targets kept
