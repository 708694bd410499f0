"""The Prefect side of a job: ``PrefectRunner`` maps a job's steps to task runs.

The job (``billing/jobs``) says what runs, in which order, side by side or in batches. This
adapter adds only what Prefect gives: a task run per step (named after the step, so the UI
shows the DAG), the step's retry policy as the task's retries, the global concurrency limit on
fanned-out batches, and the run's progress artifact. It holds no SQL and no arithmetic.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.concurrency.sync import concurrency
from prefect.futures import PrefectFuture
from prefect.runtime import task_run
from prefect.states import State
from sqlalchemy import Engine

from billing.jobs.runner import Call, Retry
from billing.ops.deferred import StatusChange
from billing.ops.provisioning import notify_status_changes
from flows.report import RunProgress
from flows.runtime import engine_for, ensure_concurrency_limit, load_webhook


def _retry_condition(retry: Retry) -> Any:
    def retry_when(_task: Task[Any, Any], _run: TaskRun, state: State[Any]) -> bool:
        try:
            state.result()
        except Exception as error:
            return retry.transient(error)
        return False

    return retry_when


def as_task(call: Call, *, limit: str | None = None) -> Task[..., Any]:
    """The step as a Prefect task: its name, its retry policy (the only retry layer), and,
    for fanned-out batches, one slot of the global concurrency limit ``limit``.

    After the last run of a step whose policy says what to return then (``Retry.exhausted``),
    that is the task's result, as ``run_with_retry`` does in process. Results are never
    cached: a rerun of the flow runs every step again (each is idempotent).
    """
    fn = call.fn
    retry = call.retry
    if limit is not None or retry.exhausted is not None:

        def step(*args: Any, **kwargs: Any) -> Any:
            try:
                if limit is None:
                    return call.fn(*args, **kwargs)
                with concurrency(limit, occupy=1):
                    return call.fn(*args, **kwargs)
            except Exception as error:
                last = task_run.run_count >= retry.attempts
                if retry.exhausted is not None and last and retry.transient(error):
                    return retry.exhausted(error)
                raise

        fn = step
    return task(
        fn,
        name=call.name,
        retries=retry.attempts - 1,
        retry_delay_seconds=retry.delays() or 0,
        retry_condition_fn=_retry_condition(retry),
        cache_policy=NO_CACHE,
    )


class PrefectRunner:
    """Runs a job inside a Prefect flow: steps are task runs, progress is an artifact."""

    def __init__(self, progress: RunProgress | None = None, batch_limit: str | None = None):
        self._progress = progress
        self.batch_limit = batch_limit

    def step(self, call: Call) -> Any:
        return as_task(call)(*call.args, **call.kwargs)

    def side_by_side(self, calls: Iterable[Call]) -> dict[str, Any]:
        futures = {c.name: as_task(c).submit(*c.args, **c.kwargs) for c in calls}
        for future in futures.values():
            future.wait()
        return {name: future.result() for name, future in futures.items()}

    def fan_out(self, calls: Iterable[Call], *, at_most: int) -> Iterator[Any]:
        if self.batch_limit is not None:
            ensure_concurrency_limit(self.batch_limit, at_most)
        in_flight: deque[PrefectFuture[Any]] = deque()
        for call in calls:
            if len(in_flight) >= at_most:
                yield in_flight.popleft().result()
            in_flight.append(
                as_task(call, limit=self.batch_limit).submit(*call.args, **call.kwargs)
            )
        while in_flight:
            yield in_flight.popleft().result()

    def progress(self, step: str, fraction: Decimal | int = 1, note: str | None = None) -> None:
        if self._progress is not None:
            self._progress.step(step, fraction, note)


@dataclass(frozen=True)
class Provisioning:
    """The provisioning webhook as a job's ``notify``: the block is read when there are
    status changes to tell (none: nothing is loaded), and nothing is sent without one."""

    webhook_block: str

    def __call__(self, changes: list[StatusChange]) -> int:
        webhook = load_webhook(self.webhook_block)
        if webhook is None:
            return 0
        return notify_status_changes(webhook.url, changes, webhook.timeout_seconds)


def provisioning(webhook_block: str) -> Provisioning:
    return Provisioning(webhook_block)


@dataclass(frozen=True)
class BlockDatabase:
    """A job's database as the Billing Database block's name (BILLING_DATABASE_URL without
    one), resolved by ``engine_for`` where each step runs: a Dask worker loads the block over
    the Prefect API and opens its own pool."""

    block: str | None

    def engine(self) -> Engine:
        return engine_for(self.block)
