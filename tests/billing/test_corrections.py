"""Changes after the fact (issue #19): a change effective before bills already made is settled
on the next bill as a correction line, and bill day never fails its checks because of it.

Account A (FR, EUR, billing day 1) bought PRO (30.00 a month in advance, by-day proration) on
Oct 1, 2026. Bill day on Nov 1 bills October and, in advance, November [Nov 1, Dec 1): 30 days.
The item is terminated effective Nov 20: Nov 20 is the first day not served, so 11 of
November's 30 days are credited, 30.00 x 11/30 = -11.00. Every bill day below runs through the
job users run (``run_bill_day``) with the post-billing checks on (their SQL, run directly).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from billing.documents.formatting import Formatter
from billing.documents.model import ProductName
from billing.documents.model import line_description as document_line
from billing.documents.seller import DEFAULT_SELLER
from billing.domain.corrections import CorrectedBill, line_description
from billing.jobs.bill_day import Documents, run_bill_day
from billing.jobs.contract_change_process import run_contract_change_process
from billing.jobs.database import engine_of
from billing.store.db import unit_of_work
from billing.store.models import (
    Account,
    Bill,
    ChangeRequest,
    Charge,
    ContractItem,
    ItemStatus,
    PricePlan,
)
from expectations.runner import run_post_billing_checks
from tests import builders as b
from tests.billing.test_changes import snapshot
from tests.expectations.direct import run_rules_directly

D = Decimal
NOV_1, NOV_20, DEC_1, JAN_1 = (
    date(2026, 11, 1),
    date(2026, 11, 20),
    date(2026, 12, 1),
    date(2027, 1, 1),
)


def checks(database, as_of, _output):
    """The post-billing gate, on the rules' SQL alone (no Data Docs: a GE run costs seconds)."""
    return run_rules_directly(engine_of(database), as_of)


def bill_day(engine, as_of: date, run_id: str | None = None):
    result = run_bill_day(engine, as_of, run_id or f"run-{as_of}", checks=checks)
    assert result.problem is None, result.problem
    return result


@pytest.fixture
def account_a(engine):
    with unit_of_work(engine) as s:
        b.vat(s, {("standard", "FR"): "0.20"})
        pro = b.plan(s, "PRO", "recurring", price="30.00", timing="advance")
        a = b.account(s, "A", created=date(2026, 10, 1))
        ca = b.contract(s, a, "CA", date(2026, 10, 1))
        b.item(s, ca, "A1", pro, "recurring", date(2026, 10, 1))
    bill_day(engine, NOV_1)
    return engine


def terminate(engine, effective: date, ref: str = "CR1") -> None:
    with unit_of_work(engine) as s:
        item_id = s.scalar(select(ContractItem.id).where(ContractItem.ref == "A1"))
        s.add(
            ChangeRequest(
                ref=ref, contract_item_id=item_id, kind="termination", effective_date=effective
            )
        )


def process_changes(engine, on: date) -> None:
    run_contract_change_process(engine, datetime(on.year, on.month, on.day, 2, 0))


def bills(engine):
    """Each bill as (bill date, number, net, [(description, period start, end, net)])."""
    with unit_of_work(engine) as s:
        found = []
        for bill in s.scalars(select(Bill).order_by(Bill.bill_date, Bill.id)):
            lines = s.execute(
                select(Charge.description, Charge.period_start, Charge.period_end, Charge.amount)
                .where(Charge.bill_id == bill.id)
                .order_by(Charge.line_no)
            ).all()
            found.append((bill.bill_date, bill.bill_no, bill.net, [tuple(r) for r in lines]))
        return found


def test_termination_processed_before_the_next_bill_is_credited_on_it(account_a):
    """The issue's scenario: terminated effective Nov 20, processed on the 20th, and the
    1 December bill day must pass its checks with the credit on the December bill."""
    engine = account_a
    terminate(engine, NOV_20)
    process_changes(engine, NOV_20)
    bill_day(engine, DEC_1)
    (nov, dec) = bills(engine)
    assert nov[2] == D("60.00")
    assert dec[0] == DEC_1 and dec[2] == D("-11.00")
    with unit_of_work(engine) as s:
        assert s.scalar(select(ContractItem.status)) == ItemStatus.CANCELLED
        assert s.scalars(select(Charge).where(Charge.status == "calculated")).all() == []


def test_the_december_bill_passes_the_real_gate_and_every_document_is_rendered(account_a, tmp_path):
    """The issue's "done when": the scenario ends with a correct December bill, no failed check
    (the Great Expectations gate itself, as the flow runs it), and every document rendered."""
    engine = account_a
    terminate(engine, NOV_20)
    process_changes(engine, NOV_20)
    result = run_bill_day(
        engine,
        DEC_1,
        "dec",
        checks=lambda database, as_of, out: run_post_billing_checks(
            engine_of(database), as_of, out
        ),
        checks_dir=tmp_path / "checks",
        documents=Documents(
            store_url=str(tmp_path / "documents"), seller=DEFAULT_SELLER, processes=1
        ),
    )
    assert result.problem is None, result.problem
    assert result.checks is not None and result.checks.success
    assert result.documents is not None
    # The November bill (made without documents) is rendered with the December one.
    assert (result.documents["invoices"], result.documents["rendered"]) == (2, 2)
    assert not result.documents["failed"]


def test_a_correction_line_is_worded_in_the_invoice_language():
    pro = ProductName("Product PRO", {"fr": "Produit PRO"})
    fr = Formatter.for_account("fr", "FR", "EUR")
    described = line_description(
        "Product PRO (cancelled 2026-11-20)", CorrectedBill("INV-00000001", NOV_1)
    )
    assert described == "Product PRO (cancelled 2026-11-20), corrects invoice INV-00000001"
    assert (
        document_line(described, pro, fr)
        == "Produit PRO (résilié le 20/11/2026), rectifie la facture INV-00000001"
    )
    unnumbered = line_description("Product PRO", CorrectedBill(None, NOV_1))
    assert document_line(unnumbered, pro, fr) == "Produit PRO, rectifie la facture du 01/11/2026"
    assert line_description("x" * 300, CorrectedBill("INV-1", NOV_1)).endswith(
        ", corrects invoice INV-1"
    )
    assert len(line_description("x" * 300, CorrectedBill("INV-1", NOV_1))) == 255


# ---- every order of (bill made, change registered, change processed, effective date) ----
#
# A timeline is a list of events on dates; on a date, registrations come first, then the
# Contract Change Process daemon, then bill day. Bill days run on a schedule:
# - "monthly": on each bill date (Nov 1, Dec 1, Jan 1);
# - "daily": every day something happens, the day after, and each bill date (the days
#   between change nothing: bill day finds nothing due);
# - "catch-up": Dec 1 is missed, so the Jan 1 run bills Dec 1 then Jan 1 in two passes.
# The expectations: each bill's net by date, the correction lines (period, net, the date of
# the bill they name), and the total billed, which is what was served: nothing twice, nothing
# dropped. After the last day, bill day again adds nothing.

OCT_20, NOV_5, NOV_10, NOV_25 = (
    date(2026, 10, 20),
    date(2026, 11, 5),
    date(2026, 11, 10),
    date(2026, 11, 25),
)
DEC_5, DEC_10, DEC_15 = date(2026, 12, 5), date(2026, 12, 10), date(2026, 12, 15)
BILL_DATES = (NOV_1, DEC_1, JAN_1)


def register(kind: str, effective: date, **values):
    """A change request on item A1 (``kind`` is a change kind, or ``cancel_item`` for a
    deferred action due on ``effective``)."""

    def run(engine, ref: str) -> None:
        with unit_of_work(engine) as s:
            item_id = s.scalar(select(ContractItem.id).where(ContractItem.ref == "A1"))
            if kind == "cancel_item":
                account = s.scalar(select(Account).where(Account.ref == "A"))
                b.deferred(s, account, ref, "cancel_item", effective, item_ref="A1")
                return
            if "plan" in values:
                values["new_price_plan_id"] = s.scalar(
                    select(PricePlan.id).where(PricePlan.code == values.pop("plan"))
                )
            s.add(
                ChangeRequest(
                    ref=ref, contract_item_id=item_id, kind=kind, effective_date=effective, **values
                )
            )

    return run


# Amounts: 30.00 a month; October and December have 31 days, November 30.
# Terminated on Nov 20: Nov 1..19 served (19.00), -11.00 for Nov 20..30.
# Terminated on Dec 10: Dec 1..9 served, 30 x 9/31 = 8.71, -21.29 for Dec 10..31.
# Terminated on Oct 20: Oct 1..19 served, 30 x 19/31 = 18.39, -11.61 for Oct 20..31.
# Quantity 1 -> 3 on Nov 20: Nov 20..30 at 3, +2 x 30 x 11/30 = +22.00; December +60.00.
# Swapped to PREMIUM (50.00) on Nov 20: the new item's Nov 20..30 is 50 x 11/30 = 18.33.
NOV_CREDIT = (NOV_20, DEC_1, D("-11.00"), NOV_1)
DEC_CREDIT = (DEC_1, JAN_1, D("-30.00"), DEC_1)
SCENARIOS = {
    # name: (registered, effective, processed, kind, values, bills, corrections, catch-up)
    "registered, effective, processed, bill": (
        NOV_10, NOV_20, NOV_20, "termination", {},
        {NOV_1: "60.00", DEC_1: "-11.00"}, [NOV_CREDIT], None,
    ),
    "effective, registered, processed, bill": (
        NOV_25, NOV_20, NOV_25, "termination", {},
        {NOV_1: "60.00", DEC_1: "-11.00"}, [NOV_CREDIT], None,
    ),
    "registered, effective, bill, processed": (
        NOV_10, NOV_20, DEC_5, "termination", {},
        {NOV_1: "60.00", DEC_1: "30.00", JAN_1: "-41.00"}, [NOV_CREDIT, DEC_CREDIT],
        ({NOV_1: "60.00", DEC_1: "-11.00"}, [NOV_CREDIT]),
    ),
    "effective, bill, registered, processed": (
        DEC_5, NOV_20, DEC_5, "termination", {},
        {NOV_1: "60.00", DEC_1: "30.00", JAN_1: "-41.00"}, [NOV_CREDIT, DEC_CREDIT],
        ({NOV_1: "60.00", DEC_1: "-11.00"}, [NOV_CREDIT]),
    ),
    "bill, registered, effective, processed": (
        DEC_5, DEC_10, DEC_10, "termination", {},
        {NOV_1: "60.00", DEC_1: "30.00", JAN_1: "-21.29"},
        [(DEC_10, JAN_1, D("-21.29"), DEC_1)],
        ({NOV_1: "60.00", DEC_1: "8.71"}, []),
    ),
    "bill, effective, registered, processed": (
        DEC_15, DEC_10, DEC_15, "termination", {},
        {NOV_1: "60.00", DEC_1: "30.00", JAN_1: "-21.29"},
        [(DEC_10, JAN_1, D("-21.29"), DEC_1)],
        ({NOV_1: "60.00", DEC_1: "8.71"}, []),
    ),
    "effective before both bills, registered and processed between": (
        NOV_5, OCT_20, NOV_5, "termination", {},
        {NOV_1: "60.00", DEC_1: "-41.61"},
        [(OCT_20, NOV_1, D("-11.61"), NOV_1), (NOV_1, DEC_1, D("-30.00"), NOV_1)], None,
    ),
    "registered, effective, processed, all before the first bill": (
        date(2026, 10, 10), OCT_20, OCT_20, "termination", {},
        {NOV_1: "18.39"}, [], None,
    ),
    "deferred cancel_item registered before its due date": (
        NOV_10, NOV_20, None, "cancel_item", {},
        {NOV_1: "60.00", DEC_1: "-11.00"}, [NOV_CREDIT], None,
    ),
    "deferred cancel_item registered after the next bill": (
        DEC_5, NOV_20, None, "cancel_item", {},
        {NOV_1: "60.00", DEC_1: "30.00", JAN_1: "-41.00"}, [NOV_CREDIT, DEC_CREDIT],
        ({NOV_1: "60.00", DEC_1: "-11.00"}, [NOV_CREDIT]),
    ),
    "quantity: registered, effective, processed, bill": (
        NOV_10, NOV_20, NOV_20, "quantity", {"new_quantity": D("3")},
        {NOV_1: "60.00", DEC_1: "112.00", JAN_1: "90.00"}, [(NOV_20, DEC_1, D("22.00"), NOV_1)],
        None,
    ),
    "quantity: effective, bill, registered, processed": (
        DEC_5, NOV_20, DEC_5, "quantity", {"new_quantity": D("3")},
        {NOV_1: "60.00", DEC_1: "30.00", JAN_1: "172.00"},
        [(NOV_20, DEC_1, D("22.00"), NOV_1), (DEC_1, JAN_1, D("60.00"), DEC_1)],
        ({NOV_1: "60.00", DEC_1: "112.00", JAN_1: "90.00"}, [(NOV_20, DEC_1, D("22.00"), NOV_1)]),
    ),
    "swap: effective, bill, registered, processed": (
        DEC_5, NOV_20, DEC_5, "swap", {"plan": "PREMIUM"},
        {NOV_1: "60.00", DEC_1: "30.00", JAN_1: "77.33"}, [NOV_CREDIT, DEC_CREDIT],
        ({NOV_1: "60.00", DEC_1: "57.33", JAN_1: "50.00"}, [NOV_CREDIT]),
    ),
}  # fmt: skip


def schedule(name: str, events: set[date]) -> list[date]:
    if name == "monthly":
        return list(BILL_DATES)
    if name == "catch-up":
        return [NOV_1, JAN_1]
    days = set(BILL_DATES) | events | {d + timedelta(days=1) for d in events}
    return sorted(d for d in days if d <= JAN_1)


def correction_lines(engine):
    """The lines that name the bill they correct: (period, net, that bill's date)."""
    with unit_of_work(engine) as s:
        dates = dict(s.execute(select(Bill.bill_no, Bill.bill_date)).tuples().all())
        rows = s.execute(
            select(Charge.description, Charge.period_start, Charge.period_end, Charge.amount)
            .join(Bill)
            .order_by(Bill.bill_date, Charge.line_no)
        ).all()
    found = []
    for text, start, end, net in rows:
        if ", corrects invoice " in text:
            found.append((start, end, net, dates[text.rsplit(" ", 1)[1]]))
    return found


@pytest.mark.parametrize("days", ["monthly", "daily", "catch-up"])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_changes_after_the_fact_in_any_order(engine, name, days):
    registered, effective, processed, kind, values, nets, corrections, catch_up = SCENARIOS[name]
    if days == "catch-up" and catch_up is not None:
        nets, corrections = catch_up
    with unit_of_work(engine) as s:
        b.vat(s, {("standard", "FR"): "0.20"})
        pro = b.plan(s, "PRO", "recurring", price="30.00", timing="advance")
        b.plan(s, "PREMIUM", "recurring", price="50.00", timing="advance")
        a = b.account(s, "A", created=date(2026, 10, 1))
        ca = b.contract(s, a, "CA", date(2026, 10, 1))
        b.item(s, ca, "A1", pro, "recurring", date(2026, 10, 1))
    events = {registered} | ({processed} if processed else set())
    registration = register(kind, effective, **values)
    for day in sorted(set(schedule(days, events)) | events):
        if day == registered:
            registration(engine, "CR1")
        if day == processed:
            process_changes(engine, day)
        if day in schedule(days, events):
            bill_day(engine, day)

    found = {bill_date: net for bill_date, _, net, _ in bills(engine)}
    assert found == {d: D(n) for d, n in nets.items()}
    assert correction_lines(engine) == corrections
    with unit_of_work(engine) as s:
        assert s.scalars(select(Charge.charge_key).where(Charge.status == "calculated")).all() == []
    # Bill day again on the last day adds nothing.
    before = snapshot(engine)
    bill_day(engine, JAN_1, "again")
    assert snapshot(engine) == before
