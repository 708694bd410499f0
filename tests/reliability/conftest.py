"""One uninterrupted reference day, shared by the crash, concurrency and outage tests; and the
Prefect stack whose worker runs the crash matrix, with its own uninterrupted reference day."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.reliability.harness import (
    AS_OF,
    DayConfig,
    day_state,
    fresh_schema,
    mail_server,
    population,
    run_child,
)
from tests.reliability.worker_day import BILL_DAY, EMAIL_SENDER, WorkerDay, worker_stack


def _covers_every_path(state: dict[str, Any], received: list[Any]) -> None:
    """The population exercises every path the tests claim to cover."""
    statuses = Counter((p.method, p.status) for p in state["payments"])
    assert statuses[("card", "settled")] >= 2 and statuses[("card", "failed")] >= 1
    assert statuses[("direct_debit", "pending")] >= 1
    assert {(r.method, r.status) for r in state["refunds"]} == {
        ("card", "settled"),
        ("direct_debit", "pending"),
    }
    assert len(state["bills"]) >= 12 and len(received) == len(state["bills"])
    assert len(state["documents"]) == 2 * len(state["bills"])


@pytest.fixture(scope="session")
def reference_day(tmp_path_factory):
    """The whole day run once on PostgreSQL, never interrupted: (state, e-mails received)."""
    workdir = tmp_path_factory.mktemp("reference")
    with fresh_schema() as url, mail_server(workdir / "mail.log") as (server, port):
        engine = population(url)
        config = DayConfig(url=url, as_of=AS_OF.isoformat(), workdir=str(workdir), smtp_port=port)
        assert run_child(config) == 0
        state = day_state(engine, config)
        engine.dispose()
        received = server.received()
    _covers_every_path(state, received)
    return state, received


@pytest.fixture(scope="session")
def prefect_worker_stack(tmp_path_factory):
    """A real Prefect stack (``scripts/server.py start``) with a process worker: see
    tests/reliability/worker_day.py."""
    with worker_stack(tmp_path_factory) as stack:
        yield stack


@pytest.fixture(scope="session")
def reference_worker_day(prefect_worker_stack, tmp_path_factory):
    """The whole day as deployment runs of the stack's worker, never interrupted: bill-day
    then the invoice e-mail sender, on PostgreSQL; (state, e-mails received)."""
    workdir = tmp_path_factory.mktemp("reference-worker")
    with fresh_schema() as url, mail_server(workdir / "mail.log") as (server, port):
        engine = population(url)
        day = WorkerDay(prefect_worker_stack, url, workdir, port)
        day.save_blocks()
        day.completed(BILL_DAY)
        day.completed(EMAIL_SENDER)
        state = day_state(engine, day.config)
        engine.dispose()
        received = server.received()
    _covers_every_path(state, received)
    return state, received
