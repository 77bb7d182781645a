"""Outputs that did not reach the disk are not published; stale partial files are cleared;
memory-light paths (decimated reads, filters without torch); the tile a run really uses."""

import errno
import os
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from sardespeckle.cli.main import main
from sardespeckle.errors import OutputFileError
from sardespeckle.io import open_source
from sardespeckle.io.geotiff import check_written


def write_tif(path, array, description="Intensity_VV", block=256):
    profile = dict(driver="GTiff", width=array.shape[1], height=array.shape[0], count=1,
                   dtype="float32", crs="EPSG:32631", transform=from_origin(600000, 5800000, 10, 10),
                   tiled=True, blockxsize=block, blockysize=block, compress="deflate")
    with rasterio.open(path, "w", **profile) as dst:
        dst.set_band_description(1, description)  # before the pixels: the directory goes first
        dst.write(array.astype(np.float32), 1)
    return path


def scene(shape=(512, 512), seed=0):
    return np.random.default_rng(seed).exponential(1.0, shape) * 100.0


def test_a_geotiff_whose_blocks_are_past_its_end_is_not_published(tmp_path):
    path = write_tif(tmp_path / "whole.tif", scene())
    check_written(str(path), "out.tif")  # complete: passes
    # what a full disk leaves: GDAL closes the file with block offsets past its end
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(size // 2)
    with pytest.raises(OutputFileError, match=r"cannot write out.tif: \d+ of its 4 blocks did "
                                              r"not reach the disk .*nothing was written"):
        check_written(str(path), "out.tif")
    with open(path, "r+b") as handle:  # cut before its directory: unreadable
        handle.truncate(4)
    with pytest.raises(OutputFileError, match="cannot write out.tif: the file written is "
                                              "unreadable"):
        check_written(str(path), "out.tif")


def test_a_run_whose_output_is_cut_short_fails_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    import sardespeckle.io.geotiff as geotiff

    src = write_tif(tmp_path / "in.tif", scene())
    real = geotiff.check_written

    def truncate_then_check(temp, path, **options):
        with open(temp, "r+b") as handle:  # the disk filled up while GDAL flushed
            handle.truncate(os.path.getsize(temp) // 2)
        real(temp, path, **options)

    monkeypatch.setattr(geotiff, "check_written", truncate_then_check)
    out = tmp_path / "out.tif"
    assert main(["run", str(src), "-o", str(out), "-m", "boxcar", "--looks", "1", "-q"]) == 1
    assert "did not reach the disk" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_a_npy_output_without_room_is_refused_before_writing(tmp_path, monkeypatch, capsys):
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    src = write_tif(tmp_path / "in.tif", scene())
    out = tmp_path / "out.npy"
    assert main(["run", str(src), "-o", str(out), "-m", "boxcar", "--looks", "1", "-q"]) == 1
    err = capsys.readouterr().err
    assert f"cannot write {out}: it needs 1.0 MiB" in err and "No space left" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_filesystems_that_cannot_preallocate_still_get_their_npy(tmp_path, monkeypatch):
    def unsupported(fd, offset, length):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    src = write_tif(tmp_path / "in.tif", scene())
    assert main(["run", str(src), "-o", str(tmp_path / "out.npy"), "-m", "boxcar", "--looks",
                 "1", "-q"]) == 0
    assert np.load(tmp_path / "out.npy").shape == (512, 512)


def test_a_run_clears_the_partial_files_a_killed_run_left(tmp_path, capsys):
    src = write_tif(tmp_path / "in.tif", scene())
    stale = tmp_path / ".out.tif.0123456789ab.partial.tif"
    stale.write_bytes(b"half a file")
    other = tmp_path / ".other.tif.0123456789ab.partial.tif"  # another output's: kept
    other.write_bytes(b"x")
    assert main(["run", str(src), "-o", str(tmp_path / "out.tif"), "-m", "boxcar", "--looks", "1"]) == 0
    assert "removed 1 hidden partial file(s) of" in capsys.readouterr().err
    assert not stale.exists() and other.exists() and (tmp_path / "out.tif").exists()


def test_the_tile_recorded_is_the_tile_used(tmp_path, capsys):
    src = write_tif(tmp_path / "in.tif", scene())
    assert main(["run", str(src), "-o", str(tmp_path / "a.tif"), "-m", "boxcar", "--looks", "1",
                 "--tile", "300"]) == 0
    assert "tile 300 rounded up to 512" in capsys.readouterr().err
    with rasterio.open(tmp_path / "a.tif") as dataset:
        assert dataset.tags()["SARDESPECKLE_TILE"] == "512"
    assert main(["run", str(src), "-o", str(tmp_path / "b.npy"), "-m", "boxcar", "--looks", "1",
                 "--tile", "300"]) == 0  # a .npy has no blocks: the tile stays
    assert "rounded up" not in capsys.readouterr().err


@pytest.mark.parametrize("step, block", [(3, 256), (7, 64), (300, 64), (1, 256)])
def test_a_decimated_read_keeps_every_nth_row_and_column(tmp_path, step, block):
    values = scene((700, 530))
    path = write_tif(tmp_path / "in.tif", values, block=block)
    with open_source(path) as source:
        decimated = source._read_decimated(step)
    np.testing.assert_array_equal(decimated, values.astype(np.float32)[::step, ::step])


def test_a_filter_run_does_not_import_torch(tmp_path):
    src = write_tif(tmp_path / "in.tif", scene((128, 128)))
    code = ("import sys; from sardespeckle.cli.main import main\n"
            f"assert main(['run', {str(src)!r}, '-o', {str(tmp_path / 'o.tif')!r}, '-m', 'kuan',"
            " '--looks', '1', '-q']) == 0\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_full_disk_is_said_plainly(tmp_path, monkeypatch, capsys):
    from sardespeckle.cli import main as cli_main

    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setitem(cli_main._COMMANDS, "info", full)
    assert main(["info", "x.tif"]) == 1
    err = capsys.readouterr().err
    assert "no space left on the device" in err and "internal error" not in err


def test_a_live_writers_partial_is_not_taken_for_a_stale_one(tmp_path):
    from sardespeckle.io.base import remove_if_exists, remove_stale_partials, temporary_path

    output = tmp_path / "out.tif"
    # another process writing the same output holds its partial file locked
    code = ("import sys, time; from sardespeckle.io.base import temporary_path\n"
            f"print(temporary_path({str(output)!r}), flush=True); time.sleep(60)\n")
    other = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        live = other.stdout.readline().strip()
        stale = tmp_path / ".out.tif.0123456789ab.partial.tif"  # a killed run's: nobody holds it
        stale.write_bytes(b"x")
        hidden = tmp_path / "..out.tif.0123456789ab.partial.tif"  # the hidden output .out.tif's
        hidden.write_bytes(b"x")
        assert remove_stale_partials([output]) == [str(stale)]
        assert os.path.exists(live) and hidden.exists()
    finally:
        other.kill()
        other.wait()
    assert remove_stale_partials([output]) == [live]  # its writer is gone: now it is stale
    ours = temporary_path(str(output))  # this process's own: never removed
    assert remove_stale_partials([output]) == [] and os.path.exists(ours)
    remove_if_exists(ours)


def test_a_nearly_full_disk_is_caught_by_decoding_the_blocks(tmp_path, monkeypatch):
    import sardespeckle.io.geotiff as geotiff

    path = write_tif(tmp_path / "whole.tif", scene())
    with rasterio.open(path) as dataset:
        offset = int(dataset.get_tag_item("BLOCK_OFFSET_1_1", "TIFF", bidx=1))
    data = bytearray(path.read_bytes())
    data[offset:offset + 64] = bytes(64)  # a block whose bytes are not what was compressed
    path.write_bytes(bytes(data))
    geotiff.check_written(str(path), "out.tif")  # plenty of room: offsets are trusted
    monkeypatch.setattr(geotiff, "READBACK_FREE", 1 << 62)  # a nearly full disk
    with pytest.raises(OutputFileError, match="cannot write out.tif: the file written is "
                                              "unreadable"):
        geotiff.check_written(str(path), "out.tif")


def test_a_disk_full_during_the_write_is_checked_even_when_space_came_back(tmp_path,
                                                                          monkeypatch, capsys):
    import shutil
    from collections import namedtuple

    import sardespeckle.io.geotiff as geotiff

    path = write_tif(tmp_path / "whole.tif", scene())
    with rasterio.open(path) as dataset:
        offset = int(dataset.get_tag_item("BLOCK_OFFSET_1_1", "TIFF", bidx=1))
    data = bytearray(path.read_bytes())
    data[offset:offset + 64] = bytes(64)
    path.write_bytes(bytes(data))
    geotiff.check_written(str(path), "out.tif")  # plenty of room now, none seen before
    with pytest.raises(OutputFileError, match=r"the file written is unreadable .* MiB left on "
                                              r"the device of .*, 1.0 MiB at the lowest while "
                                              r"it was written: full\?"):
        geotiff.check_written(str(path), "out.tif", lowest_free=1 << 20)  # 1 MiB at one time
    # A run: the disk is full for a moment mid-write, then has room again at the end.
    usage = namedtuple("usage", "total used free")
    calls = []
    real_usage = shutil.disk_usage

    def disk_usage(folder):
        calls.append(folder)
        free = 1 << 20 if len(calls) == 3 else real_usage(folder).free
        return usage(1 << 40, 0, free)

    checked = []
    real_check = geotiff.check_written
    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    monkeypatch.setattr(geotiff, "check_written",
                        lambda temp, out, **kw: (checked.append(kw), real_check(temp, out, **kw)))
    np.save(tmp_path / "in.npy", scene((600, 600)).astype(np.float32))
    assert main(["run", str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.tif"), "-m", "boxcar",
                 "--kind", "intensity", "--looks", "1", "--tile", "256", "-q"]) == 0
    assert checked == [{"lowest_free": 1 << 20}] and len(calls) > 3


def test_messages_name_the_output_not_its_hidden_temporary():
    from sardespeckle.io.base import visible_name as _shown

    assert _shown("/d/.x.tif.0123456789ab.partial.tif") == "/d/x.tif"
    assert _shown("/d/..x.tif.0123456789ab.partial.tif.abcdefabcdef.partial.tif") == "/d/x.tif"
    assert _shown("/d/x.tif") == "/d/x.tif"


def test_a_file_size_limit_is_said_plainly(monkeypatch, capsys):
    from sardespeckle.cli import main as cli_main

    def too_large(args):
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setitem(cli_main._COMMANDS, "info", too_large)
    assert main(["info", "x.tif"]) == 1
    assert "file too large for this filesystem" in capsys.readouterr().err


def test_every_band_run_clears_its_stale_partials(tmp_path, capsys):
    profile = dict(driver="GTiff", width=64, height=64, count=2, dtype="float32",
                   crs="EPSG:32631", transform=from_origin(600000, 5800000, 10, 10))
    with rasterio.open(tmp_path / "two.tif", "w", **profile) as dst:
        for band in (1, 2):
            dst.set_band_description(band, f"Intensity_V{'VH'[band - 1]}")
            dst.write(scene((64, 64), seed=band).astype(np.float32), band)
    stale = tmp_path / ".out.tif.0123456789ab.partial.tif"
    stale.write_bytes(b"x")
    assert main(["run", str(tmp_path / "two.tif"), "-o", str(tmp_path / "out.tif"), "--band", "all",
                 "-m", "boxcar", "--looks", "1"]) == 0
    assert "removed 1 hidden partial file(s)" in capsys.readouterr().err and not stale.exists()


def test_a_batch_prints_each_scenes_notes_and_names_what_it_skipped(tmp_path, capsys):
    np.save(tmp_path / "zeros.npy", np.zeros((64, 64), np.float32))
    np.save(tmp_path / "scene.npy", scene((64, 64)).astype(np.float32))
    argv = ["run", str(tmp_path / "zeros.npy"), str(tmp_path / "scene.npy"), "-o",
            str(tmp_path / "out") + "/", "--kind", "amplitude", "-m", "kuan", "--looks", "1"]
    assert main(argv) == 0
    assert "  note: the input has no valid pixel" in capsys.readouterr().err
    assert main(argv) == 0
    assert "skipped (the output exists; --overwrite replaces it): zeros.npy, scene.npy" in \
        capsys.readouterr().err


def test_an_output_written_meanwhile_by_another_batch_is_skipped_not_failed(tmp_path):
    from sardespeckle.errors import OutputExistsError
    from sardespeckle.scale.batch import despeckle_batch

    def raced(source, target):
        raise OutputExistsError(f"output {target} exists")

    report = despeckle_batch([("a.tif", str(tmp_path / "a.tif"))], raced, overwrite=False)
    assert report.skipped == [str(tmp_path / "a.tif")] and report.failed == []


def test_weights_verify_fails_on_user_weights_it_left_out(tmp_path, monkeypatch, capsys):
    from sardespeckle.models import weights

    (tmp_path / "junk.pt").write_bytes(b"junk")
    monkeypatch.setattr(weights, "USER_WEIGHTS_LEFT_OUT", {})
    with pytest.warns(UserWarning, match="junk.pt left out"):
        weights.register_user_weights(str(tmp_path))
    assert main(["weights", "--verify"]) == 1
    out = capsys.readouterr().out
    assert "junk.pt" in out and "verify: LEFT OUT" in out


def test_simulate_says_when_its_input_is_speckled_already(tmp_path, capsys):
    np.save(tmp_path / "clean.npy", scene((64, 64)).astype(np.float32))
    assert main(["simulate", str(tmp_path / "clean.npy"), "-o", str(tmp_path / "once.npy"),
                 "--looks", "1", "--seed", "0", "--kind", "amplitude"]) == 0
    assert "already holds" not in capsys.readouterr().err
    assert main(["simulate", str(tmp_path / "once.npy"), "-o", str(tmp_path / "twice.npy"),
                 "--looks", "1", "--seed", "1"]) == 0
    assert "already holds simulated 1-look speckle" in capsys.readouterr().err


def test_a_batch_told_to_overwrite_reports_a_run_that_did_not(tmp_path):
    from sardespeckle.errors import OutputExistsError
    from sardespeckle.scale.batch import despeckle_batch

    def refuses(source, target):
        raise OutputExistsError(f"output {target} exists")

    report = despeckle_batch([("a.tif", str(tmp_path / "a.tif"))], refuses, overwrite=True)
    assert report.skipped == [] and len(report.failed) == 1
