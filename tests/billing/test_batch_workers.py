"""Billing batches in worker processes (``billing.jobs.batch_workers``), on PostgreSQL.

Bill day on PostgreSQL bills its batches in worker processes by default (Bill Run Settings'
``batch_processes`` 0: one per CPU; tests/flows/test_bill_day_flow.py checks the flow's
choice). The kill -9 matrix (tests/reliability/test_kill9_failpoints.py) runs bill day as a
deployment under a real Prefect worker with one batch worker: its ``billrun.*`` points are
reached there and kill the whole tree. Here, on ``bill_batches`` itself:

- workers bill exactly what threads bill;
- a worker killed alone (as the OOM killer would) loses nothing and bills nothing twice;
- a failpoint reached in a worker kills the parent, and no worker outlives it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from billing.failpoints import ENV, LOG_ENV, SCOPE_ENV
from billing.ingest.synthetic import seed
from billing.jobs.batch_workers import batch_processes
from billing.jobs.bill_day import bill_batches
from billing.jobs.runner import InProcessRunner
from billing.store.db import make_engine, unit_of_work
from billing.store.migrate import upgrade
from billing.store.models import Bill, Charge
from tests.conftest import pg_schema_url, scratch_schema

ROOT = Path(__file__).resolve().parents[2]
START, AS_OF = date(2026, 10, 1), date(2026, 11, 1)
ACCOUNTS, PER_BATCH = 120, 15  # 8 batches or so: several per worker


@pytest.fixture
def population():
    """Make a fresh schema with the synthetic population seeded (always the same one), and
    return its URL; every schema made is dropped after the test."""
    with ExitStack() as schemas:

        def make() -> str:
            url = pg_schema_url(schemas.enter_context(scratch_schema()))
            engine = make_engine(url)
            upgrade(engine)
            seed(engine, accounts=ACCOUNTS, usage_per_account=10, start=START)
            engine.dispose()
            return url

        yield make


def _bills(url: str) -> tuple[list[tuple], int]:
    """Every bill as (account, period, net, tax, gross), and the number of charges."""
    engine = make_engine(url)
    with unit_of_work(engine) as s:
        bills = s.execute(
            select(Bill.account_id, Bill.period_start, Bill.net, Bill.tax, Bill.gross).order_by(
                Bill.account_id, Bill.period_start
            )
        ).all()
        charges = s.execute(select(func.count()).select_from(Charge)).scalar_one()
    engine.dispose()
    return [tuple(b) for b in bills], charges


def _bill(url: str, processes: int):
    return bill_batches(
        InProcessRunner(),
        url,
        AS_OF,
        f"workers-{processes}",
        per_batch=PER_BATCH,
        children=3,
        fetch_size=1000,
        processes=processes,
    )


def test_the_default_starts_workers_on_postgresql_only(tmp_path):
    url = pg_schema_url("public")
    assert batch_processes(None, 5, url) == min(5, os.cpu_count() or 1)
    assert batch_processes(None, 1, url) == 0  # one batch at a time: nothing to share
    assert batch_processes(0, 5, url) == 0  # the setting wins
    assert batch_processes(None, 5, f"sqlite:///{tmp_path / 'b.db'}") == 0  # one writer


def test_worker_processes_bill_exactly_what_threads_bill(population):
    threads, workers = population(), population()
    by_threads = _bill(threads, 0)
    by_workers = _bill(workers, 2)
    assert by_workers.billed == by_threads.billed > ACCOUNTS // 2
    assert by_workers.failed == by_threads.failed
    assert _bills(workers) == _bills(threads)
    # Run again: everything is billed, nothing more is written.
    assert _bill(workers, 2).billed == 0
    assert _bills(workers) == _bills(threads)


def test_a_worker_killed_alone_loses_nothing_and_bills_nothing_twice(
    population, tmp_path, monkeypatch
):
    """One worker dies with SIGKILL just before its batch commits (scope ``process``: it
    alone, as the OOM killer would kill it). The pool breaks, its batches are retried in a
    new pool, and every unit is billed once: the same bills as a run nobody killed."""
    reference, killed = population(), population()
    _bill(reference, 0)
    log = tmp_path / "failpoints.log"
    # The spawned workers import billing.failpoints afresh, with this environment; this
    # process imported it long ago, unarmed.
    monkeypatch.setenv(ENV, "billrun.before_commit")
    monkeypatch.setenv(SCOPE_ENV, "process")
    monkeypatch.setenv(LOG_ENV, str(log))
    result = _bill(killed, 2)
    assert log.read_text().split() == ["billrun.before_commit"]  # it was reached, once
    assert result.failed == {}
    assert _bills(killed) == _bills(reference)


def _marked(marker: str) -> list[int]:
    """Processes whose environment holds ``marker`` (the child and the workers it spawned)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_a_failpoint_in_a_worker_kills_the_tree_and_no_worker_outlives_it(population, tmp_path):
    url = population()
    log = tmp_path / "failpoints.log"
    marker = f"OPENBILL_TEST_TREE={uuid.uuid4().hex}"
    key, value = marker.split("=")
    env = {**os.environ, ENV: "billrun.before_commit@2", LOG_ENV: str(log), key: value}
    script = (
        "from datetime import date\n"
        "from billing.jobs.bill_day import bill_batches\n"
        "from billing.jobs.runner import InProcessRunner\n"
        "if __name__ == '__main__':\n"
        f"    bill_batches(InProcessRunner(), {url!r}, date(2026, 11, 1), 'tree', "
        f"per_batch={PER_BATCH}, children=3, fetch_size=1000, processes=2)\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, timeout=300, capture_output=True
    )
    assert child.returncode == -9, child.stderr.decode()[-2000:]
    assert log.read_text().split() == ["billrun.before_commit"]
    deadline = time.monotonic() + 10
    while _marked(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _marked(marker) == []
    # What committed before the kill is whole: each billed unit has its bill, once.
    bills, _ = _bills(url)
    assert len(bills) == len(set(bills))
