"""A sandbox card processor that behaves like a real processor's test mode.

Test card tokens decide the answer:

============================  ==========================================================
token                         answer
============================  ==========================================================
``tok_visa``, ``tok_mastercard``, ``tok_amex``, any other ``tok_...``   succeeded
``tok_declined``              declined, ``card_declined``
``tok_insufficient_funds``    declined, ``insufficient_funds``
``tok_expired``               declined, ``expired_card``
``tok_transient``             transient error on the first ``transient_failures`` calls of
                              each idempotency key (default 2), then succeeded
a token not starting ``tok_`` declined, ``invalid_token``
============================  ==========================================================

Refunds succeed for every token except ``tok_transient`` (transient first, like charges).

The ledger is a SQLite file the caller chooses (a test's temporary directory, ``var/`` for the
demo), outside the billing database, as a real processor's records are: a billing transaction
that rolls back leaves the charge in the ledger. A final answer is stored per idempotency key
and replayed; a transient error is not final. ``charge_many``/``refund_many`` answer a whole
chunk in one ledger transaction (WAL, synced at commit), so every charge is durable before
any answer is returned. Reusing a key for another amount, currency or
token raises ``IdempotencyConflict``, as processors refuse it.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from billing.payments.errors import IdempotencyConflict
from billing.payments.gateway import GatewayRequest, GatewayResult, GatewayStatus

DECLINES = {
    "tok_declined": "card_declined",
    "tok_insufficient_funds": "insufficient_funds",
    "tok_expired": "expired_card",
}
TRANSIENT_TOKEN = "tok_transient"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    idempotency_key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    card_token TEXT NOT NULL,
    amount TEXT NOT NULL,
    currency TEXT NOT NULL,
    calls INTEGER NOT NULL,
    status TEXT,
    reference TEXT,
    reason TEXT
)
"""


@dataclass(frozen=True)
class LedgerRow:
    """One request as the sandbox remembers it (``status`` is None until final)."""

    idempotency_key: str
    kind: str
    card_token: str
    amount: Decimal
    currency: str
    calls: int
    status: str | None
    reference: str | None
    reason: str | None


class SandboxGateway:
    """A ``PaymentGateway`` in test mode, its ledger in the SQLite file ``ledger``."""

    def __init__(self, ledger: Path | str, *, transient_failures: int = 2) -> None:
        self.ledger = Path(ledger)
        self.transient_failures = transient_failures
        self.ledger.parent.mkdir(parents=True, exist_ok=True)
        with self._transaction() as db:
            db.execute(_SCHEMA)
        use_wal(self.ledger)

    def charge(
        self, idempotency_key: str, card_token: str, amount: Decimal, currency: str
    ) -> GatewayResult:
        return self._one("charge", GatewayRequest(idempotency_key, card_token, amount, currency))

    def refund(
        self, idempotency_key: str, card_token: str, amount: Decimal, currency: str
    ) -> GatewayResult:
        return self._one("refund", GatewayRequest(idempotency_key, card_token, amount, currency))

    def charge_many(
        self, requests: Sequence[GatewayRequest]
    ) -> list[GatewayResult | IdempotencyConflict]:
        return self._requests("charge", requests)

    def refund_many(
        self, requests: Sequence[GatewayRequest]
    ) -> list[GatewayResult | IdempotencyConflict]:
        return self._requests("refund", requests)

    def requests(self, kind: str | None = None) -> list[LedgerRow]:
        """Every request the sandbox received (for tests and the demo), in key order."""
        with self._transaction() as db:
            rows = db.execute("SELECT * FROM requests ORDER BY idempotency_key").fetchall()
        found = [
            LedgerRow(r[0], r[1], r[2], Decimal(r[3]), r[4], r[5], r[6], r[7], r[8]) for r in rows
        ]
        return [r for r in found if kind is None or r.kind == kind]

    def _one(self, kind: str, request: GatewayRequest) -> GatewayResult:
        [answer] = self._requests(kind, [request])
        if isinstance(answer, IdempotencyConflict):
            raise answer
        return answer

    def _requests(
        self, kind: str, requests: Sequence[GatewayRequest]
    ) -> list[GatewayResult | IdempotencyConflict]:
        """Answer the requests in order, in ONE ledger transaction, committed before returning."""
        answers: list[GatewayResult | IdempotencyConflict] = []
        with self._transaction() as db:
            known = _known(db, [r.key for r in requests])
            writes: dict[str, tuple[object, ...]] = {}
            for r in requests:
                row = known.get(r.key)
                if row is not None and (row[0], row[1], Decimal(row[2]), row[3]) != (
                    kind,
                    r.card_token,
                    r.amount,
                    r.currency,
                ):
                    answers.append(
                        IdempotencyConflict(
                            f"idempotency key {r.key!r} was used for {row[0]} {row[2]} "
                            f"{row[3]} on {row[1]}, not {kind} {r.amount} {r.currency} "
                            f"on {r.card_token}"
                        )
                    )
                    continue
                if row is not None and row[5] is not None:
                    answers.append(
                        GatewayResult(
                            GatewayStatus(row[5]), row[6], r.amount, r.currency, row[7], True
                        )
                    )
                    continue
                calls = (row[4] if row else 0) + 1
                status, reason = self._decide(kind, r.card_token, calls)
                final = status is not GatewayStatus.TRANSIENT_ERROR
                reference = _reference(kind, r.key)
                stored = (kind, r.card_token, str(r.amount), r.currency, calls)
                outcome = (status.value if final else None, reference, reason)
                known[r.key] = (*stored, *outcome)
                writes[r.key] = (r.key, *stored, *outcome)
                answers.append(GatewayResult(status, reference, r.amount, r.currency, reason))
            db.executemany(_UPSERT, list(writes.values()))
        return answers

    def _decide(self, kind: str, token: str, calls: int) -> tuple[GatewayStatus, str | None]:
        if not token.startswith("tok_"):
            return GatewayStatus.DECLINED, "invalid_token"
        if token == TRANSIENT_TOKEN and calls <= self.transient_failures:
            return GatewayStatus.TRANSIENT_ERROR, "processor_unavailable"
        if kind == "charge" and token in DECLINES:
            return GatewayStatus.DECLINED, DECLINES[token]
        return GatewayStatus.SUCCEEDED, None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One ledger transaction; the WAL is synced at COMMIT (``synchronous=FULL``)."""
        db = sqlite3.connect(self.ledger, timeout=60, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=FULL")
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            db.close()


def use_wal(ledger: Path, attempts: int = 100) -> None:
    """Put ``ledger`` in WAL mode (kept in the file), waiting out another connection's write.

    Switching fails at once, without the busy timeout, while another connection holds a write
    lock: collect and refund open a new ledger side by side, and one's switch met the other's
    schema transaction ("database is locked"). Once the file is in WAL mode it needs no lock.
    """
    for attempt in range(attempts):
        db = sqlite3.connect(ledger, timeout=60)
        try:
            if db.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal":
                return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
        finally:
            db.close()
        time.sleep(0.05)
    raise sqlite3.OperationalError(f"{ledger}: could not switch to WAL mode")


_UPSERT = (
    "INSERT INTO requests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (idempotency_key) DO UPDATE SET calls = excluded.calls, "
    "status = excluded.status, reference = excluded.reference, reason = excluded.reason"
)
_KEYS_PER_SELECT = 500


def _known(db: sqlite3.Connection, keys: Sequence[str]) -> dict[str, tuple[Any, ...]]:
    """The ledger's rows of ``keys``: kind, token, amount, currency, calls, status, ref, reason."""
    found: dict[str, tuple[Any, ...]] = {}
    for start in range(0, len(keys), _KEYS_PER_SELECT):
        part = keys[start : start + _KEYS_PER_SELECT]
        marks = ", ".join("?" * len(part))
        for row in db.execute(
            "SELECT idempotency_key, kind, card_token, amount, currency, calls, status, "
            f"reference, reason FROM requests WHERE idempotency_key IN ({marks})",
            part,
        ):
            found[row[0]] = tuple(row[1:])
    return found


def _reference(kind: str, key: str) -> str:
    """The processor's id of a request: stable for a key (``ch_...`` or ``re_...``)."""
    prefix = "ch" if kind == "charge" else "re"
    return f"{prefix}_{hashlib.sha256(key.encode()).hexdigest()[:24]}"
