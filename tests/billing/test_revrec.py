"""Revenue recognition (Cn285 RevRec Summary Journal), pure and on SQLite and PostgreSQL.

Every expected share is worked out by hand in the comments: largest remainder in cents, with
days as weights. ``shop`` bills three accounts through the real bill day:

- Y (yearly unit, billing day 1): YEARLY 1000.00 a year in advance from 2027-01-01;
- M (monthly unit, billing day 15): PRO15 30.00 a month in advance from 2027-01-15;
- C (monthly unit, billing day 1): PRO 30.00 a month in advance from 2027-01-01, cancelled on
  2027-02-15, so the bill of Mar 1 credits -15.00 for [Feb 15, Mar 1).
"""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from billing.cli import app
from billing.domain import revenue
from billing.domain.errors import MoneyError, PeriodError
from billing.domain.revenue import revenue_schedule, service_months
from billing.ingest.synthetic import seed
from billing.jobs.bill_day import run_bill_day
from billing.jobs.revrec_summary_journal import (
    journal_month,
    run_revrec_summary_journal,
    schedule_revenue_batch,
)
from billing.ops import revrec
from billing.ops.revrec import (
    DEFERRED_REVENUE_ACCOUNT,
    MonthOpenError,
    UnscheduledLinesError,
)
from billing.store.db import unit_of_work
from billing.store.models import (
    Bill,
    BillStatus,
    Charge,
    Contract,
    ContractItem,
    DeferredAction,
    ItemType,
    JournalEntry,
    PricePlan,
    Product,
    Timing,
)
from billing.store.models_revrec import RevenueMonth, RevenueMonthStatus, RevenueShare
from expectations.suites import rule_named
from tests import builders as b

D = Decimal
POSTED_ON = date(2027, 6, 1)

# YEARLY 1000.00 over [2027-01-01, 2028-01-01), 365 days, in cents: 100000 x days / 365.
#   31-day months: 8493.150..  -> 8493 (x7)    30-day months: 8219.178.. -> 8219 (x4)
#   February (28): 7671.232..  -> 7671         floors: 59451 + 32876 + 7671 = 99998 cents
# Two cents left go to the largest remainders: February (.232), then the first 30-day month,
# April (.178; ties go to the earlier month). 7 x 84.93 + 82.20 + 3 x 82.19 + 76.72 = 1000.00.
YEARLY = [
    D("84.93"), D("76.72"), D("84.93"), D("82.20"), D("84.93"), D("82.19"),
    D("84.93"), D("84.93"), D("82.19"), D("84.93"), D("82.19"), D("84.93"),
]  # fmt: skip


def test_yearly_fee_is_spread_over_twelve_months_to_the_cent():
    shares = revenue_schedule(D("1000.00"), "EUR", date(2027, 1, 1), date(2028, 1, 1))
    assert [(s.year, s.month) for s in shares] == [(2027, m) for m in range(1, 13)]
    assert [s.days for s in shares] == [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    assert [s.amount for s in shares] == YEARLY
    assert sum(s.amount for s in shares) == D("1000.00")


@pytest.mark.parametrize(
    ("net", "currency", "start", "end", "expected"),
    [
        # PRO15 from Jan 15: [Jan 15, Feb 15) = 17 + 14 days of 31. 3000 x 17/31 = 1645.16,
        # 3000 x 14/31 = 1354.84; floors 2999, the cent left goes to Feb (.84).
        ("30.00", "EUR", date(2027, 1, 15), date(2027, 2, 15), [(1, "16.45"), (2, "13.55")]),
        # the cancellation credit of [Feb 15, Mar 1): all in February, negative.
        ("-15.00", "EUR", date(2027, 2, 15), date(2027, 3, 1), [(2, "-15.00")]),
        # a credit over two months mirrors the charge: -3000 x 17/31, -3000 x 14/31.
        ("-30.00", "EUR", date(2027, 1, 15), date(2027, 2, 15), [(1, "-16.45"), (2, "-13.55")]),
        # usage consumed over [Jan 20, Jan 21): one day.
        ("12.50", "EUR", date(2027, 1, 20), date(2027, 1, 21), [(1, "12.50")]),
        # one cent over 2 days of January and 3 of February: February takes it.
        ("0.01", "EUR", date(2027, 1, 30), date(2027, 2, 4), [(1, "0.00"), (2, "0.01")]),
        # JPY has no minor units: 1000 x 2/4 and 1000 x 2/4.
        ("1000", "JPY", date(2027, 3, 30), date(2027, 4, 3), [(3, "500"), (4, "500")]),
        # a zero-length period is its start day.
        ("98.00", "EUR", date(2027, 5, 7), date(2027, 5, 7), [(5, "98.00")]),
    ],
)
def test_shares_by_day(net, currency, start, end, expected):
    shares = revenue_schedule(D(net), currency, start, end)
    assert [(s.month, s.amount) for s in shares] == [(m, D(a)) for m, a in expected]


def test_service_months_cross_a_year_and_refuse_a_reversed_period():
    assert service_months(date(2026, 12, 20), date(2027, 1, 10)) == [
        (2026, 12, 12),
        (2027, 1, 9),
    ]
    with pytest.raises(PeriodError):
        service_months(date(2027, 1, 2), date(2027, 1, 1))
    with pytest.raises(MoneyError):
        revenue_schedule(D("1.001"), "EUR", date(2027, 1, 1), date(2027, 2, 1))


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2027, 3, 2), (2027, 2)),
        (date(2027, 1, 31), (2026, 12)),
        (date(2027, 12, 1), (2027, 11)),
    ],
)
def test_previous_month(day, expected):
    assert revenue.previous_month(day) == expected


@given(
    cents=st.integers(min_value=-(10**9), max_value=10**9),
    start=st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 1, 1)),
    days=st.integers(min_value=0, max_value=800),
)
def test_shares_sum_to_the_line_and_follow_its_sign(cents, start, days):
    net = D(cents).scaleb(-2)
    shares = revenue_schedule(net, "EUR", start, start + timedelta(days=days))
    assert sum(s.amount for s in shares) == net
    assert sum(s.days for s in shares) == max(days, 1)
    assert all(s.amount * net >= 0 for s in shares)


@pytest.fixture
def shop(engine):
    """Accounts Y, M and C of the module docstring (VAT 20%, not part of revenue)."""
    build_shop(engine)
    return engine


def build_shop(engine):
    with unit_of_work(engine) as s:
        b.vat(s, {("standard", "FR"): "0.20"})
        yearly = b.plan(s, "YEARLY", "recurring", price="1000.00", timing="advance")
        yearly.period_months = 12
        s.get(Product, yearly.product_id).gl_account = "706500"
        pro15 = b.plan(s, "PRO15", "recurring", price="30.00", timing="advance")
        pro = b.plan(s, "PRO", "recurring", price="30.00", timing="advance")
        y = b.account(s, "Y", created=date(2026, 1, 1), billing_day=1, cycle="yearly")
        b.item(
            s, b.contract(s, y, "CY", date(2027, 1, 1)), "Y1", yearly, "recurring", date(2027, 1, 1)
        )
        m = b.account(s, "M", created=date(2027, 1, 15), billing_day=15)
        b.item(
            s,
            b.contract(s, m, "CM", date(2027, 1, 15)),
            "M1",
            pro15,
            "recurring",
            date(2027, 1, 15),
        )
        c = b.account(s, "C", created=date(2027, 1, 1), billing_day=1)
        b.item(
            s, b.contract(s, c, "CC", date(2027, 1, 1)), "C1", pro, "recurring", date(2027, 1, 1)
        )
        b.deferred(s, c, "cancel-C1", "cancel_item", date(2027, 2, 15), item_ref="C1")


def bill_through(engine, *days):
    for day in days:
        run_bill_day(engine, day, f"run-{day}")


ALL_BILL_DAYS = (
    date(2027, 1, 1),
    date(2027, 2, 1),
    date(2027, 2, 15),
    date(2027, 3, 1),
    date(2027, 3, 15),
)


def shares_of(engine, item_ref):
    """(year, month, amount) of each share of an item's invoiced lines, in line order."""
    with unit_of_work(engine) as s:
        rows = s.execute(
            select(RevenueShare.year, RevenueShare.month, RevenueShare.amount)
            .join(Charge, Charge.id == RevenueShare.charge_id)
            .join(ContractItem, ContractItem.ref == item_ref)
            .join(PricePlan, PricePlan.id == ContractItem.price_plan_id)
            .where(RevenueShare.product_id == PricePlan.product_id)
            .order_by(Charge.id, RevenueShare.year, RevenueShare.month)
        ).all()
    return [tuple(r) for r in rows]


def journal(engine, year, month):
    """The month's entries as (account, product, debit, credit), in the order written."""
    with unit_of_work(engine) as s:
        rows = revrec.journal_rows(s, year, month)
    return [(r.gl_account, r.product, r.debit, r.credit) for r in rows]


def recognized(product, amount, account="706000"):
    return [
        (DEFERRED_REVENUE_ACCOUNT, product, D(amount), D(0)),
        (account, product, D(0), D(amount)),
    ]


def reversed_(product, amount, account="706000"):
    return [
        (account, product, D(amount), D(0)),
        (DEFERRED_REVENUE_ACCOUNT, product, D(0), D(amount)),
    ]


def run_revrec(engine, year, month, *, post=False, posted_on=None, per_batch=20_000):
    """The whole daemon in process (billing.jobs.revrec_summary_journal): (scheduled, journal)."""
    done = run_revrec_summary_journal(
        engine, year, month, post=post, posted_on=posted_on, per_batch=per_batch
    )
    return done.scheduled, done.journal


def schedule_revenue(engine):
    """The daemon's scheduling steps alone (no journal), batch after batch."""
    total, after = revrec.ScheduleResult(), 0
    while after is not None:
        done, after = schedule_revenue_batch(engine, after, 20_000)
        total = total.merge(done)
    return total


def write_summary_journal(engine, year, month, *, post=False, posted_on=None):
    """The daemon's journal step alone (no scheduling first)."""
    return journal_month(engine, year, month, post, posted_on)


def test_yearly_invoice_is_deferred_then_recognized_month_by_month(shop):
    bill_through(shop, date(2027, 1, 1))
    assert schedule_revenue(shop).lines == 1
    assert shares_of(shop, "Y1") == [(2027, m, a) for m, a in enumerate(YEARLY, start=1)]
    result = write_summary_journal(shop, 2027, 1)
    assert journal(shop, 2027, 1) == recognized("P-YEARLY", "84.93", "706500")
    assert result.recognized == {"EUR": D("84.93")}
    assert result.deferred == {"EUR": D("915.07")}  # 1000.00 - 84.93 for Feb..Dec
    assert result.status == "draft" and not result.locked


def test_whole_shop_month_by_month(shop):
    bill_through(shop, *ALL_BILL_DAYS)
    schedule_revenue(shop)
    # M's lines: [Jan 15, Feb 15) 16.45 + 13.55; [Feb 15, Mar 15) 14 + 14 days: 15.00 + 15.00;
    # [Mar 15, Apr 15) 17 + 14 days like January: 16.45 + 13.55.
    assert shares_of(shop, "M1") == [
        (2027, 1, D("16.45")), (2027, 2, D("13.55")),
        (2027, 2, D("15.00")), (2027, 3, D("15.00")),
        (2027, 3, D("16.45")), (2027, 4, D("13.55")),
    ]  # fmt: skip
    # C: January 30.00, February 30.00, then the credit -15.00 in February.
    assert shares_of(shop, "C1") == [
        (2027, 1, D("30.00")), (2027, 2, D("30.00")), (2027, 2, D("-15.00"))
    ]  # fmt: skip
    for month in (1, 2, 3):
        write_summary_journal(shop, 2027, month, post=True, posted_on=POSTED_ON)
    assert journal(shop, 2027, 1) == (
        recognized("P-PRO", "30.00") + recognized("P-PRO15", "16.45")
        + recognized("P-YEARLY", "84.93", "706500")
    )  # fmt: skip
    # February: PRO 30.00 - 15.00 credited; PRO15 13.55 + 15.00.
    assert journal(shop, 2027, 2) == (
        recognized("P-PRO", "15.00") + recognized("P-PRO15", "28.55")
        + recognized("P-YEARLY", "76.72", "706500")
    )  # fmt: skip
    assert journal(shop, 2027, 3) == (
        recognized("P-PRO15", "31.45") + recognized("P-YEARLY", "84.93", "706500")
    )


def test_a_credit_after_its_month_is_posted_is_reversed_in_the_next_month(shop):
    bill_through(shop, date(2027, 1, 1), date(2027, 2, 1), date(2027, 2, 15))
    for month in (1, 2):
        run_revrec(shop, 2027, month, post=True, posted_on=POSTED_ON)
    assert recognized("P-PRO", "30.00") == journal(shop, 2027, 2)[:2]
    bill_through(shop, date(2027, 3, 1))  # the -15.00 credit for [Feb 15, Mar 1)
    _, march = run_revrec(shop, 2027, 3)
    # February is posted: its -15.00 is caught up in March, which has no PRO fee of its own.
    assert journal(shop, 2027, 3)[:2] == reversed_("P-PRO", "15.00")
    assert march.catch_up == 1
    assert march.recognized == {"EUR": D("-15.00") + D("15.00") + D("84.93")}


def snapshot(engine):
    with unit_of_work(engine) as s:
        return {
            "entries": s.execute(
                select(
                    JournalEntry.year,
                    JournalEntry.month,
                    JournalEntry.gl_account,
                    JournalEntry.product_id,
                    JournalEntry.currency,
                    JournalEntry.debit,
                    JournalEntry.credit,
                    JournalEntry.description,
                    JournalEntry.posted,
                ).order_by(JournalEntry.id)
            ).all(),
            "shares": s.execute(
                select(
                    RevenueShare.charge_id,
                    RevenueShare.year,
                    RevenueShare.month,
                    RevenueShare.amount,
                    RevenueShare.revenue_month_id,
                ).order_by(RevenueShare.id)
            ).all(),
            "months": s.execute(
                select(RevenueMonth.year, RevenueMonth.month, RevenueMonth.status).order_by(
                    RevenueMonth.id
                )
            ).all(),
        }


def test_rerun_replaces_the_draft_with_the_same_journal(shop):
    bill_through(shop, *ALL_BILL_DAYS)
    run_revrec(shop, 2027, 1)
    before = snapshot(shop)
    again = run_revrec(shop, 2027, 1)
    assert again[0].lines == 0  # nothing new to schedule
    assert snapshot(shop) == before
    assert len(before["entries"]) == 6


def test_a_draft_rerun_takes_lines_invoiced_since(shop):
    bill_through(shop, date(2027, 1, 1), date(2027, 2, 1))
    _, first = run_revrec(shop, 2027, 1)
    assert first.recognized == {"EUR": D("114.93")}  # YEARLY 84.93 + PRO 30.00
    bill_through(shop, date(2027, 2, 15))  # M's first bill: 16.45 of January
    _, second = run_revrec(shop, 2027, 1)
    assert second.recognized == {"EUR": D("131.38")}
    assert second.catch_up == 0


def test_a_posted_month_is_locked(shop):
    bill_through(shop, date(2027, 1, 1), date(2027, 2, 1))
    _, posted = run_revrec(shop, 2027, 1, post=True, posted_on=POSTED_ON)
    assert (posted.status, posted.locked) == ("posted", False)
    before = snapshot(shop)
    assert all(entry.posted for entry in before["entries"])
    bill_through(shop, date(2027, 2, 15))  # a late line: 16.45 of January for M
    scheduled, rerun = run_revrec(shop, 2027, 1)
    assert scheduled.lines == 2
    assert (rerun.status, rerun.locked) == ("posted", True)
    assert rerun.entries == posted.entries
    assert snapshot(shop)["entries"] == before["entries"]
    # posting it again changes nothing either
    assert write_summary_journal(shop, 2027, 1, post=True, posted_on=date(2027, 7, 1)).locked
    with unit_of_work(shop) as s:
        assert s.scalar(select(RevenueMonth.posted_on)) == POSTED_ON
    # the late January share is recognized in February, the first open month
    _, february = run_revrec(shop, 2027, 2)
    assert february.catch_up == 1
    assert recognized("P-PRO15", "45.00") == journal(shop, 2027, 2)[2:4]  # 16.45+13.55+15.00


def test_posting_refuses_while_an_earlier_month_with_revenue_is_open(shop):
    bill_through(shop, *ALL_BILL_DAYS)
    run_revrec(shop, 2027, 1)
    before = snapshot(shop)
    with pytest.raises(MonthOpenError, match="2027-01"):
        run_revrec(shop, 2027, 3, post=True, posted_on=POSTED_ON)
    with pytest.raises(MonthOpenError, match="earlier month.*2027-01, 2027-02"):
        write_summary_journal(shop, 2027, 3, post=True, posted_on=POSTED_ON)
    assert snapshot(shop) == before
    # in order, it works; a month before a posted one is closed with it
    for month in (1, 2, 3):
        write_summary_journal(shop, 2027, month, post=True, posted_on=POSTED_ON)
    with unit_of_work(shop) as s:
        statuses = s.scalars(select(RevenueMonth.status).order_by(RevenueMonth.id)).all()
    assert statuses == [RevenueMonthStatus.POSTED] * 3
    # December 2026 has no revenue: it is closed, not open, and running it changes nothing
    closed = write_summary_journal(shop, 2026, 12)
    assert (closed.status, closed.locked, closed.entries) == ("closed", True, [])


def test_posting_refuses_while_invoiced_lines_are_not_scheduled(shop):
    bill_through(shop, date(2027, 1, 1))
    with pytest.raises(UnscheduledLinesError, match="1 invoiced line"):
        write_summary_journal(shop, 2027, 1, post=True, posted_on=POSTED_ON)
    with pytest.raises(revrec.RevRecError, match="posted_on"):
        write_summary_journal(shop, 2027, 1, post=True)
    with pytest.raises(PeriodError):
        write_summary_journal(shop, 2027, 13)


def test_export_journal_csv(shop):
    bill_through(shop, *ALL_BILL_DAYS)
    for month in (1, 2):
        run_revrec(shop, 2027, month, post=month == 1, posted_on=POSTED_ON)
    url = shop.url.render_as_string(hide_password=False)
    out = io.StringIO()
    with unit_of_work(shop) as s:
        assert revrec.write_journal_csv(s, 2027, 2, out) == 6
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [tuple(r.values()) for r in rows[:2]] == [
        ("2027", "02", "draft", "487000", "P-PRO", "EUR", "15.00", "0.00",
         "RevRec 2027-02 P-PRO: deferred revenue released"),
        ("2027", "02", "draft", "706000", "P-PRO", "EUR", "0.00", "15.00",
         "RevRec 2027-02 P-PRO: revenue recognized"),
    ]  # fmt: skip
    result = CliRunner().invoke(
        app, ["export", "journal", "--year", "2027", "--month", "1", "--database", url]
    )
    assert result.exit_code == 0, result.output
    exported = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {r["status"] for r in exported} == {"posted"}
    assert sum(D(r["debit"]) for r in exported) == sum(D(r["credit"]) for r in exported)
    assert sum(D(r["credit"]) for r in exported) == D("131.38")
    bad = CliRunner().invoke(
        app, ["export", "journal", "--year", "2027", "--month", "13", "--database", url]
    )
    assert bad.exit_code == 1


MONTHS = [(2027, 1), (2027, 2), (2027, 3), (2027, 4)]


def test_billed_population_recognized_plus_deferred_is_invoiced(engine):
    """200 synthetic accounts billed Jan..May, with cancellations (credits); Jan..Apr posted."""
    seed(engine, accounts=200, usage_per_account=3, start=date(2027, 1, 1))
    _cancel_some_advance_items(engine, count=25, on=date(2027, 2, 10))
    bill_through(engine, date(2027, 1, 15), date(2027, 2, 1), date(2027, 2, 15), date(2027, 3, 1),
                 date(2027, 4, 1), date(2027, 5, 1))  # fmt: skip
    for year, month in MONTHS:
        run_revrec(engine, year, month, post=True, posted_on=POSTED_ON, per_batch=250)
    with unit_of_work(engine) as s:
        per_line = s.execute(
            select(
                Charge.id,
                Charge.amount.label("net"),
                func.coalesce(func.sum(RevenueShare.amount), 0).label("shares"),
                func.coalesce(
                    func.sum(RevenueShare.amount).filter(RevenueShare.revenue_month_id.isnot(None)),
                    0,
                ).label("recognized"),
                func.coalesce(
                    func.sum(RevenueShare.amount).filter(RevenueShare.revenue_month_id.is_(None)), 0
                ).label("deferred"),
            )
            .join(Bill, Bill.id == Charge.bill_id)
            .outerjoin(RevenueShare, RevenueShare.charge_id == Charge.id)
            .where(Bill.status == BillStatus.INVOICED)
            .group_by(Charge.id, Charge.amount)
        ).all()
        credits = sum(1 for row in per_line if row.net < 0)
        late = s.scalar(
            select(func.count())
            .select_from(RevenueShare)
            .where(
                RevenueShare.year * 12 + RevenueShare.month > 2027 * 12 + 4,
                RevenueShare.revenue_month_id.isnot(None),
            )
        )
        entries = s.execute(
            select(JournalEntry.year, JournalEntry.month, JournalEntry.product_id,
                   JournalEntry.currency, JournalEntry.gl_account, JournalEntry.debit,
                   JournalEntry.credit)
        ).all()  # fmt: skip
        by_month = s.execute(
            select(RevenueMonth.year, RevenueMonth.month, RevenueShare.currency,
                   func.sum(RevenueShare.amount))
            .join(RevenueShare, RevenueShare.revenue_month_id == RevenueMonth.id)
            .group_by(RevenueMonth.year, RevenueMonth.month, RevenueShare.currency)
        ).all()  # fmt: skip
        unbalanced = s.execute(
            text(rule_named("revenue_journal_balanced").sql.replace("{batch}", "journal_entries"))
        ).all()
    assert len(per_line) > 800 and credits >= 10
    for row in per_line:
        assert row.shares == row.net, row
        assert row.recognized + row.deferred == row.net, row
    assert late == 0
    assert unbalanced == []
    balance: dict[tuple, Decimal] = {}
    revenue: dict[tuple, Decimal] = {}
    for e in entries:
        key = (e.year, e.month, e.product_id, e.currency)
        balance[key] = balance.get(key, D(0)) + e.debit - e.credit
        if e.gl_account != DEFERRED_REVENUE_ACCOUNT:
            month_key = (e.year, e.month, e.currency)
            revenue[month_key] = revenue.get(month_key, D(0)) + e.credit - e.debit
    assert set(balance.values()) == {D(0)}
    assert revenue == {(y, m, c): amount for y, m, c, amount in by_month if amount != 0}
    assert {(y, m) for y, m, _ in revenue} == set(MONTHS)


def _cancel_some_advance_items(engine, *, count, on):
    with unit_of_work(engine) as s:
        items = s.execute(
            select(ContractItem.ref, Contract.account_id)
            .join(Contract, Contract.id == ContractItem.contract_id)
            .join(PricePlan, PricePlan.id == ContractItem.price_plan_id)
            .where(ContractItem.item_type == ItemType.RECURRING, PricePlan.timing == Timing.ADVANCE)
            .order_by(ContractItem.id)
            .limit(count)
        ).all()
        s.add_all(
            DeferredAction(
                ref=f"cancel-{ref}", account_id=account, action="cancel_item",
                params={"item_ref": ref}, due_on=on,
            )
            for ref, account in items
        )  # fmt: skip
