"""Progress of a long command on standard error: a live bar on a terminal, plain lines in a log.

tqdm redraws its bar with carriage returns. Written to a file (``nohup sardespeckle train ... >
log 2>&1``, a batch scheduler's log) every redraw stays, thousands of them run together on one
line. Off a terminal, :class:`Progress` writes a plain line instead, at most once every
``interval`` seconds, and a last one at the end when it wrote any: a short job leaves nothing,
a long one a line a minute.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

#: Seconds between two progress lines written off a terminal.
LOG_INTERVAL = 60.0


class Progress:
    """``progress(done, total)`` for the engine, the batch, the evaluation or the training.

    Parameters
    ----------
    description, unit : str
        What is counted: ``"despeckling"``, ``"tile"``.
    quiet : bool
        Write nothing.
    leave : bool
        On a terminal, keep the finished bar (training) instead of clearing it.
    initial : int
        Units already done when the command started (a resumed training): the rate and the
        time left count only those done since.
    stream, terminal, interval, clock
        Where to write, whether it is a terminal (by default ``stream.isatty()``), the seconds
        between two lines off a terminal, and the clock (tests give their own).
    """

    def __init__(self, description: str, *, unit: str, quiet: bool = False, leave: bool = False,
                 initial: int = 0, stream: TextIO | None = None, terminal: bool | None = None,
                 interval: float = LOG_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._description, self._unit, self._quiet, self._leave = description, unit, quiet, leave
        self._stream = sys.stderr if stream is None else stream
        self._terminal = _is_terminal(self._stream) if terminal is None else terminal
        self._interval, self._clock = interval, clock
        self._bar = None
        self._first = self._done = initial
        self._total = 0
        self._postfix = ""
        # the clock starts now, not at the first call: the engine, a batch and the evaluation
        # call only when a first tile, scene or run is done, and its time counts too
        self._started = self._last_line = self._clock()
        self._reported = None  # the count of the last line written
        self._broken = False  # the stream refused a line: no more lines, the work goes on

    def __call__(self, done: int, total: int, postfix: str = "") -> None:
        if self._quiet:
            return
        self._done, self._total, self._postfix = done, total, postfix
        if self._terminal:
            self._draw(done, total, postfix)
            return
        now = self._clock()
        if now - self._last_line >= self._interval and done < total:
            self._line(now)

    @property
    def active(self) -> bool:
        """Whether a live bar is on the terminal (lines must then go through :meth:`write`)."""
        return self._bar is not None

    def write(self, text: str) -> None:
        """``text`` on the stream, above the bar when there is one."""
        if self._bar is not None:
            from tqdm import tqdm

            tqdm.write(text, file=self._stream, end="")
        else:
            self._stream.write(text)

    def close(self) -> None:
        """Clear (or leave) the bar; off a terminal, a last line if any was written."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._reported is not None and self._reported != self._done:
            self._line(self._clock())

    def _draw(self, done: int, total: int, postfix: str) -> None:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=self._first, desc=self._description,
                             unit=self._unit, file=self._stream, leave=self._leave,
                             dynamic_ncols=True)
        if postfix:
            self._bar.set_postfix_str(postfix, refresh=False)
        self._bar.update(done - self._bar.n)

    def _line(self, now: float) -> None:
        done, total = self._done, self._total
        elapsed = now - self._started
        text = (f"{self._description}: {done}/{total} {self._unit}s"
                f" ({100 * done / max(total, 1):.0f} %), {duration(elapsed)} elapsed")
        rate = (done - self._first) / elapsed if elapsed > 0 else 0.0
        if 0 < done < total and rate > 0:
            text += f", about {duration((total - done) / rate)} left"
        if self._postfix:
            text += f", {self._postfix}"
        self._last_line, self._reported = now, done
        if self._broken:
            return
        try:
            self._stream.write(text + "\n")
            self._stream.flush()
        except (OSError, ValueError):  # a full log disk, a closed stream: a status line is
            self._broken = True  # not worth the run (the output is on its own disk)


def duration(seconds: float) -> str:
    """``"45 s"``, ``"12 min 5 s"``, ``"3 h 04 min"``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
