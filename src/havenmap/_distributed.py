"""Independent tasks on ``dask.distributed``: local worker processes, or a cluster by scheduler address.

Backtests (one task per as-of date) and sweeps (one task per variation) are many
independent runs over the same large inputs (the road network, the incidents). This module
runs them with Dask's own machinery — no scheduler or process pool of ours:

* ``workers=0`` (and no scheduler): serially in this process, the reference result;
* default: a :class:`distributed.LocalCluster` of ``workers`` single-threaded worker
  processes (default: one per CPU), torn down afterwards;
* ``scheduler="tcp://host:8786"``: an existing cluster started with the standard
  ``dask scheduler`` / ``dask worker`` commands (or a :class:`distributed.Client`).

The shared inputs are sent to every worker **once** (``Client.scatter(..., broadcast=True)``),
and each task carries only its own small description; Dask resolves the scattered future on
the worker, so all tasks on a worker use the same in-memory object (and the caches it builds,
such as the network's search graphs). Results come back in task order; every task is a pure
function of its description and the shared inputs, so the results are identical to a serial
run. Tasks in one worker process run one at a time (a lock): the shared network's search
scratch arrays are not thread-safe, so a worker started with several threads gains nothing
but stays correct.

Progress is a rich progress bar on stderr, advanced as tasks complete.

Local workers start without Dask's default ``MALLOC_TRIM_THRESHOLD_=65536``. Dask's nanny sets
it so that workers hand freed memory back to the operating system sooner; but any value of it
also switches off glibc's adaptive mmap threshold, so every large numpy array is mapped and
unmapped afresh, and the backtest's array-heavy tasks took 35 % more CPU in a worker than in a
serial run (same tasks, thread time measured). Without it they take the same CPU. For workers
started with ``dask worker``, set
``DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON__MALLOC_TRIM_THRESHOLD_=None`` in their environment
(or start them with ``--no-nanny``) for the same effect.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import re
import resource
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import HavenmapError, InputError

__all__ = ["TaskRun", "check_scheduler", "map_tasks"]

_LOCK = threading.Lock()
#: Dask's nanny sets this glibc variable in its workers (see the module docstring).
_TRIM = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
_ADDRESS = re.compile(r"^(tcp|tls|ucx|inproc|ws|wss)://[^\s/]+(:\d+)?/?$|^[A-Za-z0-9_.\-\[\]:]+:\d+$")


@dataclass
class TaskRun:
    """The results of :func:`map_tasks`, in task order, and what the run cost.

    Attributes
    ----------
    results : list
    mode : str
        'serial', 'local' (a LocalCluster) or 'cluster' (an existing scheduler).
    workers : int
        Worker processes used (1 for serial).
    seconds : float
        Wall time of the tasks (cluster start excluded; scattering the shared inputs included).
    task_cpu_seconds : float
        CPU time the tasks took, summed (each task's thread time): unlike ``seconds``, not
        inflated by other work on the machine.
    shared_bytes : int
        Pickled size of the shared inputs (sent once to each worker).
    sent_bytes : int
        Bytes sent to workers: ``shared_bytes × workers`` plus every task's pickled description.
    peak_rss_bytes : dict
        Peak resident memory per worker process (``getrusage``), by worker address ('serial':
        this process).
    """

    results: list[Any]
    mode: str
    workers: int
    seconds: float
    task_cpu_seconds: float = 0.0
    shared_bytes: int = 0
    sent_bytes: int = 0
    peak_rss_bytes: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready execution record (for manifests)."""
        return {
            "mode": self.mode,
            "workers": self.workers,
            "seconds": round(self.seconds, 3),
            "task_cpu_seconds": round(self.task_cpu_seconds, 3),
            "shared_bytes": self.shared_bytes,
            "sent_bytes": self.sent_bytes,
            "peak_rss_bytes": dict(self.peak_rss_bytes),
        }


def check_scheduler(address: str | None, workers: int | None = None) -> None:
    """Fail early, with one line, on a malformed ``--scheduler`` address or a negative ``--workers``."""
    if workers is not None and workers < 0:
        raise InputError(f"--workers {workers}: give a number of worker processes >= 1, or 0 to run serially")
    if address is None:
        return
    if not isinstance(address, str):
        return  # a distributed.Client
    if not _ADDRESS.match(address.strip()):
        raise InputError(
            f"--scheduler {address!r}: not a scheduler address; write it as tcp://HOST:PORT "
            "(the address `dask scheduler` prints, e.g. tcp://10.0.0.5:8786)"
        )
    if workers:
        raise InputError("--workers starts local worker processes; with --scheduler the cluster's workers are used")


def _peak_rss() -> int:
    """Peak resident set size of this process, bytes (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _call(task: Any, fn: Callable[[Any, Any], Any], shared: Any) -> tuple[Any, float]:
    """``fn(task, shared)`` and the CPU seconds of this thread it took (other load on the machine left out)."""
    with _LOCK:
        start = time.thread_time()
        result = fn(task, shared)
        return result, time.thread_time() - start


def _size(obj: Any) -> int:
    return len(pickle.dumps(obj, protocol=5))


@contextlib.contextmanager
def _progress(total: int, description: str, enabled: bool) -> Iterator[Callable[[], None]]:
    if not enabled:
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        job = bar.add_task(description, total=total)
        yield lambda: bar.advance(job)


@contextlib.contextmanager
def _client(scheduler: Any, workers: int | None, n_tasks: int) -> Iterator[tuple[Any, str]]:
    import dask
    import distributed

    if isinstance(scheduler, distributed.Client):
        yield scheduler, "cluster"
        return
    quiet = {"distributed.scheduler", "distributed.core", "distributed.nanny", "distributed.worker"}
    levels = {name: logging.getLogger(name).level for name in quiet}
    try:
        for name in quiet:
            logging.getLogger(name).setLevel(logging.ERROR)
        if scheduler is not None:
            try:
                client = distributed.Client(scheduler, timeout="15s")
            except (OSError, TimeoutError) as exc:
                raise HavenmapError(
                    f"--scheduler {scheduler}: cannot reach the Dask scheduler ({exc}); start it with "
                    "`dask scheduler` and its workers with `dask worker ADDRESS`, or leave --scheduler out "
                    "to use local worker processes"
                ) from None
            with client:
                yield client, "cluster"
            return
        n = max(1, min(workers or (os.cpu_count() or 1), n_tasks))
        with (
            dask.config.set({_TRIM: None}),  # see the module docstring
            distributed.LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=logging.ERROR,
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            yield client, "local"
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def map_tasks(
    fn: Callable[[Any, Any], Any],
    tasks: Sequence[Any],
    shared: Any,
    *,
    scheduler: Any = None,
    workers: int | None = None,
    progress: bool = False,
    description: str = "Running",
    name: str = "havenmap-task",
) -> TaskRun:
    """Run ``fn(task, shared)`` for every task, serially or on Dask workers, results in task order.

    Parameters
    ----------
    fn
        A module-level function (workers import it by name), pure: same task and shared
        inputs, same result.
    tasks
        Small task descriptions (pickled and sent with each task).
    shared
        The large inputs every task reads; sent to each worker once. Must not be changed by
        ``fn`` beyond caches that do not alter results.
    scheduler
        None (local), a scheduler address such as ``tcp://host:8786``, or a
        :class:`distributed.Client`.
    workers
        Local worker processes (default: one per CPU, at most one per task); 0 runs serially
        in this process.
    progress
        Show a progress bar on stderr.

    Raises
    ------
    havenmap.errors.HavenmapError
        The scheduler cannot be reached, or its workers cannot import havenmap.
    """
    check_scheduler(scheduler if isinstance(scheduler, str) else None, workers if scheduler is None else None)
    tasks = list(tasks)
    if scheduler is None and workers == 0:
        start = time.perf_counter()
        done = []
        with _progress(len(tasks), description, progress) as advance:
            for task in tasks:
                done.append(_call(task, fn, shared))
                advance()
        results, cpu = [r for r, _ in done], sum(c for _, c in done)
        seconds = time.perf_counter() - start
        return TaskRun(results, "serial", 1, seconds, cpu, peak_rss_bytes={"serial": _peak_rss()})
    if not tasks:
        return TaskRun([], "local" if scheduler is None else "cluster", 0, 0.0)

    import distributed

    shared_bytes = _size(shared)
    task_bytes = sum(_size(t) for t in tasks)
    with _client(scheduler, workers, len(tasks)) as (client, mode):
        n_workers = len(client.scheduler_info(n_workers=-1)["workers"])
        if n_workers == 0:
            with contextlib.suppress(TimeoutError, OSError):
                client.wait_for_workers(1, timeout=30)
            n_workers = len(client.scheduler_info(n_workers=-1)["workers"])
        if n_workers == 0:
            raise HavenmapError(f"--scheduler {scheduler}: the cluster has no workers; start some with `dask worker`")
        start = time.perf_counter()
        [future] = client.scatter([shared], broadcast=True, hash=False)
        run_id = uuid.uuid4().hex[:12]
        keys = [f"{name}-{run_id}-{i}" for i in range(len(tasks))]
        futures = client.map(_call, tasks, key=keys, fn=fn, shared=future, pure=False)
        try:
            with _progress(len(tasks), description, progress) as advance:
                for _ in distributed.as_completed(futures):
                    advance()
            done = client.gather(futures)
        except ModuleNotFoundError as exc:
            raise HavenmapError(
                f"the Dask workers cannot import {exc.name!r}: install havenmap (same version) in the workers' "
                "Python environment"
            ) from None
        seconds = time.perf_counter() - start
        peaks = client.run(_peak_rss)
        client.cancel([future, *futures])
    return TaskRun(
        [r for r, _ in done],
        mode,
        n_workers,
        seconds,
        sum(c for _, c in done),
        shared_bytes=shared_bytes,
        sent_bytes=shared_bytes * n_workers + task_bytes,
        peak_rss_bytes={str(k): int(v) for k, v in peaks.items()},
    )
