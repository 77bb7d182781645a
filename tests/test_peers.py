"""Peers run in another Python environment: the worker script, the adapter's checks, the CLI.

The "other environment" is this interpreter with a fake ``mulog`` package on the child's
PYTHONPATH: the same entry points as the real package, a 3 × 3 box mean instead of MuLoG.
"""

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from sardespeckle.cli.main import main
from sardespeckle.errors import UsageError
from sardespeckle.evaluation import (
    PEERS,
    measure_speed,
    resolve_candidates,
    run_evaluation,
    write_report,
)
from sardespeckle.evaluation.peers import PeerError, check_python, peer_status

FAKE_ALGORITHM = '''
import os
import sys
from pathlib import Path
import time

import numpy as np


def run_mulog(sar_image, number_looks, denoiser):
    assert "sardespeckle" not in sys.modules, "the worker imported sardespeckle"
    assert sar_image.dtype == np.float64 and sar_image.ndim == 2
    print("fake mulog: ADMM iteration 1 of 6")  # chatter that must not reach the JSON answer
    log = os.environ.get("FAKE_MULOG_LOG")
    if log:
        with open(log, "a") as calls:
            calls.write(f"{os.getpid()}\\n")
    mode = os.environ.get("FAKE_MULOG_MODE", "smooth")
    if mode == "crash":
        raise RuntimeError("fake mulog exploded")
    if mode == "sleep":
        time.sleep(60)
    if mode == "copy":
        return sar_image
    padded = np.pad(sar_image, 1, mode="edge")
    rows, cols = sar_image.shape
    mean = sum(padded[i:i + rows, j:j + cols] for i in range(3) for j in range(3)) / 9.0
    if mode == "shape":
        return mean[:-1]
    if mode == "negative" or (mode == "negative_if_bright" and sar_image.max() > 100):
        return -mean
    return denoiser(mean, 1.0)
'''

FAKE_DENOISERS = '''
def run_autoscaled_bm3d(noisy_stack, sig):
    return noisy_stack
'''


@pytest.fixture
def fake_mulog(tmp_path, monkeypatch):
    """A fake ``mulog`` 0.0.0+fake on the PYTHONPATH of child processes; returns the call log."""
    site = tmp_path / "fake-site"
    package = site / "mulog"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "mulog_algorithm.py").write_text(FAKE_ALGORITHM)
    (package / "gaussian_denoisers.py").write_text(FAKE_DENOISERS)
    metadata = site / "mulog-0.0.0+fake.dist-info"
    metadata.mkdir()
    (metadata / "METADATA").write_text("Metadata-Version: 2.1\nName: mulog\nVersion: 0.0.0+fake\n")
    log = tmp_path / "calls.log"
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.setenv("FAKE_MULOG_LOG", str(log))
    monkeypatch.delenv("FAKE_MULOG_MODE", raising=False)
    return log


@pytest.fixture
def not_python(tmp_path):
    """An executable that is not a Python interpreter: it complains and exits with 3."""
    script = tmp_path / "not-python"
    script.write_text("#!/bin/sh\necho 'this is not python' >&2\nexit 3\n")
    script.chmod(0o755)
    return str(script)


def box_mean(image):
    return ndimage.uniform_filter(image.astype(np.float64), 3, mode="nearest")


MULOG = PEERS["mulog-bm3d"]


def test_a_batch_runs_in_one_child_with_the_peer_entry_points(fake_mulog):
    rng = np.random.default_rng(1)
    images = [rng.gamma(1.0, 50.0, (40, 56)).astype(np.float32),
              rng.gamma(1.0, 50.0, (33, 21)).astype(np.float32)]
    run = MULOG.run_batch(images, looks=1, python=sys.executable)
    assert run.python == os.path.abspath(sys.executable)
    for image, out in zip(images, run.outputs):
        assert out.dtype == np.float32 and out.shape == image.shape
        np.testing.assert_allclose(out, box_mean(image), rtol=1e-5)
    assert len(run.seconds) == len(run.cpu_seconds) == 2
    assert all(seconds >= 0 for seconds in [*run.seconds, *run.cpu_seconds])
    assert run.peak_memory_mib == [None, None]
    assert len(set(fake_mulog.read_text().split())) == 1  # one process for both images
    single = MULOG.run(images[1], looks=1, python=sys.executable)
    np.testing.assert_allclose(single, run.outputs[1])


def test_memory_is_measured_in_the_child(fake_mulog):
    image = np.full((64, 64), 5.0, np.float32)
    run = MULOG.run_batch([image], looks=1, python=sys.executable, memory=True)
    if os.path.exists("/proc/self/status"):
        assert run.peak_memory_mib[0] is not None and run.peak_memory_mib[0] >= 0


def test_status_says_where_the_peer_runs_and_its_versions(fake_mulog):
    status = peer_status({"mulog-bm3d": sys.executable})
    assert status["mulog-bm3d"] == (
        f"runs in {os.path.abspath(sys.executable)} (mulog 0.0.0+fake, Python "
        f"{sys.version.split()[0]}, numpy {np.__version__})"
    )
    assert status["sar2sar"] == PEERS["sar2sar"].status()
    assert peer_status({"peer:mulog-bm3d": "/no/such/python"})["mulog-bm3d"].startswith(
        "cannot run in /no/such/python: expected a Python interpreter for peer 'mulog-bm3d'")


def test_bad_interpreter_paths_are_usage_errors(tmp_path):
    image = np.ones((8, 8), np.float32)
    with pytest.raises(UsageError, match=r"no such file; hint: python -m venv"):
        MULOG.run(image, looks=1, python=tmp_path / "missing" / "python")
    with pytest.raises(UsageError, match="got the folder .*give its bin/python"):
        MULOG.run(image, looks=1, python=tmp_path)
    plain = tmp_path / "python"
    plain.write_text("")
    plain.chmod(0o644)
    with pytest.raises(UsageError, match="which is not executable"):
        MULOG.check(plain)
    with pytest.raises(UsageError, match="not a file nor a command on PATH"):
        check_python("no-such-python-3.99")
    assert check_python("sh").endswith("/sh")


def test_an_interpreter_that_is_not_python_or_lacks_the_package_fails_clearly(not_python,
                                                                            monkeypatch):
    with pytest.raises(PeerError, match="failed with exit status 3; stderr: this is not python"):
        MULOG.check(not_python)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    with pytest.raises(PeerError, match="ModuleNotFoundError: No module named 'mulog'"):
        MULOG.check(sys.executable)


@pytest.mark.parametrize(("mode", "message"), [
    ("crash", r"failed with exit status 1; stderr: .*RuntimeError: fake mulog exploded"),
    ("shape", r"returned shape \(15, 16\) for its input, expected \(16, 16\)"),
    ("negative", r"returned 256 non-finite or non-positive values for its input"),
])
def test_a_failing_child_or_a_wrong_output_is_a_peer_error(fake_mulog, monkeypatch, mode,
                                                           message):
    monkeypatch.setenv("FAKE_MULOG_MODE", mode)
    with pytest.raises(PeerError, match=message):
        MULOG.run(np.full((16, 16), 3.0, np.float32), looks=1, python=sys.executable)


def test_a_child_that_hangs_is_stopped(fake_mulog, monkeypatch):
    monkeypatch.setenv("FAKE_MULOG_MODE", "sleep")
    with pytest.raises(PeerError, match=r"timed out after 2 s"):
        MULOG.run_batch([np.ones((8, 8), np.float32)], looks=1, python=sys.executable,
                        timeout=2)


def test_masked_input_pixels_may_come_back_as_anything(fake_mulog, monkeypatch):
    image = np.full((12, 12), 4.0, np.float32)
    image[0, 0] = np.nan  # filled before the peer sees it: its box mean cannot spread a NaN
    out = MULOG.run(image, looks=1, python=sys.executable)
    np.testing.assert_allclose(out, 4.0, rtol=1e-6)
    monkeypatch.setenv("FAKE_MULOG_MODE", "copy")
    image[5, 5] = 0.0
    out = MULOG.run(image, looks=1, python=sys.executable)
    valid = np.isfinite(image) & (image > 0)
    np.testing.assert_array_equal(out[valid], image[valid])
    assert out[0, 0] == out[5, 5] == 4.0  # what the peer made of the median it was given


def test_the_worker_keeps_the_peer_chatter_off_its_answer(fake_mulog, tmp_path):
    import subprocess

    from sardespeckle.evaluation.peers import WORKER

    source, target = tmp_path / "in.npy", tmp_path / "out.npy"
    np.save(source, np.full((8, 8), 2.0, np.float32))
    request = {"mode": "run", "peer": "mulog-bm3d", "looks": 1, "inputs": [str(source)],
               "outputs": [str(target)]}
    completed = subprocess.run([sys.executable, str(WORKER)], input=json.dumps(request),
                               capture_output=True, text=True, check=True)
    assert set(json.loads(completed.stdout)) == {"seconds", "cpu_seconds", "peak_memory_mib"}
    assert len(completed.stdout.splitlines()) == 1
    assert "fake mulog: ADMM iteration 1 of 6" in completed.stderr
    assert np.load(target).shape == (8, 8)


def test_an_evaluation_batches_a_peer_per_protocol_and_reports_where_it_ran(
        fake_mulog, references, tmp_path):
    result = run_evaluation(references=references, kind="amplitude", methods=["boxcar"],
                            peers=["mulog-bm3d"], peer_python={"mulog-bm3d": sys.executable},
                            looks=1, draws=2, seed=0, speed_size=0, crop=32)
    full = result.full_reference
    assert full.columns == ["noisy", "boxcar", "peer:mulog-bm3d"]
    psnr = full.values["psnr"]
    assert np.all(np.isfinite(psnr)) and np.all(psnr[:, 2] > psnr[:, 0] + 2)
    calls = fake_mulog.read_text().split()
    assert len(calls) == 4 and len(set(calls)) == 1  # 2 references × 2 draws, one child
    peer = result.candidates[-1]
    assert peer.python == os.path.abspath(sys.executable)
    assert peer.parameters["version"] == "0.0.0+fake"
    assert result.peers["mulog-bm3d"].startswith(f"runs in {peer.python} (mulog 0.0.0+fake")
    paths = write_report(result, tmp_path / "report")
    markdown = Path(paths["markdown"]).read_text()
    assert f"| mulog-bm3d | runs in {peer.python} (mulog 0.0.0+fake" in markdown
    assert f"--peer-python mulog-bm3d={peer.python}" in markdown
    assert json.loads(Path(paths["json"]).read_text())["settings"]["peer_python"] == {
        "mulog-bm3d": peer.python}


def test_speed_of_a_peer_elsewhere_comes_from_its_child(fake_mulog):
    (peer,) = resolve_candidates(["boxcar"], looks=1, peers=["mulog-bm3d"],
                                 peer_python={"mulog-bm3d": sys.executable})[0][1:]
    (speed,) = measure_speed([peer], size=64, memory="subprocess")
    # One child for the warm-up and 3 timed runs, one for the warm-up and the memory run.
    calls = fake_mulog.read_text().split()
    assert len(calls) == 4 + 2 and len(set(calls[:4])) == 1 and len(set(calls)) == 2
    assert speed.runs == 3 and speed.rows == 64 and speed.cpu_seconds >= 0
    assert "timed by its child process, start-up and imports excluded" in speed.note
    if os.path.exists("/proc/self/status"):
        assert speed.peak_memory_mib is not None and speed.peak_memory_mib >= 0
    (untraced,) = measure_speed([peer], size=64, memory="tracemalloc")
    assert untraced.peak_memory_mib is None and "only with the subprocess probe" in untraced.note


def test_a_peer_that_fails_in_its_child_is_noted_not_fatal(fake_mulog, references, monkeypatch):
    monkeypatch.setenv("FAKE_MULOG_MODE", "crash")
    result = run_evaluation(references=references, kind="amplitude", methods=["boxcar"],
                            peers="auto", peer_python={"mulog-bm3d": sys.executable},
                            draws=1, speed_size=0, crop=32)
    assert result.full_reference.columns[-1] == "peer:mulog-bm3d"
    assert np.all(np.isnan(result.full_reference.values["psnr"][:, -1]))
    failed = [n for n in result.notes if "peer:mulog-bm3d not evaluated" in n]
    assert len(failed) == 2 and "fake mulog exploded" in failed[0]


def test_interpreters_for_peers_not_evaluated_or_unknown_are_refused(fake_mulog):
    with pytest.raises(UsageError, match="'mulog-bm3d', which is not evaluated"):
        resolve_candidates(["boxcar"], looks=1, peers="none",
                           peer_python={"mulog-bm3d": sys.executable})
    with pytest.raises(UsageError, match="unknown peer 'bm3d'"):
        resolve_candidates(["boxcar"], looks=1, peer_python={"bm3d": sys.executable})


def test_cli_peer_python(fake_mulog, references, tmp_path, not_python, capsys):
    base = ["evaluate", "--references", *references, "--kind", "amplitude", "--methods",
            "boxcar", "--draws", "1", "--speed-size", "0", "--crop", "32", "-q"]
    peer = ["--peers", "mulog-bm3d"]
    assert main([*base, *peer, "--peer-python", f"mulog-bm3d={sys.executable}",
                 "--out", str(tmp_path / "ok")]) == 0
    data = json.loads((tmp_path / "ok" / "results.json").read_text())
    assert [c["name"] for c in data["candidates"]] == ["boxcar", "peer:mulog-bm3d"]
    assert data["peers"]["mulog-bm3d"].startswith("runs in ")
    capsys.readouterr()

    missing = str(tmp_path / "nowhere" / "python")
    assert main([*base, *peer, "--peer-python", f"mulog-bm3d={missing}",
                 "--out", str(tmp_path / "a")]) == 2
    assert f"got {missing!r}: no such file" in capsys.readouterr().err
    assert main([*base, "--peers", "none", "--peer-python", f"mulog-bm3d={sys.executable}",
                 "--out", str(tmp_path / "b")]) == 2
    assert main([*base, *peer, "--peer-python", f"mulog-bm3d={sys.executable}",
                 "--peer-python", f"mulog-bm3d={sys.executable}", "--out",
                 str(tmp_path / "c")]) == 2
    assert "given twice" in capsys.readouterr().err
    assert main([*base, *peer, "--peer-python", f"mulog-bm3d={not_python}",
                 "--out", str(tmp_path / "d")]) == 1
    assert "this is not python" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main([*base, "--peer-python", "mulog-bm3d", "--out", str(tmp_path / "e")])
    assert exit_info.value.code == 2
    assert not any((tmp_path / name).exists() for name in "abcde")


FAKE_MERLIN = '''
import numpy as np


class MerlinDenoiser:
    calls = []

    def __init__(self, model_name, symetrise, **params):
        self.model_name = model_name

    def denoise_image(self, noisy_image, patch_size, stride_size):
        MerlinDenoiser.calls.append((self.model_name, noisy_image, patch_size, stride_size))
        amplitude = np.hypot(noisy_image[..., 0], noisy_image[..., 1])
        return {"denoised": {"full": 0.5 * amplitude}}
'''


@pytest.fixture
def fake_merlin(tmp_path, monkeypatch):
    package = tmp_path / "fake_dd" / "deepdespeckling" / "merlin"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "merlin_denoiser.py").write_text(FAKE_MERLIN)
    monkeypatch.syspath_prepend(str(tmp_path / "fake_dd"))
    for name in [m for m in sys.modules if m.startswith("deepdespeckling")]:
        monkeypatch.delitem(sys.modules, name)
    yield
    for name in [m for m in sys.modules if m.startswith("deepdespeckling")]:
        sys.modules.pop(name, None)


def test_merlin_peers_feed_a_complex_image_of_the_intensity_and_square_the_amplitude(fake_merlin):
    from deepdespeckling.merlin.merlin_denoiser import MerlinDenoiser

    assert {"merlin-spotlight", "merlin-stripmap", "merlin-s1-tops"} <= set(PEERS)
    rng = np.random.default_rng(0)
    intensity = rng.gamma(1.0, 50.0, (256, 260)).astype(np.float32)
    out = PEERS["merlin-s1-tops"].run(intensity, looks=1)
    model, parts, patch, stride = MerlinDenoiser.calls[-1]
    assert model == "Sentinel-TOPS" and (patch, stride) == (256, 254)
    assert parts.shape == (256, 260, 2)
    # √I·e^(iφ): the parts' modulus is the amplitude, the phase is spread over the circle.
    np.testing.assert_allclose(np.hypot(parts[..., 0], parts[..., 1]), np.sqrt(intensity), rtol=1e-5)
    phase = np.angle(parts[..., 0] + 1j * parts[..., 1])
    assert np.histogram(phase, bins=8, range=(-np.pi, np.pi))[0].min() > 0.1 * phase.size / 8
    np.testing.assert_allclose(out, 0.25 * intensity, rtol=1e-4)  # the fake halves the amplitude
    again = PEERS["merlin-s1-tops"].run(intensity, looks=1)
    np.testing.assert_array_equal(MerlinDenoiser.calls[-1][1], parts)  # seeded phase
    np.testing.assert_array_equal(again, out)
    PEERS["merlin-spotlight"].run(intensity, looks=1)
    assert MerlinDenoiser.calls[-1][0] == "spotlight"
    with pytest.raises(PeerError, match="single-look"):
        PEERS["merlin-stripmap"].run(intensity, looks=2)
    with pytest.raises(PeerError, match="256"):
        PEERS["merlin-stripmap"].run(intensity[:100], looks=1)


def test_one_wrong_output_in_a_batch_voids_only_that_image(fake_mulog, monkeypatch):
    monkeypatch.setenv("FAKE_MULOG_MODE", "negative_if_bright")
    good = np.full((12, 12), 4.0, np.float32)
    bad = np.full((12, 12), 400.0, np.float32)  # the fake returns negative values for it
    run = MULOG.run_batch([good, bad, good], looks=1, python=sys.executable, strict=False)
    assert run.errors[0] is None and run.errors[2] is None
    assert "144 non-finite or non-positive values for image 2 of 3" in run.errors[1]
    assert np.isnan(run.outputs[1]).all()
    np.testing.assert_allclose(run.outputs[0], 4.0, rtol=1e-6)
    with pytest.raises(PeerError, match="image 2 of 3"):
        MULOG.run_batch([good, bad, good], looks=1, python=sys.executable)


def test_invalid_pixels_reach_the_peer_as_the_median_of_the_valid_ones():
    from sardespeckle.evaluation._peer_worker import fill_invalid

    image = np.array([[1.0, 2.0, 0.0], [np.nan, 4.0, -1.0], [np.inf, 8.0, 16.0]], np.float32)
    filled = fill_invalid(image)
    assert filled.dtype == np.float64
    np.testing.assert_array_equal(filled, [[1, 2, 4], [4, 4, 4], [4, 8, 16]])
    assert (fill_invalid(np.zeros((2, 2))) == 1).all()
    assert np.isnan(image[1, 0])  # the caller's array is not touched
