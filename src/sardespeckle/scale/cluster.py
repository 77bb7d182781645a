"""Getting a Dask client: connect to a running scheduler, or start a local cluster for a run.

Every worker runs one thread: the methods bring their own parallelism (numpy, torch), and the
Dask nanny already limits each worker process to one BLAS/OpenMP thread, so more workers, not
more threads per worker, is how a run uses more cores.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import warnings
from collections.abc import Iterator

from sardespeckle.errors import SardespeckleError, UsageError

#: Seconds to wait for the scheduler to answer and, on a cluster without workers, for the
#: first worker to join.
CONNECT_TIMEOUT_S = 10.0
WORKERS_TIMEOUT_S = 30.0

_SCHEDULER_HINT = (
    "start one with 'dask scheduler' and, on each machine, 'dask worker tcp://HOST:8786', "
    "or run on this machine with --workers N"
)


class ClusterError(SardespeckleError, RuntimeError):
    """The Dask cluster cannot be reached, has no workers, or lost a run."""


def require_dask(feature: str = "Dask processing") -> None:
    """Raise a clear error when the ``dask`` extra is not installed."""
    try:
        import dask.array  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as error:
        from sardespeckle.mulog.denoisers import MissingDependencyError

        raise MissingDependencyError(
            f"{feature} needs dask and distributed ({error.name} is missing); "
            "install them with: pip install 'sardespeckle[dask]'"
        ) from None


def check_scheduler_address(address: str) -> str:
    """The address in canonical form (``tcp://host:port``), or :class:`UsageError`."""
    from distributed.comm.addressing import get_address_host_port, normalize_address
    from distributed.comm.registry import get_backend

    text = str(address).strip()
    try:
        canonical = normalize_address(text)
        get_backend(canonical.split("://", 1)[0])
        _, port = get_address_host_port(canonical)
        if not 0 < int(port) < 65536:
            raise ValueError(f"port {port} is outside 1..65535")
    except ValueError as error:
        raise UsageError(
            f"expected a Dask scheduler address such as tcp://HOST:8786, got {text!r} ({error})"
        ) from None
    return canonical


def _probe(address: str, timeout: float) -> None:
    """Fail fast, with a hint, when nothing listens at a TCP/TLS address."""
    from distributed.comm.addressing import get_address_host_port

    if address.split("://", 1)[0] not in ("tcp", "tls"):
        return
    host, port = get_address_host_port(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        raise ClusterError(
            f"cannot reach the Dask scheduler at {address}: {reason}; hint: {_SCHEDULER_HINT}"
        ) from None


@contextlib.contextmanager
def dask_client(
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    connect_timeout: float = CONNECT_TIMEOUT_S,
    workers_timeout: float = WORKERS_TIMEOUT_S,
) -> Iterator:
    """A ``distributed.Client`` for the duration of a ``with`` block.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``); its workers must be able to
        import sardespeckle and read the input files at the paths the client gives.
    workers : int, optional
        Start a ``LocalCluster`` of this many worker processes (one thread each) instead, and
        close it at the end.
    connect_timeout, workers_timeout : float
        Seconds to wait for the scheduler, and for a first worker when it has none.

    Raises
    ------
    UsageError
        Both or neither of ``scheduler`` and ``workers``, a malformed address, ``workers < 1``.
    ClusterError
        Nothing answers at the address, or no worker joins within ``workers_timeout``.
    """
    require_dask()
    if (scheduler is None) == (workers is None):
        raise UsageError("expected either a scheduler address or a number of workers, not "
                         f"{'both' if scheduler is not None else 'neither'}")
    from distributed import Client

    with contextlib.ExitStack() as stack:
        if scheduler is not None:
            address = check_scheduler_address(scheduler)
            _probe(address, connect_timeout)
            try:
                client = Client(address, timeout=connect_timeout)
            except OSError as error:
                raise ClusterError(
                    f"cannot connect to the Dask scheduler at {address}: {error}; "
                    f"hint: {_SCHEDULER_HINT}"
                ) from None
            stack.callback(client.close)
            _wait_for_workers(client, address, workers_timeout)
        else:
            if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
                raise UsageError(f"expected a number of workers >= 1, got {workers!r}")
            # The workers ignore SIGINT (a terminal's Ctrl-C reaches them too): this process
            # stops them, with one "interrupted" line instead of their tracebacks; a task's
            # failure is reported here, once, not also logged by its worker. They are born
            # with SIGINT blocked until their preload ignores it (quiet_loop), so a Ctrl-C
            # while they import prints no traceback either; this process gets it at once.
            runner = quiet_loop()
            loop = {} if runner is None else {"loop": runner.loop}
            if runner is not None:
                stack.callback(runner.stop)
            cluster = start_local_cluster(n_workers=workers, threads_per_worker=1,
                                          processes=True, dashboard_address=":0",
                                          silence_logs=logging.CRITICAL,
                                          preload=["sardespeckle.scale._worker_signals"], **loop)
            stack.callback(cluster.close)
            client = Client(cluster)
            stack.callback(client.close)
        yield client


def quiet_loop():
    """A started ``distributed.utils.LoopRunner`` whose IO-loop thread blocks SIGINT, or None
    where signal masks do not exist or when not called from the main thread.

    A thread inherits the signal mask of the thread that creates it, and a process the mask of
    the thread that spawns it. Dask starts a local cluster's worker processes from threads that
    its IO loop creates, so on this loop they are born with SIGINT blocked: a Ctrl-C that comes
    while they import stays pending in them until their preload
    (:mod:`sardespeckle.scale._worker_signals`) ignores SIGINT, which discards it. Only the
    loop's thread is blocked, just while it is created: the calling thread gets a Ctrl-C at once.
    The multiprocessing resource tracker is started first, for the same reason: starting it
    unblocks SIGINT and SIGTERM in the thread that does (Python 3.11), and the processes that
    thread spawned after would inherit that; the caller's own mask is restored whole after it.
    The caller stops the runner once the cluster on it is closed."""
    import signal
    import threading

    if (not hasattr(signal, "pthread_sigmask")
            or threading.current_thread() is not threading.main_thread()):
        return None
    from multiprocessing import resource_tracker

    from distributed.utils import LoopRunner

    mask = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    try:
        resource_tracker.ensure_running()
        signal.pthread_sigmask(signal.SIG_SETMASK, mask | {signal.SIGINT})
        runner = LoopRunner()
        runner.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    # A Ctrl-C while the workers start leaves Dask's start tasks failed and unread; asyncio
    # would print each as "Task exception was never retrieved" with its traceback under the
    # command's one line. The loop is this run's own: its stray exceptions go to the debug log,
    # like the rest of the local cluster's logs (silenced); failures of the work itself reach
    # the command through its futures.
    runner.loop.asyncio_loop.set_exception_handler(_log_quietly)
    return runner


def _log_quietly(loop, context) -> None:
    logging.getLogger("sardespeckle.scale").debug("Dask loop: %s", context.get("message"),
                                                  exc_info=context.get("exception"))


def _live_clusters():
    """Dask's registry of the clusters alive in this process (a WeakSet), or an empty set."""
    from distributed.deploy.spec import SpecCluster

    return getattr(SpecCluster, "_instances", set())


def start_local_cluster(**options):
    """``LocalCluster(**options)``; when it fails or is interrupted while it starts, the
    cluster it had begun is closed here, quietly.

    An interrupt inside ``LocalCluster(...)`` leaves a cluster that nothing holds (its
    constructor never returned), with workers still starting; Dask's own exit-time close then
    asserts that they are closing and prints that as a traceback under the command's one
    "interrupted" line. Their processes end with this one.
    """
    from distributed import LocalCluster

    before = set(_live_clusters())
    try:
        return LocalCluster(**options)
    except BaseException:
        for cluster in set(_live_clusters()) - before:
            with contextlib.suppress(Exception):
                cluster.close(timeout=5)
            _live_clusters().discard(cluster)
        raise


class LazyClient:
    """A stand-in for the ``distributed.Client`` of :func:`dask_client`, which it opens (into
    ``stack``) on first use: a command checks its input and output, and skips scenes whose
    output exists, before it pays for a local cluster's start (seconds) or a scheduler's
    probe. The address is checked at once (a usage error is not worth a wait)."""

    def __init__(self, stack: contextlib.ExitStack, **options) -> None:
        if options.get("scheduler") is not None:
            check_scheduler_address(options["scheduler"])
        self._stack, self._options, self._client = stack, options, None

    def __getattr__(self, name: str):
        if self._client is None:
            self._client = self._stack.enter_context(dask_client(**self._options))
        return getattr(self._client, name)


def _wait_for_workers(client, address: str, timeout: float) -> None:
    if not client.nthreads():  # said now: the wait is silent otherwise
        warnings.warn(f"the Dask scheduler at {address} has no worker yet; waiting up to "
                      f"{timeout:g} s for one to join", UserWarning, stacklevel=2)
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        raise ClusterError(
            f"the Dask scheduler at {address} has no workers (waited {timeout:g} s); hint: start "
            f"some with 'dask worker {address}'"
        ) from None


def describe(client) -> str:
    """``"N workers, T threads"`` of a client's cluster, for reports."""
    threads = client.nthreads()
    return f"{len(threads)} Dask worker(s), {sum(threads.values())} thread(s)"
