"""The sandbox processor, the retry schedule and the SEPA text rules: pure, no database."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from datetime import date
from decimal import Decimal

import pytest

from billing.domain.errors import ConfigurationError
from billing.payments.config import RetryPolicy
from billing.payments.errors import BankDetailsError, IdempotencyConflict
from billing.payments.gateway import GatewayStatus
from billing.payments.sandbox import SandboxGateway, use_wal
from billing.payments.sepa import Creditor, check_iban, sepa_amount, sepa_text

D = Decimal


@pytest.fixture
def sandbox(tmp_path) -> SandboxGateway:
    return SandboxGateway(tmp_path / "ledger.sqlite3", transient_failures=2)


@pytest.mark.parametrize(
    ("token", "status", "reason"),
    [
        ("tok_visa", GatewayStatus.SUCCEEDED, None),
        ("tok_mastercard", GatewayStatus.SUCCEEDED, None),
        ("tok_0123456789abcdef", GatewayStatus.SUCCEEDED, None),
        ("tok_declined", GatewayStatus.DECLINED, "card_declined"),
        ("tok_insufficient_funds", GatewayStatus.DECLINED, "insufficient_funds"),
        ("tok_expired", GatewayStatus.DECLINED, "expired_card"),
        ("4242424242424242", GatewayStatus.DECLINED, "invalid_token"),
    ],
)
def test_test_cards(sandbox, token, status, reason):
    result = sandbox.charge("k1", token, D("10.00"), "EUR")
    assert (result.status, result.reason, result.replayed) == (status, reason, False)
    assert result.reference.startswith("ch_")


def test_same_key_replays_the_first_answer(sandbox):
    first = sandbox.charge("k1", "tok_declined", D("10.00"), "EUR")
    again = sandbox.charge("k1", "tok_declined", D("10.00"), "EUR")
    assert again.replayed and again.status is first.status and again.reference == first.reference
    [row] = sandbox.requests()
    assert row.calls == 1


def test_transient_card_fails_the_first_calls_of_each_key(sandbox):
    statuses = [sandbox.charge("k1", "tok_transient", D("5"), "EUR").status for _ in range(4)]
    assert statuses == [
        GatewayStatus.TRANSIENT_ERROR,
        GatewayStatus.TRANSIENT_ERROR,
        GatewayStatus.SUCCEEDED,
        GatewayStatus.SUCCEEDED,
    ]
    assert sandbox.charge("k2", "tok_transient", D("5"), "EUR").status is (
        GatewayStatus.TRANSIENT_ERROR
    )
    assert [r.calls for r in sandbox.requests()] == [3, 1]


def test_reusing_a_key_for_another_request_is_refused(sandbox):
    sandbox.charge("k1", "tok_visa", D("10.00"), "EUR")
    with pytest.raises(IdempotencyConflict):
        sandbox.charge("k1", "tok_visa", D("10.01"), "EUR")
    with pytest.raises(IdempotencyConflict):
        sandbox.refund("k1", "tok_visa", D("10.00"), "EUR")


def test_a_new_ledger_switches_to_wal_once_another_connection_has_written(tmp_path):
    # Collect and refund open a new sandbox ledger side by side: one's switch to WAL met the
    # other's schema transaction and failed at once, without waiting.
    ledger = tmp_path / "ledger.sqlite3"
    with closing(sqlite3.connect(ledger)) as db, db:
        db.execute("CREATE TABLE t (x)")
    writing, done = threading.Event(), threading.Event()

    def write() -> None:
        db = sqlite3.connect(ledger, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t VALUES (1)")
        writing.set()
        done.wait(10)
        db.execute("COMMIT")
        db.close()

    writer = threading.Thread(target=write)
    writer.start()
    writing.wait(10)
    with closing(sqlite3.connect(ledger, timeout=60)) as db:  # the one plain pragma: at once
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            db.execute("PRAGMA journal_mode=WAL")
    threading.Timer(0.3, done.set).start()
    use_wal(ledger)
    writer.join()
    with closing(sqlite3.connect(ledger)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 1


def test_refunds_succeed_for_declining_cards(sandbox):
    assert sandbox.refund("r1", "tok_declined", D("3.00"), "EUR").succeeded


FIRST = date(2027, 2, 1)


@pytest.mark.parametrize(
    ("failures", "today", "due"),
    [
        (0, FIRST, True),
        (1, date(2027, 2, 3), False),
        (1, date(2027, 2, 4), True),
        (2, date(2027, 2, 7), False),
        (2, date(2027, 2, 8), True),
        (3, date(2027, 2, 15), True),
        (4, date(2027, 3, 1), False),
    ],
)
def test_retry_schedule(failures, today, due):
    policy = RetryPolicy((3, 7, 14))
    assert policy.due(failures, FIRST if failures else None, today) is due
    assert policy.exhausted(failures) is (failures == 4)


@pytest.mark.parametrize("days", [(0, 3), (7, 3), (3, 3)])
def test_retry_days_must_increase(days):
    with pytest.raises(ConfigurationError):
        RetryPolicy(days)


def test_sepa_text_amounts_and_bank_details():
    assert sepa_text("Zoé Müller & Söhne", 70) == "Zoe Muller   Sohne"
    assert sepa_amount(D("12.300000")) == "12.30"
    with pytest.raises(BankDetailsError):
        sepa_amount(D("0.001"))
    assert check_iban("fr76 3000 6000 0112 3456 7890 189") == "FR7630006000011234567890189"
    with pytest.raises(BankDetailsError):
        check_iban("FR7630006000011234567890188")
    with pytest.raises(BankDetailsError):
        Creditor("X", "FR7630006000011234567890189", "NOTABIC", "FR72ZZZ123456").checked()
