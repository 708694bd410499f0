"""Billing batches in worker processes, so that bill day's Python runs on every core.

A billing batch is mostly Python (reading the snapshot, planning fees, bills and lines, tax,
building the COPY text), and threads of one process share one interpreter lock: five batches
in flight in threads use about one core, however many the machine has. ``BatchWorkers`` runs
each batch in one of ``processes`` spawned worker processes instead. Nothing else changes:
the batch is still one call of ``billing.ops.billrun.bill_batch`` in one transaction, the
runner still fans the batches out (a Prefect task run each, with its retries and its slot of
the concurrency limit: the task's thread waits for the worker's answer), and the result comes
back as the same ``BatchResult``.

**A worker that dies.** Its transaction dies with its connection, so its batch wrote nothing.
The pool is broken then (``concurrent.futures`` stops the other workers too, and cannot tell
which batch killed it), so every batch it held raises ``WorkerLost``, a transient error: the
runner runs those steps again, in a fresh pool. Billing is idempotent, so a batch that another
worker had committed just before it was stopped bills nothing twice: its units are no longer
due.

**The process tree lives and dies as one.** Each worker asks the kernel to kill it when its
parent dies (``PR_SET_PDEATHSIG``), so a ``kill -9`` of the flow's process leaves no worker
committing behind its back. A failpoint reached in a worker kills the whole tree, as it
would kill the one process in thread mode (``billing.failpoints``, its scope).

Workers open their own engine from the database's URL and close it after each batch, so a
worker holds no connection between batches. ``batch_processes`` says how many to start.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from threading import Lock
from typing import Any

from billing import failpoints
from billing.jobs.database import Database, dispose_engines, engine_of
from billing.ops.billrun import BatchResult, bill_batch

PR_SET_PDEATHSIG = 1


class WorkerLost(RuntimeError):
    """A batch's worker process died (killed, out of memory) before it answered.

    Its transaction died with it; the runner retries the step (``Retry.transient``)."""


def batch_processes(setting: int | None, children: int, database: Database) -> int:
    """How many worker processes bill the batches: ``setting`` when given (0: none, the
    batches run in the caller's threads), else one per CPU, at most ``children``, on
    PostgreSQL, and none on SQLite (one writer at a time: its batches would only queue)."""
    if setting is not None:
        return setting
    if children < 2 or engine_of(database).dialect.name != "postgresql":
        return 0
    return min(children, os.cpu_count() or 1)


def url_of(database: Database) -> str:
    """The database's URL, password included: what a worker process opens its engine from."""
    return engine_of(database).url.render_as_string(hide_password=False)


def _die_with_parent(parent: int) -> None:
    """Worker initializer: be killed when the parent dies; failpoints kill the tree."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)
    failpoints.kill_also(parent)


def _bill_in_worker(url: str, *args: Any, **kwargs: Any) -> BatchResult:
    """``bill_batch`` in a worker: its own engine for ``url``, closed after the batch."""
    try:
        return bill_batch(engine_of(url), *args, **kwargs)
    finally:
        dispose_engines()


class BatchWorkers:
    """``processes`` worker processes billing batches against ``database``, started on the
    first batch and stopped by ``close`` (a context manager)."""

    def __init__(self, database: Database, processes: int):
        self.url = url_of(database)
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._lock = Lock()

    def __enter__(self) -> BatchWorkers:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=self.processes,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_die_with_parent,
                    initargs=(os.getpid(),),
                )
            return self._pool

    def _discard(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in a worker; ``WorkerLost`` when a worker of the pool died."""
        pool = self._executor()
        try:
            return pool.submit(fn, *args, **kwargs).result()
        except BrokenProcessPool as error:
            self._discard(pool)
            raise WorkerLost(
                f"a billing worker process died ({error}); the batch runs again"
            ) from error

    def bill(self, unit_ids: Sequence[int], *args: Any, **kwargs: Any) -> BatchResult:
        """``bill_batch(engine, unit_ids, *args, **kwargs)`` in a worker process."""
        return self.run(_bill_in_worker, self.url, list(unit_ids), *args, **kwargs)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
