"""The shadow bill run on a seeded population, on SQLite and PostgreSQL: what it finds against
the previous cycle, that it writes nothing, and the gate in front of a real bill day.

The population bills monthly on the 1st, fees in arrears (so every cycle bills one month,
the first one too), VAT 20 %. The real bill day of 1 February bills January; then, before 1
March, a price goes up, a small price moves a little, an item ends, an account joins and one
is added in a country without a VAT rate. Amounts are gross (net + 20 %).
"""

from __future__ import annotations

import csv
import shutil
import subprocess
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import MetaData, make_url, select, update

from billing.domain.shadow import AccountChange, CurrencyTotal, GateLimits, Kind, Thresholds
from billing.jobs.bill_day import run_bill_day
from billing.jobs.shadow_bill_run import (
    ShadowGateStopped,
    run_shadow_bill_run,
    shadow_gate,
    shadow_run_id,
)
from billing.store.db import unit_of_work
from billing.store.models import Account, Bill, ContractItem, PricePlan
from tests import builders as b

D = Decimal
FEB, MAR = date(2027, 2, 1), date(2027, 3, 1)


def _account(s, ref, plan, created, *, country="FR", currency="EUR", billing_day=1):
    acc = b.account(
        s, ref, created=created, country=country, currency=currency, billing_day=billing_day
    )
    ctr = b.contract(s, acc, f"C-{ref}", created)
    return b.item(s, ctr, f"I-{ref}", plan, "recurring", created)


@pytest.fixture
def population(engine):
    """Billed on 1 February, changed before 1 March (see the module's docstring)."""
    with unit_of_work(engine) as s:
        b.vat(s, {("standard", "FR"): "0.20", ("standard", "GB"): "0.20"})
        sup = b.plan(s, "SUP", "recurring", price="30.00", timing="arrears")
        basic = b.plan(s, "BASIC", "recurring", price="20.00", timing="arrears")
        small = b.plan(s, "SMALL", "recurring", price="10.00", timing="arrears")
        uk = b.plan(s, "UK", "recurring", "GBP", price="28.00", timing="arrears")
        jan = date(2027, 1, 1)
        _account(s, "SAME", sup, jan)  # 36.00 each cycle
        _account(s, "PRICED", basic, jan)  # 24.00, then 30.00
        _account(s, "SMALLER", small, jan)  # 12.00, then 12.60 (+0.60, 5 %): under 1.00
        _account(s, "GONE", sup, jan)  # 36.00, then its item ends on 1 February
        _account(s, "UK", uk, jan, country="GB", currency="GBP")  # 33.60 GBP each cycle
        b.account(s, "EMPTY", created=jan)  # no contract: never billed
        _account(s, "LATER", sup, date(2027, 2, 20), billing_day=15)  # first due 15 March
    run_bill_day(engine, FEB, "feb")
    with unit_of_work(engine) as s:
        s.execute(update(PricePlan).where(PricePlan.code == "BASIC").values(unit_price=D("25")))
        s.execute(update(PricePlan).where(PricePlan.code == "SMALL").values(unit_price=D("10.5")))
        s.execute(update(ContractItem).where(ContractItem.ref == "I-GONE").values(end_date=FEB))
        _account(s, "NEW", s.scalar(select(PricePlan).where(PricePlan.code == "SUP")), FEB)
        _account(
            s,
            "NOVAT",
            s.scalar(select(PricePlan).where(PricePlan.code == "SUP")),
            FEB,
            country="DE",
        )
    return engine


def dump(engine):
    """Every row of every table, in a stable order: what a dump would hold."""
    meta = MetaData()
    meta.reflect(engine)
    out = {}
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            rows = conn.execute(select(table)).all()
            out[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return out


EXPECTED = (
    AccountChange("NOVAT", "", Kind.FAILED, 0, D("0"), 0, D("0"), "?"),
    AccountChange("GONE", "EUR", Kind.MISSING, 1, D("36.00"), 0, D("0")),
    AccountChange("PRICED", "EUR", Kind.CHANGED, 1, D("24.00"), 1, D("30.00")),
    AccountChange("NEW", "EUR", Kind.NEW, 0, D("0"), 1, D("36.00")),
)


def _without_reasons(changes):
    return [(c.account, c.currency, c.kind, c.previous_bills, c.previous_gross, c.now_bills,
             c.now_gross) for c in changes]  # fmt: skip


def test_the_feb_bill_day_billed_the_previous_cycle(population):
    with unit_of_work(population) as s:
        rows = s.execute(select(Bill.bill_date, Bill.gross).order_by(Bill.id)).all()
    # SAME, PRICED, SMALLER, GONE, UK: January in arrears. LATER is first due on 15 March.
    assert [r.gross for r in rows] == [D("36"), D("24"), D("12"), D("36"), D("33.6")]
    assert {r.bill_date for r in rows} == {FEB}


def test_it_finds_new_missing_changed_and_failed_accounts(population, tmp_path):
    result = run_shadow_bill_run(population, MAR, "shadow-1", csv_path=tmp_path / "s.csv")
    report = result.report
    assert _without_reasons(report.changes) == _without_reasons(EXPECTED)
    assert "NOVAT" in result.billing.failed
    assert report.of(Kind.FAILED)[0].reason == result.billing.failed["NOVAT"]
    # SAME, SMALLER and UK are within the thresholds (SMALLER moved by 0.60).
    assert (report.compared, report.unchanged) == (7, 3)
    # EUR before: 36 + 24 + 12 + 36 = 108.00 (4 bills); now 36 + 30 + 12.60 + 36 = 114.60.
    assert report.totals == (
        CurrencyTotal("EUR", 4, D("108.00"), 4, D("114.60")),
        CurrencyTotal("GBP", 1, D("33.60"), 1, D("33.60")),
    )
    # The dry run's own counts: 8 units due on 1 March (not LATER), 5 bills (not GONE, EMPTY
    # or NOVAT).
    assert (result.billing.units, result.billing.bills) == (8, 5)
    with (tmp_path / "s.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][:3] == ["kind", "account", "currency"]
    assert [r[:2] for r in rows[1:]] == [
        ["failed", "NOVAT"],
        ["missing", "GONE"],
        ["changed", "PRICED"],
        ["new", "NEW"],
        ["total", ""],
        ["total", ""],
    ]
    assert rows[3][3:9] == ["1", "24.00", "1", "30.00", "6.00", "25.00"]
    assert rows[5][2:9] == ["EUR", "4", "108.00", "4", "114.60", "6.60", "6.11"]


def test_every_change_is_flagged_with_zero_thresholds(population):
    zero = Thresholds(absolute=D(0), percent=D(0))
    report = run_shadow_bill_run(population, MAR, "shadow-0", thresholds=zero).report
    assert [c.account for c in report.of(Kind.CHANGED)] == ["PRICED", "SMALLER"]


def test_per_batch_and_children_do_not_change_the_report(population):
    whole = run_shadow_bill_run(population, MAR, "whole").report
    split = run_shadow_bill_run(population, MAR, "split", per_batch=2, fetch_size=3).report
    assert (split.changes, split.totals) == (whole.changes, whole.totals)


def test_an_account_list_limits_the_comparison(population):
    report = run_shadow_bill_run(population, MAR, "some", account_refs=["PRICED", "SAME"]).report
    assert [c.account for c in report.changes] == ["PRICED"]
    assert report.compared == 2


def test_it_writes_nothing(population):
    before = dump(population)
    result = run_shadow_bill_run(population, MAR, "dry")
    assert result.billing.bills == 5
    assert dump(population) == before


def test_the_shadow_bills_what_the_real_run_then_bills(population):
    shadow = run_shadow_bill_run(population, MAR, "shadow").report
    run_bill_day(population, MAR, "mar")
    with unit_of_work(population) as s:
        real = s.execute(
            select(Account.ref, Bill.gross).join(Account).where(Bill.run_id == "mar")
        ).all()
    real_gross = dict(real)
    # The real run's amounts are what the shadow found (SAME, SMALLER, UK unflagged).
    assert real_gross["PRICED"] == D("30.00") and real_gross["NEW"] == D("36.00")
    assert real_gross["SMALLER"] == D("12.60") and "GONE" not in real_gross
    assert shadow.of(Kind.CHANGED)[0].now_gross == real_gross["PRICED"]
    # Now March is every billed unit's previous cycle: the shadow of the same date finds only
    # NOVAT still due, failing again.
    again = run_shadow_bill_run(population, MAR, "again").report
    assert [(c.account, c.kind) for c in again.changes] == [("NOVAT", Kind.FAILED)]
    assert again.compared == 1


def test_the_gate_stops_the_real_run_before_it_writes(population, tmp_path):
    before = dump(population)
    published = []
    with pytest.raises(ShadowGateStopped) as stopped:
        run_bill_day(
            population,
            MAR,
            "gated",
            gate=shadow_gate(csv_dir=tmp_path, publish=published.append),
        )
    message = str(stopped.value)
    assert "1 missing (at most 0): GONE" in message
    assert "1 changed (at most 0): PRICED (24.00 -> 30.00 EUR)" in message
    assert "NEW" not in message and "NOVAT" not in message  # new and failed: not gated
    assert dump(population) == before  # not even the deferred actions ran
    assert [r.report.counts[Kind.MISSING] for r in published] == [1]
    assert (tmp_path / "shadow-bill-run.csv").is_file()


def test_the_gate_within_its_limits_lets_the_run_bill(population):
    gate = shadow_gate(GateLimits(max_missing=1, max_changed=1))
    result = run_bill_day(population, MAR, "gated", gate=gate)
    assert result.billing.bills == 5  # SAME, PRICED, SMALLER, UK, NEW; NOVAT failed
    assert set(result.billing.failed) == {"NOVAT"}
    assert "shadow gate" in result.seconds


def test_the_dry_run_bills_carry_a_run_id_of_their_own():
    assert shadow_run_id("abc") == "shadow:abc"


def _pg_dump(engine) -> list[str]:
    """``pg_dump --data-only`` of the test's schema, as lines, but the random key of its
    ``\\restrict`` lines (new in 15.14), which differs from one dump to the next."""
    from tests.conftest import PG_URL

    options = engine.url.query["options"]
    schema = str(options).split("search_path=", 1)[1]
    url = make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    done = subprocess.run(
        [shutil.which("pg_dump") or "pg_dump", "--data-only", "--schema", schema, url],
        capture_output=True,
        text=True,
        check=True,
    )
    return [
        line
        for line in done.stdout.splitlines()
        if not line.startswith(("\\restrict ", "\\unrestrict "))
    ]


def test_a_postgresql_dump_is_the_same_but_for_the_sequences(population):
    """The dump the issue asks for: the data is the same; only the serials' next values
    moved (``nextval`` is not rolled back), which leaves gaps in ids and nothing else."""
    if population.dialect.name != "postgresql" or shutil.which("pg_dump") is None:
        pytest.skip("pg_dump of a PostgreSQL store")
    before = _pg_dump(population)
    run_shadow_bill_run(population, MAR, "dump")
    after = _pg_dump(population)
    changed = set(before) ^ set(after)
    assert len(before) == len(after)
    assert [line for line in changed if not line.startswith("SELECT pg_catalog.setval(")] == []
    assert changed
    moved = {line.split("'")[1].split(".")[-1] for line in changed}
    # The bills, their lines and charges, and the billing issue of NOVAT it drew ids for.
    assert moved <= {"bills_id_seq", "charges_id_seq", "billing_issues_id_seq"}
