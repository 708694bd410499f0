"""pin_collect and pin_refund on the hand-checked population, on SQLite and PostgreSQL.

After the bill day of 2027-02-01, account A (FR, EUR) has one bill of 199.20 EUR and account B
(GB, GBP) one of 17.34 GBP (tests/billing/test_billday.py works them out).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import func, select, update

from billing.jobs.bill_day import run_bill_day
from billing.payments.collect import collect_payments
from billing.payments.config import PaymentConfig, RetryPolicy
from billing.payments.errors import PaymentRecordError
from billing.payments.refund import refund_payments
from billing.payments.sandbox import SandboxGateway
from billing.payments.sepa import Creditor, xsd_path
from billing.payments.statement import record_bank_payment, return_debit, settle_reference
from billing.store.db import unit_of_work
from billing.store.models import (
    Account,
    Bill,
    BillingIssue,
    Charge,
    ChargeStatus,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Refund,
)
from billing.store.models_payments import AccountDunning, DunningState, PaymentFile, PaymentFileKind
from tests.billing.test_billday import population  # noqa: F401  (the hand-checked population)

D = Decimal
AS_OF = date(2027, 2, 1)
# The first day bill A's debit (due Wednesday 3 March) is within the rulebook's 14 calendar days
# (PaymentConfig.debit_horizon_days): the day its pain.008 is written.
SENT_ON = date(2027, 2, 17)
IBAN_A = "FR7630004000010000000009933"
CREDITOR = Creditor("Openbill Démo SA", "FR7630006000011234567890189", "AGRIFRPP", "FR72ZZZ123456")


@pytest.fixture
def billed(population):  # noqa: F811
    run_bill_day(population, AS_OF, "run-1")
    return population


@pytest.fixture
def gateway(tmp_path) -> SandboxGateway:
    return SandboxGateway(tmp_path / "gateway.sqlite3", transient_failures=1)


@pytest.fixture
def config(tmp_path) -> PaymentConfig:
    return PaymentConfig(output_dir=tmp_path / "out", creditor=CREDITOR)


def pays_by(engine, ref: str, method: str, **details) -> None:
    with unit_of_work(engine) as s:
        s.execute(
            update(Account).where(Account.ref == ref).values(payment_method=method, **details)
        )


def by_card(engine, ref: str, token: str) -> None:
    pays_by(engine, ref, "card", card_token=token)


def by_debit(engine, ref: str, iban: str = IBAN_A) -> None:
    pays_by(
        engine,
        ref,
        "direct_debit",
        iban=iban,
        bic="BNPAFRPP",
        mandate_ref=f"MD-{ref}",
        mandate_date=date(2027, 1, 1),
    )


def account(engine, ref: str) -> Account:
    with unit_of_work(engine) as s:
        return s.scalars(select(Account).where(Account.ref == ref)).one()


def bills_of(engine, ref: str) -> list[tuple[Decimal, Decimal]]:
    with unit_of_work(engine) as s:
        rows = s.execute(
            select(Bill.gross, Bill.amount_paid)
            .join(Account)
            .where(Account.ref == ref)
            .order_by(Bill.bill_date, Bill.id)
        )
        return [tuple(r) for r in rows]


def charge_statuses(engine, ref: str) -> set[str]:
    with unit_of_work(engine) as s:
        return {
            c.value
            for c in s.scalars(
                select(Charge.status)
                .join(Account, Account.id == Charge.account_id)
                .where(Account.ref == ref, Charge.bill_id.is_not(None))
            )
        }


def payments(engine) -> list[tuple[str, Decimal, str]]:
    with unit_of_work(engine) as s:
        rows = s.execute(
            select(Payment.idempotency_key, Payment.amount, Payment.status).order_by(Payment.id)
        )
        return [(k, a, st.value) for k, a, st in rows]


def collect(engine, gateway, config, as_of=AS_OF):
    return collect_payments(engine, as_of, gateway, config, run_id="run-1")


def valid(path: Path, kind: PaymentFileKind) -> bool:
    schema = etree.XMLSchema(etree.parse(str(xsd_path(kind))))
    return schema.validate(etree.parse(str(path)))


# --- card ---------------------------------------------------------------------------------


def test_card_collection_settles_applies_and_closes(billed, gateway, config):
    by_card(billed, "A", "tok_visa")
    by_card(billed, "B", "tok_mastercard")
    result = collect(billed, gateway, config)
    assert result.collected == 2
    assert result.collected_amounts == {"EUR": D("199.20"), "GBP": D("17.34")}
    assert bills_of(billed, "A") == [(D("199.20"), D("199.20"))]
    assert charge_statuses(billed, "A") == {"closed"}
    assert account(billed, "A").balance == 0
    assert account(billed, "B").balance == 0
    assert len(gateway.requests("charge")) == 2
    # A rerun collects nothing and charges nobody again.
    again = collect(billed, gateway, config)
    assert again.collected == 0
    assert len(gateway.requests("charge")) == 2
    assert len(payments(billed)) == 2


def test_declined_card_is_retried_on_schedule_then_dunning(billed, gateway, config):
    by_card(billed, "A", "tok_declined")
    days = {
        date(2027, 2, 1): 1,  # first attempt, declined
        date(2027, 2, 3): 1,  # day 2: no retry due
        date(2027, 2, 4): 2,  # day 3
        date(2027, 2, 8): 3,  # day 7
        date(2027, 2, 14): 3,  # day 13: not yet
        date(2027, 2, 15): 4,  # day 14, the last retry: dunning
        date(2027, 2, 20): 4,  # in dunning: nothing
    }
    for day, attempts in days.items():
        result = collect(billed, gateway, config, day)
        assert len(gateway.requests("charge")) == attempts, day
    assert result.collected == 0
    assert [p[2] for p in payments(billed)] == ["failed"] * 4
    with unit_of_work(billed) as s:
        dunning = s.scalars(select(AccountDunning)).one()
        assert dunning.state is DunningState.DUNNING
        assert dunning.since == date(2027, 2, 15)
        assert "card_declined" in dunning.reason
    # The customer pays by transfer: the bill is paid and the dunning state clears.
    with unit_of_work(billed) as s:
        record_bank_payment(
            s,
            reference="BANK-1",
            account_ref="A",
            amount=D("199.20"),
            currency="EUR",
            received_on=date(2027, 2, 21),
        )
    with unit_of_work(billed) as s:
        assert s.scalars(select(AccountDunning.state)).one() is DunningState.CLEARED
    assert charge_statuses(billed, "A") == {"closed"}


def test_transient_card_error_leaves_it_pending_and_the_next_call_resumes(billed, gateway, config):
    by_card(billed, "A", "tok_transient")
    first = collect(billed, gateway, config)
    assert first.transient == ["A"]
    assert payments(billed) == [("card:cyc:1:2027-02-01:1", D("199.20"), "pending")]
    assert account(billed, "A").balance == D("199.20")
    second = collect(billed, gateway, config)
    assert second.collected == 1
    assert payments(billed) == [("card:cyc:1:2027-02-01:1", D("199.20"), "settled")]
    [request] = gateway.requests("charge")
    assert request.calls == 2 and request.status == "succeeded"


class CrashAfterCharge:
    """The process dies after the processor charged the card, before the charge is recorded."""

    def __init__(self, gateway: SandboxGateway):
        self.gateway = gateway

    def charge(self, key, token, amount, currency):
        self.gateway.charge(key, token, amount, currency)
        raise SystemExit("killed between the charge and its recording")

    def refund(self, key, token, amount, currency):
        return self.gateway.refund(key, token, amount, currency)


def test_crash_between_charge_and_recording_replays_instead_of_charging_twice(
    billed, gateway, config
):
    by_card(billed, "A", "tok_visa")
    with pytest.raises(SystemExit):
        collect(billed, CrashAfterCharge(gateway), config)
    assert account(billed, "A").balance == D("199.20")  # charged, not recorded
    result = collect(billed, gateway, config)
    assert result.collected == 1
    [request] = gateway.requests("charge")
    assert (request.calls, request.amount, request.status) == (1, D("199.20"), "succeeded")
    assert payments(billed) == [("card:cyc:1:2027-02-01:1", D("199.20"), "settled")]
    assert account(billed, "A").balance == 0
    assert collect(billed, gateway, config).collected == 0
    assert len(gateway.requests("charge")) == 1


class CrashAfterChunk:
    """The process dies after the processor charged a whole chunk, before it is recorded."""

    def __init__(self, gateway: SandboxGateway, crash_on_chunk: int):
        self.gateway, self.crash_on_chunk, self.chunks = gateway, crash_on_chunk, 0

    def charge(self, key, token, amount, currency):
        return self.gateway.charge(key, token, amount, currency)

    def refund(self, key, token, amount, currency):
        return self.gateway.refund(key, token, amount, currency)

    def charge_many(self, requests):
        answers = self.gateway.charge_many(requests)
        self.chunks += 1
        if self.chunks == self.crash_on_chunk:
            raise SystemExit("killed between the chunk's charges and their recording")
        return answers

    def refund_many(self, requests):
        return self.gateway.refund_many(requests)


@pytest.mark.parametrize(("card_chunk", "crash_on_chunk"), [(500, 1), (1, 2)])
def test_crash_after_a_charged_chunk_replays_it_once(
    billed, gateway, config, card_chunk, crash_on_chunk
):
    by_card(billed, "A", "tok_visa")
    by_card(billed, "B", "tok_mastercard")
    chunked = replace(config, card_chunk=card_chunk)
    with pytest.raises(SystemExit):
        collect(billed, CrashAfterChunk(gateway, crash_on_chunk), chunked)
    a_key, b_key = "card:cyc:1:2027-02-01:1", "card:cyc:2:2027-01-31:1"
    # Every payment of the crashed chunk was committed pending before its card was charged.
    a_status = "settled" if crash_on_chunk == 2 else "pending"
    assert payments(billed) == [(a_key, D("199.20"), a_status), (b_key, D("17.34"), "pending")]
    assert account(billed, "B").balance == D("17.34")  # charged, not recorded
    assert len(gateway.requests("charge")) == 2

    result = collect(billed, gateway, config)
    assert result.collected == 2 - (crash_on_chunk - 1)
    assert [(r.calls, r.status) for r in gateway.requests("charge")] == [(1, "succeeded")] * 2
    assert payments(billed) == [(a_key, D("199.20"), "settled"), (b_key, D("17.34"), "settled")]
    assert (account(billed, "A").balance, account(billed, "B").balance) == (0, 0)
    assert charge_statuses(billed, "A") == charge_statuses(billed, "B") == {"closed"}
    assert collect(billed, gateway, config).collected == 0
    assert len(gateway.requests("charge")) == 2


# --- direct debit -------------------------------------------------------------------------


def test_direct_debit_writes_one_valid_pain008_and_stays_pending(billed, gateway, config):
    by_debit(billed, "A")
    # Bill day (1 February) is more than 14 days before the due date: nothing is sent yet.
    early = collect(billed, gateway, config)
    assert (early.debits, early.not_yet_due, early.files) == (0, 1, [])
    result = collect(billed, gateway, config, SENT_ON)
    assert result.debits == 1 and result.debit_amounts == {"EUR": D("199.20")}
    [path] = [Path(p) for p in result.files]
    assert path == config.output_dir / "2027-02-17/sepa/FR72ZZZ123456/DD-20270217-001.pain.008.xml"
    assert valid(path, PaymentFileKind.DIRECT_DEBIT)
    xml = etree.parse(str(path))
    ns = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.008.001.02"}
    assert xml.findtext(".//p:GrpHdr/p:CtrlSum", namespaces=ns) == "199.20"
    assert xml.findtext(".//p:SeqTp", namespaces=ns) == "FRST"
    # Collected on the bill's due date (30 days' terms: Wednesday 2027-03-03, a TARGET2 day),
    # not on the run date plus the lead days.
    assert xml.findtext(".//p:ReqdColltnDt", namespaces=ns) == "2027-03-03"
    assert xml.findtext(".//p:DbtrAcct/p:Id/p:IBAN", namespaces=ns) == IBAN_A
    assert xml.findtext(".//p:Cdtr/p:Nm", namespaces=ns) == "Openbill Demo SA"
    assert payments(billed) == [("dd:cyc:1:2027-02-01:1", D("199.20"), "pending")]
    assert account(billed, "A").balance == D("199.20")
    content = path.read_bytes()
    # A rerun adds no debit and no file.
    assert collect(billed, gateway, config, SENT_ON).debits == 0
    with unit_of_work(billed) as s:
        assert s.scalar(select(func.count()).select_from(PaymentFile)) == 1
    assert path.read_bytes() == content
    # The bank settles it: the balance drops and the bill is paid.
    with unit_of_work(billed) as s:
        assert settle_reference(s, "DD-1-1") == "settled"
        assert settle_reference(s, "DD-1-1") == "unchanged"
    assert account(billed, "A").balance == 0
    assert bills_of(billed, "A") == [(D("199.20"), D("199.20"))]
    assert charge_statuses(billed, "A") == {"closed"}


def test_returned_debit_is_retried_in_a_new_file(billed, gateway, config):
    by_debit(billed, "A")
    collect(billed, gateway, config, SENT_ON)
    with unit_of_work(billed) as s:
        outcome = return_debit(
            s, "DD-1-1", returned_on=date(2027, 2, 19), reason="AM04", retry=RetryPolicy()
        )
        assert outcome == "returned"
    assert collect(billed, gateway, config, date(2027, 2, 19)).debits == 0
    retry = collect(billed, gateway, config, date(2027, 2, 20))  # 3 days after the first
    assert retry.debits == 1
    [path] = retry.files
    assert path.endswith("DD-20270220-001.pain.008.xml")
    assert valid(Path(path), PaymentFileKind.DIRECT_DEBIT)
    assert [p[0] for p in payments(billed)] == ["dd:cyc:1:2027-02-01:1", "dd:cyc:1:2027-02-01:2"]


def test_debit_outside_sepa_or_with_a_bad_iban_is_skipped_and_noted_once(billed, gateway, config):
    by_debit(billed, "A", iban="FR7630004000010000000009934")  # wrong check digits
    pays_by(
        billed,
        "B",
        "direct_debit",
        iban="GB33BUKB20201555555555",
        mandate_ref="MD-B",
        mandate_date=date(2027, 1, 1),
    )
    for _ in range(2):
        result = collect(billed, gateway, config)
    assert set(result.skipped) == {"A", "B"}
    assert "IBAN" in result.skipped["A"]
    assert "EUR only" in result.skipped["B"]
    assert result.files == []
    with unit_of_work(billed) as s:
        assert s.scalar(select(func.count()).where(BillingIssue.step == "collect")) == 2


# --- recording and applying ---------------------------------------------------------------


def test_payment_applies_oldest_first_or_to_the_named_bill(billed):
    run_bill_day(billed, date(2027, 3, 1), "run-2")
    [(first, _), (second, _)] = bills_of(billed, "A")
    with unit_of_work(billed) as s:
        record_bank_payment(
            s, reference="P1", account_ref="A", amount=D("10.00"), currency="EUR",
            received_on=date(2027, 3, 2),
        )  # fmt: skip
    assert bills_of(billed, "A") == [(first, D("10.00")), (second, D("0"))]
    with unit_of_work(billed) as s:
        bill_no = s.scalars(select(Bill.bill_no).order_by(Bill.bill_date.desc())).first()
        record_bank_payment(
            s, reference="P2", account_ref="A", amount=D("5.00"), currency="EUR",
            received_on=date(2027, 3, 2), bill_no=bill_no,
        )  # fmt: skip
    assert bills_of(billed, "A") == [(first, D("10.00")), (second, D("5.00"))]
    assert account(billed, "A").balance == first + second - D("15.00")


def test_overpayment_is_credit_applied_to_the_next_bill(billed, gateway, config):
    by_card(billed, "A", "tok_visa")
    with unit_of_work(billed) as s:
        record_bank_payment(
            s, reference="P1", account_ref="A", amount=D("250.00"), currency="EUR",
            received_on=date(2027, 2, 1),
        )  # fmt: skip
    assert account(billed, "A").balance == D("-50.80")
    assert bills_of(billed, "A") == [(D("199.20"), D("199.20"))]
    run_bill_day(billed, date(2027, 3, 1), "run-2")
    [_, (gross, _)] = bills_of(billed, "A")
    result = collect(billed, gateway, config, date(2027, 3, 1))
    [request] = gateway.requests("charge")
    assert request.amount == gross - D("50.80")
    assert result.collected == 1
    assert bills_of(billed, "A")[1] == (gross, gross)
    assert account(billed, "A").balance == 0


def test_recording_is_idempotent_and_checks_the_currency(billed):
    with unit_of_work(billed) as s:
        kwargs = dict(account_ref="A", amount=D("20.00"), received_on=date(2027, 2, 2))
        assert record_bank_payment(s, reference="R1", currency="EUR", **kwargs) == "inserted"
        assert record_bank_payment(s, reference="R1", currency="EUR", **kwargs) == "unchanged"
        with pytest.raises(PaymentRecordError, match="pays in EUR"):
            record_bank_payment(s, reference="R2", currency="GBP", **kwargs)
    assert account(billed, "A").balance == D("179.20")


# --- refunds ------------------------------------------------------------------------------


def test_card_credit_is_refunded_through_the_gateway(billed, gateway, config):
    by_card(billed, "A", "tok_visa")
    with unit_of_work(billed) as s:
        record_bank_payment(
            s, reference="P1", account_ref="A", amount=D("250.00"), currency="EUR",
            received_on=AS_OF,
        )  # fmt: skip
    result = refund_payments(billed, AS_OF, gateway, config, run_id="run-1")
    assert result.refunded == 1 and result.refunded_amounts == {"EUR": D("50.80")}
    assert account(billed, "A").balance == 0
    [request] = gateway.requests("refund")
    assert request.amount == D("50.80")
    again = refund_payments(billed, AS_OF, gateway, config, run_id="run-1")
    assert again.refunded == 0
    assert len(gateway.requests("refund")) == 1


def test_bank_credit_is_refunded_by_a_valid_pain001(billed, gateway, config):
    by_debit(billed, "A")
    with unit_of_work(billed) as s:
        record_bank_payment(
            s, reference="P1", account_ref="A", amount=D("200.00"), currency="EUR",
            received_on=AS_OF,
        )  # fmt: skip
    result = refund_payments(billed, AS_OF, gateway, config, run_id="run-1")
    assert result.transfers == 1
    [path] = [Path(p) for p in result.files]
    assert path.name == "CT-20270201-001.pain.001.xml"
    assert valid(path, PaymentFileKind.CREDIT_TRANSFER)
    ns = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"}
    assert etree.parse(str(path)).findtext(".//p:InstdAmt", namespaces=ns) == "0.80"
    assert account(billed, "A").balance == D("-0.80")  # pending until the bank confirms
    assert refund_payments(billed, AS_OF, gateway, config, run_id="run-1").transfers == 0
    with unit_of_work(billed) as s:
        assert settle_reference(s, "RF-1-1") == "settled"
        assert s.scalars(select(Refund.status)).one() is PaymentStatus.SETTLED
    assert account(billed, "A").balance == 0


def test_invoice_account_credit_without_bank_details_is_reported(billed, gateway, config):
    with unit_of_work(billed) as s:
        record_bank_payment(
            s, reference="P1", account_ref="A", amount=D("200.00"), currency="EUR",
            received_on=AS_OF,
        )  # fmt: skip
    result = refund_payments(billed, AS_OF, gateway, config, run_id="run-1")
    assert result.skipped == {"A": "credit balance, but no card and no IBAN to pay it back to"}


def test_card_methods_record_as_card_payments(billed, gateway, config):
    by_card(billed, "A", "tok_visa")
    collect(billed, gateway, config)
    with unit_of_work(billed) as s:
        payment = s.scalars(select(Payment)).one()
    assert payment.method is PaymentMethod.CARD
    assert payment.reference.startswith("ch_")
    assert payment.status is PaymentStatus.SETTLED
    assert charge_statuses(billed, "A") == {ChargeStatus.CLOSED.value}
