"""SEPA Core direct debits: collection dates, PmtInf per (sequence, date), one debit per
mandate and date, two runs on two dates; on SQLite and PostgreSQL (issue #18).

Account A of the hand-checked population (tests/billing/test_billday.py) has, after the bill
day of 2027-02-01, bill 1 (INV-00000002) of 199.20 EUR due 2027-03-03 (30 days' terms). The
tests add bills to A with the due dates they need.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import func, select, update

from billing.domain.direct_debit import DEBIT_HORIZON_DAYS
from billing.payments.collect import remittance
from billing.payments.config import RetryPolicy
from billing.payments.errors import PaymentRecordError
from billing.payments.statement import record_bank_payment, return_debit, settle_reference
from billing.store.db import unit_of_work
from billing.store.models import Account, Bill, Payment, PaymentStatus
from billing.store.models_payments import PaymentFile, PaymentFileEntry, PaymentFileKind
from tests.billing.test_billday import population  # noqa: F401  (the hand-checked population)
from tests.billing.test_payments import (  # noqa: F401  (fixtures)
    AS_OF,
    SENT_ON,
    account,
    billed,
    bills_of,
    by_debit,
    collect,
    config,
    gateway,
    valid,
)

D = Decimal
NS = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.008.001.02"}


def add_bill(engine, ref: str, bill_no: str, gross: str, bill_date: date, due: date) -> int:
    """Another open bill of account ``ref`` (the balance owes it too, as the ledger says)."""
    with unit_of_work(engine) as s:
        template = s.scalars(
            select(Bill).join(Account).where(Account.ref == ref).order_by(Bill.id)
        ).first()
        assert template is not None
        bill = Bill(
            bill_key=f"test:{bill_no}",
            account_id=template.account_id,
            bill_unit_id=template.bill_unit_id,
            series_code=template.series_code,
            bill_no=bill_no,
            bill_date=bill_date,
            due_date=due,
            period_start=bill_date,
            period_end=due,
            currency=template.currency,
            net=D(gross),
            tax=D("0.00"),
            gross=D(gross),
        )
        s.add(bill)
        s.execute(
            update(Account)
            .where(Account.id == template.account_id)
            .values(balance=Account.balance + D(gross))
        )
        s.flush()
        return bill.id


def blocks(path: str | Path) -> list[tuple[str, str, str, list[tuple[str, str, str]]]]:
    """Each PmtInf: (SeqTp, ReqdColltnDt, PmtInfId, [(EndToEndId, InstdAmt, Ustrd)])."""
    xml = etree.parse(str(path))
    found = []
    for info in xml.iterfind(".//p:PmtInf", NS):
        txs = [
            (
                tx.findtext("p:PmtId/p:EndToEndId", namespaces=NS) or "",
                tx.findtext("p:InstdAmt", namespaces=NS) or "",
                tx.findtext("p:RmtInf/p:Ustrd", namespaces=NS) or "",
            )
            for tx in info.iterfind("p:DrctDbtTxInf", NS)
        ]
        assert info.findtext("p:NbOfTxs", namespaces=NS) == str(len(txs))
        assert info.findtext("p:CtrlSum", namespaces=NS) == str(sum(D(t[1]) for t in txs))
        found.append(
            (
                info.findtext("p:PmtTpInf/p:SeqTp", namespaces=NS) or "",
                info.findtext("p:ReqdColltnDt", namespaces=NS) or "",
                info.findtext("p:PmtInfId", namespaces=NS) or "",
                txs,
            )
        )
    return found


def debit_payments(engine) -> list[tuple[str, Decimal, str, str | None]]:
    with unit_of_work(engine) as s:
        rows = s.execute(
            select(Payment.idempotency_key, Payment.amount, Payment.status, Payment.reference)
            .where(Payment.method == "direct_debit")
            .order_by(Payment.id)
        )
        return [(k, a, st.value, r) for k, a, st, r in rows]


def counts(engine) -> tuple[int, int]:
    with unit_of_work(engine) as s:
        return (
            s.scalar(select(func.count()).select_from(PaymentFile)) or 0,
            s.scalar(select(func.count()).select_from(Payment)) or 0,
        )


def test_bills_of_one_mandate_and_date_make_one_debit(billed, gateway, config):  # noqa: F811
    by_debit(billed, "A")
    add_bill(billed, "A", "EXTRA-1", "10.00", date(2027, 1, 20), date(2027, 3, 3))
    add_bill(billed, "A", "EXTRA-2", "5.50", date(2027, 2, 1), date(2027, 3, 3))
    result = collect(billed, gateway, config, SENT_ON)
    assert result.debits == 1 and result.debit_amounts == {"EUR": D("214.70")}
    [path] = result.files
    assert valid(Path(path), PaymentFileKind.DIRECT_DEBIT)
    # One PmtInf, one DrctDbtTxInf for the sum, the three bills named (oldest first).
    assert blocks(path) == [
        (
            "FRST",
            "2027-03-03",
            "DD-20270217-001-FRST-20270303",
            [("DD-1-1", "214.70", "Bills EXTRA-1, INV-00000002, EXTRA-2")],
        )
    ]
    xml = etree.parse(path)
    assert xml.findtext(".//p:GrpHdr/p:NbOfTxs", namespaces=NS) == "1"
    assert xml.findtext(".//p:GrpHdr/p:CtrlSum", namespaces=NS) == "214.70"
    # Still one payment per bill, each carrying the debit's end-to-end id.
    assert [(a, st, r) for _, a, st, r in debit_payments(billed)] == [
        (D("10.00"), "pending", "DD-1-1"),
        (D("199.20"), "pending", "DD-1-1"),
        (D("5.50"), "pending", "DD-1-1"),
    ]
    with unit_of_work(billed) as s:
        row = s.scalars(select(PaymentFile)).one()
        assert (row.transactions, row.control_sum) == (1, D("214.70"))
        assert s.scalar(select(func.count()).select_from(PaymentFileEntry)) == 3
    # A rerun adds nothing and leaves the file as it was.
    content = Path(path).read_bytes()
    assert collect(billed, gateway, config, SENT_ON).debits == 0
    assert counts(billed) == (1, 3)
    assert Path(path).read_bytes() == content
    # The statement line of the debit must carry its whole amount, and settles every bill.
    with unit_of_work(billed) as s:
        with pytest.raises(PaymentRecordError, match="DD-1-1 is the debit of 214.70 EUR"):
            record_bank_payment(
                s, reference="DD-1-1", account_ref="A", amount=D("199.20"), currency="EUR",
                received_on=date(2027, 3, 3),
            )  # fmt: skip
    with unit_of_work(billed) as s:
        outcome = record_bank_payment(
            s, reference="DD-1-1", account_ref="A", amount=D("214.70"), currency="EUR",
            received_on=date(2027, 3, 3),
        )  # fmt: skip
        assert outcome == "settled"
        assert settle_reference(s, "DD-1-1") == "unchanged"
    assert {st for _, _, st, _ in debit_payments(billed)} == {"settled"}
    assert account(billed, "A").balance == 0
    assert all(gross == paid for gross, paid in bills_of(billed, "A"))


def test_a_returned_combined_debit_reopens_each_bill(billed, gateway, config):  # noqa: F811
    by_debit(billed, "A")
    add_bill(billed, "A", "EXTRA-1", "10.00", date(2027, 2, 1), date(2027, 3, 3))
    collect(billed, gateway, config, SENT_ON)
    with unit_of_work(billed) as s:
        outcome = return_debit(
            s, "DD-1-1", returned_on=date(2027, 2, 19), reason="AM04", retry=RetryPolicy()
        )
        assert outcome == "returned"
    assert [st for _, _, st, _ in debit_payments(billed)] == ["failed", "failed"]
    assert account(billed, "A").balance == D("209.20")
    assert all(paid == 0 for _, paid in bills_of(billed, "A"))
    # Both bills are retried together on their retry day: again one debit, a new id, and
    # FRST again (the mandate has no debit that went through).
    retry = collect(billed, gateway, config, date(2027, 2, 20))
    assert retry.debits == 1
    [path] = retry.files
    assert valid(Path(path), PaymentFileKind.DIRECT_DEBIT)
    [(sequence, on, _, [(e2e, amount, _)])] = blocks(path)
    assert (sequence, on, e2e, amount) == ("FRST", "2027-03-03", "DD-1-2", "209.20")


def test_one_pmtinf_per_sequence_and_collection_date(billed, gateway, config):  # noqa: F811
    by_debit(billed, "A")
    # Overdue: collected on the earliest date allowed, as_of (Mon 1 Feb) + 2 TARGET2 days.
    add_bill(billed, "A", "LATE", "7.00", date(2027, 1, 1), date(2027, 1, 31))
    # Due on Saturday 20 March: collected on Monday 22 March.
    add_bill(billed, "A", "SAT", "8.00", date(2027, 2, 1), date(2027, 3, 20))
    # Due on Good Friday 26 March 2027: Easter Monday is closed too, so Tuesday 30 March.
    add_bill(billed, "A", "EASTER", "9.00", date(2027, 2, 1), date(2027, 3, 26))
    # A bank that holds files before presenting them (its agreement): a 60-day horizon puts
    # the four dates in one file (the rulebook's 14 days would send them on four days).
    result = collect(billed, gateway, replace(config, debit_horizon_days=60))
    assert result.debits == 4
    [path] = result.files
    assert valid(Path(path), PaymentFileKind.DIRECT_DEBIT)
    # The mandate's first collection (the earliest date) is FRST, the others RCUR.
    found = [(seq, on, pmt_id, [e[1:] for e in txs]) for seq, on, pmt_id, txs in blocks(path)]
    assert found == [
        ("FRST", "2027-02-03", "DD-20270201-001-FRST-20270203", [("7.00", "Bill LATE")]),
        (
            "RCUR",
            "2027-03-03",
            "DD-20270201-001-RCUR-20270303",
            [("199.20", "Bill INV-00000002")],
        ),
        ("RCUR", "2027-03-22", "DD-20270201-001-RCUR-20270322", [("8.00", "Bill SAT")]),
        ("RCUR", "2027-03-30", "DD-20270201-001-RCUR-20270330", [("9.00", "Bill EASTER")]),
    ]
    e2e_ids = [e[0] for *_, txs in blocks(path) for e in txs]
    assert len(set(e2e_ids)) == 4
    assert collect(billed, gateway, replace(config, debit_horizon_days=60)).debits == 0
    assert counts(billed) == (1, 4)


def test_debits_beyond_the_horizon_wait_for_a_later_run(billed, gateway, config):  # noqa: F811
    """Runs on every day from bill day: each bill is sent once, by the first run within the
    default horizon (the rulebook's 14 calendar days) of its collection date."""
    assert config.debit_horizon_days == DEBIT_HORIZON_DAYS == 14  # the default, not set here
    horizon = config
    by_debit(billed, "A")
    add_bill(billed, "A", "LATER", "8.00", date(2027, 2, 1), date(2027, 3, 20))
    # 1 and 16 February: both collection dates (3 March, 22 March) are more than 14 days ahead.
    for day in (1, 16):
        first = collect(billed, gateway, horizon, date(2027, 2, day))
        assert (first.debits, first.not_yet_due, first.files) == (0, 2, [])
    assert counts(billed) == (0, 0)
    # 17 February: 3 March is 14 days ahead, sent as the mandate's FRST; 22 March waits.
    day_one = collect(billed, gateway, horizon, date(2027, 2, 17))
    assert (day_one.debits, day_one.not_yet_due) == (1, 1)
    [path_one] = day_one.files
    assert path_one.endswith("2027-02-17/sepa/FR72ZZZ123456/DD-20270217-001.pain.008.xml")
    assert valid(Path(path_one), PaymentFileKind.DIRECT_DEBIT)
    assert [(s, on, [t[1:] for t in txs]) for s, on, _, txs in blocks(path_one)] == [
        ("FRST", "2027-03-03", [("199.20", "Bill INV-00000002")])
    ]
    assert collect(billed, gateway, horizon, date(2027, 2, 17)).debits == 0  # rerun
    for day in (date(2027, 2, 18), date(2027, 3, 7)):  # 22 March still waits, nothing new
        between = collect(billed, gateway, horizon, day)
        assert (between.debits, between.not_yet_due) == (0, 1)
    # 8 March: 22 March is 14 days ahead; the mandate has been used, so RCUR.
    day_two = collect(billed, gateway, horizon, date(2027, 3, 8))
    assert (day_two.debits, day_two.not_yet_due) == (1, 0)
    [path_two] = day_two.files
    assert valid(Path(path_two), PaymentFileKind.DIRECT_DEBIT)
    assert [(s, on, [t[1:] for t in txs]) for s, on, _, txs in blocks(path_two)] == [
        ("RCUR", "2027-03-22", [("8.00", "Bill LATER")])
    ]
    # Reruns of both days add nothing: each bill has exactly one debit.
    for day in (date(2027, 2, 17), date(2027, 3, 8), date(2027, 3, 9)):
        assert collect(billed, gateway, horizon, day).debits == 0
    assert counts(billed) == (2, 2)
    assert [(k, st) for k, _, st, _ in debit_payments(billed)] == [
        ("dd:cyc:1:2027-02-01:1", "pending"),
        ("dd:test:LATER:1", "pending"),
    ]
    with unit_of_work(billed) as s:
        statuses = set(s.scalars(select(Payment.status)))
    assert statuses == {PaymentStatus.PENDING}


def test_remittance_lists_the_bills_in_140_characters():
    assert remittance(["FR-2027-000001"]) == "Bill FR-2027-000001"
    assert remittance(["A-1", "A-2", "A-3"]) == "Bills A-1, A-2, A-3"
    many = [f"FR-2027-{n:06d}" for n in range(20)]
    text = remittance(many)
    assert len(text) <= 140
    assert text.startswith("Bills FR-2027-000000, FR-2027-000001")
    shown = text.count("FR-2027-")
    assert text.endswith(f" +{20 - shown} more") and shown == 7
