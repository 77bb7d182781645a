"""Preloaded into the worker processes of ``--workers N`` (a Dask preload module): they ignore
SIGINT, which a terminal's Ctrl-C sends to the whole process group, so that only the command
reacts (one line, exit 130) and stops them, instead of each worker printing a traceback."""

from __future__ import annotations

import signal
import threading


def dask_setup(worker=None) -> None:  # the name Dask calls in a preload module
    """Ignore SIGINT in this worker process (from its main thread, where handlers are set).

    A worker that ``--workers N`` starts is born with SIGINT blocked
    (``cluster.quiet_loop``): a Ctrl-C that came while it imported is pending, and
    ignoring the signal discards it; then it is unblocked."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
