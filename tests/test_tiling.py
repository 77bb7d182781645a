import numpy as np
import pytest
from scipy.ndimage import uniform_filter

from sardespeckle.errors import InvalidInputError, UsageError
from sardespeckle.tiling import fill_masked, plan_tiles, process_array, run_tiled, weak_zeros
from sardespeckle.window import Window


def box5(intensity):
    return uniform_filter(intensity.astype(np.float64), size=5, mode="reflect").astype(np.float32)


@pytest.mark.parametrize("shape,tile", [((100, 70), 32), ((1, 1), 8), ((513, 1030), 512), ((7, 300), 64)])
def test_plan_tiles_partitions_the_raster(shape, tile):
    count = np.zeros(shape, int)
    for window in plan_tiles(shape, tile=tile):
        assert 1 <= window.height <= tile and 1 <= window.width <= tile
        count[window.slices] += 1
    assert (count == 1).all()


def test_plan_tiles_avoids_slivers():
    heights = {w.height for w in plan_tiles((1030, 10), tile=512)}
    assert heights <= {343, 344}


def test_bad_tile_and_shape():
    with pytest.raises(UsageError):
        plan_tiles((10, 10), tile=0)
    with pytest.raises(InvalidInputError):
        plan_tiles((0, 10), tile=8)


@pytest.mark.parametrize("tile", [8, 17, 33, 1000])
def test_tiled_equals_whole(speckled_scene, tile):
    whole = process_array(speckled_scene, box5, halo=2, tile=None)
    tiled = process_array(speckled_scene, box5, halo=2, tile=tile)
    np.testing.assert_allclose(tiled, whole, rtol=1e-6)
    np.testing.assert_allclose(whole, box5(speckled_scene), rtol=1e-6)


def test_too_small_halo_shows_seams(speckled_scene):
    whole = process_array(speckled_scene, box5, halo=2, tile=None)
    tiled = process_array(speckled_scene, box5, halo=1, tile=16)
    assert np.abs(tiled / whole - 1).max() > 1e-3


def test_masked_pixels_tiled_equals_whole(speckled_scene):
    image = speckled_scene.copy()
    image[10:30, 5:60] = np.nan  # a block of nodata crossing tile borders
    image[50, 50] = 0.0  # an isolated zero: a weak sample, estimated
    image[60:63, 70:73] = 0.0  # a block of zeros: missing data
    image[80:, :] = np.inf
    whole = process_array(image, box5, halo=2, tile=None)
    tiled = process_array(image, box5, halo=2, tile=12)
    missing = ~np.isfinite(image) | (image == 0)
    missing[50, 50] = False
    assert np.isnan(whole[missing]).all() and np.isnan(tiled[missing]).all()
    np.testing.assert_allclose(tiled[~missing], whole[~missing], rtol=1e-6)
    assert np.isfinite(whole[~missing]).all()
    # The weak zero's estimate is the method's output on the filled input: its 3×3 fill is the
    # mean of its valid neighbours, so the box mean around it is built from valid pixels only.
    assert 0 < whole[50, 50] < np.inf


def test_weak_zeros_are_isolated_zero_samples_only():
    intensity = np.ones((9, 12), np.float32)
    valid = np.ones((9, 12), bool)

    def zero(*cells):
        for r, c in cells:
            intensity[r, c], valid[r, c] = 0.0, False

    zero((2, 2))  # isolated: 8 valid neighbours
    zero((5, 2), (5, 3), (5, 4))  # a thin line: 6 and 7 valid neighbours
    zero((2, 7), (2, 8), (3, 7), (3, 8))  # a 2×2 block: 5 valid neighbours each
    zero((0, 11))  # on the raster corner: 3 neighbours inside the raster
    intensity[7, 9], valid[7, 9] = np.nan, False  # missing data, isolated: not a zero
    weak = weak_zeros(intensity, valid)
    assert {tuple(map(int, rc)) for rc in np.argwhere(weak)} == {(2, 2), (5, 2), (5, 3), (5, 4)}
    assert not weak_zeros(np.ones((3, 3), np.float32), np.ones((3, 3), bool)).any()


def test_fill_uses_local_valid_mean():
    intensity = np.array([[1.0, 3.0, 0.0, 100.0]], np.float32)
    valid = np.array([[True, True, False, False]])
    filled = fill_masked(intensity, valid, radius=1)
    assert filled[0, 2] == pytest.approx(3.0)
    assert filled[0, 3] == 1.0  # no valid neighbour within the radius


def test_fully_masked_tiles_are_not_computed():
    calls = []

    def method(intensity):
        calls.append(intensity.shape)
        return intensity

    image = np.full((64, 64), np.nan, np.float32)
    image[:16, :16] = 1.0
    out = process_array(image, method, halo=1, tile=16)
    assert len(calls) == 1 and np.isnan(out[16:, :]).all() and (out[:16, :16] == 1).all()


def test_batches_have_equal_shapes_and_progress_is_reported(speckled_scene):
    shapes_seen, progress = [], []

    def method(intensity):
        raise AssertionError("batch() should be used")

    def batch(tiles):
        shapes_seen.append({t.shape for t in tiles})
        return [box5(t) for t in tiles]

    method.batch = batch
    out = process_array(speckled_scene, method, halo=2, tile=16, batch_size=4,
                        progress=lambda d, t: progress.append((d, t)))
    np.testing.assert_allclose(out, box5(speckled_scene), rtol=1e-6)
    assert all(len(s) == 1 for s in shapes_seen)
    total = len(plan_tiles(speckled_scene.shape, tile=16))
    assert progress[-1] == (total, total)
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)


def test_wrong_output_shape_is_an_error(speckled_scene):
    with pytest.raises(InvalidInputError, match="shape"):
        process_array(speckled_scene, lambda x: x[1:], halo=0, tile=32)


def test_run_tiled_reads_only_windows(speckled_scene):
    """The engine never asks for more than one tile plus twice the halo."""
    reads = []
    out = np.zeros_like(speckled_scene)

    def read(window: Window):
        reads.append(window.shape)
        return speckled_scene[window.slices], np.ones(window.shape, bool)

    def write(window, values, valid):
        out[window.slices] = values

    run_tiled(speckled_scene.shape, read, write, box5, halo=2, tile=16)
    assert max(h * w for h, w in reads) <= (16 + 4) ** 2
    np.testing.assert_allclose(out, box5(speckled_scene), rtol=1e-6)


def test_3d_input_refused():
    with pytest.raises(InvalidInputError, match="2-D"):
        process_array(np.ones((4, 4, 2)), box5, halo=2)


def test_aligned_tiles_start_on_block_multiples():
    windows = plan_tiles((1030, 700), tile=300, align=256)
    assert {w.row for w in windows} == {0, 512, 1024} and {w.col for w in windows} == {0, 512}
    count = np.zeros((1030, 700), int)
    for w in windows:
        count[w.slices] += 1
    assert (count == 1).all()


class ZeroPaddedBox5:
    """A 5×5 mean with zero padding that asks the engine for mirrored context instead."""

    def __init__(self):
        self.shapes = []

    def __call__(self, intensity):
        raise AssertionError("the engine must use batch_with_context")

    def batch_with_context(self, tiles):
        self.shapes += [tile.shape for tile in tiles]
        return [uniform_filter(tile.astype(np.float64), size=5, mode="constant").astype(np.float32)
                for tile in tiles]


@pytest.mark.parametrize("tile", [8, 17, 1000])
def test_methods_with_context_get_mirrored_raster_edges(speckled_scene, tile):
    # The same as mirroring the whole raster (numpy "reflect") and cropping: box5 with
    # scipy's "mirror" mode, which reflects about the edge pixel like numpy's "reflect".
    method = ZeroPaddedBox5()
    tiled = process_array(speckled_scene, method, halo=2, tile=tile)
    expected = uniform_filter(speckled_scene.astype(np.float64), size=5, mode="mirror")
    np.testing.assert_allclose(tiled, expected, rtol=1e-6)
    # Every tile has the halo on every side, inside the raster or mirrored.
    cores = {(w.height + 4, w.width + 4) for w in plan_tiles(speckled_scene.shape, tile=tile)}
    assert set(method.shapes) == cores


def test_methods_with_context_and_masked_pixels(speckled_scene):
    image = speckled_scene.copy()
    image[0:6, 0:9] = np.nan  # nodata in a corner: filled, then mirrored
    image[40, 3] = 0.0  # an isolated zero: estimated, the same in tiles
    whole = process_array(image, ZeroPaddedBox5(), halo=2, tile=None)
    tiled = process_array(image, ZeroPaddedBox5(), halo=2, tile=12)
    masked = np.isnan(image)
    assert np.isnan(tiled[masked]).all() and np.isfinite(tiled[~masked]).all()
    np.testing.assert_allclose(tiled[~masked], whole[~masked], rtol=1e-6)


def test_despeckle_honours_the_mask_of_a_masked_array(speckled_scene):
    from sardespeckle.api import despeckle

    holes = np.zeros(speckled_scene.shape, bool)
    holes[10:20, 5:15] = True
    with_nan = np.where(holes, np.nan, speckled_scene).astype(np.float32)
    # The masked pixels hold huge values: were they used, their neighbours would change.
    masked = np.ma.masked_array(np.where(holes, 1e6, speckled_scene).astype(np.float32), mask=holes)
    expected = despeckle(with_nan, method="lee", looks=1, kind="intensity")
    got = despeckle(masked, method="lee", looks=1, kind="intensity")
    assert np.isnan(got[holes]).all()
    np.testing.assert_array_equal(got, expected)
    # An isolated zero is a weak sample and gets an estimate, unless the mask says it is missing.
    zero = speckled_scene.copy()
    zero[50, 50] = 0.0
    assert np.isfinite(despeckle(zero, method="lee", looks=1, kind="intensity")[50, 50])
    only = np.zeros(zero.shape, bool)
    only[50, 50] = True
    assert np.isnan(despeckle(np.ma.masked_array(zero, mask=only), method="lee", looks=1, kind="intensity")[50, 50])


def test_weak_zeros_at_tile_edges_with_a_pointwise_method(speckled_scene):
    # halo 0: the engine still reads one pixel of context to classify zeros, so a zero on a
    # tile edge is classified (and filled) as in the whole image.
    image = speckled_scene.copy()
    image[12, 20] = 0.0  # on the edge of the 12-px tiles below
    image[30:32, 40:42] = 0.0  # a 2×2 block: missing

    def identity(intensity):
        return intensity

    whole = process_array(image, identity, halo=0, tile=None)
    tiled = process_array(image, identity, halo=0, tile=12)
    np.testing.assert_array_equal(np.isnan(tiled), np.isnan(whole))
    np.testing.assert_allclose(tiled, whole, rtol=1e-6, equal_nan=True)
    neighbours = np.delete(image[11:14, 19:22].ravel(), 4)
    assert whole[12, 20] == pytest.approx(neighbours.mean(), rel=1e-5)  # the 3×3 fill
    assert np.isnan(whole[30:32, 40:42]).all()
