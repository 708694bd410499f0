"""Prepaid credits (wallets) through bill day, on SQLite and PostgreSQL.

Account A (FR, EUR, pays by card) has one item: 100.00 a month in arrears from 2027-01-01, VAT
20 %. The bill day of 2027-02-01 bills January: 100.00 + 20.00 VAT = **120.00**. Every amount
below is worked out by hand in the comments.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from billing.jobs.bill_day import Payments, run_bill_day
from billing.ops.revrec import schedule_lines, summary_journal
from billing.ops.wallets import (
    WalletError,
    buy_credits,
    find_wallet,
    grant_credits,
    wallets_of,
)
from billing.payments.config import PaymentConfig
from billing.payments.sandbox import SandboxGateway
from billing.store.db import unit_of_work
from billing.store.models import (
    Account,
    Bill,
    Charge,
    ChargeKind,
    ChargeStatus,
    JournalEntry,
    Payment,
    PaymentStatus,
)
from billing.store.models_revrec import RevenueShare
from billing.store.models_terms import Wallet, WalletEntry
from tests import builders as b

D = Decimal
JAN_1, JAN_20, FEB_1, FEB_15 = (
    date(2027, 1, 1),
    date(2027, 1, 20),
    date(2027, 2, 1),
    date(2027, 2, 15),
)


@pytest.fixture
def account_a(engine):
    with unit_of_work(engine) as s:
        b.vat(s, {("standard", "FR"): "0.20"})
        svc = b.plan(s, "SVC", "recurring", price="100.00", timing="arrears")
        a = b.account(s, "A", created=JAN_1, billing_day=1)
        a.payment_method = "card"
        a.card_token = "tok_visa"
        contract = b.contract(s, a, "CA", JAN_1)
        b.item(s, contract, "A1", svc, "recurring", JAN_1)
    return engine


@pytest.fixture
def payments(tmp_path) -> Payments:
    return Payments(
        SandboxGateway(tmp_path / "gateway.sqlite3"), PaymentConfig(output_dir=tmp_path / "out")
    )


def wallet(engine, ref="W", *, priority=0, threshold=None, topup=None) -> None:
    with unit_of_work(engine) as s:
        account_id = s.scalar(select(Account.id).where(Account.ref == "A"))
        s.add(
            Wallet(
                ref=ref,
                account_id=account_id,
                name=f"Wallet {ref}",
                currency="EUR",
                priority=priority,
                topup_threshold=None if threshold is None else D(threshold),
                topup_amount=None if topup is None else D(topup),
                created_on=JAN_1,
            )
        )


def grant(engine, ref, amount, key, *, expires=None, on=JAN_1) -> None:
    with unit_of_work(engine) as s:
        grant_credits(s, find_wallet(s, ref), D(amount), on=on, reference=key, expires_on=expires)


def entries(engine) -> list[tuple]:
    """(key, kind, amount, on_date) of every wallet entry, in id order."""
    with unit_of_work(engine) as s:
        rows = s.execute(
            select(
                WalletEntry.entry_key, WalletEntry.kind, WalletEntry.amount, WalletEntry.on_date
            ).order_by(WalletEntry.id)
        ).all()
    return [(key, str(kind), amount, on) for key, kind, amount, on in rows]


def lot_ids(engine) -> dict[str, int]:
    """Each lot's id by its grant reference or its purchase charge's key."""
    with unit_of_work(engine) as s:
        rows = s.execute(
            select(WalletEntry.entry_key, WalletEntry.id, Charge.charge_key)
            .outerjoin(Charge, Charge.id == WalletEntry.charge_id)
            .where(WalletEntry.kind.in_(("grant", "purchase")))
        ).all()
    return {(charge or key.split(":", 2)[2]): lot for key, lot, charge in rows}


def the_bill(engine, key_prefix="cyc:") -> Bill:
    with unit_of_work(engine) as s:
        bill = s.scalars(select(Bill).where(Bill.bill_key.like(f"{key_prefix}%"))).one()
        s.expunge(bill)
    return bill


def balance(engine, ref="A") -> Decimal:
    with unit_of_work(engine) as s:
        return s.scalar(select(Account.balance).where(Account.ref == ref))


def card_payments(engine) -> list[tuple]:
    with unit_of_work(engine) as s:
        return [
            tuple(r)
            for r in s.execute(
                select(Payment.idempotency_key, Payment.amount, Payment.status).order_by(Payment.id)
            )
        ]


def everything(engine) -> dict[str, list]:
    """What a rerun must leave as it is."""
    with unit_of_work(engine) as s:
        return {
            "entries": s.execute(select(WalletEntry.entry_key, WalletEntry.amount)).all(),
            "bills": s.execute(select(Bill.bill_key, Bill.bill_no, Bill.amount_paid)).all(),
            "payments": s.execute(select(Payment.idempotency_key, Payment.amount)).all(),
            "balances": s.execute(select(Account.ref, Account.balance)).all(),
        }


# -- consumption ------------------------------------------------------------------------------


def test_two_lots_pay_the_bill_soonest_expiry_first_and_nothing_is_collected(account_a, payments):
    engine = account_a
    wallet(engine)
    grant(engine, "W", "100.00", "never")  # granted first: a lower id, but it never expires
    grant(engine, "W", "50.00", "soon", expires=date(2027, 3, 1))
    run_bill_day(engine, FEB_1, "run-1", payments=payments)
    lots = lot_ids(engine)
    # 120.00 due: the lot expiring on Mar 1 gives all its 50.00, the other 70.00 of its 100.00.
    assert entries(engine)[2:] == [
        (f"spd:{lots['soon']}:1", "consumption", D("-50.00"), FEB_1),
        (f"spd:{lots['never']}:1", "consumption", D("-70.00"), FEB_1),
    ]
    bill = the_bill(engine)
    assert (bill.gross, bill.amount_paid) == (D("120.00"), D("120.00"))
    assert card_payments(engine) == []  # fully paid: collection had nothing to collect
    assert balance(engine) == D("0.00")  # 120.00 billed - 120.00 paid by credits
    with unit_of_work(engine) as s:
        assert s.scalars(select(Charge.status).where(Charge.bill_id == bill.id)).all() == [
            ChargeStatus.CLOSED
        ]
        (info,) = wallets_of(s, bill.account_id)
    assert info.balance == D("30.00")  # 150.00 granted - 120.00 used
    assert [(lot.remaining, lot.expires_on) for lot in info.lots] == [(D("30.00"), None)]


def test_partial_cover_leaves_the_rest_to_collection(account_a, payments):
    engine = account_a
    wallet(engine)
    grant(engine, "W", "50.00", "welcome")
    run_bill_day(engine, FEB_1, "run-1", payments=payments)
    # 120.00 - 50.00 of credits = 70.00 charged to the card.
    assert [e[2] for e in entries(engine)] == [D("50.00"), D("-50.00")]
    assert card_payments(engine) == [("card:cyc:1:2027-02-01:1", D("70.00"), PaymentStatus.SETTLED)]
    bill = the_bill(engine)
    assert bill.amount_paid == D("120.00")  # 50.00 credits + 70.00 card
    assert balance(engine) == D("0.00")


def test_a_lot_expiring_on_the_bill_day_expires_before_it_pays(account_a, payments):
    engine = account_a
    wallet(engine)
    grant(engine, "W", "50.00", "short", expires=FEB_1)  # what is left on Feb 1 expires
    grant(engine, "W", "100.00", "long")
    run_bill_day(engine, FEB_1, "run-1", payments=payments)
    lots = lot_ids(engine)
    assert entries(engine)[2:] == [
        (f"exp:{lots['short']}", "expiry", D("-50.00"), FEB_1),  # all of it, dated its expiry
        (f"spd:{lots['long']}:1", "consumption", D("-100.00"), FEB_1),
    ]
    # 120.00 - 100.00 = 20.00 by card.
    assert [p[1] for p in card_payments(engine)] == [D("20.00")]


def test_wallets_are_used_by_priority(account_a, payments):
    engine = account_a
    wallet(engine, "LATER", priority=5)
    wallet(engine, "FIRST", priority=1)
    grant(engine, "LATER", "100.00", "later")
    grant(engine, "FIRST", "30.00", "first")
    run_bill_day(engine, FEB_1, "run-1", payments=payments)
    lots = lot_ids(engine)
    # Priority 1 first: 30.00; then the priority-5 wallet: 120.00 - 30.00 = 90.00.
    assert [(e[0], e[2]) for e in entries(engine)[2:]] == [
        (f"spd:{lots['first']}:1", D("-30.00")),
        (f"spd:{lots['later']}:1", D("-90.00")),
    ]
    assert card_payments(engine) == []


def test_the_account_credit_goes_first_then_the_wallet(account_a):
    engine = account_a
    wallet(engine)
    grant(engine, "W", "100.00", "g")
    with unit_of_work(engine) as s:  # 30.00 paid in advance: a credit balance
        s.execute(select(Account).where(Account.ref == "A")).scalar_one().balance = D("-30.00")
    run_bill_day(engine, FEB_1, "run-1")
    # 120.00 due: 30.00 of the account's own money, then 90.00 of credits.
    assert [e[2] for e in entries(engine)] == [D("100.00"), D("-90.00")]
    assert the_bill(engine).amount_paid == D("120.00")
    assert balance(engine) == D("0.00")  # -30.00 + 120.00 - 90.00


def test_a_wallet_in_another_currency_pays_nothing(account_a):
    engine = account_a
    wallet(engine)
    with unit_of_work(engine) as s:
        s.execute(select(Wallet)).scalar_one().currency = "GBP"  # a wallet in another currency
    grant(engine, "W", "100.00", "g")
    run_bill_day(engine, FEB_1, "run-1")
    assert len(entries(engine)) == 1
    assert the_bill(engine).amount_paid == 0


def test_a_rerun_of_the_same_date_adds_nothing(account_a, payments):
    engine = account_a
    wallet(engine, threshold="50.00", topup="100.00")
    grant(engine, "W", "60.00", "g", expires=date(2027, 6, 1))
    run_bill_day(engine, FEB_1, "run-1", payments=payments)
    before = everything(engine)
    run_bill_day(engine, FEB_1, "run-2", payments=payments)
    assert everything(engine) == before


# -- top-up -----------------------------------------------------------------------------------


def test_below_threshold_a_top_up_bill_sells_credits_outside_the_scope_of_vat(account_a, payments):
    engine = account_a
    wallet(engine, threshold="50.00", topup="100.00")
    grant(engine, "W", "60.00", "g")
    run_bill_day(engine, FEB_1, "run-1", payments=payments)
    # 120.00 due: 60.00 granted, balance 0.00 < 50.00: a top-up of 100.00, issued (INV-2),
    # credited, and its lot pays the other 60.00; 40.00 left.
    with unit_of_work(engine) as s:
        top = s.scalars(select(Bill).where(Bill.bill_key == "pb:top:1:2027-02-01")).one()
        (line,) = s.scalars(select(Charge).where(Charge.bill_id == top.id)).all()
        assert (top.bill_no, top.status, top.net, top.tax, top.gross) == (
            "INV-00000002", "invoiced", D("100.00"), D("0.00"), D("100.00"),
        )  # fmt: skip
        assert (line.charge_key, line.kind, line.vat_category, line.tax_rate, line.tax) == (
            "top:1:2027-02-01", ChargeKind.PREPAYMENT, "O", D(0), D(0),
        )  # fmt: skip
        assert line.tax_category == "prepaid"
        (info,) = wallets_of(s, top.account_id)
    lots = lot_ids(engine)
    assert entries(engine) == [
        ("gnt:1:g", "grant", D("60.00"), JAN_1),
        (f"spd:{lots['g']}:1", "consumption", D("-60.00"), FEB_1),
        (f"lot:{line.id}", "purchase", D("100.00"), FEB_1),
        (f"spd:{lots['top:1:2027-02-01']}:1", "consumption", D("-60.00"), FEB_1),
    ]
    assert info.balance == D("40.00")
    assert the_bill(engine).amount_paid == D("120.00")
    # The purchase bill is collected like any bill: the card pays 100.00.
    assert card_payments(engine) == [("card:pb:top:1:2027-02-01:1", D("100.00"), "settled")]
    assert balance(engine) == D("0.00")  # 120.00 + 100.00 billed - 120.00 credits - 100.00 card


def test_no_new_top_up_while_the_last_one_is_unpaid(account_a):
    engine = account_a
    wallet(engine, threshold="50.00", topup="100.00")
    run_bill_day(engine, FEB_1, "run-1")  # no collection: the top-up bill stays unpaid
    # Balance 0.00 < 50.00: top-up 100.00; its lot pays the 120.00 bill's first 100.00.
    assert [e[2] for e in entries(engine)] == [D("100.00"), D("-100.00")]
    run_bill_day(engine, date(2027, 2, 2), "run-2")  # still below, but INV-2 is unpaid
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count()).where(Bill.bill_key.like("pb:%"))) == 1


# -- purchases by hand and the journal ---------------------------------------------------------


def test_a_purchase_by_hand_is_issued_credited_and_idempotent(account_a):
    engine = account_a
    with unit_of_work(engine) as s:
        w = find_wallet(s, "A", create_on=JAN_20)  # no wallet yet: A-credits is made
        bought = buy_credits(s, w, D("150.00"), as_of=JAN_20, reference="order-1")
    assert (bought.wallet_ref, bought.bill_no, bought.inserted) == (
        "A-credits",
        "INV-00000001",
        True,
    )
    with unit_of_work(engine) as s:
        again = buy_credits(s, find_wallet(s, "A"), D("150.00"), as_of=JAN_20, reference="order-1")
        assert (again.bill_no, again.inserted) == ("INV-00000001", False)
        with pytest.raises(WalletError, match="never changed"):
            buy_credits(s, find_wallet(s, "A"), D("99.00"), as_of=JAN_20, reference="order-1")
        with pytest.raises(WalletError, match="more decimals than EUR"):
            buy_credits(s, find_wallet(s, "A"), D("1.005"), as_of=JAN_20, reference="order-2")
    assert [(e[1], e[2]) for e in entries(engine)] == [("purchase", D("150.00"))]


def test_journal_of_purchase_consumption_and_breakage(account_a):
    engine = account_a
    wallet(engine)
    grant(engine, "W", "50.00", "g1", expires=date(2027, 2, 10))
    grant(engine, "W", "40.00", "g2")
    with unit_of_work(engine) as s:
        buy_credits(s, find_wallet(s, "W"), D("100.00"), as_of=JAN_20, reference="p",
                    expires_on=FEB_15)  # fmt: skip
    run_bill_day(engine, FEB_1, "run-1")
    # 120.00: g1 (expires Feb 10) 50.00, then the purchase (Feb 15) 70.00; g2 untouched.
    run_bill_day(engine, FEB_15, "run-2")  # the purchase expires with 30.00 left: breakage
    lots = lot_ids(engine)
    assert [(e[0], e[2], e[3]) for e in entries(engine)[3:]] == [
        (f"spd:{lots['g1']}:2", D("-50.00"), FEB_1),
        (f"spd:{lots['buy:1:p']}:2", D("-70.00"), FEB_1),
        (f"exp:{lots['buy:1:p']}", D("-30.00"), FEB_15),
    ]
    with unit_of_work(engine) as s:
        schedule_lines(s)  # the journal daemon's first step: every invoiced line's shares
        january = summary_journal(s, 2027, 1)
        february = summary_journal(s, 2027, 2)
        # The purchase line is a prepayment, never revenue: no shares.
        shares = s.scalars(select(RevenueShare.charge_id).join(Charge).where(
            Charge.kind == ChargeKind.PREPAYMENT)).all()  # fmt: skip
    assert shares == []

    def lines(journal):
        return [(e.gl_account, e.debit, e.credit, e.description) for e in journal.entries]

    # January: the purchase of Jan 20 (receivable / prepayments), and January's service
    # (100.00 net billed Feb 1) recognized.
    assert lines(january) == [
        ("487000", D("100.00"), D("0.00"), "RevRec 2027-01 P-SVC: deferred revenue released"),
        ("706000", D("0.00"), D("100.00"), "RevRec 2027-01 P-SVC: revenue recognized"),
        ("411000", D("100.00"), D("0.00"), "RevRec 2027-01 prepaid credits: credits bought"),
        ("419100", D("0.00"), D("100.00"), "RevRec 2027-01 prepaid credits: credits bought"),
    ]
    # February: 70.00 of bought credits and 50.00 of free credits pay the receivable; 30.00
    # of bought credits expire (breakage). g1's expiry had nothing left: no entry.
    assert lines(february) == [
        ("419100", D("70.00"), D("0.00"), "RevRec 2027-02 prepaid credits: bought credits used"),
        ("411000", D("0.00"), D("70.00"), "RevRec 2027-02 prepaid credits: bought credits used"),
        ("709000", D("50.00"), D("0.00"), "RevRec 2027-02 prepaid credits: free credits used"),
        ("411000", D("0.00"), D("50.00"), "RevRec 2027-02 prepaid credits: free credits used"),
        ("419100", D("30.00"), D("0.00"), "RevRec 2027-02 prepaid credits: bought credits expired"),
        ("758000", D("0.00"), D("30.00"), "RevRec 2027-02 prepaid credits: bought credits expired"),
    ]
    for journal in (january, february):
        assert sum(e.debit for e in journal.entries) == sum(e.credit for e in journal.entries)
    assert january.recognized == {"EUR": D("100.00")}
    assert february.recognized == {"EUR": D("-20.00")}  # 30.00 breakage - 50.00 free credits
    with unit_of_work(engine) as s:  # a re-run writes the same journal
        summary_journal(s, 2027, 2)
        again = s.scalar(select(func.count()).select_from(JournalEntry).where(
            JournalEntry.year == 2027, JournalEntry.month == 2))  # fmt: skip
    assert again == 6


def test_grants_are_checked_and_idempotent(account_a):
    engine = account_a
    wallet(engine)
    grant(engine, "W", "10.00", "k")
    grant(engine, "W", "10.00", "k")  # again: nothing
    assert len(entries(engine)) == 1
    with unit_of_work(engine) as s:
        w = find_wallet(s, "W")
        with pytest.raises(WalletError, match="never changed"):
            grant_credits(s, w, D("11.00"), on=JAN_1, reference="k")
        with pytest.raises(WalletError, match="positive"):
            grant_credits(s, w, D("0"), on=JAN_1, reference="z")
        with pytest.raises(WalletError, match="must start before"):
            grant_credits(s, w, D("1"), on=JAN_1, reference="e", expires_on=JAN_1)
        with pytest.raises(WalletError, match="no wallet and no account"):
            find_wallet(s, "nobody")


# -- the purchase bill's documents ------------------------------------------------------------


def test_the_purchase_bill_is_an_invoice_outside_the_scope_of_vat(account_a):
    from lxml import etree

    from billing.documents.model import load_invoices
    from billing.documents.pdf import InvoiceRenderer
    from billing.documents.render import render_invoice
    from billing.documents.seller import DEFAULT_SELLER

    engine = account_a
    with unit_of_work(engine) as s:
        bought = buy_credits(s, find_wallet(s, "A", create_on=JAN_20), D("150.00"), as_of=JAN_20,
                             reference="order-1")  # fmt: skip
        bill_id = s.scalar(select(Bill.id).where(Bill.bill_no == bought.bill_no))
        (invoice,) = load_invoices(s, [bill_id])
    # XML, CII (XSD and the EN 16931 Schematron) and the Factur-X PDF, with every check that
    # refuses an invoice (VAT categories, mentions): a French seller, a French consumer, O.
    rendered = render_invoice(invoice, InvoiceRenderer(DEFAULT_SELLER), schematron=True)
    ns = {
        "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
        "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    }
    root = etree.fromstring(rendered.cii)
    tax = root.find(".//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax", ns)
    assert tax.findtext("ram:CategoryCode", namespaces=ns) == "O"
    assert tax.findtext("ram:ExemptionReasonCode", namespaces=ns) == "VATEX-EU-O"
    assert "Multi-purpose voucher" in tax.findtext("ram:ExemptionReason", namespaces=ns)
    assert tax.find("ram:RateApplicablePercent", ns) is None  # BR-O-05
    assert root.findall(".//ram:SpecifiedTaxRegistration", ns) == []  # BR-O-02: no VAT ids
    assert rendered.pdf.startswith(b"%PDF")
