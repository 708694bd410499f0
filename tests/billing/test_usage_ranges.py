"""Usage priced by range (issue #20): no usage record is written by rating, and none is lost.

The population is the late usage one (``tests.billing.test_late_usage``): item U1, graduated
(100 calls at 1.00, then 0.50). 80 calls of 10 November are billed on 1 December.
"""

from __future__ import annotations

import threading
import time
from datetime import date, datetime
from decimal import Decimal

import pytest
from alembic import command
from sqlalchemy import select, text

from billing.store.db import make_engine, unit_of_work
from billing.store.migrate import alembic_config, upgrade
from billing.store.models import Charge, ContractItem, UsageRecord, UsageStatus
from billing.store.usage import PRICED_QUANTITY, usage_marks
from tests import builders as b
from tests.billing.test_late_usage import DEC_1, JAN_1, add_usage, bill_day, late_population

D = Decimal


def _priced(engine) -> dict[str, tuple[Decimal, bool]]:
    """Each usage charge's quantity, and whether it equals that of the records it prices (raw
    SQL: compared as stored, six-decimal scaled on SQLite)."""
    with unit_of_work(engine) as s:
        rows = s.execute(
            text(
                f"SELECT c.charge_key, c.quantity = {PRICED_QUANTITY.format(c='c')} "
                "FROM charges AS c WHERE c.kind = 'usage' ORDER BY c.charge_key"
            )
        ).all()
        quantities = dict(s.execute(select(Charge.charge_key, Charge.quantity)).tuples().all())
    return {key: (quantities[key], bool(same)) for key, same in rows}


def test_rating_writes_no_usage_record_and_each_record_is_priced_once(engine):
    late_population(engine)
    with unit_of_work(engine) as s:
        before = s.execute(select(UsageRecord).order_by(UsageRecord.id)).scalars().all()
        before = [(r.id, r.status, r.charge_key) for r in before]
    bill_day(engine, DEC_1)
    add_usage(engine, "nov-late", "40", datetime(2026, 11, 25, 18))
    add_usage(engine, "dec-1", "10", datetime(2026, 12, 15, 12))
    add_usage(engine, "jan-early", "5", datetime(2027, 1, 1, 0, 30))  # after the cut-off
    bill_day(engine, JAN_1)
    with unit_of_work(engine) as s:
        rows = s.execute(select(UsageRecord.id, UsageRecord.status, UsageRecord.charge_key))
        after = {r.id: (r.status, r.charge_key) for r in rows}
        marks = usage_marks(s)
    # The records as loaded: pending, no key, none written since.
    assert all(after[i] == (UsageStatus.PENDING, None) for i, *_ in before)
    assert set(after.values()) == {(UsageStatus.PENDING, None)}
    # ... yet each is priced by exactly one charge, and the one after the cut-off by none.
    item = marks["nov-1"][1].split(":")[1]
    assert marks == {
        "nov-1": (UsageStatus.COLLECTED, f"use:{item}:2026-12-01"),
        "nov-late": (UsageStatus.COLLECTED, f"lat:{item}:2026-12-01:2027-01-01"),
        "dec-1": (UsageStatus.COLLECTED, f"use:{item}:2027-01-01"),
        "jan-early": (UsageStatus.PENDING, None),
    }
    # A charge's quantity is what its range prices: 80, the late 40, December's 10.
    assert _priced(engine) == {
        f"use:{item}:2026-12-01": (D("80"), True),
        f"lat:{item}:2026-12-01:2027-01-01": (D("40"), True),
        f"use:{item}:2027-01-01": (D("10"), True),
    }


def test_a_unit_keeps_the_watermark_its_cycle_was_rated_up_to(engine):
    late_population(engine)
    bill_day(engine, DEC_1)
    with unit_of_work(engine) as s:
        highest = s.scalar(text("SELECT max(id) FROM usage_records"))
        unit = s.scalar(text("SELECT usage_through_id FROM bill_units"))
        charge = s.scalars(select(Charge).where(Charge.charge_key.like("use:%"))).one()
    assert unit == charge.usage_through_id == highest
    assert (charge.usage_since, charge.usage_before) == (
        datetime(2026, 11, 1),
        datetime(2026, 12, 1),
    )


def _downgrade(engine, revision: str) -> None:
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_migration_0011_both_ways_keeps_what_each_record_is_priced_by(engine):
    """Down to 0010 every record a range prices is marked with its charge's key; back up,
    billed charges keep their marked records, the unbilled UTI charge gets its range back
    and its records their pending state, and billing goes on as if nothing happened."""
    late_population(engine)
    with unit_of_work(engine) as s:
        calls = s.scalars(select(ContractItem).where(ContractItem.ref == "U1")).one()
        it = b.item(s, calls.contract, "T1", calls.price_plan, "uti", date(2026, 10, 1))
        b.usage(s, it, "uti-1", "7", datetime(2026, 11, 20, 8))
    bill_day(engine, DEC_1)
    add_usage(engine, "nov-late", "40", datetime(2026, 11, 25, 18))
    add_usage(engine, "uti-2", "3", datetime(2026, 12, 10, 8), item="T1")
    from billing.jobs.uti_schedule_generator import run_uti_schedule_generator

    run_uti_schedule_generator(engine, datetime(2026, 12, 12, 12), "uti")  # calculated
    with unit_of_work(engine) as s:
        marks = usage_marks(s)
    assert marks["uti-2"][1].startswith("uti:") and marks["nov-late"][0] == UsageStatus.PENDING

    _downgrade(engine, "0010_charges_are_lines")
    with engine.connect() as conn:
        legacy = dict(
            conn.execute(
                text("SELECT external_id, charge_key FROM usage_records WHERE status = 'collected'")
            ).all()
        )
    assert legacy == {k: key for k, (state, key) in marks.items() if key is not None}

    upgrade(engine)
    with unit_of_work(engine) as s:
        assert usage_marks(s) == marks
        uti = s.execute(
            text("SELECT status, charge_key FROM usage_records WHERE external_id = 'uti-2'")
        ).one()
    assert tuple(uti) == ("pending", None)  # its charge is unbilled: priced by range again
    assert all(same for _, same in _priced(engine).values())
    bill_day(engine, JAN_1)  # the late record and the UTI charge are billed, nothing twice
    with unit_of_work(engine) as s:
        done = usage_marks(s)
    assert {k: state for k, (state, _) in done.items()} == dict.fromkeys(
        ("nov-1", "uti-1", "nov-late", "uti-2"), UsageStatus.COLLECTED
    )
    assert done["nov-late"][1].startswith("lat:")
    assert all(same for _, same in _priced(engine).values())


def test_postgresql_loads_of_usage_take_their_ids_in_commit_order(engine):
    """A load that has inserted usage holds the others back until it commits, so no record
    can commit below a watermark read in between (the watermark would skip it for good)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer: ids are in commit order already")
    late_population(engine)
    with unit_of_work(engine) as s:
        item_id = s.scalars(select(ContractItem.id)).one()
    row = (
        "INSERT INTO usage_records (external_id, contract_item_id, quantity, occurred_at, status) "
    )
    row += "VALUES (:e, :i, 1000000, '2026-11-20', 'pending')"  # 1 (six-decimal scaled)
    first = engine.connect()
    first.execute(text(row), {"e": "slow-load", "i": item_id})  # uncommitted, id taken
    other = make_engine(engine.url.render_as_string(hide_password=False))
    done: list[float] = []

    def second_load() -> None:
        with other.begin() as conn:
            conn.execute(text(row), {"e": "fast-load", "i": item_id})
        done.append(time.monotonic())

    thread = threading.Thread(target=second_load)
    thread.start()
    time.sleep(1.0)
    assert not done  # waiting for the first load
    with engine.connect() as reader:  # a watermark read now sees neither
        assert reader.scalar(text("SELECT count(*) FROM usage_records")) == 1
    first.commit()
    thread.join(timeout=30)
    assert done
    first.close()
    with engine.connect() as conn:
        ids = dict(conn.execute(text("SELECT external_id, id FROM usage_records")).all())
    assert ids["slow-load"] < ids["fast-load"]
    other.dispose()


def test_bill_day_never_waits_for_an_open_load_of_usage(engine):
    """Billing only reads ``usage_records``: an open load (holding the commit-order lock) does
    not hold bill day back, and the load's records, once committed, are late usage."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer: a load and a bill day cannot overlap")
    late_population(engine)
    with engine.connect() as load:
        load.execute(
            text(
                "INSERT INTO usage_records (external_id, contract_item_id, quantity, "
                "occurred_at, status) SELECT 'open-load', id, 5, '2026-11-20', 'pending' "
                "FROM contract_items"
            )
        )
        bill_day(engine, DEC_1)  # would hang here if billing took the lock
        load.commit()
    result = bill_day(engine, JAN_1)
    assert result.billing.late_usage_billed == 1
    with unit_of_work(engine) as s:
        assert usage_marks(s)["open-load"][1].startswith("lat:")
