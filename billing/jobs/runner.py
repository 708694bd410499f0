"""How a job runs: the ``Runner`` protocol, and the plain in-process runner.

A job (``billing/jobs/*.py``) is written once against ``Runner``: its steps, their order, what
runs side by side and how batches fan out. Two runners execute it:

- ``InProcessRunner`` (here): for Python callers and the CLI without a server. Steps run in
  this process; side-by-side steps and batches run in threads.
- ``flows.jobs.PrefectRunner``: the Prefect flow's thin adapter. Each step becomes a task run,
  with the task's retries, the global concurrency limit on batches, and the progress artifact.

**One retry layer.** A step function never retries by itself. The runner retries a whole step
when it raised an error that ``Retry.transient`` accepts (a lost connection, a serialization
failure, a busy SQLite), up to ``Retry.attempts`` runs in all. Prefect's task retries are
that same policy, so no step is ever retried inside another retry.

**Transaction ownership.** Each step function opens its own unit of work(s) and commits
before it returns: a step either committed what it returned or raised. A retried step starts
from what earlier steps committed. Nothing is shared across steps but their return values.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from billing.ops.run_report import share

T = TypeVar("T")


def transient_database_error(error: BaseException) -> bool:
    """A database error worth running the step again for (connection, lock, serialization).

    A lost connection counts however it surfaces: as an ``OperationalError``, or as any
    driver error on a connection SQLAlchemy found dead (``connection already closed`` from
    the rollback after a cut, an ``InterfaceError``)."""
    if isinstance(error, OperationalError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


@dataclass(frozen=True)
class Retry:
    """A step's retry policy: at most ``attempts`` runs in all, waiting ``first_delay`` seconds
    doubled after each failed run, and only for errors that ``transient`` accepts."""

    attempts: int = 6
    first_delay: float = 0.2
    transient: Callable[[BaseException], bool] = transient_database_error
    exhausted: Callable[[BaseException], Any] | None = None
    """What the step returns when its last run still failed transiently (None: it raises).

    A payment step raises while the processor answered transiently for some payments, so
    that it runs again; after the last run it reports them instead (the next run resumes
    them) rather than fail the whole job."""

    def delays(self) -> list[float]:
        return [self.first_delay * 2**n for n in range(self.attempts - 1)]


TRANSIENT = Retry()
NO_RETRY = Retry(attempts=1)


@dataclass(frozen=True)
class Call:
    """A step to run: its name (the task run's name), the function and its arguments."""

    name: str
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    retry: Retry = TRANSIENT


class Runner(Protocol):
    """What a job asks of whoever runs it."""

    def step(self, call: Call) -> Any:
        """Run one step to its end (with its retries) and return its result."""

    def side_by_side(self, calls: Iterable[Call]) -> dict[str, Any]:
        """Run these steps at the same time; their results by step name, once all ended.

        Every step is waited for, even after one failed; then the first failure is raised.
        """

    def fan_out(self, calls: Iterable[Call], *, at_most: int) -> Iterator[Any]:
        """Run the calls with at most ``at_most`` in flight, yielding results in call order.

        ``calls`` is consumed lazily: the next call is made only when a slot is free.
        """

    def progress(self, step: str, fraction: Decimal | int = 1, note: str | None = None) -> None:
        """Report how far the job got: ``fraction`` (0..1) of ``step`` done, with a note."""


def batches_in_order(
    runner: Runner,
    name: str,
    fn: Callable[..., T],
    ids: Sequence[int],
    per_batch: int,
    args: Callable[[list[int]], tuple[Any, ...]],
    progress: str,
) -> Iterator[tuple[int, T]]:
    """The daemons' batches: ``ids`` in slices of ``per_batch``, one step each
    (``<name>-1``, ``<name>-2``...), one after the other in order (a later batch may build on
    an earlier one); ``args(batch)`` gives a step's arguments. Yields (batch number, result);
    once the caller has taken a result, ``progress`` moves by that batch's share."""
    starts = range(0, len(ids), per_batch)
    for number, start in enumerate(starts, start=1):
        batch = list(ids[start : start + per_batch])
        yield number, runner.step(Call(f"{name}-{number}", fn, args(batch)))
        runner.progress(progress, share(number, len(starts)), note=f"batch {number} done")


def run_with_retry(call: Call, sleep: Callable[[float], None] = time.sleep) -> Any:
    """Run ``call`` under its retry policy: the in-process runner's only retry loop."""
    delays = call.retry.delays()
    for attempt in range(call.retry.attempts):
        try:
            return call.fn(*call.args, **call.kwargs)
        except Exception as error:
            if not call.retry.transient(error):
                raise
            if attempt == call.retry.attempts - 1:
                if call.retry.exhausted is not None:
                    return call.retry.exhausted(error)
                raise
            sleep(delays[attempt])
    raise AssertionError("unreachable")


class InProcessRunner:
    """Runs a job in this process: threads for what runs side by side, no server needed."""

    def __init__(
        self, on_progress: Callable[[str, Decimal | int, str | None], None] | None = None
    ) -> None:
        self.on_progress = on_progress

    def step(self, call: Call) -> Any:
        return run_with_retry(call)

    def side_by_side(self, calls: Iterable[Call]) -> dict[str, Any]:
        calls = list(calls)
        with ThreadPoolExecutor(max_workers=max(1, len(calls))) as pool:
            futures = {c.name: pool.submit(run_with_retry, c) for c in calls}
        return _gather(futures)

    def fan_out(self, calls: Iterable[Call], *, at_most: int) -> Iterator[Any]:
        with ThreadPoolExecutor(max_workers=max(1, at_most)) as pool:
            in_flight: deque[Future[Any]] = deque()
            for call in calls:
                if len(in_flight) >= at_most:
                    yield in_flight.popleft().result()
                in_flight.append(pool.submit(run_with_retry, call))
            while in_flight:
                yield in_flight.popleft().result()

    def progress(self, step: str, fraction: Decimal | int = 1, note: str | None = None) -> None:
        if self.on_progress is not None:
            self.on_progress(step, fraction, note)


def _gather(futures: Mapping[str, Future[Any]]) -> dict[str, Any]:
    """Every result, once each future ended; the first failure (in call order) raised."""
    errors = [f.exception() for f in futures.values()]
    for error in errors:
        if error is not None:
            raise error
    return {name: f.result() for name, f in futures.items()}
