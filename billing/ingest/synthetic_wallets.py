"""Prepaid credits for the synthetic population (``billing.ingest.synthetic.seed``).

About one account in ten (``WALLET_SHARE``) gets a wallet in its currency with free credits:
a *welcome* grant that expires ``WELCOME_DAYS`` after the contracts start (before the first
bill day of ``make demo``, which bills as of today, a month or more later: it shows expiry),
a *loyalty* grant that never expires (it shows consumption), or both. A share of the active
accounts paying by card also tops up automatically (``TOPUP``): once their credits are spent,
bill day sells them more on a bill of its own, collected by card.

Deterministic: the draws come from ``numpy.random.default_rng([seed, STREAM])``, one row per
account loaded by this seed, in id order; neither the chunk size nor the clock matters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import Connection, select

from billing.domain import charge_keys
from billing.domain.enums import AccountStatus, PaymentMethod, WalletEntryKind
from billing.ops.wallets import DEFAULT_WALLET_NAME
from billing.store.bulk import lock_for_load, next_id, sync_sequence
from billing.store.models import Account, Base
from billing.store.models_terms import Wallet, WalletEntry

STREAM = 2_100_021
"""The random stream of the wallets (the accounts' streams are ``[seed, block]``, blocks of
1,000 accounts: this one is no block a seed reaches)."""
WALLET_SHARE = 0.10
WELCOME_SHARE = 0.5
BOTH_SHARE = 0.3
TOPUP_SHARE = 0.4
"""Of the wallets of active accounts paying by card."""
WELCOME_DAYS = 20
GRANTS = tuple(Decimal(a) for a in ("5.00", "10.00", "20.00", "50.00"))
TOPUP = (Decimal("10.00"), Decimal("50.00"))
"""(threshold, amount)."""


@dataclass(frozen=True)
class SeededWallets:
    wallets: int = 0
    grants: int = 0


def seed_wallets(
    conn: Connection, *, first_account_id: int | None, accounts: int, start: date, seed: int
) -> SeededWallets:
    """Wallets and grants for the ``accounts`` accounts loaded from ``first_account_id``."""
    if first_account_id is None or accounts <= 0:
        return SeededWallets()
    wallets_table = Base.metadata.tables[Wallet.__tablename__]
    entries_table = Base.metadata.tables[WalletEntry.__tablename__]
    lock_for_load(conn, [wallets_table, entries_table])
    rows = conn.execute(
        select(Account.id, Account.currency, Account.status, Account.payment_method)
        .where(Account.id.between(first_account_id, first_account_id + accounts - 1))
        .order_by(Account.id)
    ).all()
    rng = np.random.default_rng([seed, STREAM])
    draws = rng.random((len(rows), 4)).tolist()
    amounts = rng.integers(0, len(GRANTS), size=(len(rows), 2)).tolist()
    wallet_id = next_id(conn, wallets_table)
    entry_id = next_id(conn, entries_table)
    wallets: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    for (account_id, currency, status, method), draw, amount in zip(
        rows, draws, amounts, strict=True
    ):
        if draw[0] >= WALLET_SHARE:
            continue
        topup = (
            status == AccountStatus.ACTIVE
            and method == PaymentMethod.CARD
            and draw[3] < TOPUP_SHARE
        )
        wallets.append(
            {
                "id": wallet_id,
                "ref": f"WAL-{account_id:09d}",
                "account_id": account_id,
                "name": DEFAULT_WALLET_NAME,
                "currency": currency,
                "priority": 0,
                "topup_threshold": TOPUP[0] if topup else None,
                "topup_amount": TOPUP[1] if topup else None,
                "created_on": start,
            }
        )
        welcome = draw[1] < WELCOME_SHARE
        loyalty = not welcome or draw[2] < BOTH_SHARE
        for present, key, value, expires, text in (
            (welcome, "welcome", GRANTS[amount[0]], start + timedelta(days=WELCOME_DAYS),
             "Welcome credits"),
            (loyalty, "loyalty", GRANTS[amount[1]], None, "Loyalty credits"),
        ):  # fmt: skip
            if present:
                entries.append(
                    {
                        "id": entry_id,
                        "entry_key": charge_keys.grant(wallet_id, key),
                        "wallet_id": wallet_id,
                        "kind": WalletEntryKind.GRANT,
                        "amount": value,
                        "on_date": start,
                        "expires_on": expires,
                        "lot_id": None,
                        "bill_id": None,
                        "charge_id": None,
                        "description": text,
                    }
                )
                entry_id += 1
        wallet_id += 1
    if wallets:
        conn.execute(wallets_table.insert(), wallets)
        conn.execute(entries_table.insert(), entries)
        sync_sequence(conn, wallets_table)
        sync_sequence(conn, entries_table)
    return SeededWallets(len(wallets), len(entries))
