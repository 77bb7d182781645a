"""Messages and outputs from a user audit: each names the remedy of the interface in use.

Small images the looks estimator cannot measure, real/imaginary GeoTIFF bands taken for dB,
dB outputs whose nodata is a valid dB value, an output path through a file, Python wording on
the command line, and the training bar drawn before an input error.
"""

import json
import math

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from sardespeckle.cli.main import main
from sardespeckle.errors import InvalidInputError, OutputExistsError, UsageError
from sardespeckle.io import open_source, output_nodata
from sardespeckle.speckle import estimate_looks, simulate_speckle
from sardespeckle.window import Window


def write_tif(path, bands, *, nodata=None, description=None):
    """A georeferenced float32 GeoTIFF of one ``(rows, cols)`` or several ``(n, rows, cols)``
    bands, written with rasterio directly."""
    bands = np.asarray(bands, dtype=np.float32)
    bands = bands[None] if bands.ndim == 2 else bands
    profile = dict(driver="GTiff", height=bands.shape[1], width=bands.shape[2],
                   count=bands.shape[0], dtype="float32", nodata=nodata, crs="EPSG:32631",
                   transform=from_origin(600000, 5800000, 10, 10))
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.write(bands)
        if description:
            dataset.set_band_description(1, description)
    return str(path)


def amplitude(shape, seed=0):
    return 10.0 * np.sqrt(simulate_speckle(shape, 1, seed=seed))


# 1. -- images too small for the looks estimator ---------------------------------------------


@pytest.mark.parametrize("shape", [(1, 300), (6, 100)])
def test_too_small_for_the_looks_estimator_says_to_give_the_looks(tmp_path, capsys, shape):
    src = write_tif(tmp_path / "small.tif", amplitude(shape))
    out = tmp_path / "out.tif"
    args = ["run", src, "-o", str(out), "-m", "lee", "--window-size", "3", "--kind", "amplitude"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "cannot estimate the number of looks on so small an image" in err
    assert "pass looks explicitly (CLI --looks)" in err
    assert "use a smaller window_size" not in err and not out.exists()
    assert main(["info", src, "--kind", "amplitude"]) == 0
    assert "pass looks explicitly (CLI --looks)" in capsys.readouterr().out
    assert main([*args, "--looks", "1", "-q"]) == 0 and out.exists()


@pytest.mark.parametrize("shape", [(3, 3), (5, 5)])
def test_every_small_image_gets_the_same_remedy(tmp_path, capsys, shape):
    src = write_tif(tmp_path / "tiny.tif", amplitude(shape))
    assert main(["run", src, "-o", str(tmp_path / "o.tif"), "-m", "lee", "--window-size", "3",
                 "--kind", "amplitude"]) == 1
    err = capsys.readouterr().err
    assert "cannot estimate the number of looks" in err
    assert "pass looks explicitly (CLI --looks)" in err


def test_estimator_messages_name_the_looks_and_label_the_python_remedy():
    image = simulate_speckle((64, 64), 1, seed=0)
    with pytest.raises(InvalidInputError, match=r"number of looks on so small an image.*"
                                                r"got shape \(1, 64\).*CLI --looks.*Python: "
                                                r"or estimate with a smaller window_size"):
        estimate_looks(image[:1])
    with pytest.raises(InvalidInputError, match=r"cannot estimate the number of looks: expected "
                                                r"at least one 7 × 7 window.*CLI --looks"):
        estimate_looks(image, valid=np.zeros(image.shape, dtype=bool))


# 2. -- real/imaginary GeoTIFF bands detected as dB ------------------------------------------


@pytest.fixture
def parts_tif(tmp_path):
    """Real and imaginary parts of a single-look SLC in two float bands, large enough that
    reading them as dB overflows float32 intensities."""
    rng = np.random.default_rng(3)
    parts = 300.0 * rng.standard_normal((2, 64, 64))
    return write_tif(tmp_path / "iq.tif", parts), parts


def test_two_float_bands_with_negative_values_suggest_the_complex_layout(parts_tif, capsys,
                                                                        tmp_path):
    path, parts = parts_tif
    with open_source(path) as source:  # still dB: two dB bands (VV, VH) look the same
        assert source.kind == "db"
        assert "pass --complex-layout bands (Python: complex_layout='bands')" in source.kind_reason
    with open_source(path, band=2) as source:
        assert "bands 1 and 2" in source.kind_reason and "--band 1" in source.kind_reason
    assert main(["info", path]) == 0
    assert "--complex-layout bands" in capsys.readouterr().out
    out = tmp_path / "out.tif"
    assert main(["run", path, "-o", str(out), "-m", "lee", "--looks", "1"]) == 1
    err = capsys.readouterr().err
    assert "from db data" in err and "the kind db was detected from negative values" in err
    assert "--complex-layout bands" in err and not out.exists()
    assert main(["run", path, "-o", str(out), "-m", "lee", "--complex-layout", "bands",
                 "-q"]) == 0
    with rasterio.open(out) as dataset:
        assert dataset.tags()["SARDESPECKLE_INPUT_KIND"] == "complex"


def test_one_band_negative_data_stays_db_without_a_layout_hint(tmp_path):
    db = 10 * np.log10(amplitude((32, 32)) ** 2) - 30
    with open_source(write_tif(tmp_path / "scene.tif", db)) as source:
        assert source.kind == "db"
        assert source.kind_reason == "negative values (only dB data can be negative)"


def test_a_given_kind_keeps_its_read_errors_as_they_are(parts_tif):
    path, _ = parts_tif
    with open_source(path, kind="db") as source, pytest.raises(InvalidInputError) as caught:
        source.value_shares()
    assert "from db data" in str(caught.value) and "was detected" not in str(caught.value)
    with open_source(path) as source, pytest.raises(InvalidInputError) as caught:
        source.value_shares()
    assert "the kind db was detected from negative values" in str(caught.value)


# 3. -- dB outputs and their nodata ----------------------------------------------------------


def test_db_output_of_an_input_with_nodata_zero_writes_nan(tmp_path, capsys):
    image = amplitude((48, 40)).astype(np.float32)
    image[:5, :7] = 0.0
    src = write_tif(tmp_path / "amp.tif", image, nodata=0.0, description="Amplitude_VV")
    db_out, amp_out = tmp_path / "db.tif", tmp_path / "amp_out.tif"
    assert main(["run", src, "-o", str(db_out), "-m", "lee", "--looks", "1",
                 "--output-kind", "db", "-q"]) == 0
    with rasterio.open(db_out) as dataset:
        values = dataset.read(1)
        assert math.isnan(dataset.nodata) and dataset.crs == "EPSG:32631"
    assert np.isnan(values[:5, :7]).all() and np.isfinite(values[5:]).all()
    # An amplitude output keeps the input's nodata: no amplitude is 0 where a pixel is valid.
    assert main(["run", src, "-o", str(amp_out), "-m", "lee", "--looks", "1", "-q"]) == 0
    with rasterio.open(amp_out) as dataset:
        assert dataset.nodata == 0 and (dataset.read(1)[:5, :7] == 0).all()


def test_output_nodata_keeps_only_values_db_data_cannot_take():
    assert math.isnan(output_nodata(0.0, kind_out="db"))
    assert math.isnan(output_nodata(-100.0, kind_out="db"))
    assert output_nodata(-9999.0, kind_out="db") == -9999.0
    assert output_nodata(0.0, kind_out="intensity") == 0.0 and output_nodata(0.0) == 0.0


# 4. -- an output path through a file --------------------------------------------------------


def test_an_output_under_a_file_is_not_in_a_folder(tmp_path, capsys):
    src = write_tif(tmp_path / "scene_amp.tif", amplitude((32, 32)))
    blocker = tmp_path / "file.tif"
    blocker.write_text("not a folder")
    for output in (blocker / "x.tif", blocker / "deeper" / "x.tif"):
        assert main(["run", src, "-o", str(output), "-m", "lee", "--looks", "1"]) == 2
        err = capsys.readouterr().err
        assert f"got {blocker} on its path, which is not a folder" in err
        assert "does not exist" not in err
    assert main(["run", src, "-o", str(tmp_path / "x.tif"), "-m", "lee", "--looks", "1",
                 "--preview", str(blocker / "p.png")]) == 2
    assert "which is not a folder" in capsys.readouterr().err
    assert main(["run", src, "-o", str(tmp_path / "missing" / "x.tif"), "-m", "lee"]) == 2
    assert "does not exist; create it first" in capsys.readouterr().err


# 5. -- Python wording on the command line ---------------------------------------------------


def test_cli_messages_name_the_cli_options(tmp_path, capsys):
    src = write_tif(tmp_path / "scene_amp.tif", amplitude((32, 32)))
    out = tmp_path / "out.tif"
    out.write_bytes(b"")
    assert main(["run", src, "-o", str(out), "-m", "lee", "--looks", "1"]) == 1
    err = capsys.readouterr().err
    assert "pass --overwrite (Python: overwrite=True)" in err
    assert main(["run", src, "-o", str(tmp_path / "m.tif"), "-m", "mulog", "--denoiser",
                 "nope", "--looks", "1"]) == 2
    err = capsys.readouterr().err
    assert "unknown MuLoG denoiser 'nope'" in err
    assert err.rstrip().endswith("weights file (.pt), or in Python a callable f(v, sigma)")
    slc = tmp_path / "slc.npy"
    np.save(slc, np.ones((16, 16), np.complex64))
    assert main(["run", str(slc), "-o", str(tmp_path / "s.tif"), "--kind", "amplitude"]) == 1
    assert "(CLI --kind complex)" in capsys.readouterr().err
    assert main(["run", src, "-o", str(tmp_path / "c.tif"), "--kind", "amplitude",
                 "--complex-layout", "bands"]) == 2
    assert "--kind complex with --complex-layout bands" in capsys.readouterr().err


# 6. -- training inputs are checked before the progress bar ----------------------------------


def test_train_reports_a_missing_reference_without_drawing_the_bar(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "--run-dir", str(run_dir), "--references", "nope.npy",
                 "--steps", "2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sardespeckle: error: ") and "no such file: nope.npy" in err
    assert "training" not in err and not (run_dir / "config.json").exists()


def test_a_constant_image_asks_for_the_looks(tmp_path, capsys):
    # A constant image has no speckle to measure: the estimate is infinite, which used to
    # surface as "expected a number of looks > 0, got inf" with the usage exit code.
    src = write_tif(tmp_path / "flat_amp.tif", np.full((64, 64), 7.0, np.float32))
    assert main(["run", src, "-o", str(tmp_path / "out.tif"), "-m", "lee"]) == 1
    err = capsys.readouterr().err
    assert "are constant (no speckle to measure" in err and "--looks" in err
    assert main(["run", src, "-o", str(tmp_path / "out.tif"), "-m", "lee", "--looks", "1"]) == 0


def test_weights_lists_the_noise_each_network_removes_and_which_is_the_default(capsys):
    assert main(["weights"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = lines.index("dncnn-sar-s25")
    assert lines[start + 2].startswith("  Gaussian noise σ = 25/255 ")
    start = lines.index("sarcnn-s1-l1-v3")
    assert lines[start + 2].startswith("  looks: 1 ")
    assert lines[start + 6].endswith("the default for single-look input")


def test_npy_outputs_carry_their_provenance_in_a_sidecar(tmp_path, capsys):
    from sardespeckle.io.npy import sidecar_path

    rng = np.random.default_rng(21)
    source = tmp_path / "scene.npy"
    np.save(source, (100 * rng.exponential(size=(48, 48))).astype(np.float32))
    out = tmp_path / "out.npy"
    assert main(["run", str(source), "-o", str(out), "-m", "lee", "--looks", "1", "-q",
                 "--kind", "intensity"]) == 0
    sidecar = json.loads(open(sidecar_path(out)).read())
    assert sidecar["file"] == "out.npy" and sidecar["kind"] == "intensity"
    assert sidecar["shape"] == [48, 48] and sidecar["nodata"] == "NaN"
    assert sidecar["tags"]["SARDESPECKLE_METHOD"] == "lee"
    assert sidecar["tags"]["SARDESPECKLE_LOOKS"] == "1"
    # A sidecar already there is an output like the array: kept unless --overwrite.
    other = tmp_path / "other.npy"
    open(sidecar_path(other), "w").write("mine")
    assert main(["run", str(source), "-o", str(other), "-m", "lee", "--looks", "1", "-q",
                 "--kind", "intensity"]) == 1
    assert "other.npy.json (the provenance of other.npy) exists" in capsys.readouterr().err
    assert open(sidecar_path(other)).read() == "mine" and not other.exists()
    assert main(["run", str(source), "-o", str(other), "-m", "lee", "--looks", "1", "-q",
                 "--kind", "intensity", "--overwrite"]) == 0
    assert json.loads(open(sidecar_path(other)).read())["tags"]["SARDESPECKLE_METHOD"] == "lee"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "other.npy", "other.npy.json", "out.npy", "out.npy.json", "scene.npy"]


def test_hints_name_only_options_the_command_has(tmp_path, capsys):
    """simulate has neither --complex-layout nor --kind complex; a bool array is not
    "complex data"; a peer's venv hint names the peer's package; a folder is called one."""
    rng = np.random.default_rng(0)
    slc = tmp_path / "slc.npy"
    np.save(slc, (rng.standard_normal((16, 16)) + 1j).astype(np.complex64))
    stack = tmp_path / "stack.npy"
    np.save(stack, rng.exponential(1.0, (3, 16, 16)))
    for path in (slc, stack):
        assert main(["simulate", str(path), "-o", str(tmp_path / "s.npy"), "--looks", "1",
                     "--seed", "0", "--kind", "amplitude"]) == 1
        err = capsys.readouterr().err
        assert "speckled already" in err and "--complex-layout" not in err
        assert "--kind complex" not in err
    flags = tmp_path / "flags.npy"
    np.save(flags, rng.random((16, 16)) > 0.5)
    assert main(["evaluate", "--references", str(flags), "--out", str(tmp_path / "e"),
                 "--methods", "boxcar", "--peers", "none", "-q"]) == 1
    err = capsys.readouterr().err
    assert "got bool" in err and "complex" not in err.split("got bool")[1]
    from sardespeckle.evaluation.peers import check_python

    with pytest.raises(UsageError, match="pip install deepdespeckling"):
        check_python(tmp_path / "none", peer="sar2sar")
    assert main(["weights", str(tmp_path)]) == 1
    assert f"got the folder {tmp_path}" in capsys.readouterr().err


def test_positive_values_in_a_narrow_range_are_hinted_to_be_db(tmp_path, capsys):
    rng = np.random.default_rng(0)
    db = tmp_path / "scene.npy"
    np.save(db, (20 + 5 * rng.random((64, 64))).astype(np.float32))  # σ⁰ of 20-25 dB
    assert main(["run", str(db), "-o", str(tmp_path / "out.npy"), "--looks", "1"]) == 1
    err = capsys.readouterr().err
    assert "cannot tell amplitude from intensity" in err
    assert "percentile 20 to 25) would also fit dB: if they are, kind='db' (CLI --kind db)" in err
    # a speckled amplitude spans far more than a factor 10: no dB hint
    amplitude = tmp_path / "other.npy"
    np.save(amplitude, rng.rayleigh(30, (64, 64)).astype(np.float32))
    assert main(["run", str(amplitude), "-o", str(tmp_path / "out.npy"), "--looks", "1"]) == 1
    err = capsys.readouterr().err
    assert "cannot tell amplitude from intensity" in err and "dB" not in err
    # linear data in small units span far less than a dB scene would: no hint either
    for scale in (1 / 255, 1e-3):  # a [0, 1] image; multilooked σ⁰-scale amplitudes
        flat = tmp_path / "small_units.npy"
        np.save(flat, (scale * (40 + 200 * rng.random((64, 64)))).astype(np.float32))
        assert main(["run", str(flat), "-o", str(tmp_path / "out.npy"), "--looks", "1"]) == 1
        assert "dB" not in capsys.readouterr().err


def test_the_db_hint_leaves_the_declared_nodata_out():
    from sardespeckle.errors import UnknownKindError
    from sardespeckle.io.kinds import detect_kind

    values = (20 + 25 * np.random.default_rng(1).random((64, 64))).astype(np.float32)
    values[:, :6] = 0.0  # a nodata border: 9 % zeros
    for nodata, hinted in ((0.0, True), (None, False)):
        with pytest.raises(UnknownKindError) as error:
            detect_kind(dtype=values.dtype, hints=None, sample=values, nodata=nodata)
        assert ("would also fit dB" in str(error.value)) is hinted
