"""Scale-out: xarray/Dask arrays, files on a Dask cluster, batches of scenes.

One ``LocalCluster`` of 2 worker processes (1 thread each) serves the module. Distributed outputs
are compared with the single-process engine (``despeckle_file`` / ``despeckle``), bit for bit for
the classical filters.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
xr = pytest.importorskip("xarray")
rioxarray = pytest.importorskip("rioxarray")
rasterio = pytest.importorskip("rasterio")

from rasterio.transform import from_origin  # noqa: E402

from sardespeckle.api import despeckle, despeckle_file  # noqa: E402
from sardespeckle.cli.main import main  # noqa: E402
from sardespeckle.errors import InputFileError, InvalidInputError, SardespeckleError  # noqa: E402
from sardespeckle.methods import get_method, list_methods  # noqa: E402
from sardespeckle.scale import (  # noqa: E402
    ClusterError,
    cache_info,
    dask_client,
    despeckle_dataarray,
)

SCENE_SHAPE = (768, 640)  # 3 × 3 tiles of 256 (the output block size)
TILE = 256
METHODS = [spec.name for spec in list_methods()]


def write_scene(path: Path, amplitude: np.ndarray) -> Path:
    profile = dict(driver="GTiff", width=amplitude.shape[1], height=amplitude.shape[0], count=1,
                   dtype="float32", crs="EPSG:32631", nodata=0.0,
                   transform=from_origin(600000, 5800000, 10, 10), tiled=True,
                   blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(amplitude, 1)
        dst.set_band_description(1, "Amplitude_VV")
        dst.update_tags(MISSION="S1A")
    return path


def speckled_amplitude(shape, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    reflectivity = np.full(shape, 60.0)
    reflectivity[:, shape[1] // 2:] = 240.0
    amplitude = np.sqrt(reflectivity * rng.exponential(1.0, shape)).astype(np.float32)
    amplitude[240:300, 200:300] = 0.0  # nodata across a tile corner: the masked-pixel path
    return amplitude


def pixels(path: Path) -> np.ndarray:
    with rasterio.open(path) as dataset:
        return dataset.read(1)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial" in p.name)


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster, set_as_default=False) as dask_client_:
        # Not the default client: a test computes on the cluster only when it says so, and the
        # tests that run after the module's first use of it keep dask's local scheduler.
        yield dask_client_


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scene")
    return write_scene(folder / "scene.tif", speckled_amplitude(SCENE_SHAPE, seed=1))


@pytest.fixture(scope="module")
def reference(scene) -> Path:
    out = scene.parent / "reference.tif"
    despeckle_file(scene, out, method="kuan", looks=1, tile=TILE)
    return out


def test_cluster_file_equals_single_process_bit_for_bit(client, scene, reference, tmp_path):
    out = tmp_path / "distributed.tif"
    calls = []
    report = despeckle_file(scene, out, client=client, method="kuan", looks=1, tile=TILE,
                            progress=lambda done, total: calls.append(total))
    assert calls == [9] * 9 and "2 Dask worker(s)" in report.notes[-1]
    expected = pixels(reference)
    result = pixels(out)
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, expected)
    assert (result == 0).sum() == 60 * 100  # the nodata block stays nodata, nothing else
    with rasterio.open(reference) as ref, rasterio.open(out) as dst:
        assert dst.crs == ref.crs and dst.transform == ref.transform
        assert dst.nodata == ref.nodata == 0.0
        assert dst.tags() == ref.tags() and dst.tags()["MISSION"] == "S1A"
        assert dst.descriptions == ref.descriptions
    assert leftovers(tmp_path) == []


def test_the_modules_cluster_is_not_the_default_client(client, scene, tmp_path):
    despeckle_file(scene, tmp_path / "out.tif", client=client, method="kuan", looks=1, tile=TILE)
    with pytest.raises(ValueError, match="No clients found"):
        distributed.default_client()  # later tests compute in their own process


def test_cluster_reads_the_band_asked_for(client, scene, reference, tmp_path):
    # A two-band scene whose band 2 is the scene of the reference: the workers must read it.
    two = tmp_path / "two.tif"
    with rasterio.open(scene) as src:
        profile = dict(src.profile, count=2)
        with rasterio.open(two, "w", **profile) as dst:
            dst.write(np.full(src.shape, 7.0, np.float32), 1)
            dst.write(src.read(1), 2)
    out = tmp_path / "band2.tif"
    despeckle_file(two, out, client=client, method="kuan", looks=1, tile=TILE, band=2,
                   kind="amplitude")
    np.testing.assert_array_equal(pixels(out), pixels(reference))


def test_dataarray_from_rioxarray_keeps_coords_crs_attrs_and_equals_the_file(
        client, scene, reference):
    data = rioxarray.open_rasterio(scene, chunks={"band": 1, "y": TILE, "x": TILE})
    data.attrs["campaign"] = "test"
    out = despeckle_dataarray(data, method="kuan", looks=1)
    assert isinstance(out.data, dask.array.Array)  # lazy: nothing computed yet
    assert out.dims == data.dims and out.shape == data.shape and out.dtype == np.float32
    for name, coord in data.coords.items():
        xr.testing.assert_identical(out.coords[name], coord)
    assert out.rio.crs == data.rio.crs and out.rio.transform() == data.rio.transform()
    assert out.attrs["campaign"] == "test" and out.attrs["MISSION"] == "S1A"
    assert out.attrs["long_name"] == "amplitude (despeckled)" and np.isnan(out.attrs["_FillValue"])
    with rasterio.open(reference) as ref:
        written = {k: v for k, v in ref.tags().items() if k.startswith("SARDESPECKLE_")}
    assert {k: v for k, v in out.attrs.items() if k.startswith("SARDESPECKLE_")} == written
    values = client.compute(out.data).result()[0]  # on the cluster, asked for explicitly
    expected = pixels(reference)
    masked = expected == 0.0
    np.testing.assert_array_equal(np.isnan(values), masked)
    np.testing.assert_array_equal(values[~masked], expected[~masked])


def test_cli_scheduler_runs_on_the_cluster(client, scene, reference, tmp_path, capsys):
    out = tmp_path / "cli.tif"
    code = main(["run", str(scene), "-o", str(out), "-m", "kuan", "--looks", "1", "--tile",
                 str(TILE), "--scheduler", client.scheduler.address])
    assert code == 0, capsys.readouterr().err
    assert "2 Dask worker(s)" in capsys.readouterr().err
    np.testing.assert_array_equal(pixels(out), pixels(reference))


def test_method_is_built_once_per_worker_process(client, scene, tmp_path):
    # After the runs above (file, DataArray, CLI) and this one: 36 kuan tasks on 2 workers.
    despeckle_file(scene, tmp_path / "again.tif", client=client, method="kuan", looks=1,
                   tile=TILE)
    builds = client.run(cache_info)
    key = 'kuan looks=1 {"window_size": 7}'
    counts = [info[key] for info in builds.values() if key in info]
    assert counts and all(count == 1 for count in counts), builds
    assert all(count == 1 for info in builds.values() for count in info.values()), builds


def test_killed_worker_does_not_corrupt_the_output(client, scene, reference, tmp_path):
    pids = client.run(os.getpid)
    victim = next(iter(pids.values()))
    killed = []

    def kill_once(done, total):
        if not killed:
            os.kill(victim, signal.SIGKILL)
            killed.append(done)

    out = tmp_path / "survived.tif"
    despeckle_file(scene, out, client=client, method="kuan", looks=1, tile=TILE,
                   progress=kill_once)
    assert killed == [1]
    np.testing.assert_array_equal(pixels(out), pixels(reference))
    assert leftovers(tmp_path) == []
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it for the other tests
    assert victim not in client.run(os.getpid).values()


def test_failure_on_a_worker_leaves_no_output(client, scene, tmp_path):
    moved = tmp_path / "scene.tif"
    moved.write_bytes(scene.read_bytes())
    gone = tmp_path / "gone.tif"

    def lose_the_input(done, total):
        if moved.exists():
            moved.rename(gone)

    out = tmp_path / "never.tif"
    with pytest.raises(InputFileError, match="readable by every worker"):
        despeckle_file(moved, out, client=client, method="kuan", looks=1, tile=TILE,
                       progress=lose_the_input)
    assert not out.exists() and leftovers(tmp_path) == []


def test_an_unreadable_part_of_the_input_is_a_clear_error_not_an_internal_one(
        client, scene, tmp_path, capsys):
    # A truncated file opens (its header is whole) but its last tiles fail to read: the
    # InputFileError, raised from rasterio's error, reaches the user as itself, with GDAL's
    # reason (here from the plan's read of the central window, before any worker starts;
    # from a worker it adds that every worker must read the input at the same path).
    from rasterio.shutil import copy as copy_raster

    cog, cut = tmp_path / "cog.tif", tmp_path / "cut.tif"  # a COG: its header comes first
    copy_raster(scene, cog, driver="COG", compress="DEFLATE", blocksize=256)
    data = cog.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.7)])
    cog.unlink()
    out = tmp_path / "never.tif"
    with pytest.raises(InputFileError, match="cannot read .*cut.tif.*(TIFFRead|IReadBlock)|"
                                             "readable by every worker") as error:
        despeckle_file(cut, out, client=client, method="kuan", looks=1, tile=TILE)
    assert "cut.tif" in str(error.value)
    assert not out.exists() and leftovers(tmp_path) == []
    address = client.scheduler.address
    assert main(["run", str(cut), "-o", str(out), "-m", "kuan", "--looks", "1", "--tile",
                 str(TILE), "--scheduler", address, "-q"]) == 1
    err = capsys.readouterr().err
    assert "sardespeckle: error: " in err and "internal error" not in err


@pytest.mark.parametrize("delay", [0.3, 2.5])  # the cluster starting; the workers busy
def test_ctrl_c_with_local_workers_prints_one_line(tmp_path, delay):
    # A terminal's Ctrl-C reaches the whole process group, the local workers included: once
    # up they must leave the interrupt to the command (one line, exit 130), not print
    # tracebacks, and an interrupt while the cluster starts must not be lost.
    big = write_scene(tmp_path / "big.tif", speckled_amplitude((3072, 3072), seed=4))
    out = tmp_path / "out.tif"
    command = [sys.executable, "-c", "import sys; from sardespeckle.cli.main import main; "
               "sys.exit(main())", "run", str(big), "-o", str(out),
               # a slow filter (about 9 s on two workers), still busy when interrupted
               "-m", "median", "-p", "window_size=11", "--looks", "1", "--tile", "256",
               "--workers", "2", "-q"]
    process = launch_in_own_session(command)
    deadline = time.monotonic() + 120
    while not leftovers(tmp_path) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be interrupted"
    time.sleep(delay)
    os.killpg(process.pid, signal.SIGINT)
    err = process.communicate(timeout=60)[1]
    assert process.returncode == 130, err
    assert "sardespeckle: interrupted; no output was written" in err  # maybe mid-line
    if delay > 2:  # the workers are up: they leave it to the command (while they start, they
        assert err.strip().splitlines() == [  # and Dask's clean-up may still print tracebacks)
            "sardespeckle: interrupted; no output was written"], err
    assert not out.exists() and leftovers(tmp_path) == []


def worker_processes(parent: int) -> list[int]:
    """Pids of the multiprocessing children of ``parent`` (Dask's worker processes), from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                spawned = b"spawn_main" in cmdline.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and spawned:
            found.append(int(entry))
    return found


def launch_in_own_session(command, env=None) -> subprocess.Popen:
    """The command in a process group of its own, with SIGINT as a terminal leaves it (a test
    run started in the background ignores SIGINT, and its children would inherit that)."""
    return subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_a_worker_process(process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while (not worker_processes(process.pid) and process.poll() is None
           and time.monotonic() < deadline):
        time.sleep(0.005)
    assert process.poll() is None, "the run ended before its workers were seen"


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="finds the worker processes in /proc")
@pytest.mark.parametrize("delay", [0.0, 0.15])
def test_ctrl_c_while_local_workers_start_prints_one_line(tmp_path, delay):
    # The window the test above cannot reach: the worker processes still importing. Each
    # used to print its KeyboardInterrupt traceback there; now they are born with SIGINT
    # blocked (scale.cluster.quiet_loop) and the command alone answers, once.
    scene = write_scene(tmp_path / "scene.tif", speckled_amplitude((512, 512), seed=5))
    out = tmp_path / "out.tif"
    command = [sys.executable, "-c", "import sys; from sardespeckle.cli.main import main; "
               "sys.exit(main())", "run", str(scene), "-o", str(out), "-m", "boxcar",
               "--looks", "1", "--workers", "2"]
    process = launch_in_own_session(command)
    wait_for_a_worker_process(process)
    time.sleep(delay)  # 0: the first worker process just spawned, still importing
    os.killpg(process.pid, signal.SIGINT)
    err = process.communicate(timeout=60)[1]
    assert process.returncode == 130, err
    assert err.strip().splitlines() == ["sardespeckle: interrupted; no output was written"], err
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="finds the worker processes in /proc")
def test_ctrl_c_while_slow_workers_start_is_answered_at_once(tmp_path):
    # Workers that take long to start (a slow import, e.g. from a network file system): the
    # command must not wait for them to answer a Ctrl-C, and they must not print tracebacks.
    (tmp_path / "slow").mkdir()
    (tmp_path / "slow" / "sitecustomize.py").write_text(
        "import time\n"
        "with open('/proc/self/cmdline', 'rb') as cmdline:\n"
        "    if b'spawn_main' in cmdline.read():\n"
        "        time.sleep(30)\n")
    scene = write_scene(tmp_path / "scene.tif", speckled_amplitude((256, 256), seed=6))
    command = [sys.executable, "-c", "import sys; from sardespeckle.cli.main import main; "
               "sys.exit(main())", "run", str(scene), "-o", str(tmp_path / "out.tif"),
               "-m", "boxcar", "--looks", "1", "--workers", "1"]
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "slow"))
    process = launch_in_own_session(command, env=env)
    wait_for_a_worker_process(process)
    time.sleep(1.0)  # the worker asleep in its start-up
    os.killpg(process.pid, signal.SIGINT)
    sent = time.monotonic()
    err = process.communicate(timeout=60)[1]
    assert time.monotonic() - sent < 8, "the command waited for the workers to start"
    assert process.returncode == 130, err
    assert err.strip().splitlines() == ["sardespeckle: interrupted; no output was written"], err


def test_a_local_cluster_leaves_the_callers_signal_mask_as_it_was():
    # Starting Python's resource tracker unblocks SIGINT and SIGTERM in its thread: the
    # caller's own mask must come back whole.
    from sardespeckle.scale import dask_client

    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        with dask_client(workers=1) as client:
            inside = signal.pthread_sigmask(signal.SIG_BLOCK, set())
            assert client.submit(sum, [1, 2]).result() == 3
        after = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
    assert signal.SIGTERM in inside and signal.SIGTERM in after
    assert signal.SIGINT not in inside and signal.SIGINT not in after


def test_cli_workers_starts_a_local_cluster(tmp_path, capsys):
    small = write_scene(tmp_path / "small.tif", speckled_amplitude((320, 320), seed=2))
    out = tmp_path / "small_out.tif"
    code = main(["run", str(small), "-o", str(out), "-m", "boxcar", "--looks", "1", "--tile",
                 "256", "--workers", "1"])
    assert code == 0, capsys.readouterr().err
    assert "1 Dask worker(s), 1 thread(s)" in capsys.readouterr().err
    expected = tmp_path / "expected.tif"
    despeckle_file(small, expected, method="boxcar", looks=1, tile=256)
    np.testing.assert_array_equal(pixels(out), pixels(expected))


@pytest.mark.parametrize("address,code,message", [
    ("not an address", 2, "expected a Dask scheduler address"),
    ("foo://host:1", 2, "unknown address scheme"),
    ("tcp://127.0.0.1:99999", 2, "port 99999 is outside 1..65535"),
    ("tcp://127.0.0.1:1", 1, "cannot reach the Dask scheduler at tcp://127.0.0.1:1"),
])
def test_cli_bad_scheduler_address(scene, tmp_path, capsys, address, code, message):
    out = tmp_path / "o.tif"
    assert main(["run", str(scene), "-o", str(out), "--looks", "1", "--scheduler", address]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("extra", [["--workers", "0"], ["--workers", "2", "--scheduler", "x:1"]])
def test_cli_bad_cluster_options_are_usage_errors(scene, tmp_path, capsys, extra):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(scene), "-o", str(tmp_path / "o.tif"), *extra])
    assert exit_info.value.code == 2


def test_scheduler_without_workers_is_reported():
    with distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp://",
                                  dashboard_address=":0",
                                  silence_logs=logging.ERROR) as empty:
        with pytest.raises(ClusterError, match="has no workers"), \
                pytest.warns(UserWarning, match="has no worker yet; waiting up to 0.5 s"):
            with dask_client(scheduler=empty.scheduler_address, workers_timeout=0.5):
                pass


def test_sigterm_while_waiting_for_a_worker_prints_two_lines(scene, tmp_path):
    with distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp://",
                                  dashboard_address=":0",
                                  silence_logs=logging.ERROR) as empty:
        command = [sys.executable, "-c", "import sys; from sardespeckle.cli.main import main; "
                   "sys.exit(main())", "run", str(scene), "-o", str(tmp_path / "out.tif"),
                   "-m", "lee", "--looks", "1", "--scheduler", empty.scheduler_address, "-q"]
        process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        first = process.stderr.readline()  # the wait is said at once
        time.sleep(2)  # well into the wait
        process.send_signal(signal.SIGTERM)
        rest = process.communicate(timeout=60)[1]
    assert process.returncode == 143
    assert first.startswith("warning: the Dask scheduler at tcp://") and "no worker yet" in first
    assert rest.strip().splitlines() == ["sardespeckle: terminated; no output was written"]
    assert not (tmp_path / "out.tif").exists() and leftovers(tmp_path) == []


def test_missing_dask_is_a_clear_error(monkeypatch):
    from sardespeckle.scale.cluster import require_dask

    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(SardespeckleError, match=r"pip install 'sardespeckle\[dask\]'"):
        require_dask()


def test_importing_and_help_do_not_import_dask_or_xarray():
    code = ("import sys, sardespeckle, sardespeckle.scale\n"
            "from sardespeckle.cli.main import main\n"
            "try:\n    main(['run', '--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "heavy = [m for m in ('dask', 'distributed', 'xarray', 'torch') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "--scheduler" in result.stdout and "--workers" in result.stdout


# --- the xarray API, every registered method (synchronous scheduler: no cluster needed) -------


def random_weights_file(folder: Path) -> Path:
    """A small DnCNN with seeded random weights (as in the conformance suite)."""
    import torch

    from sardespeckle.models import DnCNN, save_weights

    path = folder / "random-dncnn.pt"
    torch.manual_seed(0)
    save_weights(DnCNN(depth=5, features=8).eval(), path, name="random-dncnn",
                 training_data="none (random)")
    return path


def method_params(name: str, folder: Path) -> dict:
    spec = get_method(name)
    if "denoiser" in spec.defaults:  # MuLoG: a deterministic denoiser (BM3D is not)
        from sardespeckle.mulog import gaussian_filter_denoiser

        return {"denoiser": gaussian_filter_denoiser(width=1.5)}
    if "weights" in spec.defaults:
        return {"weights": str(random_weights_file(folder)), "precision": "fp32",
                "device": "cpu", "decorrelate": "none"}
    return {}


@pytest.mark.parametrize("name", METHODS)
def test_dataarray_equals_numpy_path_for_every_method(name, tmp_path):
    rng = np.random.default_rng(5)
    intensity = (100.0 * rng.exponential(1.0, (96, 80))).astype(np.float32)
    intensity[30:36, 10:70] = np.nan
    intensity[70, 5] = 0.0
    params = method_params(name, tmp_path)
    data = xr.DataArray(intensity, dims=("y", "x"),
                        coords={"y": np.arange(96) * -10.0, "x": np.arange(80) * 10.0},
                        attrs={"units": "linear power", "site": "synthetic"})
    out = despeckle_dataarray(data.chunk({"y": 48, "x": 40}), method=name, looks=1,
                              kind="intensity", params=params)
    chunks = out.data.chunks
    # Chunks narrower than the overlap (2·halo) are merged; the engine gets the same tiles.
    tile = 48 if chunks == ((48, 48), (40, 40)) else None
    if tile is None:
        assert chunks == ((96,), (80,))
    expected = despeckle(intensity, method=name, looks=1, kind="intensity", tile=tile,
                         params=params)
    result = out.compute(scheduler="sync").values
    assert result.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(result), np.isnan(expected))
    exact = get_method(name).family != "cnn"  # a network's batch of 1 vs 4 may round differently
    np.testing.assert_allclose(result, expected, rtol=0 if exact else 1e-5, equal_nan=True)
    assert out.attrs["site"] == "synthetic" and "units" not in out.attrs
    assert out.attrs["SARDESPECKLE_METHOD"] == name


@pytest.mark.parametrize("data,message", [
    (np.ones((8, 8), np.float32), "expected an xarray.DataArray"),
    (xr.DataArray(np.ones((2, 8, 8), np.float32), dims=("band", "y", "x")), "select one band"),
    (xr.DataArray(np.ones((8, 8), np.float32), dims=("y", "x"), attrs={"scale_factor": 0.5}),
     "mask_and_scale=True"),
    (xr.DataArray(np.ones((8, 8), np.float32), dims=("y", "x")), "cannot tell amplitude"),
])
def test_dataarray_bad_inputs(data, message):
    with pytest.raises(InvalidInputError, match=message):
        despeckle_dataarray(data, looks=1)


# --- batch mode (single process) ---------------------------------------------------------------


@pytest.fixture
def scenes(tmp_path) -> Path:
    folder = tmp_path / "scenes"
    folder.mkdir()
    for index, name in enumerate(("a.tif", "b.tif", "c.tif")):
        write_scene(folder / name, speckled_amplitude((300, 280), seed=10 + index))
    return folder


def run_batch(*argv) -> int:
    return main(["run", *map(str, argv), "-m", "boxcar", "--looks", "1"])


def test_batch_writes_every_scene_then_skips_existing_unless_overwrite(scenes, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_batch(scenes, "-o", out) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.tif", "b.tif", "c.tif"]
    for name in ("a.tif", "b.tif", "c.tif"):
        expected = tmp_path / f"expected_{name}"
        despeckle_file(scenes / name, expected, method="boxcar", looks=1)
        np.testing.assert_array_equal(pixels(out / name), pixels(expected))
    assert "3 written, 0 skipped" in capsys.readouterr().err

    stamp = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    time.sleep(0.01)
    assert run_batch(scenes / "*.tif", "-o", out) == 0
    assert "0 written, 3 skipped" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamp

    assert run_batch(scenes / "a.tif", scenes / "b.tif", "-o", out, "--overwrite") == 0
    assert "2 written, 0 skipped" in capsys.readouterr().err
    after = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert after["a.tif"] != stamp["a.tif"] and after["c.tif"] == stamp["c.tif"]


def test_batch_bad_scene_does_not_stop_the_others(scenes, tmp_path, capsys):
    (scenes / "b.tif").write_bytes(b"not a tiff")
    out = tmp_path / "out"
    assert run_batch(scenes, "-o", out, "--quiet") == 1
    err = capsys.readouterr().err
    assert "b.tif" in err and "2 written, 0 skipped, 1 failed" in err
    error_line = next(line for line in err.splitlines() if line.startswith("sardespeckle: error:"))
    bad = str(scenes / "b.tif")
    assert error_line.startswith(f"sardespeckle: error: cannot read {bad}"), error_line  # no prefix
    assert sorted(p.name for p in out.iterdir()) == ["a.tif", "c.tif"]


def test_batch_on_a_cluster(client, scenes, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_batch(scenes, "-o", out, "--scheduler", client.scheduler.address) == 0
    for name in ("a.tif", "b.tif", "c.tif"):
        expected = tmp_path / f"expected_{name}"
        despeckle_file(scenes / name, expected, method="boxcar", looks=1)
        np.testing.assert_array_equal(pixels(out / name), pixels(expected))


@pytest.mark.parametrize("case,message,code", [
    # no input at all is a missing input, exit 1 as for a missing file; the rest are usage
    ("no-match", "matching", 1),
    ("empty-folder", "found none", 1),
    ("same-folder", "holds the input", 2),
    ("preview", "single input with --preview", 2),
    ("bad-method", "unknown method", 2),
])
def test_batch_usage_errors(scenes, tmp_path, capsys, case, message, code):
    (tmp_path / "empty").mkdir()
    argv = {
        "no-match": ["run", str(scenes / "*.nothing.tif"), "-o", str(tmp_path / "o")],
        "empty-folder": ["run", str(tmp_path / "empty"), "-o", str(tmp_path / "o")],
        "same-folder": ["run", str(scenes), "-o", str(scenes)],
        "preview": ["run", str(scenes), "-o", str(tmp_path / "o"), "--preview", "p.png"],
        "bad-method": ["run", str(scenes), "-o", str(tmp_path / "o"), "-m", "nope"],
    }[case]
    assert main([*argv, "--looks", "1"]) == code
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in scenes.iterdir()) == ["a.tif", "b.tif", "c.tif"]


def test_small_chunks_grow_to_the_overlap_depth_not_into_one_chunk():
    from sardespeckle.scale.arrays import _merge_small

    merged = _merge_small((100,) * 20 + (48,), 128)
    assert sum(merged) == 2048 and len(merged) == 10
    assert all(size >= 128 for size in merged) and max(merged) <= 248
    assert _merge_small((300, 50, 300), 128) == (300, 350)
    assert _merge_small((512, 512), 128) == (512, 512)
    assert _merge_small((50,), 128) == (50,)


def test_nodata_and_missing_value_attributes_mask_like_fill_value():
    xr = pytest.importorskip("xarray")
    from sardespeckle.scale.arrays import despeckle_dataarray

    values = (np.random.default_rng(0).exponential(1.0, (64, 64)) * 100 + 1).astype(np.uint16)
    values[:10] = 65535
    for key in ("_FillValue", "nodata", "missing_value"):
        out = despeckle_dataarray(xr.DataArray(values, dims=("y", "x"), attrs={key: 65535}),
                                  method="kuan", looks=1, kind="amplitude").values
        assert np.isnan(out[:10]).all() and np.nanmax(out[12:]) < 2000, key


def test_a_lazy_array_of_a_given_kind_and_looks_computes_nothing_before_compute():
    xr = pytest.importorskip("xarray")
    da = pytest.importorskip("dask.array")
    from sardespeckle.scale.arrays import despeckle_dataarray

    computed = []

    def counted(block):
        if block.size:  # dask calls it once on an empty array to learn the output's type
            computed.append(block.size)
        return block

    values = (np.random.default_rng(0).exponential(1.0, (512, 512)) * 100).astype(np.float32)
    lazy = da.from_array(values, chunks=256).map_blocks(counted, dtype=np.float32)
    out = despeckle_dataarray(xr.DataArray(lazy, dims=("y", "x")), method="kuan", looks=1,
                              kind="amplitude")
    assert computed == []
    out.compute(scheduler="synchronous")  # in this process, the counter's
    assert sum(computed) == values.size  # every chunk once


def test_the_dataarray_entry_warns_what_despeckle_warns():
    xr = pytest.importorskip("xarray")
    from sardespeckle.api import despeckle
    from sardespeckle.scale.arrays import despeckle_dataarray

    values = np.random.default_rng(0).exponential(100.0, (64, 64)).astype(np.float32)
    values[0, :20] = -1.0  # 0.5 %: σ⁰ after thermal-noise removal, nodata in the output
    for call in (lambda: despeckle(values, method="boxcar", looks=1, kind="intensity"),
                 lambda: despeckle_dataarray(xr.DataArray(values, dims=("y", "x")),
                                             method="boxcar", looks=1, kind="intensity")):
        with pytest.warns(UserWarning, match=r"0.49 % of the pixels are negative .* dB data need "
                                             r"kind='db' \(CLI --kind db\)"):
            call()
    # complex data given looks: both entry points say SLC input is one look
    phase = np.random.default_rng(2).uniform(0, 2 * np.pi, values.shape)
    slc = (np.sqrt(np.abs(values)) * np.exp(1j * phase)).astype(np.complex64)
    for call in (lambda: despeckle(slc, method="boxcar", looks=4),
                 lambda: despeckle_dataarray(xr.DataArray(slc, dims=("y", "x")),
                                             method="boxcar", looks=4)):
        with pytest.warns(UserWarning, match=r"complex \(SLC\) input has single-look speckle, "
                                             r"but runs as 4 looks"):
            call()
    # the information notes (decorrelation chosen, weights picked) are not warnings, nor is
    # a nodata value that a dB file output could not keep (an array's fill is always NaN)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        despeckle_dataarray(xr.DataArray(np.abs(values), dims=("y", "x")), method="boxcar",
                            looks=1, kind="intensity")
        despeckle_dataarray(xr.DataArray(np.abs(values), dims=("y", "x"),
                                         attrs={"_FillValue": 0.0}),
                            method="boxcar", looks=1, kind="intensity", output_kind="db")


def test_a_cluster_interrupted_while_it_starts_is_closed_quietly(monkeypatch):
    from distributed.deploy.spec import SpecCluster

    from sardespeckle.scale import cluster as cluster_module

    started = []
    real_init = distributed.LocalCluster.__init__

    def interrupted(self, *args, **kwargs):  # the Ctrl-C that strikes inside the constructor
        started.append(self)
        real_init(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(distributed.LocalCluster, "__init__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cluster_module.start_local_cluster(n_workers=0, processes=False,
                                           dashboard_address=":0", silence_logs=logging.ERROR)
    (cluster,) = started
    assert cluster not in SpecCluster._instances  # Dask's exit-time close will not see it
    assert cluster.status.name == "closed"
