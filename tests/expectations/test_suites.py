"""The post-billing checks on a billed population, with bad rows seeded on purpose.

Every test runs on SQLite and on PostgreSQL (``engine`` fixture). The clean population is the
hand-checked one of tests/billing/test_billday.py, billed on 2027-02-01: bill id 1 is A's
(EUR 166.00 + 33.20 = 199.20, number 2), bill id 2 is B's (GBP 14.45 + 2.89 = 17.34, number 1,
the earlier bill date). Each seeding test asserts the exact unexpected count of every failing
expectation, and so that all the others still succeed.

The seeding tests run the rules' SQL directly (``check``, tests/expectations/direct.py): a GE
run costs seconds. A few tests run the real GE suites end to end (``ge_check``: Data Docs, the
CLI, a query that cannot run, PostgreSQL's search path), and
``test_direct_path_and_great_expectations_agree`` runs both on the same faulty data.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, insert, select, text, update
from typer.testing import CliRunner

from billing.jobs.bill_day import run_bill_day
from billing.store.db import make_engine, unit_of_work
from billing.store.migrate import upgrade
from billing.store.models import (
    Account,
    Bill,
    BillingState,
    BillSeries,
    BillUnit,
    Charge,
    ChargeKind,
    ChargeStatus,
    ContractItem,
    JournalEntry,
    Payment,
    PaymentMethod,
    PaymentStatus,
    PricePlan,
    Refund,
    UsageRecord,
)
from expectations.runner import CheckReport, run_post_billing_checks
from expectations.suites import RULES, Rule, rule_named, sql_date
from tests.billing import test_billday
from tests.billing import test_thresholds as th
from tests.conftest import pg_schema_url
from tests.expectations.direct import run_rules_directly

D = Decimal
AS_OF = date(2027, 2, 1)
UNIT_A, UNIT_B = 1, 2
BILL_A, BILL_B = 1, 2

population = test_billday.population


@pytest.fixture
def billed(population: Engine) -> Engine:
    """The population after the bill day of 2027-02-01."""
    run_bill_day(population, AS_OF, "run")
    return population


def check(engine: Engine, tmp_path: Path, **kwargs) -> CheckReport:
    """The rules' SQL run directly (no GE, no Data Docs): what GE would report."""
    return run_rules_directly(engine, AS_OF, **kwargs)


def ge_check(engine: Engine, tmp_path: Path, **kwargs) -> CheckReport:
    """The real Great Expectations suites, Data Docs under ``tmp_path / "checks"``."""
    return run_post_billing_checks(engine, AS_OF, tmp_path / "checks", **kwargs)


def failures(report: CheckReport) -> dict[str, int | None]:
    return {r.name: r.unexpected_count for r in report.failed}


def execute(engine: Engine, *statements) -> None:
    with unit_of_work(engine) as s:
        for statement in statements:
            s.execute(statement)


def test_every_rule_is_named_described_and_reads_its_table():
    """The catalogue: each name below has its seeded-failure test in this module (the prepaid
    credits' rules, from bill_paid_within_gross on, in tests/expectations/test_wallet_checks.py)."""
    assert [rule.name for rule in RULES] == [
        "bill_units_not_failed",
        "due_accounts_billed",
        "bills_numbered",
        "bill_numbers_gapless",
        "one_cycle_bill_per_unit_and_period",
        "bill_totals_match_lines",
        "bill_net_plus_tax_is_gross",
        "billed_charges_are_open_lines",
        "due_date_not_before_bill_date",
        "billed_cycle_charges_not_pending",
        "collected_usage_attached_to_charge",
        "usage_charge_quantity_matches_usage",
        "threshold_charges_billed",
        "threshold_charges_within_cycle_total",
        "account_balance_matches_ledger",
        "revenue_journal_balanced",
        "credit_notes_within_invoices",
        "discounts_within_their_targets",
        "commitment_shortfalls_positive_once",
        "no_fee_during_trial",
        "bill_paid_within_gross",
        "wallet_balance_not_negative",
        "wallet_lots_not_overdrawn",
        "wallet_consumption_within_bill",
    ]
    for rule in RULES:
        assert rule.description and "{batch}" in rule.sql
    assert rule_named("bills_numbered").table == "bills"


def test_as_of_must_be_a_date():
    assert sql_date(date(2027, 2, 1)) == "'2027-02-01'"
    for bad in ("2027-02-01'; DROP TABLE bills; --", datetime(2027, 2, 1, 12)):
        with pytest.raises(TypeError):
            sql_date(bad)  # type: ignore[arg-type]


def test_clean_billed_population_passes_every_check(billed, tmp_path):
    report = ge_check(billed, tmp_path)
    assert failures(report) == {}
    assert report.success
    assert [r.name for r in report.results] == [rule.name for rule in RULES]
    assert all(r.unexpected_count == 0 and r.sample == () for r in report.results)
    assert report.data_docs == (tmp_path / "checks" / "data_docs" / "index.html").resolve()
    assert report.data_docs.is_file()


def test_catch_up_over_two_cycles_with_cancellation_passes(population, tmp_path):
    """Cycle fees credit a cancelled item, B and A bill twice: still every rule holds."""
    for day in (date(2027, 2, 1), date(2027, 2, 15), date(2027, 3, 1)):
        run_bill_day(population, day, f"run-{day}")
    report = run_rules_directly(population, date(2027, 3, 1))
    assert failures(report) == {}


def test_failed_bill_unit(billed, tmp_path):
    execute(
        billed,
        update(BillUnit)
        .where(BillUnit.id == UNIT_B)
        .values(billing_state=BillingState.FAILED, failure_reason="no tax rate"),
    )
    report = check(billed, tmp_path)
    assert failures(report) == {"bill_units_not_failed": 1}
    assert report.result("bill_units_not_failed").sample == (
        {
            "bill_unit_id": UNIT_B,
            "account_id": 2,
            "next_bill_date": "2027-02-28",
            "failure_reason": "no tax rate",
        },
    )


def test_due_unit_not_billed_unless_its_account_is_closed(billed, tmp_path):
    execute(billed, update(BillUnit).where(BillUnit.id == UNIT_A).values(next_bill_date=AS_OF))
    report = check(billed, tmp_path)
    assert failures(report) == {"due_accounts_billed": 1}
    assert report.result("due_accounts_billed").sample[0]["account_ref"] == "A"

    execute(billed, update(Account).where(Account.ref == "A").values(status="closed"))
    assert failures(check(billed, tmp_path)) == {}


def test_bill_without_bill_no(billed, tmp_path):
    execute(billed, update(Bill).where(Bill.id == BILL_A).values(bill_no=None))
    assert failures(check(billed, tmp_path)) == {"bills_numbered": 1}


def test_bill_without_number_also_leaves_a_gap(billed, tmp_path):
    execute(billed, update(Bill).values(number=None))
    # Both bills unnumbered; the series says 2 numbers were issued, none is on a bill.
    assert failures(check(billed, tmp_path)) == {"bills_numbered": 2, "bill_numbers_gapless": 1}


@pytest.mark.parametrize(
    "seed",
    [
        pytest.param(update(Bill).where(Bill.id == BILL_A).values(number=5), id="gap"),
        pytest.param(update(Bill).where(Bill.id == BILL_A).values(number=0), id="zero"),
        pytest.param(
            update(BillSeries).where(BillSeries.code == "INV").values(next_number=2),
            id="counter-behind",
        ),
        pytest.param(
            update(BillSeries).where(BillSeries.code == "INV").values(next_number=4),
            id="counter-ahead",
        ),
    ],
)
def test_bill_numbers_not_gapless(billed, tmp_path, seed):
    execute(billed, seed)
    report = check(billed, tmp_path)
    assert failures(report) == {"bill_numbers_gapless": 1}
    assert report.result("bill_numbers_gapless").sample[0]["series_code"] == "INV"


def test_empty_series_is_gapless_only_at_one(billed, tmp_path):
    execute(billed, insert(BillSeries).values(code="CRN", prefix="CRN-", next_number=1))
    assert failures(check(billed, tmp_path)) == {}
    execute(billed, update(BillSeries).where(BillSeries.code == "CRN").values(next_number=3))
    assert failures(check(billed, tmp_path)) == {"bill_numbers_gapless": 1}


def test_duplicate_cycle_bill(billed, tmp_path):
    """A second, empty, properly numbered cycle bill for A's cycle ending 2027-02-01."""
    with unit_of_work(billed) as s:
        original = s.get(Bill, BILL_A)
        s.add(
            Bill(
                bill_key=f"cyc:{UNIT_A}:2027-02-02",
                account_id=original.account_id,
                bill_unit_id=UNIT_A,
                series_code="INV",
                number=3,
                bill_no="INV-00000003",
                status="invoiced",
                bill_date=date(2027, 2, 2),
                due_date=date(2027, 3, 4),
                period_start=original.period_start,
                period_end=original.period_end,
                currency="EUR",
                net=D(0),
                tax=D(0),
                gross=D(0),
            )
        )
        s.execute(update(BillSeries).where(BillSeries.code == "INV").values(next_number=4))
    report = check(billed, tmp_path)
    assert failures(report) == {"one_cycle_bill_per_unit_and_period": 1}
    assert report.result("one_cycle_bill_per_unit_and_period").sample == (
        {
            "bill_unit_id": UNIT_A,
            "period_end": "2027-02-01",
            "bills": 2,
            "first_key": "cyc:1:2027-02-01",
            "last_key": "cyc:1:2027-02-02",
        },
    )


FIRST_LINE_OF_A = (
    select(Charge.id).where(Charge.bill_id == BILL_A, Charge.line_no == 1).scalar_subquery()
)


def test_line_net_changed(billed, tmp_path):
    """A line is its charge: its net (the charge's amount) changed, its gross (amount + tax)
    changes with it, and the bill no longer matches its lines."""
    execute(
        billed,
        update(Charge).where(Charge.id == FIRST_LINE_OF_A).values(amount=Charge.amount + D("1.00")),
    )
    report = check(billed, tmp_path)
    assert failures(report) == {"bill_totals_match_lines": 1}
    (row,) = report.result("bill_totals_match_lines").sample
    assert (row["bill_id"], row["net"], row["lines_net"]) == (BILL_A, D("166.00"), D("167.00"))
    assert (row["gross"], row["lines_gross"]) == (D("199.20"), D("200.20"))


def test_bill_gross_changed(billed, tmp_path):
    execute(billed, update(Bill).where(Bill.id == BILL_B).values(gross=D("17.35")))
    report = check(billed, tmp_path)
    # The bill no longer adds up, nor matches its lines, nor B's balance (17.34).
    assert failures(report) == {
        "bill_net_plus_tax_is_gross": 1,
        "bill_totals_match_lines": 1,
        "account_balance_matches_ledger": 1,
    }
    (row,) = report.result("bill_net_plus_tax_is_gross").sample
    assert row == {
        "bill_id": BILL_B,
        "bill_key": f"cyc:{UNIT_B}:2027-01-31",
        "net": D("14.45"),
        "tax": D("2.89"),
        "gross": D("17.35"),
    }


def test_bill_tax_moved_to_net_still_matches_its_gross(billed, tmp_path):
    """net + tax = gross holds, but the bill no longer matches its lines."""
    execute(
        billed,
        update(Bill).where(Bill.id == BILL_A).values(net=D("166.20"), tax=D("33.00")),
    )
    assert failures(check(billed, tmp_path)) == {"bill_totals_match_lines": 1}


def _drop_due_date_guard(engine: Engine) -> None:
    """The schema forbids due < bill date; lift that guard to prove the check sees it too."""
    if engine.dialect.name == "postgresql":
        execute(engine, text("ALTER TABLE bills DROP CONSTRAINT ck_bills_due_after_bill"))


def test_due_date_before_bill_date(billed, tmp_path):
    _drop_due_date_guard(billed)
    with billed.connect() as conn:
        if billed.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA ignore_check_constraints = ON")
        conn.execute(update(Bill).where(Bill.id == BILL_A).values(due_date=date(2027, 1, 31)))
        conn.commit()
        if billed.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA ignore_check_constraints = OFF")
    report = check(billed, tmp_path)
    assert failures(report) == {"due_date_not_before_bill_date": 1}
    assert report.result("due_date_not_before_bill_date").sample[0]["due_date"] == "2027-01-31"


def test_charge_of_billed_cycle_left_calculated(billed, tmp_path):
    first = select(func.min(Charge.id)).where(Charge.bill_id == BILL_A).scalar_subquery()
    execute(
        billed,
        update(Charge).where(Charge.id == first).values(status=ChargeStatus.CALCULATED),
    )
    report = check(billed, tmp_path)
    # Still on its bill (a line of it), so it is also a billed charge that is not open.
    assert failures(report) == {
        "billed_cycle_charges_not_pending": 1,
        "billed_charges_are_open_lines": 1,
    }
    row = report.result("billed_cycle_charges_not_pending").sample[0]
    assert (row["bill_unit_id"], row["last_bill_date"]) == (UNIT_A, "2027-02-01")
    (line,) = report.result("billed_charges_are_open_lines").sample
    assert (line["bill_id"], line["status"]) == (BILL_A, "calculated")

    # An immediate charge (Cn285 UTI) waits for the next run, not for the cycle: not flagged.
    execute(billed, update(Charge).where(Charge.id == first).values(immediate=True))
    assert failures(check(billed, tmp_path)) == {"billed_charges_are_open_lines": 1}


def test_calculated_charge_of_next_cycle_is_not_pending_billing(billed, tmp_path):
    with unit_of_work(billed) as s:
        s.add(
            Charge(
                charge_key="adj:next-cycle",
                account_id=1,
                bill_unit_id=UNIT_A,
                kind=ChargeKind.ADJUSTMENT,
                description="goodwill",
                period_start=date(2027, 2, 1),
                period_end=date(2027, 3, 1),
                bill_on=date(2027, 2, 2),
                quantity=D(1),
                unit_price=D("-5.00"),
                amount=D("-5.00"),
                currency="EUR",
                tax_category="standard",
                status=ChargeStatus.CALCULATED,
                created_on=AS_OF,
            )
        )
    assert failures(check(billed, tmp_path)) == {}


def test_usage_record_moved_out_of_its_charge_range(billed, tmp_path):
    """Rating writes no record: a charge prices the records its range holds. One moved past
    the cut-off is priced by none, and its charge (250 units) now prices 200."""
    execute(
        billed,
        update(UsageRecord)
        .where(UsageRecord.external_id == "u-a3-2")
        .values(occurred_at=datetime(2027, 3, 1)),
    )
    report = check(billed, tmp_path)
    assert failures(report) == {"usage_charge_quantity_matches_usage": 1}
    row = report.result("usage_charge_quantity_matches_usage").sample[0]
    assert (row["quantity"], row["usage_quantity"]) == (D("250"), D("200"))


def test_usage_record_detached_from_its_charge(billed, tmp_path):
    """A record rated before ranges is marked ``collected`` with its charge's key (migration
    0010 kept those marks); one whose key is lost is charged nowhere."""
    execute(
        billed,
        update(UsageRecord)
        .where(UsageRecord.external_id == "u-a3-2")
        .values(status="collected", charge_key=None),
    )
    report = check(billed, tmp_path)
    # The record is charged nowhere, and its charge (250 units) now has 200 units attached.
    assert failures(report) == {
        "collected_usage_attached_to_charge": 1,
        "usage_charge_quantity_matches_usage": 1,
    }
    assert report.result("collected_usage_attached_to_charge").sample[0]["external_id"] == "u-a3-2"
    row = report.result("usage_charge_quantity_matches_usage").sample[0]
    assert (row["quantity"], row["usage_quantity"]) == (D("250"), D("200"))


def test_usage_charge_quantity_changed(billed, tmp_path):
    execute(
        billed,
        update(Charge)
        .where(Charge.kind == ChargeKind.USAGE)
        .values(quantity=Charge.quantity + D("0.5")),
    )
    # Both of A's usage charges (graduated and volume) disagree with their records.
    assert failures(check(billed, tmp_path)) == {"usage_charge_quantity_matches_usage": 2}


def test_account_balance_changed(billed, tmp_path):
    execute(
        billed,
        update(Account).where(Account.ref == "A").values(balance=Account.balance + D("0.01")),
    )
    report = check(billed, tmp_path)
    assert failures(report) == {"account_balance_matches_ledger": 1}
    assert report.result("account_balance_matches_ledger").sample == (
        {
            "account_id": 1,
            "account_ref": "A",
            "balance": D("199.21"),
            "expected_balance": D("199.20"),
            "invoiced": D("199.20"),
            "paid": None,
            "refunded": None,
            "prepaid_credits": None,
        },
    )


def test_balance_counts_settled_payments_and_refunds_only(billed, tmp_path):
    def payment(key, amount, status):
        return Payment(
            idempotency_key=key,
            account_id=1,
            method=PaymentMethod.CARD,
            amount=D(amount),
            currency="EUR",
            received_on=AS_OF,
            status=status,
        )

    with unit_of_work(billed) as s:
        s.add_all(
            [
                payment("p1", "150.00", PaymentStatus.SETTLED),
                payment("p2", "999.00", PaymentStatus.PENDING),
                payment("p3", "999.00", PaymentStatus.FAILED),
                Refund(
                    idempotency_key="r1",
                    account_id=1,
                    method=PaymentMethod.CARD,
                    amount=D("20.00"),
                    currency="EUR",
                    refunded_on=AS_OF,
                    status=PaymentStatus.SETTLED,
                ),
            ]
        )
    report = check(billed, tmp_path)
    assert failures(report) == {"account_balance_matches_ledger": 1}
    assert report.result("account_balance_matches_ledger").sample[0]["expected_balance"] == D(
        "69.20"
    )  # 199.20 - 150.00 + 20.00
    execute(billed, update(Account).where(Account.ref == "A").values(balance=D("69.20")))
    assert failures(check(billed, tmp_path)) == {}


def _journal(year: int, month: int, currency: str, debit: str, credit: str) -> JournalEntry:
    return JournalEntry(
        year=year,
        month=month,
        gl_account="706000",
        currency=currency,
        debit=D(debit),
        credit=D(credit),
        description="revenue",
    )


def test_unbalanced_revenue_journal(billed, tmp_path):
    with unit_of_work(billed) as s:
        s.add_all(
            [
                _journal(2027, 1, "EUR", "100.00", "0"),  # balanced by the next line
                _journal(2027, 1, "EUR", "0", "100.00"),
                _journal(2027, 2, "EUR", "50.00", "0"),  # debit in EUR, credit in GBP:
                _journal(2027, 2, "GBP", "0", "50.00"),  # two unbalanced journals
                _journal(2027, 3, "EUR", "10.00", "9.99"),
            ]
        )
    report = check(billed, tmp_path, sample_size=2)
    assert failures(report) == {"revenue_journal_balanced": 3}
    assert report.result("revenue_journal_balanced").sample == (
        {"year": 2027, "month": 2, "currency": "EUR", "debit": D("50.00"), "credit": D("0")},
        {"year": 2027, "month": 2, "currency": "GBP", "debit": D("0"), "credit": D("50.00")},
    )


def test_a_query_that_cannot_run_is_a_failure_with_its_error(billed, tmp_path):
    broken = Rule("broken", "bills", "a column that does not exist", "SELECT nope FROM {batch}")
    report = run_post_billing_checks(billed, AS_OF, tmp_path, rules=[broken])
    (result,) = report.results
    assert not report.success and not result.success
    assert result.unexpected_count is None and "nope" in result.error


def test_data_docs_show_the_failed_expectation(billed, tmp_path):
    execute(billed, update(Bill).where(Bill.id == BILL_A).values(bill_no=None))
    report = ge_check(billed, tmp_path)
    site = report.data_docs.parent
    pages = {
        p.relative_to(site / "validations").parts[:2]: p for p in site.glob("validations/**/*.html")
    }
    assert report.data_docs.is_file() and len(pages) == len({rule.table for rule in RULES})
    bills_page = pages[("post_billing", "bills")].read_text()
    assert "bills_numbered" in bills_page and "Every bill has a number" in bills_page
    assert "post_billing.bills" in report.data_docs.read_text()


def test_cli_exit_codes(billed, tmp_path):
    from flows.cli import app

    url = billed.url.render_as_string(hide_password=False)
    args = ["check", "--as-of", "2027-02-01", "--database", url, "--output", str(tmp_path)]
    runner = CliRunner()
    ok = runner.invoke(app, args)
    assert ok.exit_code == 0, ok.output
    assert "bills_numbered" in ok.output
    assert str(tmp_path.resolve() / "data_docs" / "index.html") in ok.output

    execute(billed, update(BillUnit).where(BillUnit.id == UNIT_B).values(billing_state="failed"))
    bad = runner.invoke(app, args)
    assert bad.exit_code == 1, bad.output
    assert "bill_units_not_failed" in bad.output


def test_postgres_search_path_reaches_great_expectations(pg_schema, tmp_path):
    """GE opens its own engine from the rendered URL: its ``options`` must keep the schema."""
    engine = make_engine(pg_schema_url(pg_schema))
    upgrade(engine)
    probe = Rule(
        "schema",
        "bill_series",
        "where GE reads",
        "SELECT DISTINCT current_schema() AS s FROM {batch}",
    )
    try:
        (result,) = run_post_billing_checks(engine, AS_OF, tmp_path, rules=[probe]).results
    finally:
        engine.dispose()
    assert result.sample == ({"s": pg_schema},)


def test_direct_path_and_great_expectations_agree(billed, tmp_path):
    """The same faulty data through both paths: every rule's outcome, count and sample."""
    execute(
        billed,
        update(BillUnit).where(BillUnit.id == UNIT_B).values(billing_state=BillingState.FAILED),
        update(Bill).where(Bill.id == BILL_B).values(bill_no=None, gross=D("17.35")),
        update(Charge).where(Charge.id == FIRST_LINE_OF_A).values(amount=Charge.amount + D("1.00")),
        update(UsageRecord).where(UsageRecord.external_id == "u-a3-2").values(charge_key=None),
    )
    with unit_of_work(billed) as s:
        s.add_all(
            [
                _journal(2027, 2, "EUR", "50.00", "0"),
                _journal(2027, 2, "GBP", "0", "50.00"),
                _journal(2027, 3, "EUR", "10.00", "9.99"),
            ]
        )
    for sample_size in (5, 1):
        direct = check(billed, tmp_path, sample_size=sample_size)
        through_ge = ge_check(billed, tmp_path / str(sample_size), sample_size=sample_size)
        assert len(direct.failed) >= 6 and direct.passed >= 4  # both kinds of outcome compared
        assert direct.results == through_ge.results
        assert direct.success is through_ge.success is False


def test_invoice_line_credited_beyond_what_it_billed(billed, tmp_path):
    """A correction naming a line's charge takes off more than the line billed."""
    with unit_of_work(billed) as s:
        original = s.scalars(
            select(Charge).where(Charge.bill_id == BILL_A, Charge.amount > 0)
        ).first()
        assert original is not None
        line_id, net = original.id, original.amount
        s.add(
            Charge(
                charge_key=f"crl:{original.id}:1",
                account_id=original.account_id,
                bill_unit_id=original.bill_unit_id,
                kind=ChargeKind.ADJUSTMENT,
                description="credit beyond the line",
                period_start=original.period_start,
                period_end=original.period_end,
                bill_on=AS_OF,
                quantity=D(1),
                unit_price=-(net + D("0.01")),
                amount=-(net + D("0.01")),
                currency=original.currency,
                tax_category=original.tax_category,
                status=ChargeStatus.OPEN,
                created_on=AS_OF,
                corrects_charge_id=original.id,
            )
        )
    report = check(billed, tmp_path)
    assert failures(report) == {"credit_notes_within_invoices": 1}
    (row,) = report.result("credit_notes_within_invoices").sample
    assert (row["charge_id"], row["net"], row["corrected"]) == (line_id, net, -(net + D("0.01")))


def test_discount_line_positive_or_beyond_its_target(billed, tmp_path):
    """A's bill: product PRO (item A1) is billed twice, 30.00 + 30.00 (January, February).
    Its first line turned into a discount of -31.00 (tax -6.20), the 61.00 and 12.20 moved onto
    another line: the bill still adds up, but the discount takes 31.00 off A1's 30.00 left."""
    with unit_of_work(billed) as s:
        lines = s.scalars(select(Charge).where(Charge.bill_id == BILL_A).order_by(Charge.line_no))
        a1, other = [], None
        for line in lines:
            if line.charge_key.startswith("rec:") and line.amount == D("30.00"):
                a1.append(line)
            elif other is None and line.kind == ChargeKind.RECURRING:
                other = line
        assert len(a1) == 2 and a1[0].contract_item_id == a1[1].contract_item_id and other
        first, item = a1[0].id, a1[0].contract_item_id
        s.execute(
            update(Charge)
            .where(Charge.id == first)
            .values(kind=ChargeKind.DISCOUNT, amount=D("-31.00"), tax=D("-6.20"))
        )
        s.execute(
            update(Charge)
            .where(Charge.id == other.id)
            .values(amount=Charge.amount + D("61.00"), tax=Charge.tax + D("12.20"))
        )
    report = check(billed, tmp_path)
    assert failures(report) == {"discounts_within_their_targets": 1}
    (row,) = report.result("discounts_within_their_targets").sample
    assert (row["bill_id"], row["contract_item_id"], row["tax_category"]) == (
        BILL_A,
        item,
        "standard",
    )
    assert (row["discounts"], row["item_targets"]) == (D("-31.00"), D("30.00"))

    # A positive discount line is caught by itself.
    execute(
        billed,
        update(Charge).where(Charge.id == first).values(amount=D("1.00"), tax=D("0.20")),
        update(Charge)
        .where(Charge.id == other.id)
        .values(amount=Charge.amount - D("32.00"), tax=Charge.tax - D("6.40")),
    )
    report = check(billed, tmp_path)
    assert failures(report) == {"discounts_within_their_targets": 1}
    (row,) = report.result("discounts_within_their_targets").sample
    assert row["largest"] == D("1.00")


def test_bill_discount_beyond_its_tax_category(billed, tmp_path):
    """B's bill: its first line turned into a bill discount (no item) 0.01 larger than every
    other positive line of its tax category: the category would go below zero."""
    with unit_of_work(billed) as s:
        (line, *rest) = s.scalars(
            select(Charge).where(Charge.bill_id == BILL_B).order_by(Charge.line_no)
        )
        left = sum((c.amount for c in rest if c.amount > 0), D(0))
        s.execute(
            update(Charge)
            .where(Charge.id == line.id)
            .values(kind=ChargeKind.DISCOUNT, contract_item_id=None, amount=-left - D("0.01"))
        )
    report = check(billed, tmp_path)
    # the bill no longer matches its lines either (the line's amount changed)
    assert failures(report) == {"bill_totals_match_lines": 1, "discounts_within_their_targets": 1}
    (row,) = report.result("discounts_within_their_targets").sample
    assert (row["bill_id"], row["contract_item_id"]) == (BILL_B, None)
    assert (row["category_targets"], row["category_discounts"]) == (left, -left - D("0.01"))


# -- usage thresholds (billing.ops.thresholds): the population of tests/billing/test_thresholds.py


def test_threshold_charge_left_off_a_bill(engine):
    """A's usage passes its threshold on 12 January: the charge is due from that day, and a
    check as of 13 January finds it on no bill until the Billing daemon bills it."""
    th.population(engine, "10.00")
    th.add_usage(engine, "c1", "25", datetime(2027, 1, 10, 10))
    th.uti(engine, datetime(2027, 1, 12, 12))
    assert failures(run_rules_directly(engine, date(2027, 1, 12))) == {}  # due today: not late
    report = run_rules_directly(engine, date(2027, 1, 13))
    assert failures(report) == {"threshold_charges_billed": 1}
    row = report.result("threshold_charges_billed").sample[0]
    assert (row["charge_key"], row["status"]) == (
        f"thr:{th.item_id(engine)}:2027-02-01:2027-01-12T12:00:00",
        "calculated",
    )
    th.billing_daemon(engine, date(2027, 1, 13))
    assert failures(run_rules_directly(engine, date(2027, 1, 13))) == {}


@pytest.fixture
def billed_early(engine: Engine) -> Engine:
    """Graduated CALLS (100 at 1.00, then 0.50): 80 calls billed early on 12 January (80.00),
    40 more on the 1 February cycle bill (120 cost 110.00: 30.00)."""
    th.population(engine, "50.00", th.GRADUATED)
    th.add_usage(engine, "c1", "80", datetime(2027, 1, 10, 10))
    th.uti(engine, datetime(2027, 1, 12, 12))
    th.billing_daemon(engine, date(2027, 1, 12))
    th.add_usage(engine, "c2", "40", datetime(2027, 1, 20, 10))
    th.bill_day(engine, AS_OF)
    return engine


def test_cycle_charge_subtracting_more_than_the_cycle_costs(billed_early):
    """The cycle's usage charge is hand-set to -5.00 (its bill's net follows, so only the rule
    speaks): the early charge's 80.00 would exceed the cycle's 75.00."""
    engine = billed_early
    u1 = th.item_id(engine)
    use = Charge.charge_key == f"use:{u1}:2027-02-01"
    with unit_of_work(engine) as s:
        bill_id = s.scalar(select(Charge.bill_id).where(use))
    execute(
        engine,
        update(Charge).where(use).values(amount=D("-5.00"), tax=D("-1.00")),
        update(Bill)
        .where(Bill.id == bill_id)
        .values(net=D("-5.00"), tax=D("-1.00"), gross=D("-6.00")),
        update(Account).where(Account.ref == "A").values(balance=D("90.00")),  # 96.00 - 6.00
    )
    report = run_rules_directly(engine, AS_OF)
    assert failures(report) == {"threshold_charges_within_cycle_total": 1}
    row = report.result("threshold_charges_within_cycle_total").sample[0]
    assert (row["charge_key"], row["amount"], row["threshold_billed"]) == (
        f"use:{u1}:2027-02-01",
        D("-5.00"),
        D("80.00"),
    )
    # Where a negative rest is right, the rule says nothing: under a volume plan (a larger
    # total can cost less) or once the item's price changed (an override).
    with unit_of_work(engine) as s:
        item = s.get(ContractItem, u1)
        assert item is not None
        plan_id = item.price_plan_id
    execute(engine, update(PricePlan).where(PricePlan.id == plan_id).values(model="volume"))
    assert failures(run_rules_directly(engine, AS_OF)) == {}
    execute(
        engine,
        update(PricePlan).where(PricePlan.id == plan_id).values(model="graduated"),
        update(ContractItem).where(ContractItem.id == u1).values(price_override=D("0.80")),
    )
    assert failures(run_rules_directly(engine, AS_OF)) == {}
