"""The ``wallets`` section of a JSON import, and its export in the same format (prepaid
credits, ``billing.ops.wallets``; docs/data-formats.md).

::

    "wallets": [
      {"ref": "W-ACME", "account": "ACME", "name": "Prepaid credits", "currency": "EUR",
       "priority": 0, "topup_threshold": "20.00", "topup_amount": "100.00",
       "created_on": "2027-01-01",
       "grants": [{"key": "welcome", "amount": "50.00", "on_date": "2027-01-01",
                   "expires_on": "2027-06-30", "description": "Welcome offer"}]}
    ]

Like the other sections: wallets are found by ``ref``, their account by its ref (in the file
or the database); a grant by its ``key`` within its wallet (its entry is
``gnt:{wallet id}:{key}``). A record stored already is counted ``unchanged``; one whose given
fields differ is refused, naming the record and the field (the importer never overwrites).

**Export** (``export_wallets``) writes the wallets and their grants *as granted*, so importing
the export again into the same database changes nothing. Purchases, consumption and expiry
are not exported: they belong to bills (``billing wallet show`` and the journal have them).
``remaining=True`` exports instead what each lot has left, as opening grants (keys
``opening/...``) to load balances into another database; bought credits then become grants.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.domain import charge_keys
from billing.domain.charge_keys import KeyKind
from billing.domain.enums import WalletEntryKind
from billing.domain.money import LINE_ROUNDING, quantize_money
from billing.domain.wallets import amount_problem
from billing.ingest.importer import (
    _no_duplicates,
    _Record,
    _records,
    _resolve,
    _same_as_stored,
    _stored,
)
from billing.ops.wallets import DEFAULT_WALLET_NAME, grant_credits
from billing.store.models import Account
from billing.store.models_terms import Wallet, WalletEntry

if TYPE_CHECKING:
    from billing.ingest.importer import _Import

WALLETS = "wallets"
GRANTS = "wallet_grants"
"""The report's kinds (``billing import`` prints their counts)."""


def import_wallets(job: _Import, items: Sequence[Mapping[str, Any]]) -> None:
    """Wallets by ref, then their grants by key."""
    session = job.session
    records = _records("wallets", items)
    _no_duplicates(records, lambda r: r.data["ref"], "ref")
    accounts = _stored(session, Account, Account.ref, [r.data["account"] for r in records])
    stored = _stored(session, Wallet, Wallet.ref, [r.data["ref"] for r in records])
    for record in records:
        values = _wallet_values(record, accounts)
        if job.keep(WALLETS, record, stored.get(values["ref"]), values):
            session.add(Wallet(**values))
    session.flush()
    wallets = _stored(session, Wallet, Wallet.ref, [r.data["ref"] for r in records])
    for record in records:
        _grants(job, record, wallets[record.data["ref"]])


def _wallet_values(record: _Record, accounts: Mapping[str, Account]) -> dict[str, Any]:
    """Column values of a wallet: in its account's currency, a top-up pair or none."""
    data = record.data
    account = _resolve(record, "account", accounts, "account")
    currency = record.currency()
    if currency != account.currency:
        raise record.fail(
            f"account {account.ref!r} is billed in {account.currency}, not {currency}: a "
            "wallet pays its account's bills",
            "currency",
        )
    threshold, amount = record.amount("topup_threshold"), record.amount("topup_amount")
    if (threshold is None) != (amount is None):
        given, missing = ("topup_threshold", "topup_amount")[:: 1 if amount is None else -1]
        raise record.fail(f"{given} needs {missing}: a top-up has both or neither", missing)
    if threshold is not None and amount is not None:
        if quantize_money(threshold, currency, LINE_ROUNDING) != threshold:
            raise record.fail(
                f"{threshold} has more decimals than {currency} allows", "topup_threshold"
            )
        problem = amount_problem(amount, currency)
        if problem:
            raise record.fail(problem, "topup_amount")
    return {
        "ref": data["ref"],
        "account_id": account.id,
        "name": data.get("name", DEFAULT_WALLET_NAME),
        "currency": currency,
        "priority": data.get("priority", 0),
        "topup_threshold": threshold,
        "topup_amount": amount,
        "created_on": record.day("created_on") or account.created_on,
    }


def _grants(job: _Import, wallet_record: _Record, wallet: Wallet) -> None:
    """The wallet's grants by key: new ones granted, stored ones compared."""
    session = job.session
    records = [
        _Record(f"{wallet_record.label}.grants[{i}] (key {item.get('key')})", item)
        for i, item in enumerate(wallet_record.data.get("grants", []))
    ]
    _no_duplicates(records, lambda r: r.data["key"], "key")
    keys = {r.data["key"]: _entry_key(r, wallet) for r in records}
    stored = {
        entry.entry_key: entry
        for entry in session.scalars(
            select(WalletEntry).where(WalletEntry.entry_key.in_(list(keys.values())))
        )
    }
    for record in records:
        values = _grant_values(record, wallet.currency)
        entry = stored.get(keys[record.data["key"]])
        if entry is not None:
            _same_as_stored(record, entry, values)
            job.report.of(GRANTS).unchanged += 1
            continue
        grant_credits(
            session,
            wallet,
            values["amount"],
            on=values["on_date"],
            reference=record.data["key"],
            expires_on=values["expires_on"],
            description=values.get("description"),
        )
        job.report.of(GRANTS).inserted += 1


def _entry_key(record: _Record, wallet: Wallet) -> str:
    try:
        return charge_keys.grant(wallet.id, record.data["key"])
    except ValueError as error:
        raise record.fail(str(error), "key") from None


def _grant_values(record: _Record, currency: str) -> dict[str, Any]:
    """A grant's values: a positive amount in the currency's units, an expiry after its day."""
    amount = record.amount("amount")
    assert amount is not None  # required by the schema
    problem = amount_problem(amount, currency)
    if problem:
        raise record.fail(problem, "amount")
    on_date, expires_on = record.day("on_date"), record.day("expires_on")
    assert on_date is not None
    if expires_on is not None and expires_on <= on_date:
        raise record.fail(
            f"expires_on {expires_on} is not after on_date {on_date}: the credit would never "
            "be usable",
            "expires_on",
        )
    values: dict[str, Any] = {"amount": amount, "on_date": on_date, "expires_on": expires_on}
    if "description" in record.data:
        values["description"] = record.data["description"]
    return values


# --- export ----------------------------------------------------------------------------------


def export_wallets(session: Session, *, remaining: bool = False) -> list[dict[str, Any]]:
    """Every wallet in the import format, by ref; its grants as granted (``remaining``: each
    lot's credit left, as opening grants). Amounts are strings in the currency's units."""
    wallets = list(session.scalars(select(Wallet).order_by(Wallet.ref)))
    accounts = dict(
        session.execute(
            select(Account.id, Account.ref).where(
                Account.id.in_(sorted({w.account_id for w in wallets}))
            )
        )
        .tuples()
        .all()
    )
    lots = _opening_lots(session) if remaining else _granted(session)
    return [
        _wallet_document(wallet, accounts[wallet.account_id], lots.get(wallet.id, []))
        for wallet in wallets
    ]


def _money(amount: Decimal, currency: str) -> str:
    return f"{quantize_money(amount, currency, LINE_ROUNDING):f}"


def _wallet_document(wallet: Wallet, account_ref: str, grants: list[dict[str, Any]]) -> dict:
    document: dict[str, Any] = {
        "ref": wallet.ref,
        "account": account_ref,
        "name": wallet.name,
        "currency": wallet.currency,
        "priority": wallet.priority,
        "created_on": wallet.created_on.isoformat(),
    }
    if wallet.topup_threshold is not None and wallet.topup_amount is not None:
        document["topup_threshold"] = _money(wallet.topup_threshold, wallet.currency)
        document["topup_amount"] = _money(wallet.topup_amount, wallet.currency)
    document["grants"] = grants
    return document


def _grant_document(
    key: str, amount: Decimal, currency: str, on: date, expires: date | None, text: str
) -> dict[str, Any]:
    grant: dict[str, Any] = {
        "key": key,
        "amount": _money(amount, currency),
        "on_date": on.isoformat(),
    }
    if expires is not None:
        grant["expires_on"] = expires.isoformat()
    grant["description"] = text
    return grant


def _granted(session: Session) -> dict[int, list[dict[str, Any]]]:
    """Each wallet's grants as granted, in entry order."""
    found: dict[int, list[dict[str, Any]]] = {}
    rows = session.execute(
        select(WalletEntry, Wallet.currency)
        .join(Wallet, Wallet.id == WalletEntry.wallet_id)
        .where(WalletEntry.kind == WalletEntryKind.GRANT)
        .order_by(WalletEntry.wallet_id, WalletEntry.id)
    ).tuples()
    for entry, currency in rows:
        reference = charge_keys.parse_key(entry.entry_key).reference or entry.entry_key
        found.setdefault(entry.wallet_id, []).append(
            _grant_document(
                reference,
                entry.amount,
                currency,
                entry.on_date,
                entry.expires_on,
                entry.description,
            )  # fmt: skip
        )
    return found


def _opening_lots(session: Session) -> dict[int, list[dict[str, Any]]]:
    """Each wallet's lots with credit left, as opening grants (``opening/{reference}`` for a
    grant, ``opening/lot-{id}`` for a purchase)."""
    taken = (
        select(WalletEntry.lot_id, func.sum(WalletEntry.amount).label("taken"))
        .where(WalletEntry.lot_id.is_not(None))
        .group_by(WalletEntry.lot_id)
        .subquery()
    )
    left = WalletEntry.amount + func.coalesce(taken.c.taken, 0)
    found: dict[int, list[dict[str, Any]]] = {}
    rows = session.execute(
        select(WalletEntry, Wallet.currency, left.label("left"))
        .join(Wallet, Wallet.id == WalletEntry.wallet_id)
        .outerjoin(taken, taken.c.lot_id == WalletEntry.id)
        .where(WalletEntry.kind.in_((WalletEntryKind.GRANT, WalletEntryKind.PURCHASE)), left > 0)
        .order_by(WalletEntry.wallet_id, WalletEntry.id)
    ).tuples()
    for entry, currency, amount in rows:
        parsed = charge_keys.parse_key(entry.entry_key)
        name = parsed.reference if parsed.kind is KeyKind.GRANT else f"lot-{entry.id}"
        found.setdefault(entry.wallet_id, []).append(
            _grant_document(
                f"opening/{name}"[:64],
                amount,
                currency,
                entry.on_date,
                entry.expires_on,
                entry.description,
            )  # fmt: skip
        )
    return found
