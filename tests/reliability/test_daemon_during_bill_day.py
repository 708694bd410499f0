"""The UTI Schedule Generator daemon polling while bill day runs, on PostgreSQL.

The daemon starts once bill day has billed its first batches (a failpoint action), so some
accounts are reached by bill day first and others by the daemon first.

Both collect the same UTI usage (bill day rates it into the cycle's bill, the daemon into
immediate charges), so which one reaches an account first decides that account's bills. The
promise is serializability per account: each account ends exactly as if the two had run one
after the other, in one order or the other; nothing is rated twice or lost, no cycle is
billed twice, and the bill numbers stay gapless.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import date, datetime

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import aliased

from billing import failpoints
from billing.ingest.synthetic import seed
from billing.jobs.bill_day import run_bill_day
from billing.jobs.uti_schedule_generator import run_uti_schedule_generator
from billing.store.db import make_engine, unit_of_work
from billing.store.migrate import upgrade
from billing.store.models import (
    Account,
    Bill,
    BillUnit,
    Charge,
    Contract,
    ContractItem,
    UsageRecord,
)
from billing.store.usage import usage_marks

START, AS_OF = date(2026, 9, 1), date(2026, 11, 3)
PROCESS_NOW = datetime(2026, 11, 3, 0, 0)
ACCOUNTS, USAGE = 60, 6


def _population(url: str) -> Engine:
    engine = make_engine(url)
    upgrade(engine)
    seed(engine, accounts=ACCOUNTS, usage_per_account=USAGE, start=START, seed=11)
    return engine


def _key(bill_key: str | None) -> str | None:
    """An immediate bill's key ends with its first charge's id, which depends on the order in
    which concurrent transactions drew ids: compare it without."""
    return bill_key.rsplit(":", 1)[0] if bill_key and bill_key.startswith("imm:") else bill_key


def _per_account(engine: Engine) -> dict[str, tuple]:
    """Each account's bills (without their numbers), charges, usage, balance and unit."""
    billed_by = aliased(Bill)
    found: dict[str, list] = {}
    with unit_of_work(engine) as s:
        refs = dict(s.execute(select(Account.id, Account.ref)).all())
        for ref in refs.values():
            found[ref] = [[], [], [], None, None]
        for row in s.execute(
            select(
                Bill.account_id, Bill.bill_key, Bill.bill_date, Bill.net, Bill.tax, Bill.gross
            ).order_by(Bill.bill_key)
        ):
            found[refs[row[0]]][0].append((_key(row[1]), *row[2:]))
        for row in s.execute(
            select(
                Charge.account_id,
                Charge.charge_key,
                Charge.status,
                Charge.amount,
                billed_by.bill_key,
            )
            .outerjoin(billed_by, billed_by.id == Charge.bill_id)
            .order_by(Charge.charge_key)
        ):
            found[refs[row[0]]][1].append((*row[1:4], _key(row[4])))
        marks = usage_marks(s)
        for row in s.execute(
            select(Contract.account_id, UsageRecord.external_id)
            .join(ContractItem, ContractItem.id == UsageRecord.contract_item_id)
            .join(Contract, Contract.id == ContractItem.contract_id)
            .order_by(UsageRecord.external_id)
        ):
            found[refs[row[0]]][2].append((row[1], *marks[row[1]]))
        for account_id, balance in s.execute(select(Account.id, Account.balance)):
            found[refs[account_id]][3] = balance
        for row in s.execute(
            select(
                BillUnit.account_id,
                BillUnit.next_bill_date,
                BillUnit.last_bill_date,
                BillUnit.billing_state,
            )
        ):
            found[refs[row[0]]][4] = tuple(row[1:])
    return {
        ref: tuple(map(lambda v: tuple(v) if isinstance(v, list) else v, parts))
        for ref, parts in found.items()
    }


def _numbers(engine: Engine) -> list[int]:
    with unit_of_work(engine) as s:
        return sorted(s.scalars(select(Bill.number)))


@pytest.fixture
def serial_orders(tmp_path_factory):
    """Each account's end state when bill day runs first, and when the daemon runs first."""
    from tests.reliability.harness import fresh_schema

    states = {}
    for order in ("bill day first", "daemon first"):
        with fresh_schema() as url:
            engine = _population(url)
            if order == "daemon first":
                run_uti_schedule_generator(engine, PROCESS_NOW, "uti", per_batch=5)
            run_bill_day(engine, AS_OF, "serial", per_batch=5)
            run_uti_schedule_generator(engine, PROCESS_NOW, "uti", per_batch=5)
            states[order] = _per_account(engine)
            engine.dispose()
    first, second = states["bill day first"], states["daemon first"]
    assert sum(first[ref] != second[ref] for ref in first) >= 5, "the order does not matter"
    return first, second


@pytest.mark.slow
def test_uti_daemon_during_bill_day_leaves_each_account_as_one_order_would(serial_orders):
    from tests.reliability.harness import fresh_schema

    bill_day_first, daemon_first = serial_orders
    with fresh_schema() as url:
        engine = _population(url)
        stop, errors, rounds = threading.Event(), [], []

        def daemon() -> None:
            own = make_engine(url)
            try:
                while not stop.is_set():
                    rounds.append(run_uti_schedule_generator(own, PROCESS_NOW, "uti", per_batch=1))
                    time.sleep(0.01)
                run_uti_schedule_generator(own, PROCESS_NOW, "uti", per_batch=1)
            except BaseException as error:  # noqa: BLE001 - asserted below
                errors.append(error)
            finally:
                own.dispose()

        thread = threading.Thread(target=daemon)

        def start_daemon() -> None:  # bill day has billed a few units: the daemon starts
            if failpoints.hits("billday.between_batches") == 12:
                thread.start()

        try:
            with failpoints.on("billday.between_batches", start_daemon):
                run_bill_day(make_engine(url), AS_OF, "bill-day", per_batch=2)
        finally:
            stop.set()
            if thread.is_alive():
                thread.join()
        assert thread.ident is not None, "the daemon never started"
        assert errors == []
        state = _per_account(engine)
        numbers = _numbers(engine)
        engine.dispose()
    assert numbers == list(range(1, len(numbers) + 1))
    orders = Counter()
    for ref, account in state.items():
        assert account in (bill_day_first[ref], daemon_first[ref]), f"{ref} matches no order"
        if bill_day_first[ref] != daemon_first[ref]:
            orders["bill day first" if account == bill_day_first[ref] else "daemon first"] += 1
    assert orders["bill day first"] and orders["daemon first"], f"no interleaving: {orders}"
    assert sum(r.collected for r in rounds) > 0, "the daemon collected nothing during bill day"
