"""The ``wallets`` section of a JSON import, and ``export_wallets``, on SQLite and PostgreSQL:
a good file, every bad field named, a re-import unchanged, and the round trip."""

from __future__ import annotations

import copy
import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from billing.domain.errors import ImportFileError
from billing.ingest.import_wallets import export_wallets
from billing.ingest.importer import import_file
from billing.jobs.bill_day import run_bill_day
from billing.store.db import unit_of_work
from billing.store.models_terms import Wallet, WalletEntry

D = Decimal

ACCOUNT = {
    "ref": "ACME", "name": "Acme", "country": "FR", "currency": "EUR",
    "created_on": "2027-01-01", "bill_unit": {"billing_day": 1},
}  # fmt: skip
WALLET = {
    "ref": "W-ACME",
    "account": "ACME",
    "name": "Credits",
    "currency": "EUR",
    "priority": 2,
    "topup_threshold": "20.00",
    "topup_amount": "100.00",
    "created_on": "2027-01-01",
    "grants": [
        {"key": "welcome", "amount": "50.00", "on_date": "2027-01-01",
         "expires_on": "2027-06-30", "description": "Welcome offer"},
        {"key": "goodwill:2027-01", "amount": "10", "on_date": "2027-01-15"},
    ],
}  # fmt: skip


def document(**wallet: Any) -> dict[str, Any]:
    data = copy.deepcopy(WALLET)
    data.update(wallet)
    return {"accounts": [ACCOUNT], "wallets": [data]}


def load(engine, tmp_path: Path, doc: dict[str, Any], name: str = "file.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    with unit_of_work(engine) as s:
        return import_file(s, path)


def test_a_good_file_makes_the_wallet_and_its_grants(engine, tmp_path):
    report = load(engine, tmp_path, document())
    assert (report.of("wallets").inserted, report.of("wallet_grants").inserted) == (1, 2)
    with unit_of_work(engine) as s:
        wallet = s.scalars(select(Wallet)).one()
        assert (wallet.ref, wallet.name, wallet.priority, wallet.topup_threshold) == (
            "W-ACME", "Credits", 2, D("20.00"),
        )  # fmt: skip
        rows = s.execute(
            select(
                WalletEntry.entry_key,
                WalletEntry.amount,
                WalletEntry.expires_on,
                WalletEntry.description,
            ).order_by(WalletEntry.id)  # fmt: skip
        ).all()
    assert [tuple(r) for r in rows] == [
        (f"gnt:{wallet.id}:welcome", D("50.00"), date(2027, 6, 30), "Welcome offer"),
        (f"gnt:{wallet.id}:goodwill:2027-01", D("10"), None, "Granted credits (goodwill:2027-01)"),
    ]


def test_defaults_name_priority_and_creation_day(engine, tmp_path):
    minimal = {"ref": "W", "account": "ACME", "currency": "EUR"}
    load(engine, tmp_path, {"accounts": [ACCOUNT], "wallets": [minimal]})
    with unit_of_work(engine) as s:
        wallet = s.scalars(select(Wallet)).one()
        assert (wallet.name, wallet.priority, wallet.created_on, wallet.topup_amount) == (
            "Prepaid credits", 0, date(2027, 1, 1), None,
        )  # fmt: skip


GRANT = "record wallets[0] (ref W-ACME).grants[0] (key welcome), field"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"account": "NOBODY"}, "record wallets[0] (ref W-ACME), field account: unknown account"),
        ({"currency": "GBP"}, "field currency: account 'ACME' is billed in EUR, not GBP"),
        ({"currency": "XXX"}, "field currency: unknown currency 'XXX'"),
        ({"topup_amount": None}, "field topup_amount: topup_threshold needs topup_amount"),
        ({"topup_threshold": None}, "field topup_threshold: topup_amount needs topup_threshold"),
        ({"topup_amount": "0"}, "field topup_amount: an amount of credits is positive"),
        ({"topup_threshold": "1.005"}, "field topup_threshold: 1.005 has more decimals than EUR"),
        ({"priority": "high"}, "field priority: 'high' is not of type 'integer'"),
        ({"colour": "red"}, "field colour: Additional properties are not allowed"),
        ({"grants": [{"key": "k", "amount": "1.005", "on_date": "2027-01-01"}]},
         "field amount: 1.005 has more decimals than EUR allows"),
        ({"grants": [{"key": "k", "amount": "0", "on_date": "2027-01-01"}]},
         "field amount: an amount of credits is positive"),
        ({"grants": [{"key": "k", "amount": "-1", "on_date": "2027-01-01"}]}, "field amount"),
        ({"grants": [{"key": "k", "amount": "1", "on_date": "2027-02-30"}]},
         "field on_date: '2027-02-30' is not a valid date"),
        ({"grants": [{"key": "k", "amount": "1", "on_date": "2027-01-01",
                      "expires_on": "2027-01-01"}]},
         "field expires_on: expires_on 2027-01-01 is not after on_date 2027-01-01"),
        ({"grants": [{"amount": "1", "on_date": "2027-01-01"}]}, "field key"),
        ({"grants": [{"key": " padded", "amount": "1", "on_date": "2027-01-01"}]}, "field key"),
        ({"grants": [{"key": "k", "amount": "1", "on_date": "2027-01-01"}] * 2},
         "field key: duplicate key 'k'"),
    ],
)  # fmt: skip
def test_each_bad_field_is_named_and_nothing_is_written(engine, tmp_path, change, message):
    with pytest.raises(ImportFileError) as raised:
        load(engine, tmp_path, document(**change))
    assert message in str(raised.value)
    if "grants[" in str(raised.value):
        assert str(raised.value).startswith("record wallets[0] (ref W-ACME).grants[")
    with unit_of_work(engine) as s:
        assert s.scalars(select(Wallet)).all() == []
        assert s.scalars(select(WalletEntry)).all() == []


def test_a_reimport_changes_nothing_and_a_change_is_refused(engine, tmp_path):
    load(engine, tmp_path, document())
    again = load(engine, tmp_path, document())
    assert (again.of("wallets").unchanged, again.of("wallet_grants").unchanged) == (1, 2)
    assert (again.of("wallets").inserted, again.of("wallet_grants").inserted) == (0, 0)
    with pytest.raises(ImportFileError, match="record wallets\\[0\\] \\(ref W-ACME\\), field name"):
        load(engine, tmp_path, document(name="Other"))
    changed = copy.deepcopy(WALLET["grants"])
    changed[0]["amount"] = "60.00"
    with pytest.raises(ImportFileError) as raised:
        load(engine, tmp_path, document(grants=changed))
    assert str(raised.value).startswith(f"{GRANT} amount: already stored with")
    more = [*WALLET["grants"], {"key": "new", "amount": "5", "on_date": "2027-02-01"}]
    report = load(engine, tmp_path, document(grants=more))
    assert (report.of("wallet_grants").inserted, report.of("wallet_grants").unchanged) == (1, 2)


def test_round_trip(engine, tmp_path):
    load(engine, tmp_path, document())
    with unit_of_work(engine) as s:
        exported = export_wallets(s)
    assert exported == [
        {
            "ref": "W-ACME", "account": "ACME", "name": "Credits", "currency": "EUR",
            "priority": 2, "created_on": "2027-01-01", "topup_threshold": "20.00",
            "topup_amount": "100.00",
            "grants": [
                {"key": "welcome", "amount": "50.00", "on_date": "2027-01-01",
                 "expires_on": "2027-06-30", "description": "Welcome offer"},
                {"key": "goodwill:2027-01", "amount": "10.00", "on_date": "2027-01-15",
                 "description": "Granted credits (goodwill:2027-01)"},
            ],
        }
    ]  # fmt: skip
    # The export imports again as it is: nothing changes.
    report = load(engine, tmp_path, {"wallets": exported}, "export.json")
    assert (report.of("wallets").unchanged, report.of("wallet_grants").unchanged) == (1, 2)


def test_export_of_what_is_left(engine, tmp_path):
    """After a bill of 0.00 nothing is spent; a hand-made consumption shows the remaining."""
    load(engine, tmp_path, document(topup_threshold=None, topup_amount=None))
    with unit_of_work(engine) as s:
        wallet = s.scalars(select(Wallet)).one()
        lot = s.scalar(select(WalletEntry.id).where(WalletEntry.entry_key.like("%welcome")))
        s.add(WalletEntry(entry_key=f"spd:{lot}:0", wallet_id=wallet.id, kind="consumption",
                          amount=D("-20.00"), on_date=date(2027, 2, 1), lot_id=lot,
                          description="spent"))  # fmt: skip
        s.flush()
        (opening,) = export_wallets(s, remaining=True)
    assert [(g["key"], g["amount"]) for g in opening["grants"]] == [
        ("opening/welcome", "30.00"),  # 50.00 - 20.00
        ("opening/goodwill:2027-01", "10.00"),
    ]


def test_imported_grants_pay_the_first_bill(engine, tmp_path):
    doc = document(topup_threshold=None, topup_amount=None)
    doc["tax_categories"] = [{"code": "standard", "name": "Standard"}]
    doc["tax_rates"] = [{"category": "standard", "country": "FR", "rate": "0.20",
                         "valid_from": "2000-01-01"}]  # fmt: skip
    doc["products"] = [{"code": "P", "name": "P", "tax_category": "standard", "price_plans": [
        {"code": "P-EUR", "currency": "EUR", "model": "recurring", "timing": "arrears",
         "unit_price": "10.00"}]}]  # fmt: skip
    doc["contracts"] = [{"ref": "C", "account": "ACME", "start_date": "2027-01-01",
                         "items": [{"ref": "I", "price_plan": "P-EUR", "item_type": "recurring",
                                    "start_date": "2027-01-01"}]}]  # fmt: skip
    load(engine, tmp_path, doc)
    run_bill_day(engine, date(2027, 2, 1), "run-1")
    with unit_of_work(engine) as s:
        spent = s.scalars(select(WalletEntry.amount).where(WalletEntry.kind == "consumption")).all()
    assert spent == [D("-12.00")]  # January: 10.00 + 20 % VAT, from the welcome lot
