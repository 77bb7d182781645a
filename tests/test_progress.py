"""Progress on standard error: a bar on a terminal, plain timed lines in a log file."""

import io

import numpy as np

from sardespeckle.cli._progress import Progress, duration
from sardespeckle.cli.main import main


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_off_a_terminal_a_line_per_interval_and_a_last_one():
    stream, clock = io.StringIO(), Clock()
    progress = Progress("training", unit="step", stream=stream, terminal=False, interval=60,
                        clock=clock)
    for step in range(1, 101):
        clock.now = step * 2.0  # 2 s a step: 200 s in all
        progress(step, 100, f"loss {1 / step:.4f}")
    progress.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    # the clock starts with the object (t=0: the first step's time counts), then a line at
    # 60 s, 120 s, 180 s, and the last
    assert [line.split(":")[1].split("(")[0].strip() for line in lines] == \
        ["30/100 steps", "60/100 steps", "90/100 steps", "100/100 steps"]
    assert lines[0] == "training: 30/100 steps (30 %), 1 min 0 s elapsed, about 2 min 20 s " \
        "left, loss 0.0333"
    assert lines[-1].startswith("training: 100/100 steps (100 %), 3 min 20 s elapsed, loss")


def test_a_log_that_refuses_a_line_does_not_stop_the_work():
    class Full(io.StringIO):
        def write(self, text):
            raise OSError(28, "No space left on device")

    clock = Clock()
    progress = Progress("despeckling", unit="tile", stream=Full(), terminal=False, interval=1,
                        clock=clock)
    for tile in range(1, 6):
        clock.now = tile * 2.0
        progress(tile, 10)  # a line is due each time: refused once, then not tried again
    progress.close()


def test_a_short_job_off_a_terminal_writes_nothing():
    stream, clock = io.StringIO(), Clock()
    progress = Progress("despeckling", unit="tile", stream=stream, terminal=False, clock=clock)
    for tile in range(1, 41):
        clock.now = tile * 0.5
        progress(tile, 40)
    progress.close()
    assert stream.getvalue() == ""


def test_a_resumed_count_gives_the_rate_of_this_process():
    stream, clock = io.StringIO(), Clock()
    progress = Progress("training", unit="step", initial=900, stream=stream, terminal=False,
                        interval=10, clock=clock)
    progress(900, 1000)
    clock.now = 10.0
    progress(950, 1000)  # 50 steps in 10 s: 50 left take 10 s more, not 900/950 of the time
    assert stream.getvalue() == \
        "training: 950/1000 steps (95 %), 10 s elapsed, about 10 s left\n"


def test_on_a_terminal_a_bar_and_lines_above_it():
    stream = io.StringIO()
    progress = Progress("scenes", unit="scene", stream=stream, terminal=True)
    progress(1, 3)
    assert progress.active
    progress.write("wrote a.tif\n")
    progress(3, 3)
    progress.close()
    text = stream.getvalue()
    assert "\r" in text and "scenes" in text and "wrote a.tif\n" in text
    assert not progress.active


def test_quiet_writes_nothing_anywhere():
    for terminal in (True, False):
        stream, clock = io.StringIO(), Clock()
        progress = Progress("x", unit="tile", quiet=True, stream=stream, terminal=terminal,
                            interval=0, clock=clock)
        for done in range(5):
            clock.now = done
            progress(done, 5)
        progress.close()
        assert stream.getvalue() == ""


def test_durations():
    assert [duration(s) for s in (0.4, 59.6, 61, 3599, 3600, 11045)] == \
        ["0 s", "1 min 0 s", "1 min 1 s", "59 min 59 s", "1 h 00 min", "3 h 04 min"]


def test_a_run_of_many_tiles_logged_to_a_file_has_no_carriage_returns(tmp_path, capfd):
    noisy = np.random.default_rng(0).exponential(100.0, (300, 300)).astype(np.float32)
    np.save(tmp_path / "in.npy", noisy)
    assert main(["run", str(tmp_path / "in.npy"), "-o", str(tmp_path / "out.npy"), "--kind",
                 "intensity", "--looks", "1", "-m", "boxcar", "--tile", "32"]) == 0
    err = capfd.readouterr().err
    assert "\r" not in err and "wrote" in err
