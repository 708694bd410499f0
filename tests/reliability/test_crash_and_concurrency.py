"""Bill day survives kill -9 and concurrent runs: the end state is that of one clean run.

A synthetic population is seeded twice with the same arguments: once for a reference run,
once for the run under test. Both must end in exactly the same billing state, with gapless
numbers, one bill per unit and cycle, and every usage record collected once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date

import pytest
from sqlalchemy import func, select

from billing.ingest.synthetic import seed
from billing.jobs.bill_day import run_bill_day
from billing.store.db import make_engine, unit_of_work
from billing.store.migrate import upgrade
from billing.store.models import Bill
from tests.conftest import pg_schema_url
from tests.reliability.snapshots import billing_state

START, AS_OF = date(2026, 9, 1), date(2026, 11, 3)
ACCOUNTS, USAGE = 300, 6


def _population(url: str):
    engine = make_engine(url)
    upgrade(engine)
    seed(engine, accounts=ACCOUNTS, usage_per_account=USAGE, start=START, seed=7)
    return engine


def _bill_count(engine) -> int:
    with unit_of_work(engine) as s:
        return s.scalar(select(func.count()).select_from(Bill)) or 0


@pytest.fixture
def reference(tmp_path):
    engine = _population(f"sqlite:///{tmp_path / 'reference.db'}")
    run_bill_day(engine, AS_OF, "reference")
    state = billing_state(engine)
    assert len(state["bills"]) > 100  # enough bills for a kill to land mid-run
    return state


def _gapless(state) -> None:
    numbers = sorted(number for _, number, *_ in state["bills"])
    assert numbers == list(range(1, len(numbers) + 1))


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_bills", [1, 60, 150])
def test_kill_9_mid_run_then_rerun_matches_a_clean_run(reference, pg_schema, kill_after_bills):
    url = pg_schema_url(pg_schema)
    engine = _population(url)
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.child_bill_day", url, AS_OF.isoformat(), "5"],
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        deadline = time.monotonic() + 120
        while _bill_count(engine) < kill_after_bills and child.poll() is None:
            assert time.monotonic() < deadline, "the child never billed"
            time.sleep(0.005)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL, "the run finished before the kill"
    interrupted = _bill_count(engine)
    assert kill_after_bills <= interrupted < len(reference["bills"])

    run_bill_day(engine, AS_OF, "rerun")
    state = billing_state(engine)
    assert state == reference
    _gapless(state)


@pytest.mark.parametrize("runs", [2, 3])
def test_concurrent_bill_days_bill_each_cycle_once(reference, db_url, runs):
    engine = _population(db_url)
    errors: list[BaseException] = []

    def one_run(n: int) -> None:
        try:
            run_bill_day(make_engine(db_url), AS_OF, f"concurrent-{n}", per_batch=25)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=one_run, args=(n,)) for n in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    state = billing_state(engine)
    assert state == reference
    _gapless(state)
