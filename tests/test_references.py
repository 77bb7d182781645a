"""Multitemporal references: the test's calibration, change handling, masks, files and CLI."""

from __future__ import annotations

import argparse
import json
import os
import re

import numpy as np
import pytest

from sardespeckle import references
from sardespeckle.errors import InvalidInputError, OutputExistsError, UsageError
from sardespeckle.references import (
    build_reference,
    build_reference_files,
    change_thresholds,
    estimate_temporal_looks,
    load_stack,
    read_png_series,
)
from sardespeckle.speckle import enl, simulate_speckle

DATES = 10


def piecewise_scene(rows: int = 128, cols: int = 128) -> np.ndarray:
    """A piecewise-constant reflectivity: four quadrants and a small bright square."""
    truth = np.full((rows, cols), 4.0)
    truth[: rows // 2, cols // 2:] = 30.0
    truth[rows // 2:, : cols // 2] = 1.0
    truth[rows // 2:, cols // 2:] = 12.0
    truth[10:22, 10:22] = 200.0
    return truth


def changed_stack(truth: np.ndarray) -> np.ndarray:
    """Per-date reflectivity: the truth, with some regions changed at some dates."""
    stack = np.repeat(truth[None], DATES, axis=0)
    stack[2:5, 70:110, 10:50] *= 10.0   # a field that brightens for three dates
    stack[7:9, 20:50, 70:120] *= 0.1    # a flood: two dark dates
    stack[8:, 90:120, 80:120] *= 8.0    # a construction in the last two dates
    return stack


def log_error(estimate: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.abs(np.log(estimate / truth))))


def psnr_amplitude(estimate: np.ndarray, truth: np.ndarray) -> float:
    amplitude, reference = np.sqrt(estimate), np.sqrt(truth)
    peak = np.percentile(reference, 99)
    return float(10 * np.log10(peak**2 / np.mean((amplitude - reference) ** 2)))


# --------------------------------------------------------------------------------------------
# the test statistic
# --------------------------------------------------------------------------------------------


def test_thresholds_match_the_ratio_of_gamma_means():
    rng = np.random.default_rng(0)
    looks_date, looks_others, alpha = 9.0, 81.0, 0.05
    date = rng.gamma(looks_date, 1 / looks_date, 400_000)
    others = rng.gamma(looks_others, 1 / looks_others, 400_000)
    low, high = change_thresholds(looks_date, looks_others, alpha)
    rejected = np.mean((date / others < low) | (date / others > high))
    assert rejected == pytest.approx(alpha, rel=0.05)
    assert np.mean(date / others < low) == pytest.approx(alpha / 2, rel=0.08)


def test_false_alarm_rate_on_a_stable_stack_is_the_design_value():
    truth = np.full((DATES, 192, 192), 7.0)
    stack = truth * simulate_speckle(truth.shape, 1, seed=1)
    result = build_reference(stack, looks=1, false_alarm=1e-3)
    rate = result.change_mask.mean()
    assert 0.6e-3 < rate < 1.6e-3
    assert result.report["rejected_fraction"] == pytest.approx(rate, rel=1e-3)
    assert result.report["test"]["converged"]


@pytest.mark.parametrize("looks", [1, 3])
def test_reference_enl_is_dates_used_times_looks(looks):
    truth = np.full((DATES, 160, 160), 3.0)
    stack = truth * simulate_speckle(truth.shape, looks, seed=2)
    result = build_reference(stack, looks=looks)
    expected = result.dates_used.mean() * looks
    assert expected == pytest.approx(DATES * looks, rel=0.01)
    assert enl(result.reflectivity) == pytest.approx(expected, rel=0.08)
    assert result.report["expected_enl"] == pytest.approx(expected, rel=1e-3)
    assert result.report["measured_enl"] == pytest.approx(expected, rel=0.2)


# --------------------------------------------------------------------------------------------
# change handling
# --------------------------------------------------------------------------------------------


def test_change_aware_beats_the_plain_mean_when_the_scene_changes():
    truth = piecewise_scene()
    stack = changed_stack(truth) * simulate_speckle((DATES, *truth.shape), 1, seed=3)
    plain = build_reference(stack, looks=1, method="mean")
    aware = build_reference(stack, looks=1)
    assert log_error(aware.reflectivity, truth) < 0.8 * log_error(plain.reflectivity, truth)
    psnr_aware = psnr_amplitude(aware.reflectivity, truth)
    assert psnr_aware > psnr_amplitude(plain.reflectivity, truth) + 1
    # the changed dates are found inside the changed regions (away from their borders)
    assert aware.change_mask[2:5, 75:105, 15:45].mean() > 0.95
    assert aware.change_mask[7:9, 25:45, 75:115].mean() > 0.95
    assert aware.change_mask[8:, 95:115, 85:115].mean() > 0.95
    assert aware.dates_used[80:100, 20:40].min() >= 5


def test_change_aware_is_almost_as_good_as_the_mean_without_changes():
    truth = piecewise_scene()
    stack = truth * simulate_speckle((DATES, *truth.shape), 1, seed=4)
    plain = build_reference(stack, looks=1, method="mean")
    aware = build_reference(stack, looks=1)
    assert log_error(aware.reflectivity, truth) < 1.03 * log_error(plain.reflectivity, truth)
    psnr_aware = psnr_amplitude(aware.reflectivity, truth)
    assert psnr_aware > psnr_amplitude(plain.reflectivity, truth) - 0.15


def test_majority_cluster_wins_after_a_step_change():
    truth = np.full((DATES, 48, 48), 2.0)
    truth[6:] = 20.0  # four dates after a step: the six before are the stable majority
    stack = truth * simulate_speckle(truth.shape, 1, seed=5)
    result = build_reference(stack, looks=1)
    assert np.median(result.dates_used) == 6
    assert np.median(result.reflectivity) == pytest.approx(2.0, rel=0.15)


def test_a_steady_trend_falls_back_to_the_median_date_cluster():
    growth = 3.0 ** np.arange(DATES)  # every date three times the previous one
    truth = growth[:, None, None] * np.ones((DATES, 40, 40))
    stack = truth * simulate_speckle(truth.shape, 4, seed=6)
    result = build_reference(stack, looks=4)
    assert np.all(result.dates_used >= 1)
    assert np.all(np.isfinite(result.reflectivity))
    # the robust start keeps the lower median date of ten, date 4 (sorted by the trend), and
    # no other date is consistent with it
    kept = ~result.change_mask & result.valid
    assert kept[4].mean() > 0.9 and np.median(result.dates_used) == 1
    assert kept[0].mean() < 0.05 and kept[-1].mean() < 0.05


def test_strips_give_the_same_result_as_one_block(monkeypatch):
    stack = changed_stack(piecewise_scene())[:, :100, :64] * simulate_speckle(
        (DATES, 100, 64), 1, seed=7)
    monkeypatch.setattr(references, "_STRIP_ROWS", 23)
    strips = build_reference(stack, looks=1)
    monkeypatch.setattr(references, "_STRIP_ROWS", 1000)
    whole = build_reference(stack, looks=1)
    np.testing.assert_array_equal(strips.change_mask, whole.change_mask)
    np.testing.assert_array_equal(strips.reflectivity, whole.reflectivity)


# --------------------------------------------------------------------------------------------
# kinds, masks, options
# --------------------------------------------------------------------------------------------


def test_amplitude_input_equals_intensity_input():
    truth = changed_stack(piecewise_scene())[:, :64, :64]
    intensity = truth * simulate_speckle(truth.shape, 1, seed=8)
    a = build_reference(np.sqrt(intensity), looks=1, kind="amplitude")
    b = build_reference(intensity, looks=1)
    np.testing.assert_allclose(a.reflectivity, b.reflectivity, rtol=1e-5)
    np.testing.assert_array_equal(a.change_mask, b.change_mask)


def test_valid_mask_excludes_dates_and_marks_empty_pixels():
    truth = np.full((DATES, 32, 32), 5.0)
    stack = (truth * simulate_speckle(truth.shape, 1, seed=9)).astype(np.float32)
    valid = np.ones(stack.shape, dtype=bool)
    valid[:3, 5, 5] = False
    valid[:, 10, 10] = False
    stack[:, 10, 10] = 1e6     # masked: must not leak into the neighbours' tests
    stack[4, 20, 20] = np.nan  # non-finite: masked automatically
    result = build_reference(stack, looks=1, valid=valid)
    assert result.dates_used[10, 10] == 0 and np.isnan(result.reflectivity[10, 10])
    assert result.dates_used[5, 5] <= DATES - 3
    assert not result.valid[4, 20, 20] and result.dates_used[20, 20] <= DATES - 1
    assert not result.change_mask[~result.valid].any()
    assert result.report["pixels_without_data"] == 1
    assert not result.change_mask[:, 9:12, 9:12].any()
    assert result.reflectivity.dtype == np.float32 and result.dates_used.dtype == np.uint16


def test_plain_mean_is_the_mean_of_valid_dates():
    stack = np.arange(1, 2 * 3 * 4 + 1, dtype=np.float64).reshape(2, 3, 4)
    result = build_reference(stack, looks=1, method="mean")
    np.testing.assert_allclose(result.reflectivity, stack.mean(axis=0), rtol=1e-6)
    assert not result.change_mask.any() and np.all(result.dates_used == 2)


def test_two_dates_need_the_plain_mean_as_in_the_file_api():
    image = 1 + np.random.default_rng(0).random((2, 16, 16))
    with pytest.raises(UsageError, match="at least 3 dates for the change-aware.*method='mean'"):
        build_reference(image, looks=1)
    result = build_reference(image, looks=1, method="mean")
    np.testing.assert_allclose(result.reflectivity, image.mean(0), rtol=1e-6)


def test_single_date_is_its_own_reference():
    image = 1 + np.random.default_rng(0).random((1, 16, 16))
    result = build_reference(image, looks=1)
    np.testing.assert_allclose(result.reflectivity, image[0], rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"stack": np.ones((4, 4))}, InvalidInputError),
        ({"stack": np.ones((2, 4, 4)), "valid": np.ones((2, 4, 5), bool)}, InvalidInputError),
        ({"stack": np.ones((2, 4, 4)), "valid": np.ones((2, 4, 4))}, InvalidInputError),
        ({"stack": -np.ones((2, 4, 4))}, InvalidInputError),
        ({"stack": np.ones((2, 4, 4), complex)}, InvalidInputError),
        ({"stack": np.ones((2, 4, 4)), "window_size": 4}, InvalidInputError),
        ({"stack": np.ones((2, 4, 4)), "false_alarm": 1.0}, InvalidInputError),
        ({"stack": np.ones((2, 4, 4)), "looks": 0}, InvalidInputError),
        ({"stack": np.ones((2, 4, 4)), "max_iterations": 0}, InvalidInputError),
        ({"stack": np.ones((2, 4, 4)), "method": "median"}, UsageError),
        ({"stack": np.ones((2, 4, 4)), "kind": "db"}, UsageError),
    ],
)
def test_bad_input_raises_clear_errors(kwargs, error):
    kwargs = {"looks": 1, **kwargs}
    with pytest.raises(error, match="expected"):
        build_reference(kwargs.pop("stack"), **kwargs)


def test_window_larger_than_the_image_is_refused():
    stack = np.ones((3, 8, 12))
    with pytest.raises(InvalidInputError, match="at most 8|<= 8"):
        build_reference(stack, looks=1, window_size=9)
    with pytest.raises(InvalidInputError, match="<= 8"):
        estimate_temporal_looks(stack, window_size=9)
    build_reference(stack, looks=1, window_size=7)


def test_memory_does_not_grow_with_the_window():
    # The thresholds were tabulated for every (n_t, n_o) pair: (k² + 1)(k² (T − 1) + 1) cells,
    # 29 MB here, two 13 GB float64 tables for k = 201 and 2 dates (the OOM of the CLI).
    import tracemalloc

    stack = 4.0 * simulate_speckle((3, 24, 24), 1, seed=1)
    build_reference(stack, looks=1, window_size=3)  # imports and caches out of the count
    tracemalloc.start()
    try:
        result = build_reference(stack, looks=1, window_size=21)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000
    assert result.report["rejected_fraction"] < 0.01


def test_lazy_thresholds_equal_the_table(monkeypatch):
    truth = changed_stack(piecewise_scene(64, 64))
    stack = truth * simulate_speckle(truth.shape, 1, seed=5)
    valid = np.random.default_rng(5).random(stack.shape) > 0.1
    table = build_reference(stack, looks=1, window_size=5, valid=valid)
    monkeypatch.setattr(references, "_DENSE_THRESHOLD_CELLS", 0)
    lazy = build_reference(stack, looks=1, window_size=5, valid=valid)
    np.testing.assert_array_equal(lazy.change_mask, table.change_mask)
    assert lazy.report == table.report


def test_temporal_looks_estimate_does_not_overflow():
    stack = 4.0 * simulate_speckle((3, 32, 32), 1, seed=2)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # was: RuntimeWarning: overflow encountered in divide
        assert estimate_temporal_looks(stack) == pytest.approx(1, rel=0.15)
        # a near-constant stack has more looks than the search range: the upper end, no warning
        assert estimate_temporal_looks(1 + 1e-9 * stack) == pytest.approx(1e7)


@pytest.mark.parametrize("looks", [1, 4])
def test_temporal_looks_estimate_on_white_speckle(looks):
    truth = np.repeat(piecewise_scene(96, 96)[None], 6, axis=0)
    stack = truth * simulate_speckle(truth.shape, looks, seed=10)
    assert estimate_temporal_looks(stack) == pytest.approx(looks, rel=0.05)
    assert estimate_temporal_looks(stack, window_size=3) == pytest.approx(9 * looks, rel=0.15)


def test_progress_is_reported():
    calls = []
    stack = np.ones((3, 300, 8)) * simulate_speckle((3, 300, 8), 1, seed=0)
    build_reference(stack, looks=1, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1][0] == calls[-1][1] and len(calls) == calls[-1][1]


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------


def _write_dates(folder, stack, ext=".npy"):
    from sardespeckle.io import write_array

    paths = []
    for index, layer in enumerate(stack):
        path = folder / f"date_{index}{ext}"
        write_array(path, np.asarray(layer, dtype=np.float32), kind="amplitude")
        paths.append(path)
    return paths


@pytest.mark.parametrize("ext", [".npy", ".tif"])
def test_build_reference_files_writes_reference_count_changes_and_report(tmp_path, ext):
    truth = changed_stack(piecewise_scene())[:, :64, :64]
    amplitude = np.sqrt(truth * simulate_speckle(truth.shape, 1, seed=11))
    paths = _write_dates(tmp_path, amplitude, ext)
    output = tmp_path / f"ref{ext}"
    report = build_reference_files(paths, output, looks=1, kind="amplitude",
                                   output_kind="amplitude", window_looks=None)
    expected = build_reference(amplitude, looks=1, kind="amplitude")
    stack = load_stack([output], kind="amplitude")
    np.testing.assert_allclose(stack.intensity[0], expected.reflectivity, rtol=1e-5)
    count = load_stack([tmp_path / f"ref_count{ext}"], kind="intensity")
    np.testing.assert_array_equal(count.intensity[0], expected.dates_used)
    if ext == ".npy":
        codes = np.load(tmp_path / "ref_changes.npy")
    else:
        import warnings

        import rasterio

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(tmp_path / "ref_changes.tif") as dataset:
                codes = dataset.read()
    assert codes.shape == amplitude.shape and codes.dtype == np.uint8
    np.testing.assert_array_equal(codes == 1, expected.change_mask)
    written = json.loads((tmp_path / "ref.json").read_text())
    assert written == json.loads(json.dumps(report))
    assert written["dates"] == DATES and written["output_kind"] == "amplitude"
    assert written["input_kind"] == "amplitude" and set(written["input_kinds"]) == {"amplitude"}
    with pytest.raises(OutputExistsError):
        build_reference_files(paths, output, looks=1, kind="amplitude")
    build_reference_files(paths, output, looks=None, kind="amplitude", overwrite=True)
    assert "estimated" in json.loads((tmp_path / "ref.json").read_text())["looks_source"]


def _small_dates(folder, dates=3, shape=(16, 16)):
    stack = np.sqrt(np.full((dates, *shape), 9.0) * simulate_speckle((dates, *shape), 1, seed=13))
    return _write_dates(folder, stack)


def _outputs(folder):
    return sorted(path.name for path in folder.iterdir() if not path.name.startswith("date_"))


def test_build_reference_files_refuses_a_window_larger_than_the_dates(tmp_path):
    paths = _small_dates(tmp_path, shape=(16, 20))
    with pytest.raises(UsageError, match="at most 16, the smaller side of the 16×20 dates"):
        build_reference_files(paths, tmp_path / "r.npy", looks=1, kind="amplitude",
                              window_size=17)
    assert _outputs(tmp_path) == []


def test_build_reference_files_checks_every_output_before_any_work(tmp_path, monkeypatch):
    paths = _small_dates(tmp_path)
    (tmp_path / "r.json").mkdir()
    monkeypatch.setattr(references, "load_stack", lambda *a, **k: pytest.fail("loaded"))
    with pytest.raises(UsageError, match="folder"):
        build_reference_files(paths, tmp_path / "r.tif", looks=1, kind="amplitude",
                              overwrite=True)
    (tmp_path / "r.json").rmdir()
    (tmp_path / "r.json").write_text("{}")
    with pytest.raises(OutputExistsError, match="r.json"):
        build_reference_files(paths, tmp_path / "r.tif", looks=1, kind="amplitude")
    (tmp_path / "r.json").unlink()
    (tmp_path / "r_changes.tif").mkdir()
    with pytest.raises(UsageError, match="folder"):
        build_reference_files(paths, tmp_path / "r.tif", looks=1, kind="amplitude",
                              overwrite=True)
    with pytest.raises(UsageError, match="does not exist"):
        build_reference_files(paths, tmp_path / "missing" / "r.tif", looks=1, kind="amplitude")
    assert _outputs(tmp_path) == ["r_changes.tif"]


def test_a_failed_write_leaves_no_output_and_keeps_the_replaced_ones(tmp_path, monkeypatch):
    paths = _small_dates(tmp_path)
    output = tmp_path / "r.npy"

    def failing(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(references, "_write_json", failing)  # the last file written
    with pytest.raises(OSError, match="disk full"):
        build_reference_files(paths, output, looks=1, kind="amplitude")
    assert _outputs(tmp_path) == []  # no output, no temporary file
    monkeypatch.undo()
    build_reference_files(paths, output, looks=1, kind="amplitude")
    before = {name: (tmp_path / name).read_bytes() for name in _outputs(tmp_path)}
    assert sorted(before) == ["r.json", "r.npy", "r.npy.json", "r_changes.npy", "r_count.npy"]
    monkeypatch.setattr(references, "_write_json", failing)
    with pytest.raises(OSError, match="disk full"):
        build_reference_files(paths, output, looks=1, kind="amplitude", method="mean",
                              overwrite=True)
    assert {name: (tmp_path / name).read_bytes() for name in _outputs(tmp_path)} == before

    # a rename that fails after the reference was replaced puts the replaced files back
    from sardespeckle.io import base

    publish = base.publish

    def failing_publish(temp, path, *, overwrite):
        if path == str(tmp_path / "r_count.npy"):
            raise OSError("rename failed")
        publish(temp, path, overwrite=overwrite)

    monkeypatch.undo()
    monkeypatch.setattr(base, "publish", failing_publish)
    with pytest.raises(OSError, match="rename failed"):
        build_reference_files(paths, output, looks=1, kind="amplitude", method="mean",
                              overwrite=True)
    assert {name: (tmp_path / name).read_bytes() for name in _outputs(tmp_path)} == before


def test_an_interrupt_while_outputs_are_replaced_keeps_the_old_ones(tmp_path, monkeypatch):
    # Ctrl-C or SIGTERM right after an old output was moved aside: it is put back, and the
    # command line's clean-up of temporary files (remove_temporaries) never deletes it.
    import os

    from sardespeckle.io import base

    paths = _small_dates(tmp_path)
    output = tmp_path / "r.npy"
    build_reference_files(paths, output, looks=1, kind="amplitude")
    before = {name: (tmp_path / name).read_bytes() for name in _outputs(tmp_path)}
    replace = os.replace

    def interrupted_after_the_move(source, destination):
        replace(source, destination)
        moved_aside = os.path.basename(destination).startswith(".r_count.npy.")
        if os.fspath(source) == str(tmp_path / "r_count.npy") and moved_aside:
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted_after_the_move)
    with pytest.raises(KeyboardInterrupt):
        build_reference_files(paths, output, looks=1, kind="amplitude", method="mean",
                              overwrite=True)
    monkeypatch.undo()
    base.remove_temporaries()
    assert {name: (tmp_path / name).read_bytes() for name in _outputs(tmp_path)} == before


@pytest.mark.parametrize(
    ("dates", "method", "match"),
    [
        (1, "change-aware", "at least 2 distinct dates"),
        (1, "mean", "at least 2 distinct dates"),
        (2, "change-aware", "at least 3 distinct dates for the change-aware method"),
    ],
)
def test_build_reference_files_needs_enough_dates(tmp_path, dates, method, match):
    paths = _small_dates(tmp_path, dates=dates)
    with pytest.raises(UsageError, match=match):
        build_reference_files(paths, tmp_path / "r.npy", looks=1, kind="amplitude",
                              method=method)
    assert _outputs(tmp_path) == []


def test_two_dates_are_enough_for_the_mean(tmp_path):
    paths = _small_dates(tmp_path, dates=2)
    report = build_reference_files(paths, tmp_path / "r.npy", looks=1, kind="amplitude",
                                   method="mean")
    assert report["dates"] == 2 and report["mean_dates_used"] == 2


def test_build_reference_files_refuses_a_date_given_twice(tmp_path):
    paths = _small_dates(tmp_path)
    for again in (paths[0], tmp_path / "." / paths[0].name):
        with pytest.raises(UsageError, match="same file twice"):
            build_reference_files([*paths, again], tmp_path / "r.npy", looks=1,
                                  kind="amplitude")
    (tmp_path / "link.npy").symlink_to(paths[1])
    with pytest.raises(UsageError, match="date 2.*date 4"):
        build_reference_files([*paths, tmp_path / "link.npy"], tmp_path / "r.npy", looks=1,
                              kind="amplitude")
    assert _outputs(tmp_path) == ["link.npy"]


def test_load_stack_refuses_different_shapes(tmp_path):
    paths = _write_dates(tmp_path, [np.ones((8, 8)), np.ones((8, 9))])
    with pytest.raises(InvalidInputError, match="one shape"):
        load_stack(paths, kind="amplitude")


def test_read_png_series_scales_and_masks(tmp_path):
    from PIL import Image

    grey = np.array([[0, 1, 128], [254, 255, 51]], dtype=np.uint8)
    paths = []
    for index in range(2):
        path = tmp_path / f"d{index}.png"
        Image.fromarray(grey).save(path)
        paths.append(path)
    amplitude, valid = read_png_series(paths, threshold=255.0 * 2)
    np.testing.assert_allclose(amplitude[1], grey * 2.0)
    np.testing.assert_array_equal(valid[0], [[False, True, True], [True, False, True]])
    stack = load_stack(paths, png_threshold=510.0)
    np.testing.assert_allclose(stack.intensity, amplitude**2, rtol=1e-6)
    with pytest.raises(UsageError, match="threshold"):
        load_stack(paths)
    Image.fromarray(grey[:, :2].copy()).save(tmp_path / "small.png")
    with pytest.raises(InvalidInputError, match="one shape"):
        read_png_series([paths[0], tmp_path / "small.png"], threshold=1.0)


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


def _parser():
    from sardespeckle.cli.references import add_references_parser

    parser = argparse.ArgumentParser()
    add_references_parser(parser.add_subparsers(dest="command"))
    return parser


def test_cli_builds_a_reference(tmp_path, capsys):
    from sardespeckle.cli.references import run_references_command

    stack = np.sqrt(np.full((4, 32, 32), 9.0) * simulate_speckle((4, 32, 32), 1, seed=12))
    paths = _write_dates(tmp_path, stack)
    args = _parser().parse_args(
        ["references", "build", *map(str, paths), "-o", str(tmp_path / "ref.npy"),
         "--looks", "1", "--kind", "amplitude", "--output-kind", "amplitude"]
    )
    assert run_references_command(args) == 0
    assert (tmp_path / "ref_count.npy").exists() and (tmp_path / "ref.json").exists()
    assert "wrote" in capsys.readouterr().err


def test_cli_usage_errors(tmp_path):
    from sardespeckle.cli.references import run_references_command

    with pytest.raises(UsageError):
        run_references_command(_parser().parse_args(["references"]))
    with pytest.raises(SystemExit):
        _parser().parse_args(["references", "build", "a.npy", "-o", "r.npy", "--window-size", "2"])
    from PIL import Image

    pngs = [tmp_path / f"{name}.png" for name in "abc"]
    for png in pngs:
        Image.fromarray(np.full((4, 4), 9, np.uint8)).save(png)
    args = _parser().parse_args(["references", "build", *map(str, pngs),
                                 "-o", str(tmp_path / "r.npy")])
    with pytest.raises(UsageError, match="threshold"):
        run_references_command(args)


def test_cli_window_too_large_and_out_of_memory_messages(tmp_path, monkeypatch, capsys):
    from sardespeckle.cli import main as cli_main

    paths = list(map(str, _small_dates(tmp_path)))
    output = str(tmp_path / "r.tif")
    for size in ("17", "201", "999"):
        code = cli_main.main(["references", "build", *paths, "-o", output, "--looks", "1",
                              "--kind", "amplitude", "--window-size", size])
        assert code == 2
        assert "at most 16, the smaller side of the 16×16 dates" in capsys.readouterr().err

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(references, "build_reference", out_of_memory)
    code = cli_main.main(["references", "build", *paths, "-o", output, "--looks", "1",
                          "--kind", "amplitude"])
    err = capsys.readouterr().err
    assert code == 1 and "out of memory" in err and "--tile" not in err
    assert _outputs(tmp_path) == []


# --------------------------------------------------------------------------------------------
# real data (skipped without the shared folder)
# --------------------------------------------------------------------------------------------


def test_real_single_look_stack_with_measured_window_looks(shared_data):
    folder = shared_data / "sar" / "s1_stacks"
    stack = load_stack([folder / f"lely_{d}.npy" for d in range(1, 6)], kind="amplitude")
    window_looks = estimate_temporal_looks(stack.intensity, window_size=3)
    assert window_looks < 9 * 0.8  # correlated speckle: a 3×3 mean is worth far fewer looks
    result = build_reference(stack.intensity, looks=1, window_looks=window_looks)
    naive = build_reference(stack.intensity, looks=1)
    assert result.report["rejected_fraction"] < 0.02
    assert naive.report["rejected_fraction"] > 2 * result.report["rejected_fraction"]


def test_build_reference_takes_the_stack_that_load_stack_returns(tmp_path):
    paths = _small_dates(tmp_path)
    stack = load_stack(paths, kind="amplitude")
    stack.intensity[0, 3, 3] = 1e9  # masked below: the Stack's own mask must be used
    stack.valid[0, 3, 3] = False
    from_stack = build_reference(stack, looks=1)
    from_arrays = build_reference(stack.intensity, looks=1, valid=stack.valid)
    np.testing.assert_array_equal(from_stack.reflectivity, from_arrays.reflectivity)
    assert from_stack.reflectivity[3, 3] < 1e3
    with pytest.raises(UsageError, match="a Stack holds intensities"):
        build_reference(stack, looks=1, kind="amplitude")


def test_preview_refuses_the_change_codes_but_shows_the_count(tmp_path, capsys):
    from sardespeckle.cli.main import main

    paths = _small_dates(tmp_path)
    build_reference_files(paths, tmp_path / "r.npy", looks=1, kind="amplitude")
    assert main(["preview", str(tmp_path / "r_changes.npy"), "-o", str(tmp_path / "c.png")]) == 1
    assert "per-date change codes" in capsys.readouterr().err
    assert not (tmp_path / "c.png").exists()
    assert main(["preview", str(tmp_path / "r.npy"), str(tmp_path / "r_count.npy"), "--kind",
                 "intensity", "-o", str(tmp_path / "ok.png")]) == 0


# --------------------------------------------------------------------------------------------
# folders and globs, grids, kinds
# --------------------------------------------------------------------------------------------


def _write_geotiff_dates(folder, dates=3, *, transforms=None, crs="EPSG:32631",
                         description="amplitude", stem="date"):
    import rasterio
    from rasterio.transform import from_origin

    # a speckle draw of its own per stem: dates of two stacks are never copies of each other
    seed = 14 + sum(map(ord, stem))
    stack = np.sqrt(np.full((dates, 16, 16), 9.0) * simulate_speckle((dates, 16, 16), 1, seed=seed))
    paths = []
    for index, layer in enumerate(stack):
        transform = (transforms or {}).get(index, from_origin(600000, 5000000, 10, 10))
        layer_crs = crs[index] if isinstance(crs, (list, tuple)) else crs
        path = folder / f"{stem}_{index}.tif"
        with rasterio.open(path, "w", driver="GTiff", width=16, height=16, count=1,
                           dtype="float32", crs=layer_crs, transform=transform) as dataset:
            dataset.write(layer.astype(np.float32), 1)
            if description:
                dataset.set_band_description(1, description)
        paths.append(path)
    return paths


def test_cli_takes_a_folder_or_a_glob_of_dates_and_says_how_many(tmp_path, capsys):
    from sardespeckle.cli.main import main

    folder = tmp_path / "site"
    folder.mkdir()
    paths = _write_geotiff_dates(folder)
    (folder / "notes.txt").write_text("not a date")
    # An earlier build into the same folder: its reference and side files are not dates.
    build_reference_files(paths, folder / "old.tif", looks=1, kind="amplitude")
    for stack in ([str(folder)], [str(folder / "*.tif")]):
        output = tmp_path / f"ref{len(stack[0])}.tif"
        assert main(["references", "build", *stack, "-o", str(output), "--looks", "1",
                     "--kind", "amplitude"]) == 0
        err = capsys.readouterr().err
        assert f"3 dates found in {stack[0]} (left out, written by a reference build: " in err
        assert "old.tif" in err and "old_count.tif" in err and "old_changes.tif" in err
        report = json.loads(output.with_suffix(".json").read_text())
        assert report["inputs"] == [str(path) for path in paths]
    # Files named one by one are kept as given (a date twice is still refused).
    dates, left_out = references.expand_dates([paths[0], paths[1], paths[0]])
    assert dates == [str(paths[0]), str(paths[1]), str(paths[0])] and left_out == []
    # ... but the side files of a build, named one by one (an unquoted shell glob), are not dates.
    with pytest.raises(UsageError, match=r"old_count.tif: the per-pixel count of dates used that "
                                         r"a reference build wrote beside .*old.tif, not a date"):
        references.expand_dates([paths[0], folder / "old_count.tif"])
    empty = tmp_path / "empty"
    empty.mkdir()
    # No date at all is a missing input, like a missing file: exit 1, as `run` gives.
    assert main(["references", "build", str(empty), "-o", str(tmp_path / "e.tif")]) == 1
    assert f"expected dates (.tif, .tiff, .npy, .png files) in the folder {empty}, found " \
        "none" in capsys.readouterr().err
    assert main(["references", "build", str(tmp_path / "nothing*.tif"), "-o",
                 str(tmp_path / "e.tif")]) == 1
    assert "matching" in capsys.readouterr().err
    # Dates that do not exist are named before their count is judged (two missing dates are
    # not "too few dates for the change-aware method").
    assert main(["references", "build", str(tmp_path / "m1.tif"), str(tmp_path / "m2.tif"),
                 "-o", str(tmp_path / "e.tif")]) == 1
    assert f"no such file: {tmp_path / 'm1.tif'} (and 1 other date(s))" in capsys.readouterr().err


def test_an_output_named_like_a_date_of_the_folder_is_refused(tmp_path, capsys):
    from sardespeckle.cli.main import main

    folder = tmp_path / "site"
    folder.mkdir()
    paths = _write_geotiff_dates(folder)
    before = paths[1].read_bytes()
    for stack in ([str(folder)], [str(folder / "*.tif")]):
        for extra in ([], ["--overwrite"]):
            assert main(["references", "build", *stack, "-o", str(paths[1]), "--looks", "1",
                         "--kind", "amplitude", *extra]) == 2
            err = capsys.readouterr().err
            assert f"it would replace {paths[1]}, a date" in err and "left out" not in err
    assert paths[1].read_bytes() == before
    # A reference built into the folder earlier is rebuilt in place with --overwrite.
    build_reference_files(paths, folder / "ref.tif", looks=1, kind="amplitude")
    assert main(["references", "build", str(folder), "-o", str(folder / "ref.tif"), "--looks",
                 "1", "--kind", "amplitude", "--overwrite", "-q"]) == 0


def test_dates_on_different_grids_are_refused(tmp_path, capsys):
    import rasterio
    from rasterio.transform import from_origin

    from sardespeckle.cli.main import main

    shifted = _write_geotiff_dates(tmp_path, transforms={2: from_origin(700000, 5000000, 10, 10)})
    with pytest.raises(InvalidInputError, match="resample onto one grid first") as error:
        load_stack(shifted, kind="amplitude")
    assert f"{shifted[0]} (EPSG:32631" in str(error.value)
    assert f"{shifted[2]} (EPSG:32631, transform (10.0, 0.0, 700000.0" in str(error.value)
    other_crs = _write_geotiff_dates(tmp_path, stem="crs", crs=["EPSG:32631"] * 3 + ["EPSG:4326"],
                                     dates=4, transforms={3: from_origin(3.0, 45.0, 1e-4, 1e-4)})
    output = tmp_path / "ref.tif"
    assert main(["references", "build", *map(str, other_crs), "-o", str(output), "--looks", "1",
                 "--kind", "amplitude"]) == 1
    err = capsys.readouterr().err
    assert "expected co-registered dates on one grid" in err and "EPSG:4326" in err
    assert not output.exists()
    # Dates on one grid are fine, and a .npy date (no georeferencing) is not compared.
    assert load_stack(other_crs[:3], kind="amplitude").intensity.shape == (3, 16, 16)
    np.save(tmp_path / "plain.npy", np.ones((16, 16), np.float32))
    assert load_stack([shifted[0], tmp_path / "plain.npy"], kind="amplitude").kinds == \
        ["amplitude"] * 2
    # A GeoTIFF date without georeferencing, or without a CRS, among georeferenced ones, in
    # any position: the reference takes the georeferencing of a date that has it, and says so.
    import warnings

    bare = _write_geotiff_dates(tmp_path, stem="bare", dates=1, crs=None,
                                transforms={0: rasterio.Affine.identity()})[0]
    no_crs = _write_geotiff_dates(tmp_path, stem="nocrs", dates=1, crs=None)[0]
    for lacking, dates in ((f"{bare} (no georeferencing)", [bare, *other_crs[:3]]),
                           (f"{no_crs} (no CRS)", [no_crs, *other_crs[:3]]),
                           (f"{no_crs} (no CRS)", [*other_crs[:3], no_crs])):
        output = tmp_path / "georef.tif"
        with pytest.warns(UserWarning, match=re.escape(lacking) + ".* takes the georeferencing of "
                          + re.escape(str(other_crs[0]))):
            build_reference_files(dates, output, looks=1, kind="amplitude", overwrite=True)
        with rasterio.open(output) as dataset:
            assert dataset.crs == "EPSG:32631" and dataset.transform == from_origin(600000, 5000000, 10, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # dates alike: no warning
        build_reference_files(other_crs[:3], tmp_path / "georef.tif", looks=1, kind="amplitude",
                              overwrite=True)


def test_an_undetectable_kind_is_reported_with_the_file_and_the_option(tmp_path, capsys):
    from sardespeckle.cli.main import main
    from sardespeckle.errors import UnknownKindError

    paths = _write_geotiff_dates(tmp_path, description=None, stem="scene")
    with pytest.raises(UnknownKindError) as error:
        load_stack(paths)
    assert str(error.value).startswith(f"{paths[0]}: cannot tell amplitude from intensity")
    assert main(["references", "build", *map(str, paths), "-o", str(tmp_path / "ref.tif"),
                 "--looks", "1"]) == 1
    err = capsys.readouterr().err
    assert str(paths[0]) in err and "--kind amplitude or --kind intensity" in err
    assert load_stack(paths, kind="amplitude").kinds == ["amplitude"] * 3


def test_a_npy_reference_says_its_kind_to_train_and_run(tmp_path):
    from sardespeckle.io import open_source

    stack = np.full((4, 32, 32), 25.0) * simulate_speckle((4, 32, 32), 1, seed=3)
    dates = []
    for index, layer in enumerate(stack):
        dates.append(tmp_path / f"d{index}.npy")
        np.save(dates[-1], np.sqrt(layer).astype(np.float32))
    for output_kind in ("intensity", "amplitude"):
        output = tmp_path / f"ref_{output_kind}.npy"
        build_reference_files(dates, output, looks=1, kind="amplitude", output_kind=output_kind)
        sidecar = json.loads((tmp_path / f"ref_{output_kind}.npy.json").read_text())
        assert sidecar["kind"] == output_kind and sidecar["file"] == output.name
        with open_source(str(output)) as source:  # no kind given: the sidecar says it
            assert source.kind == output_kind and "sidecar" in source.kind_reason
    # Rebuilt in place with overwrite: the sidecar follows the new kind.
    build_reference_files(dates, tmp_path / "ref_intensity.npy", looks=1, kind="amplitude",
                          output_kind="amplitude", overwrite=True)
    assert json.loads((tmp_path / "ref_intensity.npy.json").read_text())["kind"] == "amplitude"
    # A sidecar of another file (renamed array) says nothing.
    os.replace(tmp_path / "ref_amplitude.npy.json", tmp_path / "other.npy.json")
    np.save(tmp_path / "other.npy", np.ones((8, 8), np.float32))
    with pytest.raises(InvalidInputError, match="cannot tell amplitude from intensity"):
        open_source(str(tmp_path / "other.npy"))


def test_amplitude_and_intensity_confused_are_warned_about(tmp_path):
    import warnings

    intensity = np.full((5, 64, 64), 30.0) * simulate_speckle((5, 64, 64), 1, seed=8)
    dates = []
    for index, layer in enumerate(intensity):
        dates.append(tmp_path / f"i{index}.npy")
        np.save(dates[-1], layer.astype(np.float32))
    # intensity read as amplitude: below one look, with or without --looks
    with pytest.warns(UserWarning, match=r"fluctuate like 0\.\d+ looks, below one look.*--kind"):
        build_reference_files(dates, tmp_path / "a.npy", looks=None, kind="amplitude")
    with pytest.warns(UserWarning, match=r"not the 1 given \(--looks\); check --kind"):
        build_reference_files(dates, tmp_path / "b.npy", looks=1, kind="amplitude")
    # the right kind: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        report = build_reference_files(dates, tmp_path / "c.npy", looks=1, kind="intensity")
    assert report["dates"] == 5 and report["estimated_looks"] == pytest.approx(1.0, abs=0.2)
    # amplitude read as intensity with --looks 1: about 3.5 looks
    amplitude = []
    for index, layer in enumerate(np.sqrt(intensity)):
        amplitude.append(tmp_path / f"a{index}.npy")
        np.save(amplitude[-1], layer.astype(np.float32))
    with pytest.warns(UserWarning, match=r"fluctuate like 3\.\d+ looks, not the 1 given"):
        build_reference_files(amplitude, tmp_path / "d.npy", looks=1, kind="intensity")


def test_empty_and_multiband_dates_and_a_kind_for_png_are_noted(tmp_path):
    import rasterio

    paths = _write_geotiff_dates(tmp_path, dates=3)
    with rasterio.open(paths[0], "r+") as dataset:
        dataset.write(np.full((16, 16), np.nan, np.float32), 1)
    with pytest.warns(UserWarning, match=f"{paths[0]} has no valid pixel"):
        load_stack(paths, kind="amplitude")
    two = tmp_path / "two.tif"
    with rasterio.open(paths[1]) as source:
        profile = source.profile | {"count": 2}
        band = source.read(1)
    with rasterio.open(two, "w", **profile) as dataset:
        dataset.write(np.stack([band, band]))
    with pytest.warns(UserWarning, match=f"{two} has 2 bands: band 1 is its date"):
        load_stack([two, paths[1], paths[2]], kind="amplitude")
    from PIL import Image

    pngs = []
    for index in range(3):
        pngs.append(tmp_path / f"p{index}.png")
        Image.fromarray(np.full((8, 8), 100 + index, np.uint8)).save(pngs[-1])
    with pytest.warns(UserWarning, match="does not apply to PNG dates"):
        load_stack(pngs, kind="intensity", png_threshold=200.0)


def test_hints_name_only_options_the_command_has(tmp_path):
    from sardespeckle.training.data import ReferenceSpec, load_reference

    parts = tmp_path / "parts.npy"
    np.save(parts, np.ones((16, 16, 2), np.float32))
    for call in (lambda: load_stack([parts, parts], kind="amplitude"),
                 lambda: load_reference(ReferenceSpec(path=str(parts)))):
        with pytest.raises(InvalidInputError) as info:
            call()
        assert "--complex-layout" not in str(info.value) and "(rows, cols)" in str(info.value)
    floats = tmp_path / "float.npy"
    np.save(floats, np.ones((16, 16), np.float32))
    with pytest.raises(InvalidInputError, match="combine them first") as info:
        load_stack([floats, floats], kind="complex")
    assert "--complex-layout" not in str(info.value)


def test_stacks_that_cannot_make_a_reference_are_refused_before_any_output(tmp_path):
    truth = np.full((40, 40), 5.0)
    dates = []
    for index in range(3):
        path = tmp_path / f"d{index}_intensity.npy"
        np.save(path, truth * simulate_speckle(truth.shape, 1, seed=index))
        dates.append(path)
    copy = tmp_path / "copy_intensity.npy"
    copy.write_bytes(dates[0].read_bytes())
    with pytest.raises(UsageError, match="identical pixels in .*d0_intensity.npy .*copy_"):
        build_reference_files([*dates, copy], tmp_path / "r.npy", looks=1)
    empty = tmp_path / "empty_intensity.npy"
    np.save(empty, np.full(truth.shape, np.nan))
    with pytest.warns(UserWarning, match="no valid pixel"), pytest.raises(
            UsageError, match="at least 3 dates with valid pixels .* got 2 of 3"):
        build_reference_files([dates[0], dates[1], empty], tmp_path / "r.npy", looks=1)
    assert not list(tmp_path.glob("r*"))


def test_a_rebuild_removes_what_a_killed_build_left(tmp_path, capsys):
    from sardespeckle.cli.main import main

    truth = np.full((40, 40), 5.0)
    dates = []
    for index in range(3):
        path = tmp_path / f"d{index}_intensity.npy"
        np.save(path, truth * simulate_speckle(truth.shape, 1, seed=index))
        dates.append(str(path))
    out = tmp_path / "out"
    out.mkdir()
    left = [out / ".r.npy.0123456789ab.partial.npy",
            out / "..r_changes.npy.0123456789ab.partial.npy.ba9876543210.partial.npy",
            out / ".r.npy.json.0123456789ab.partial.json"]
    keep = [out / ".other.npy.0123456789ab.partial.npy", out / "notes.txt"]
    for path in left + keep:
        path.write_bytes(b"x")
    assert main(["references", "build", *dates, "-o", str(out / "r.npy"), "--looks", "1",
                 "-q"]) == 0
    assert not any(path.exists() for path in left) and all(path.exists() for path in keep)
    # --method mean runs no test: the test's options are refused, not ignored
    assert main(["references", "build", *dates, "-o", str(out / "m.npy"), "--method", "mean",
                 "--false-alarm", "0.01", "--window-size", "5"]) == 2
    assert "--false-alarm, --window-size set the change test" in capsys.readouterr().err


def test_a_build_killed_while_replacing_its_outputs_is_said_and_cleared(tmp_path, capsys):
    from sardespeckle.cli.main import main

    folder = tmp_path / "site"
    folder.mkdir()
    paths = _write_geotiff_dates(folder)
    output = tmp_path / "ref.tif"
    argv = ["references", "build", *map(str, paths), "-o", str(output), "--looks", "1",
            "--kind", "amplitude"]
    assert main(argv) == 0
    # what `kill -9` during the renames leaves: an old output moved aside, never put back
    leftover = tmp_path / ".ref_count.tif.0123456789ab.previous.tif"
    leftover.write_bytes(b"the old count")
    capsys.readouterr()
    assert main(argv) == 1  # refused (outputs exist), but the user learns why the set may mix
    assert "an earlier build was killed while replacing" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    assert not leftover.exists()


def test_load_stack_refuses_db_dates_read_as_amplitude_and_notes_a_few_negatives(tmp_path):
    rng = np.random.default_rng(2)
    amplitude = [np.sqrt(100 * rng.exponential(1.0, (48, 48))) for _ in range(3)]
    db_paths, few_paths = [], []
    for index, date in enumerate(amplitude):
        db_paths.append(tmp_path / f"db{index}.npy")
        np.save(db_paths[-1], (20 * np.log10(date / 1000)).astype(np.float32))  # all negative
        few = date.astype(np.float32)
        few[0, :5] = -0.5  # thermal-noise negatives
        few_paths.append(tmp_path / f"few{index}.npy")
        np.save(few_paths[-1], few)
    with pytest.raises(InvalidInputError, match=r"db0\.npy: expected non-negative amplitude .*dB"):
        load_stack(db_paths, kind="amplitude")
    with pytest.warns(UserWarning, match=r"few1\.npy: .* of the pixels are negative"):
        stack = load_stack(few_paths, kind="amplitude")
    assert not stack.valid[:, 0, :5].any() and stack.valid[:, 1:].all()
