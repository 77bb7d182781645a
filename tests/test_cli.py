"""The command line: sub-commands, exit codes, error messages, atomic outputs, bad inputs."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from sardespeckle.cli.main import main
from sardespeckle.data import sample_path


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_tif(path, array, *, nodata=None, description="Amplitude_VV", crs="EPSG:32631"):
    profile = dict(driver="GTiff", width=array.shape[1], height=array.shape[0], count=1,
                   dtype=array.dtype, crs=crs, transform=from_origin(600000, 5800000, 10, 10),
                   nodata=nodata)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array, 1)
        if description:
            dst.set_band_description(1, description)
    return path


@pytest.fixture
def amplitude_tif(tmp_path, speckled_scene):
    return write_tif(tmp_path / "scene_amp.tif", np.sqrt(speckled_scene).astype(np.float32))


def test_help_answers_without_importing_torch():
    code = ("import sys; from sardespeckle.cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "assert 'torch' not in sys.modules and 'rasterio' not in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "run" in result.stdout and "preview" in result.stdout


def test_run_help_names_the_default_method(capsys):
    from sardespeckle.api import DEFAULT_METHOD

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert f"default: {DEFAULT_METHOD}," in " ".join(capsys.readouterr().out.split())


def test_console_script_runs(tmp_path):
    from pathlib import Path

    beside = Path(sys.executable).parent / "sardespeckle"
    exe = str(beside) if beside.exists() else __import__("shutil").which("sardespeckle")
    if exe is None:
        pytest.skip("console script not on PATH (package not installed)")
    result = subprocess.run([exe, "methods"], capture_output=True, text=True)
    assert result.returncode == 0 and "refined-lee" in result.stdout


def test_run_keeps_georeferencing_and_writes_provenance(tmp_path, amplitude_tif, capsys):
    out = tmp_path / "out.tif"
    before = sha(amplitude_tif)
    code = main(["run", str(amplitude_tif), "-o", str(out), "--method", "lee", "--looks", "1",
                 "--tile", "32"])
    assert code == 0
    assert sha(amplitude_tif) == before
    with rasterio.open(amplitude_tif) as src, rasterio.open(out) as dst:
        assert dst.crs == src.crs and dst.transform == src.transform
        assert dst.shape == src.shape and dst.dtypes[0] == "float32"
        tags = dst.tags()
        assert tags["SARDESPECKLE_METHOD"] == "lee"
        assert json.loads(tags["SARDESPECKLE_PARAMETERS"])["window_size"] >= 3
        assert tags["SARDESPECKLE_LOOKS"] == "1"
        assert "SARDESPECKLE_VERSION" in tags
        result = dst.read(1)
    assert np.isfinite(result).all() and (result > 0).all()
    err = capsys.readouterr().err
    assert "input kind: amplitude" in err and "looks: 1 (given)" in err


def test_run_estimates_looks_when_not_given(tmp_path, amplitude_tif, capsys):
    assert main(["run", str(amplitude_tif), "-o", str(tmp_path / "o.tif"), "-m", "boxcar"]) == 0
    assert "estimated" in capsys.readouterr().err


def test_npy_amplitude_in_npy_amplitude_out(tmp_path, speckled_scene):
    src = tmp_path / "a.npy"
    amplitude = np.sqrt(speckled_scene).astype(np.float64)
    np.save(src, amplitude)
    out = tmp_path / "b.npy"
    assert main(["run", str(src), "-o", str(out), "-m", "boxcar", "--kind", "amplitude",
                 "--looks", "1", "--window-size", "5"]) == 0
    result = np.load(out)
    assert result.shape == amplitude.shape and result.dtype == np.float32
    # Boxcar in intensity: the amplitude out is sqrt(mean(A²)), close to the input's RMS level.
    assert abs(np.mean(result**2) / np.mean(amplitude**2) - 1) < 0.05


def test_existing_output_is_refused_then_overwritten(tmp_path, amplitude_tif, capsys):
    out = tmp_path / "out.tif"
    out.write_bytes(b"precious")
    assert main(["run", str(amplitude_tif), "-o", str(out), "-m", "boxcar", "--looks", "1"]) == 1
    assert out.read_bytes() == b"precious"
    assert "--overwrite" in capsys.readouterr().err
    assert main(["run", str(amplitude_tif), "-o", str(out), "-m", "boxcar", "--looks", "1",
                 "--overwrite"]) == 0
    with rasterio.open(out) as dst:
        assert dst.shape == (96, 80)


def test_output_equal_to_input_is_refused(amplitude_tif, capsys):
    before = sha(amplitude_tif)
    code = main(["run", str(amplitude_tif), "-o", str(amplitude_tif), "--overwrite", "--looks", "1"])
    assert code == 2 and sha(amplitude_tif) == before


@pytest.mark.parametrize("argv_tail,expected_code,message", [
    (["--method", "nope"], 2, "unknown method"),
    (["--window-size", "4", "-m", "lee"], 2, "window"),
    (["-p", "bogus=1", "-m", "lee"], 2, "no parameter"),
])
def test_usage_errors(tmp_path, amplitude_tif, capsys, argv_tail, expected_code, message):
    code = main(["run", str(amplitude_tif), "-o", str(tmp_path / "o.tif"), "--looks", "1",
                 *argv_tail])
    assert code == expected_code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o.tif").exists()


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "x.tif"])  # missing -o
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "x.tif", "-o", "y.tif", "--looks", "-1"])
    assert exit_info.value.code == 2


def test_missing_input_and_missing_output_folder(tmp_path, amplitude_tif, capsys):
    assert main(["run", str(tmp_path / "nope.tif"), "-o", str(tmp_path / "o.tif"), "--looks", "1"]) == 1
    assert "nope.tif" in capsys.readouterr().err
    code = main(["run", str(amplitude_tif), "-o", str(tmp_path / "missing" / "o.tif"), "--looks", "1"])
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_bad_inputs(tmp_path, capsys):
    cube = tmp_path / "cube.npy"
    np.save(cube, np.ones((4, 8, 8), np.float32))
    assert main(["run", str(cube), "-o", str(tmp_path / "o.npy"), "--kind", "amplitude",
                 "--looks", "1"]) == 1
    assert "2-D" in capsys.readouterr().err
    strings = tmp_path / "s.npy"
    np.save(strings, np.array([["a", "b"]]))
    assert main(["run", str(strings), "-o", str(tmp_path / "o.npy"), "--looks", "1"]) == 1
    ambiguous = tmp_path / "scene.npy"
    np.save(ambiguous, np.ones((16, 16), np.float32))
    assert main(["run", str(ambiguous), "-o", str(tmp_path / "o.npy"), "--looks", "1"]) == 1
    assert "--kind" in capsys.readouterr().err
    negative = tmp_path / "neg.npy"
    np.save(negative, -np.ones((16, 16), np.float32))
    assert main(["run", str(negative), "-o", str(tmp_path / "o.npy"), "--kind", "amplitude",
                 "--looks", "1"]) == 1
    assert "db" in capsys.readouterr().err.lower()
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00garbage" * 10)
    assert main(["run", str(corrupt), "-o", str(tmp_path / "o.tif"), "--looks", "1"]) == 1
    assert not list(tmp_path.glob(".*partial*"))


def test_tiny_images(tmp_path):
    for shape in [(1, 1), (2, 3), (5, 1)]:
        src = tmp_path / f"tiny_{shape[0]}x{shape[1]}.npy"
        np.save(src, np.full(shape, 4.0, np.float32))
        out = tmp_path / f"out_{shape[0]}x{shape[1]}.npy"
        assert main(["run", str(src), "-o", str(out), "--kind", "intensity", "--looks", "1",
                     "-m", "lee"]) == 0
        np.testing.assert_allclose(np.load(out), 4.0, rtol=1e-5)


def test_nodata_passthrough(tmp_path, speckled_scene):
    image = np.sqrt(speckled_scene).astype(np.float32)
    image[:10, :10] = -9999.0
    image[50:52, :] = np.nan
    src = write_tif(tmp_path / "nd.tif", image, nodata=-9999.0)
    out = tmp_path / "nd_out.tif"
    assert main(["run", str(src), "-o", str(out), "-m", "refined-lee", "--looks", "1",
                 "--tile", "32"]) == 0
    with rasterio.open(out) as dst:
        result = dst.read(1)
        assert dst.nodata == -9999.0
    assert (result[:10, :10] == -9999.0).all()
    assert (result[50:52, :] == -9999.0).all()
    rest = np.ones(image.shape, bool)
    rest[:10, :10] = False
    rest[50:52, :] = False
    assert np.isfinite(result[rest]).all() and (result[rest] > 0).all()


def test_all_nodata_image(tmp_path, capsys):
    # A scene with no data (a tile outside the swath) is not an error in a batch, but says so.
    src = tmp_path / "empty.npy"
    np.save(src, np.full((40, 40), np.nan, np.float32))
    out = tmp_path / "empty_out.npy"
    assert main(["run", str(src), "-o", str(out), "--kind", "intensity", "--looks", "1"]) == 0
    assert np.isnan(np.load(out)).all()
    assert "note: the input has no valid pixel" in capsys.readouterr().err
    # Amplitudes that overflow float32 once squared are nodata when they are a few outliers
    # (said so), and a wrong kind or scale when they are common: refused.
    huge = np.random.default_rng(1).exponential(1.0, (40, 40))
    huge[0, :3] = 1e200
    np.save(src, huge)
    assert main(["run", str(src), "-o", str(out), "--kind", "amplitude", "--looks", "1",
                 "-m", "kuan", "--overwrite"]) == 0
    assert np.isnan(np.load(out)[0, :3]).all() and np.isfinite(np.load(out)[1:]).all()
    assert "of the pixels are beyond float32" in capsys.readouterr().err
    np.save(src, np.full((40, 40), 1e200))
    assert main(["run", str(src), "-o", str(out), "--kind", "amplitude", "--looks", "1",
                 "-m", "kuan", "--overwrite"]) == 1
    assert "100% of the pixels beyond it" in capsys.readouterr().err
    # One valid pixel is enough to stay silent.
    partly = np.full((40, 40), np.nan, np.float32)
    partly[20, 20] = 1.0
    np.save(src, partly)
    assert main(["run", str(src), "-o", str(out), "--kind", "intensity", "--looks", "1",
                 "-m", "kuan", "--overwrite"]) == 0
    assert "no valid pixel" not in capsys.readouterr().err
    # Without --looks: nothing to estimate them from, and nothing to despeckle either.
    np.save(src, np.full((40, 40), np.nan, np.float32))
    assert main(["run", str(src), "-o", str(out), "--kind", "intensity", "-m", "kuan",
                 "--overwrite"]) == 0
    err = capsys.readouterr().err
    assert "assumed: no valid pixel" in err and "note: the input has no valid pixel" in err
    assert np.isnan(np.load(out)).all()
    # Valid pixels outside the central window: the looks are still measured there, and
    # the error says so (an input is not taken as empty unless it is).
    edge = np.full((1100, 1100), np.nan, np.float32)  # the central window is 1024²
    edge[:20] = np.random.default_rng(0).exponential(1.0, (20, 1100))
    np.save(src, edge)
    assert main(["run", str(src), "-o", str(out), "--kind", "intensity", "-m", "kuan",
                 "--overwrite"]) == 1
    assert "fewer than 64 valid pixels in the central" in capsys.readouterr().err


def test_complex_input_gives_intensity(tmp_path, rng):
    slc = (rng.normal(size=(64, 64)) + 1j * rng.normal(size=(64, 64))).astype(np.complex64)
    src = tmp_path / "slc.npy"
    np.save(src, slc)
    out = tmp_path / "slc_out.npy"
    assert main(["run", str(src), "-o", str(out), "-m", "boxcar"]) == 0
    result = np.load(out)
    # |z|² has mean 2 for unit-variance real and imaginary parts.
    assert abs(result.mean() / 2 - 1) < 0.1


def test_info(amplitude_tif, capsys):
    assert main(["info", str(amplitude_tif), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "amplitude" and "32631" in json.dumps(info)
    assert 0.5 < float(info["estimated_looks"]) < 2


def test_simulate_is_seeded(tmp_path, amplitude_tif):
    a, b, c = (tmp_path / f"{n}.tif" for n in "abc")
    assert main(["simulate", str(amplitude_tif), "-o", str(a), "--looks", "2", "--seed", "3"]) == 0
    assert main(["simulate", str(amplitude_tif), "-o", str(b), "--looks", "2", "--seed", "3"]) == 0
    assert main(["simulate", str(amplitude_tif), "-o", str(c), "--looks", "2", "--seed", "4"]) == 0
    with rasterio.open(a) as ra, rasterio.open(b) as rb, rasterio.open(c) as rc:
        assert (ra.read(1) == rb.read(1)).all() and not (ra.read(1) == rc.read(1)).all()
        assert ra.crs.to_epsg() == 32631


def test_simulated_tif_says_its_kind(tmp_path, speckled_scene, capsys):
    # The README's chain: simulate from a file whose kind had to be given, then use the result
    # without --kind.
    clean = tmp_path / "clean.npy"
    np.save(clean, np.sqrt(speckled_scene).astype(np.float32))
    noisy = tmp_path / "noisy.tif"
    assert main(["simulate", str(clean), "--kind", "amplitude", "-o", str(noisy), "--looks", "1",
                 "--seed", "1"]) == 0
    capsys.readouterr()
    assert main(["info", str(noisy), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "amplitude"
    assert main(["run", str(noisy), "-o", str(tmp_path / "out.tif"), "-m", "kuan", "--looks", "1"]) == 0


def test_simulate_keeps_nodata_and_checks_its_options(tmp_path, speckled_scene, capsys):
    amplitude = np.sqrt(speckled_scene).astype(np.float32)
    amplitude[:8, :8] = -9999.0
    src = write_tif(tmp_path / "nd.tif", amplitude, nodata=-9999.0)
    out = tmp_path / "sim.tif"
    assert main(["simulate", str(src), "-o", str(out), "--looks", "1", "--seed", "0"]) == 0
    with rasterio.open(out) as dst:
        values = dst.read(1)
        assert dst.nodata == -9999.0
    assert (values[:8, :8] == -9999.0).all() and (values[8:, 8:] > 0).all()
    npy = tmp_path / "sim.npy"
    assert main(["simulate", str(src), "-o", str(npy), "--looks", "1", "--seed", "0"]) == 0
    assert np.isnan(np.load(npy)[:8, :8]).all()
    for bad in (["--seed", "-1"], ["--looks", "auto"], ["--looks", "0"]):
        options = {"--seed": "0", "--looks": "1"}
        options[bad[0]] = bad[1]
        argv = ["simulate", str(src), "-o", str(tmp_path / "x.tif")]
        with pytest.raises(SystemExit) as exit_info:
            main(argv + [item for pair in options.items() for item in pair])
        assert exit_info.value.code == 2 and not (tmp_path / "x.tif").exists()
    capsys.readouterr()


def test_preview(tmp_path, amplitude_tif):
    png = tmp_path / "p.png"
    assert main(["preview", str(amplitude_tif), str(amplitude_tif), "-o", str(png)]) == 0
    from PIL import Image

    with Image.open(png) as image:
        assert image.width > 2 * 80 and image.height >= 96


def test_preview_notes_empty_panels_and_sizes_and_keeps_titles_apart(tmp_path, capsys):
    from PIL import Image

    from sardespeckle.io.preview import _fit_title

    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.exponential(size=(64, 64)).astype(np.float32))
    np.save(tmp_path / "nan.npy", np.full((64, 64), np.nan, np.float32))
    np.save(tmp_path / "b.npy", rng.exponential(size=(32, 48)).astype(np.float32))
    png = tmp_path / "p.png"
    assert main(["preview", str(tmp_path / "a.npy"), str(tmp_path / "nan.npy"),
                 str(tmp_path / "b.npy"), "--kind", "intensity", "-o", str(png),
                 "--titles", "a title far wider than its panel,nan,b"]) == 0
    err = capsys.readouterr().err
    assert "nan.npy has no valid pixel" in err and "a.npy has no" not in err
    assert "differ in size (64×64, 64×64, 32×48)" in err
    from sardespeckle.io.preview import _TITLE_PADDING, GAP, MIN_PANEL_SIDE

    with Image.open(png) as image:
        band = np.asarray(image.convert("L"))[:12]
    second_title = 64 * (MIN_PANEL_SIDE // 64) + GAP + _TITLE_PADDING  # 64² panels, enlarged
    assert (band[:, second_title - _TITLE_PADDING:second_title] == 255).all()  # titles apart
    from PIL import ImageFont

    font = ImageFont.load_default()
    fitted = _fit_title("a title far wider than its panel", 60, font)
    assert fitted.endswith("...") and font.getlength(fitted) <= 60
    assert _fit_title("b", 60, font) == "b"


def test_demo_sample_runs(tmp_path):
    out = tmp_path / "demo.tif"
    png = tmp_path / "demo.png"
    assert main(["run", str(sample_path()), "-o", str(out), "--looks", "1", "--preview", str(png),
                 "-q"]) == 0
    assert out.exists() and png.exists()


def test_methods_lists_every_filter(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in ["boxcar", "lee", "enhanced-lee", "refined-lee", "frost", "kuan", "gamma-map",
                 "lee-sigma", "median"]:
        assert name in out


def test_run_checks_its_preview_before_working(tmp_path, amplitude_tif, capsys):
    out, png = tmp_path / "out.tif", tmp_path / "exists.png"
    png.write_bytes(b"keep me")
    # An existing preview is refused without --overwrite, before the output is written.
    assert main(["run", str(amplitude_tif), "-o", str(out), "-m", "kuan", "--looks", "1",
                 "--preview", str(png)]) == 1
    assert "exists" in capsys.readouterr().err
    assert png.read_bytes() == b"keep me" and not out.exists()
    for bad in (tmp_path / "p.txt", tmp_path / "missing" / "p.png"):
        assert main(["run", str(amplitude_tif), "-o", str(out), "-m", "kuan", "--looks", "1",
                     "--preview", str(bad)]) == 2
        assert not out.exists()
    assert main(["run", str(amplitude_tif), "-o", str(out), "-m", "kuan", "--looks", "1",
                 "--preview", str(png), "--overwrite"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.exists()


def _default_stop_signals():
    """preexec_fn: the child handles SIGHUP, SIGINT and SIGTERM as a terminal's process would,
    even when the suite itself runs under nohup (SIGHUP ignored) or as a script's `cmd &`
    (SIGINT ignored): ignored dispositions are inherited, and the CLI keeps them on purpose."""
    import signal

    for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


@pytest.mark.parametrize(("signum", "status", "said"), [("SIGTERM", 143, "terminated"),
                                                       ("SIGHUP", 129, "hung up")])
def test_sigterm_leaves_no_partial_output(tmp_path, signum, status, said):
    import signal
    import time

    src = tmp_path / "in.npy"
    np.save(src, (np.random.default_rng(0).gamma(1.0, 1.0, (256, 256)) * 50).astype(np.float32))
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "o.tif"
    code = "import sys; from sardespeckle.cli.main import main; sys.exit(main(sys.argv[1:]))"
    # SAR-CNN with the 8-fold ensemble on 32-px tiles: seconds of work, time to be stopped.
    process = subprocess.Popen(
        [sys.executable, "-c", code, "run", str(src), "-o", str(out), "--kind", "intensity",
         "--looks", "1", "-m", "sarcnn", "-p", "ensemble=8", "--tile", "32", "-q"],
        stderr=subprocess.PIPE, text=True, preexec_fn=_default_stop_signals)
    deadline = time.monotonic() + 120
    while not any(folder.iterdir()) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be stopped"
    process.send_signal(getattr(signal, signum))
    _, err = process.communicate(timeout=60)
    assert process.returncode == status, err
    assert f"{said}; no output was written" in err
    assert list(folder.iterdir()) == []


def test_a_hang_up_ignored_by_nohup_stays_ignored(tmp_path):
    import signal
    import time

    src = tmp_path / "in.npy"
    np.save(src, (np.random.default_rng(0).gamma(1.0, 1.0, (128, 128)) * 50).astype(np.float32))
    folder = tmp_path / "out"
    folder.mkdir()
    code = "import sys; from sardespeckle.cli.main import main; sys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "run", str(src), "-o", str(folder / "o.tif"), "--kind",
         "intensity", "--looks", "1", "-m", "sarcnn", "-p", "ensemble=8", "--tile", "32", "-q"],
        stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))  # what nohup does
    deadline = time.monotonic() + 120
    while not any(folder.iterdir()) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before the hang-up"
    process.send_signal(signal.SIGHUP)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert [path.name for path in folder.iterdir()] == ["o.tif"]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_an_unwritable_output_folder_is_a_plain_error(tmp_path, amplitude_tif, capsys):
    # Nothing can be created in /proc, whoever runs the tests (root included).
    assert main(["run", str(amplitude_tif), "-o", "/proc/out.tif", "-m", "kuan", "--looks", "1"]) == 1
    err = capsys.readouterr().err
    assert "cannot write /proc/out.tif" in err and "internal error" not in err
    assert main(["preview", str(amplitude_tif), "-o", "/proc/p.png"]) == 1
    err = capsys.readouterr().err
    assert "cannot write /proc/p.png" in err and "internal error" not in err


def test_info_json_is_strict_json_with_a_nan_nodata(tmp_path, speckled_scene, capsys):
    amplitude = np.sqrt(speckled_scene).astype(np.float32)
    amplitude[:4, :4] = np.nan
    src = write_tif(tmp_path / "nan_nodata.tif", amplitude, nodata=float("nan"))
    assert main(["info", str(src), "--json"]) == 0
    text = capsys.readouterr().out

    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    info = json.loads(text, parse_constant=refuse)
    # "NaN", as a .npy sidecar writes it: null would read as "no nodata"
    assert info["nodata"] == "NaN" and info["kind"] == "amplitude"


def test_parameter_type_messages_read_as_english(tmp_path, amplitude_tif, capsys):
    out = tmp_path / "o.tif"
    assert main(["run", str(amplitude_tif), "-o", str(out), "-m", "kuan", "--looks", "1",
                 "-p", "window_size=seven"]) == 2
    assert "parameter 'window_size' expects an integer, got 'seven'" in capsys.readouterr().err


def test_a_multiband_input_says_which_band_is_despeckled(tmp_path, speckled_scene, capsys):
    amplitude = np.sqrt(speckled_scene).astype(np.float32)
    src = tmp_path / "three.tif"
    with rasterio.open(src, "w", driver="GTiff", width=amplitude.shape[1], height=amplitude.shape[0],
                       count=3, dtype="float32", crs="EPSG:32631",
                       transform=from_origin(600000, 5800000, 10, 10)) as dst:
        for band in (1, 2, 3):
            dst.write(amplitude * band, band)
            dst.set_band_description(band, f"Amplitude_{('HH', 'VV', 'VH')[band - 1]}")
    out = tmp_path / "o.tif"
    assert main(["run", str(src), "-o", str(out), "-m", "kuan", "--looks", "1", "--kind", "amplitude"]) == 0
    assert ("note: the input has 3 bands; band 1 (Amplitude_HH) is despeckled (one output band; "
            "band=N (CLI --band N) picks another)") in capsys.readouterr().err
    # --band picks another: band 2 holds twice band 1, so its despeckled image is twice as bright.
    out2 = tmp_path / "o2.tif"
    assert main(["run", str(src), "-o", str(out2), "-m", "kuan", "--looks", "1", "--kind",
                 "amplitude", "--band", "2", "--preview", str(tmp_path / "o2.png")]) == 0
    assert "band 2 (Amplitude_VV) is despeckled" in capsys.readouterr().err
    with rasterio.open(out) as first, rasterio.open(out2) as second:
        assert second.count == 1 and second.tags()["SARDESPECKLE_INPUT_BAND"] == "2 (Amplitude_VV)"
        assert first.tags()["SARDESPECKLE_INPUT_BAND"] == "1 (Amplitude_HH)"
        np.testing.assert_allclose(second.read(1), 2 * first.read(1), rtol=1e-5)
    assert (tmp_path / "o2.png").exists()
    # A band the file does not have, or a band of a .npy, is a usage error; nothing is written.
    assert main(["run", str(src), "-o", str(tmp_path / "o4.tif"), "-m", "kuan", "--looks", "1",
                 "--band", "4"]) == 2
    assert "expected a band in 1..3 (3 band(s)" in capsys.readouterr().err
    assert main(["info", str(src), "--band", "3", "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["band"] == 3 and "band 3 description 'Amplitude_VH'" in described["kind_reason"]
    assert main(["info", str(src), "--band", "4"]) == 2
    capsys.readouterr()
    np.save(tmp_path / "a.npy", amplitude)
    assert main(["run", str(tmp_path / "a.npy"), "-o", str(tmp_path / "a_out.npy"), "-m", "kuan",
                 "--looks", "1", "--kind", "amplitude", "--band", "2"]) == 2
    assert "expected band 1 for a .npy file" in capsys.readouterr().err
    assert not (tmp_path / "o4.tif").exists() and not (tmp_path / "a_out.npy").exists()
    single = write_tif(tmp_path / "one.tif", amplitude)
    assert main(["run", str(single), "-o", str(tmp_path / "o1.tif"), "-m", "kuan", "--looks", "1"]) == 0
    assert "bands" not in capsys.readouterr().err


def write_vv_vh(path, vv, vh):
    """A georeferenced two-band amplitude GeoTIFF (nodata 0) with VV and VH descriptions."""
    with rasterio.open(path, "w", driver="GTiff", width=vv.shape[1], height=vv.shape[0],
                       count=2, dtype="float32", crs="EPSG:32631",
                       transform=from_origin(600000, 5800000, 10, 10), nodata=0.0) as dst:
        dst.write(vv, 1)
        dst.write(vh, 2)
        dst.set_band_description(1, "Amplitude_VV")
        dst.set_band_description(2, "Amplitude_VH")
    return path


def test_band_all_despeckles_every_band_into_one_multiband_geotiff(tmp_path, speckled_scene,
                                                                     capsys):
    amplitude = np.sqrt(speckled_scene).astype(np.float32)
    src = write_vv_vh(tmp_path / "vv_vh.tif", amplitude, amplitude / 4)
    out = tmp_path / "all.tif"
    assert main(["run", str(src), "-o", str(out), "-m", "lee", "--band", "all",
                 "--preview", str(tmp_path / "all.png")]) == 0
    err = capsys.readouterr().err
    assert "every band despeckled on its own: 2 output bands (looks " in err
    assert "is despeckled (one output band" not in err and (tmp_path / "all.png").exists()
    singles = []
    for band in (1, 2):
        single = tmp_path / f"b{band}.tif"
        assert main(["run", str(src), "-o", str(single), "-m", "lee", "--band", str(band),
                     "-q"]) == 0
        singles.append(single)
    with rasterio.open(out) as stacked:
        assert stacked.count == 2 and stacked.crs == "EPSG:32631" and stacked.nodata == 0.0
        assert stacked.descriptions == ("amplitude VV (despeckled)", "amplitude VH (despeckled)")
        assert stacked.tags()["SARDESPECKLE_METHOD"] == "lee"
        assert stacked.tags(2)["SARDESPECKLE_INPUT_BAND"] == "2 (Amplitude_VH)"
        for band, single in enumerate(singles, start=1):
            with rasterio.open(single) as one:
                np.testing.assert_array_equal(stacked.read(band), one.read(1))
                # Each band's own looks estimate is kept with it.
                looks = one.tags()["SARDESPECKLE_LOOKS"]
                assert (stacked.tags(band).get("SARDESPECKLE_LOOKS")
                        or stacked.tags()["SARDESPECKLE_LOOKS"]) == looks
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    # An existing output is kept; .npy on either side and the bands layout are usage errors.
    assert main(["run", str(src), "-o", str(out), "-m", "lee", "--band", "all", "-q"]) != 0
    np.save(tmp_path / "a.npy", amplitude)
    for argv in (["run", str(src), "-o", str(tmp_path / "all.npy")],
                 ["run", str(tmp_path / "a.npy"), "-o", str(tmp_path / "x.tif"), "--kind",
                  "amplitude"],
                 ["run", str(src), "-o", str(tmp_path / "y.tif"), "--complex-layout", "bands"]):
        assert main([*argv, "-m", "lee", "--band", "all", "-q"]) == 2
        assert "band='all'" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in ("all.npy", "x.tif", "y.tif"))
    with pytest.raises(SystemExit):
        main(["run", str(src), "-o", str(tmp_path / "z.tif"), "--band", "every"])


def test_debug_may_follow_the_command(tmp_path):
    missing = str(tmp_path / "missing.npy")
    argv = ["run", missing, "-o", str(tmp_path / "o.npy"), "--looks", "1"]
    assert main(argv) == 1  # a message, no traceback
    from sardespeckle.errors import InputFileError, UsageError

    for debug_argv in (["--debug"] + argv, argv + ["--debug"]):
        with pytest.raises(InputFileError):
            main(debug_argv)
    with pytest.raises(InputFileError, match="no such file"):
        main(["references", "build", missing, "-o", str(tmp_path / "r.tif"), "--debug"])
    date = tmp_path / "date.npy"
    np.save(date, np.ones((8, 8), np.float32))
    with pytest.raises(UsageError, match="same file twice"):
        main(["references", "build", str(date), str(date), "-o", str(tmp_path / "r.tif"),
              "--debug"])


def test_unknown_arguments_are_reported_by_the_command(capsys):
    for argv, prog in ((["methods", "extra"], "sardespeckle methods"),
                       (["references", "build", "a.tif", "b.tif", "-o", "r.tif", "--bogus"],
                        "sardespeckle references build")):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2
        assert f"usage: {prog} " in err and f"hint: {prog} --help" in err


def test_an_interrupt_while_the_output_is_being_created_leaves_no_file(tmp_path, amplitude_tif,
                                                                       monkeypatch, capsys):
    # The worst moment: the hidden file exists but its writer does not own it yet (a SIGTERM
    # there once left it behind). The command line deletes it all the same.
    from sardespeckle.io import base

    def interrupted(self, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(base.Sink, "__init__", interrupted)
    folder = tmp_path / "out"
    folder.mkdir()
    for name in ("o.tif", "o.npy"):
        assert main(["run", str(amplitude_tif), "-o", str(folder / name), "-m", "kuan",
                     "--looks", "1", "-q"]) == 130
        assert "interrupted; no output was written" in capsys.readouterr().err
        assert list(folder.iterdir()) == []


def test_references_build_from_unlabelled_float_geotiffs_with_kind(tmp_path, capsys):
    # Plain float32 GeoTIFF dates (no band description, no kind word in the name): --kind says
    # what they hold, and the reference keeps their georeferencing.
    from sardespeckle.speckle import simulate_speckle

    dates = []
    for index in range(3):
        amplitude = np.sqrt(4.0 * simulate_speckle((24, 24), 1, seed=index)).astype(np.float32)
        dates.append(str(write_tif(tmp_path / f"d{index}.tif", amplitude, description=None)))
    out = tmp_path / "ref.tif"
    assert main(["references", "build", *dates, "-o", str(out), "--looks", "1"]) == 1
    assert "--kind" in capsys.readouterr().err  # undetectable without it, as documented
    assert main(["references", "build", *dates, "-o", str(out), "--looks", "1",
                 "--kind", "amplitude"]) == 0
    with rasterio.open(out) as ref, rasterio.open(dates[0]) as first:
        assert ref.crs == first.crs and ref.transform == first.transform


@pytest.mark.parametrize(("signum", "code"), [("SIGINT", 130), ("SIGTERM", 143), ("SIGHUP", 129)])
def test_an_interrupted_training_exits_with_the_signal_code_and_resumes(tmp_path, signum, code):
    import json
    import signal
    import time

    rng = np.random.default_rng(0)
    np.save(tmp_path / "ref.npy", (400.0 * np.exp(rng.normal(0, 0.3, (48, 48)))).astype(np.float32))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "references": [{"path": str(tmp_path / "ref.npy"), "kind": "intensity"}],
        "depth": 3, "features": 4, "patch_size": 16, "batch_size": 2, "steps": 1_000_000,
        "threads": 1, "precision": "fp32", "checkpoint_every": 1, "log_every": 1}))
    run = tmp_path / "run"
    code_line = "import sys; from sardespeckle.cli.main import main; sys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen([sys.executable, "-c", code_line, "train", str(config),
                                "--run-dir", str(run), "-q"], stderr=subprocess.PIPE, text=True,
                               preexec_fn=_default_stop_signals)
    deadline = time.monotonic() + 120
    while not (run / "checkpoint.pt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the training ended before it could be stopped"
    process.send_signal(getattr(signal, signum))
    _, err = process.communicate(timeout=60)
    assert process.returncode == code, err
    assert "new run" in err and "interrupted at step" in err and "checkpoint written" in err
    stopped = int(err.split("interrupted at step ")[1].split("/")[0])
    assert main(["train", str(config), "--run-dir", str(run), "--max-steps", "1", "-q"]) == 0
    log = (run / "log.csv").read_text().splitlines()[1:]
    assert [int(row.split(",")[0]) for row in log] == list(range(1, stopped + 2))


def test_info_describes_a_file_whose_kind_is_unknown(tmp_path, speckled_scene, capsys):
    src = write_tif(tmp_path / "plain.tif", speckled_scene.astype(np.float32), description=None)
    assert main(["info", str(src), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    # the reason is the reader's own: why the kind is unknown and what to pass
    assert info["kind"] == "unknown" and "cannot tell amplitude from intensity" in info["kind_reason"]
    assert "--kind amplitude" in info["kind_reason"]
    assert info["crs"] == "EPSG:32631" and info["rows"] == speckled_scene.shape[0]
    assert info["estimated_looks"] is None and "unavailable" in info["estimated_looks_note"]
    assert info["nodata"] is None  # the file has none
    assert main(["info", str(src), "--json", "--kind", "intensity"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out)["estimated_looks"], float)


def test_a_closed_output_pipe_ends_quietly(amplitude_tif):
    code = "import sys; from sardespeckle.cli.main import main; sys.exit(main(sys.argv[1:]))"
    producer = subprocess.Popen([sys.executable, "-c", code, "info", str(amplitude_tif)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    producer.stdout.close()  # the reader is gone before anything is written (`| head -0`)
    err = producer.stderr.read().decode()
    assert producer.wait(timeout=60) == 141
    assert "error" not in err and "Traceback" not in err, err


def test_preview_reads_a_complex_layout_beside_a_despeckled_result(tmp_path, speckled_scene):
    rng = np.random.default_rng(1)
    slc = np.sqrt(speckled_scene / 2)[..., None] * rng.standard_normal((*speckled_scene.shape, 2))
    np.save(tmp_path / "slc.npy", slc.astype(np.float32))  # (rows, cols, 2): re, im
    out = tmp_path / "out.tif"
    assert main(["run", str(tmp_path / "slc.npy"), "--complex-layout", "last", "-o", str(out),
                 "-m", "boxcar", "-q"]) == 0
    png = tmp_path / "p.png"
    assert main(["preview", str(tmp_path / "slc.npy"), str(out), "--complex-layout", "last",
                 "-o", str(png)]) == 0
    assert png.stat().st_size > 1000


def test_a_given_kind_that_contradicts_the_files_own_description_is_warned(tmp_path, amplitude_tif,
                                                                           capsys):
    out = tmp_path / "out.tif"
    assert main(["run", str(amplitude_tif), "-o", str(out), "--method", "kuan", "--looks", "1",
                 "--kind", "amplitude", "--output-kind", "intensity", "-q"]) == 0
    capsys.readouterr()
    assert main(["info", str(out), "--kind", "amplitude"]) == 0
    err = capsys.readouterr().err
    # One line, as the notes are, naming the file and what it says of itself.
    assert err.startswith(f"warning: {out}: read as amplitude as asked, although its band 1 "
                          f"description 'intensity") and err.endswith("' names intensity\n")
    assert err.count("\n") == 1
    assert main(["info", str(out), "--kind", "intensity"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_an_option_given_twice_in_two_forms_is_refused(tmp_path, amplitude_tif, capsys):
    out = tmp_path / "o.tif"
    assert main(["run", str(amplitude_tif), "-o", str(out), "--method", "boxcar", "--window-size",
                 "5", "-p", "window_size=7", "--looks", "1"]) == 2
    assert "--window-size 5 and -p window_size=7" in capsys.readouterr().err
    assert not out.exists()
    assert main(["run", str(amplitude_tif), "-o", str(out), "--method", "boxcar", "--window-size",
                 "5", "-p", "window_size=5", "--looks", "1", "-q"]) == 0  # the same value twice


def test_negative_pixels_and_implausible_looks_are_noted(tmp_path, capsys):
    rng = np.random.default_rng(5)
    sigma0 = rng.exponential(1.0, (64, 64)).astype(np.float32)
    sigma0[:2, :4] = -0.01  # σ⁰ after thermal-noise removal: a few are negative
    src = tmp_path / "sigma0.npy"
    np.save(src, sigma0)
    out = tmp_path / "out.npy"
    assert main(["run", str(src), "-o", str(out), "--kind", "intensity", "-m", "kuan"]) == 0
    err = capsys.readouterr().err
    assert "of the pixels are negative" in err and "they are nodata" in err
    result = np.load(out)
    assert np.isnan(result[:2, :4]).all() and np.isfinite(result[2:]).all()
    # mostly negative: dB, refused
    np.save(src, 10 * np.log10(sigma0.clip(1e-3)) - 20)
    assert main(["run", str(src), "-o", str(out), "--kind", "intensity", "-m", "kuan",
                 "--overwrite"]) == 1
    assert "this looks like dB data" in capsys.readouterr().err
    # dB read as dB, but far too smooth for speckle: the looks are implausible, said so
    np.save(src, np.round(rng.normal(0, 30, (64, 64))).astype(np.float32))
    assert main(["run", str(src), "-o", str(out), "--kind", "db", "-m", "kuan",
                 "--overwrite"]) == 0
    assert "looks is implausible for speckle" in capsys.readouterr().err


def test_an_interrupt_after_some_outputs_says_they_were_written(tmp_path, amplitude_tif,
                                                                monkeypatch, capsys):
    """A batch interrupted at its second scene has written the first: "no output was
    written" would be untrue."""
    import shutil

    from sardespeckle.io import base

    scenes = tmp_path / "scenes"
    scenes.mkdir()
    for name in ("a.tif", "b.tif"):
        shutil.copy(amplitude_tif, scenes / name)
    real_init, calls = base.Sink.__init__, []

    def second_interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(base.Sink, "__init__", second_interrupted)
    out = tmp_path / "out"
    assert main(["run", str(scenes), "-o", str(out), "-m", "kuan", "--looks", "1", "-q"]) == 130
    err = capsys.readouterr().err
    assert "interrupted; 1 file(s) had been written before it (the last: " in err
    assert sorted(path.name for path in out.iterdir()) == ["a.tif"]


def test_simulate_records_the_kind_of_an_npy_and_says_what_it_cannot_do(tmp_path, capsys):
    clean = tmp_path / "clean_amplitude.npy"
    np.save(clean, np.full((32, 32), 3.0))
    noisy = tmp_path / "noisy.npy"
    assert main(["simulate", str(clean), "-o", str(noisy), "--looks", "1", "--seed", "0"]) == 0
    sidecar = json.loads((tmp_path / "noisy.npy.json").read_text())
    assert sidecar["kind"] == "amplitude" and sidecar["tags"]["SARDESPECKLE_SEED"] == "0"
    assert main(["info", str(noisy), "--json"]) == 0  # read back without --kind
    assert json.loads(capsys.readouterr().out)["kind"] == "amplitude"
    assert main(["simulate", str(clean), "-o", str(tmp_path / "x.npy"), "--looks", "1e-300",
                 "--seed", "0"]) == 2
    assert "underflows float32" in capsys.readouterr().err
    empty = tmp_path / "empty.npy"
    np.save(empty, np.full((32, 32), np.nan))
    assert main(["simulate", str(empty), "-o", str(tmp_path / "y.npy"), "--looks", "1",
                 "--seed", "0", "--kind", "amplitude"]) == 0
    assert "note: the input has no valid pixel" in capsys.readouterr().err


def test_what_an_output_does_not_carry_over_is_said(tmp_path, capsys):
    image = np.random.default_rng(3).exponential(1.0, (48, 40)).astype(np.float32) + 0.01
    image[:3] = 0.0
    src = str(write_tif(tmp_path / "amp.tif", image, nodata=0.0))
    assert main(["run", src, "-o", str(tmp_path / "db.tif"), "-m", "lee", "--looks", "1",
                 "--output-kind", "db"]) == 0
    assert "nodata value 0 is a valid dB value: the dB output's nodata is NaN" in (
        capsys.readouterr().err)
    assert main(["run", src, "-o", str(tmp_path / "out.npy"), "-m", "lee", "--looks", "1"]) == 0
    assert "a .npy output holds no georeferencing" in capsys.readouterr().err
    assert main(["run", src, "-o", str(tmp_path / "out.tif"), "-m", "lee", "--looks", "1"]) == 0
    err = capsys.readouterr().err
    assert "georeferencing" not in err and "valid dB value" not in err


def test_a_folder_as_the_output_of_one_input_says_to_name_the_file(tmp_path, amplitude_tif,
                                                                    capsys):
    assert main(["run", str(amplitude_tif), "-o", str(tmp_path / "newdir") + "/", "-m", "lee",
                 "--looks", "1"]) == 2
    assert "got the folder" in capsys.readouterr().err and not (tmp_path / "newdir").exists()


def test_preview_says_which_band_it_shows_and_bad_values_are_one_line(tmp_path, capsys):
    path = tmp_path / "vvvh.tif"
    bands = np.random.default_rng(4).exponential(1.0, (2, 24, 24)).astype(np.float32)
    with rasterio.open(path, "w", driver="GTiff", width=24, height=24, count=2,
                       dtype="float32") as dst:
        dst.write(bands)
        dst.set_band_description(1, "Intensity_VV")
    assert main(["preview", str(path), "-o", str(tmp_path / "p.png")]) == 0
    err = capsys.readouterr().err
    assert "has 2 bands: its panel shows band 1" in err and "geotransform" not in err
    with pytest.raises(SystemExit):
        main(["run", str(path), "-o", str(tmp_path / "o.tif"), "--tile", "0"])
    err = capsys.readouterr().err
    assert "usage:" not in err and "argument --tile" in err and "hint: sardespeckle run --help" in err


def test_band_all_names_the_notes_of_the_other_bands(tmp_path, speckled_scene, capsys):
    amplitude = np.sqrt(speckled_scene).astype(np.float32)
    src = write_vv_vh(tmp_path / "vv_deadvh.tif", amplitude, np.zeros_like(amplitude))  # empty VH
    assert main(["run", str(src), "-o", str(tmp_path / "out.tif"), "-m", "lee", "--band",
                 "all"]) == 0
    err = capsys.readouterr().err
    assert "note: band 2: the input has no valid pixel" in err
    assert "band 1: " not in err
    # An empty band 1 is named too; notes alike but for their numbers are grouped.
    write_vv_vh(tmp_path / "deadvv.tif", np.zeros_like(amplitude), amplitude)
    assert main(["run", str(tmp_path / "deadvv.tif"), "-o", str(tmp_path / "out1.tif"), "-m",
                 "lee", "--band", "all"]) == 0
    assert "note: band 1: the input has no valid pixel" in capsys.readouterr().err
    bands = np.stack([amplitude] * 3)
    bands[1, :2] = -1.0
    bands[2, :6] = -1.0
    with rasterio.open(tmp_path / "three.tif", "w", driver="GTiff", width=bands.shape[2],
                       height=bands.shape[1], count=3, dtype="float32") as dst:
        dst.write(bands)
    assert main(["run", str(tmp_path / "three.tif"), "-o", str(tmp_path / "out3.tif"), "-m",
                 "lee", "--band", "all", "--kind", "amplitude"]) == 0
    err = capsys.readouterr().err
    assert "note: bands 2, 3 (band 2's numbers): " in err and "pixels are negative" in err
    assert err.count("pixels are negative") == 1


def test_linear_sigma0_with_thermal_noise_negatives_is_not_taken_for_db(tmp_path, capsys):
    rng = np.random.default_rng(3)
    sigma0 = (0.006 * rng.exponential(1.0, (96, 96)) + 0.003 * rng.exponential(1.0, (96, 96))
              - 0.003).astype(np.float32)  # about 14 % negative after noise removal
    assert 0.1 < np.mean(sigma0 < 0) < 0.3
    src = tmp_path / "vh.tif"
    with rasterio.open(src, "w", driver="GTiff", width=96, height=96, count=1,
                       dtype="float32") as dst:
        dst.write(sigma0, 1)
    out = tmp_path / "out.tif"
    assert main(["run", str(src), "-o", str(out), "-m", "kuan"]) == 1
    assert "linear σ⁰ after thermal-noise removal" in capsys.readouterr().err
    assert not out.exists()
    assert main(["run", str(src), "-o", str(out), "-m", "kuan", "--kind", "intensity",
                 "--looks", "1"]) == 0
    assert "pixels are negative" in capsys.readouterr().err
    # Real dB data (speckle spreads them over many dB) are still recognised from their sign.
    db = (10 * np.log10(0.05 * rng.exponential(1.0, (96, 96)))).astype(np.float32)
    with rasterio.open(tmp_path / "db.tif", "w", driver="GTiff", width=96, height=96,
                       count=1, dtype="float32") as dst:
        dst.write(db, 1)
    assert main(["info", str(tmp_path / "db.tif"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "db"


def test_info_gives_the_stored_type_beside_the_type_read(tmp_path, capsys):
    src = tmp_path / "slc.tif"
    with rasterio.open(src, "w", driver="GTiff", width=16, height=16, count=1,
                       dtype="complex_int16") as dst:
        dst.write((np.arange(256).reshape(16, 16) + 1j).astype(np.complex64), 1)
    assert main(["info", str(src), "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert (described["dtype"], described["stored_dtype"]) == ("complex64", "complex_int16")


def test_an_input_without_speckle_gets_a_note_on_its_looks(tmp_path, capsys):
    rng = np.random.default_rng(5)
    smooth = np.exp(rng.normal(0, 0.002, (128, 128))).astype(np.float32) * 100
    np.save(tmp_path / "flat.npy", smooth)
    assert main(["run", str(tmp_path / "flat.npy"), "-o", str(tmp_path / "o.npy"), "-m", "kuan",
                 "--kind", "intensity"]) == 0
    assert "the input has nearly no speckle" in capsys.readouterr().err


def test_preview_band_shows_that_band_of_multiband_inputs(tmp_path, speckled_scene, capsys):
    from PIL import Image

    amplitude = np.sqrt(speckled_scene).astype(np.float32)
    src = write_vv_vh(tmp_path / "vv_vh.tif", amplitude, amplitude / 10)  # VH 20 dB darker
    single = write_tif(tmp_path / "one.tif", amplitude, description="Amplitude_VV")
    grey = {}
    for band in (1, 2):
        png = tmp_path / f"b{band}.png"
        assert main(["preview", str(src), str(single), "-o", str(png), "--band", str(band)]) == 0
        assert f"its panel shows band {band}" in capsys.readouterr().err
        with Image.open(png) as image:
            pixels = np.asarray(image.convert("L"), dtype=float)
        grey[band] = pixels[20:, pixels.shape[1] // 2 + 10:].mean()  # the one-band VV panel
    # The shared stretch comes from the first panel: from VH (20 dB darker) with --band 2, so
    # the unchanged VV panel beside it is drawn brighter.
    assert grey[2] > grey[1] + 30
    assert main(["preview", str(src), "-o", str(tmp_path / "x.png"), "--band", "3"]) == 2
    assert "expected a band in 1..2" in capsys.readouterr().err
