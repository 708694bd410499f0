"""A whole billed synthetic population through collect, bank payments and refunds.

Whatever happened, every account's balance is invoiced - paid + refunded, money applied to a
bill never exceeds it, and unapplied money exists only where nothing is left to pay.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal

from sqlalchemy import select, update

from billing.ingest.synthetic import seed
from billing.jobs.bill_day import run_bill_day
from billing.payments.collect import collect_payments
from billing.payments.config import PaymentConfig, RetryPolicy
from billing.payments.refund import refund_payments
from billing.payments.sandbox import SandboxGateway
from billing.payments.statement import import_payments_csv, return_debit, settle_reference
from billing.store.db import unit_of_work
from billing.store.models import Account, Bill, Payment, PaymentMethod, PaymentStatus, Refund
from expectations.runner import run_post_billing_checks
from expectations.suites import rule_named
from tests.billing.test_payments import CREDITOR

AS_OF = date(2027, 2, 15)


def test_population_balances_match_the_ledger(engine, tmp_path):
    seed(engine, accounts=200, usage_per_account=3, start=date(2027, 1, 1))
    run_bill_day(engine, AS_OF, "run-1")
    with unit_of_work(engine) as s:  # some cards decline, some fail transiently
        cards = s.scalars(
            select(Account.id).where(Account.payment_method == PaymentMethod.CARD)
        ).all()
        for index, account_id in enumerate(cards[:9]):
            token = ("tok_declined", "tok_transient", "tok_visa")[index % 3]
            s.execute(update(Account).where(Account.id == account_id).values(card_token=token))
    gateway = SandboxGateway(tmp_path / "gw.sqlite3", transient_failures=1)
    config = PaymentConfig(output_dir=tmp_path / "out", creditor=CREDITOR)
    collected = collect_payments(engine, AS_OF, gateway, config, run_id="run-1")
    assert collected.collected > 0 and collected.debits > 0 and collected.declined
    assert collected.transient
    collect_payments(engine, AS_OF, gateway, config, run_id="run-1")  # resumes the transient

    with unit_of_work(engine) as s:  # the bank: most debits settle, one comes back
        debits = s.scalars(
            select(Payment.reference).where(Payment.method == PaymentMethod.DIRECT_DEBIT)
        ).all()
        return_debit(s, debits[0], returned_on=AS_OF, reason="AC04", retry=RetryPolicy((3, 7, 14)))
        for reference in debits[1::2]:
            settle_reference(s, reference)
        open_invoices = s.execute(
            select(Bill.id, Bill.bill_no, Bill.gross, Bill.currency, Account.ref)
            .join(Account)
            .where(Account.payment_method == PaymentMethod.INVOICE, Bill.gross > 0)
            .order_by(Bill.id)
        ).all()
    lines = ["reference,account_ref,amount,currency,date,bill_no"]
    for n, (bill_id, bill_no, gross, currency, ref) in enumerate(open_invoices):
        extra = Decimal("10.00") if n % 4 == 0 else Decimal(0)  # some overpay
        part = Decimal("0.5") if n % 4 == 1 else Decimal(1)  # some pay half
        amount = (gross * part + extra).quantize(Decimal("0.01"))
        lines.append(f"ST-{bill_id},{ref},{amount},{currency},2027-02-16,{bill_no}")
    statement = tmp_path / "statement.csv"
    statement.write_text("\n".join(lines) + "\n")
    with unit_of_work(engine) as s:
        report = import_payments_csv(s, statement)
    assert report.inserted == len(open_invoices) and not report.rejected
    # Card customers with nothing left to pay who pay a transfer too get it refunded.
    with unit_of_work(engine) as s:
        paid_by_card = s.execute(
            select(Account.ref, Account.currency)
            .join(Payment, Payment.account_id == Account.id)
            .where(
                Payment.method == PaymentMethod.CARD,
                Payment.status == PaymentStatus.SETTLED,
                Account.balance == 0,
            )
            .distinct()
            .order_by(Account.ref)
            .limit(5)
        ).all()
    overpay = tmp_path / "overpay.csv"
    overpay.write_text(
        "reference,account_ref,amount,currency,date\n"
        + "".join(f"OV-{ref},{ref},7.50,{cur},2027-02-16\n" for ref, cur in paid_by_card)
    )
    with unit_of_work(engine) as s:
        import_payments_csv(s, overpay)
    refunds = refund_payments(engine, date(2027, 2, 16), gateway, config, run_id="run-2")
    assert refunds.refunded + len(refunds.transient) == len(paid_by_card)
    assert refunds.skipped  # invoice accounts that overpaid have no way back
    resumed = refund_payments(engine, date(2027, 2, 16), gateway, config, run_id="run-2")
    assert resumed.refunded == len(refunds.transient)
    with unit_of_work(engine) as s:
        for reference in s.scalars(select(Refund.reference).where(Refund.method == "direct_debit")):
            settle_reference(s, reference)
    # A rerun of both steps changes nothing.
    assert (
        collect_payments(engine, AS_OF, gateway, config, run_id="run-3").summary()["collected"] == 0
    )
    assert refund_payments(engine, date(2027, 2, 16), gateway, config, run_id="run-3").refunded == 0

    _assert_ledger(engine)
    report = run_post_billing_checks(
        engine, AS_OF, tmp_path / "checks", rules=[rule_named("account_balance_matches_ledger")]
    )
    assert report.success, report.results


def _assert_ledger(engine) -> None:
    invoiced: dict[int, Decimal] = defaultdict(Decimal)
    applied: dict[int, Decimal] = defaultdict(Decimal)
    open_dues: dict[int, Decimal] = defaultdict(Decimal)
    with unit_of_work(engine) as s:
        for account_id, gross, paid in s.execute(
            select(Bill.account_id, Bill.gross, Bill.amount_paid)
        ):
            assert 0 <= paid <= max(gross, Decimal(0))
            invoiced[account_id] += gross
            applied[account_id] += paid
            open_dues[account_id] += max(gross - paid, Decimal(0))
        paid_in: dict[int, Decimal] = defaultdict(Decimal)
        for account_id, amount in s.execute(
            select(Payment.account_id, Payment.amount).where(
                Payment.status == PaymentStatus.SETTLED
            )
        ):
            paid_in[account_id] += amount
        refunded: dict[int, Decimal] = defaultdict(Decimal)
        for account_id, amount in s.execute(
            select(Refund.account_id, Refund.amount).where(Refund.status == PaymentStatus.SETTLED)
        ):
            refunded[account_id] += amount
        balances = dict(s.execute(select(Account.id, Account.balance)).tuples().all())
    assert len(balances) == 200
    for account_id, balance in balances.items():
        expected = invoiced[account_id] - paid_in[account_id] + refunded[account_id]
        assert balance == expected, account_id
        unapplied = open_dues[account_id] - balance
        assert unapplied >= 0, account_id
        assert unapplied == 0 or open_dues[account_id] == 0, account_id
