"""The ``discounts`` section of an import file and ``billing export terms``, on both databases.

The master fixture (tests/fixtures/import/master.json) is imported first: accounts ACC-1 and
ACC-2 (EUR) and ACC-3 (JPY), items I-1 (HOST-M-EUR) and I-2 of ACC-1, I-3 and I-4 of ACC-2.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from billing.cli import app
from billing.ingest.export_terms import terms_document
from billing.store.db import unit_of_work
from billing.store.models import ContractItem, PricePlan
from billing.store.models_terms import Discount
from tests.billing.test_importer import MASTER, assert_refused, run_import
from tests.billing.test_synthetic import other_engine  # noqa: F401  (a second database)

D = Decimal

DISCOUNTS: list[dict[str, Any]] = [
    {"ref": "DSC-1", "account": "ACC-1", "scope": "item", "item": "I-1", "kind": "percent",
     "value": "10", "description": "Loyalty 10 %", "start_date": "2026-01-01"},
    {"ref": "DSC-2", "account": "ACC-1", "scope": "plan", "price_plan": "HOST-M-EUR",
     "kind": "fixed", "value": "5.50", "description": "Hosting bundle", "reason_code": "100",
     "start_date": "2026-01-01", "end_date": "2026-07-01", "priority": 1, "stackable": False},
    {"ref": "DSC-3", "account": "ACC-2", "scope": "bill", "kind": "percent", "value": "12.5",
     "coupon_code": "WELCOME", "description": "Welcome offer", "start_date": "2026-02-15",
     "cycles": 3},
    {"ref": "DSC-4", "account": "ACC-3", "scope": "bill", "kind": "fixed", "value": "500",
     "description": "Yen off", "start_date": "2026-01-01"},
]  # fmt: skip


def discounts_file(tmp_path: Path, records: list[dict[str, Any]], name: str = "d.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"discounts": records}), encoding="utf-8")
    return path


def stored(engine: Engine) -> list[tuple]:
    with unit_of_work(engine) as s:
        rows = s.execute(
            select(
                Discount.ref, Discount.scope, Discount.kind, Discount.value, Discount.coupon_code,
                Discount.description, Discount.reason_code, Discount.start_date, Discount.cycles,
                Discount.end_date, Discount.priority, Discount.stackable,
                ContractItem.ref, PricePlan.code,
            )
            .outerjoin(ContractItem, ContractItem.id == Discount.contract_item_id)
            .outerjoin(PricePlan, PricePlan.id == Discount.price_plan_id)
            .order_by(Discount.ref)
        )  # fmt: skip
        return [tuple(str(v) if hasattr(v, "value") else v for v in row) for row in rows]


@pytest.fixture
def master(engine: Engine) -> Engine:
    run_import(engine, MASTER)
    return engine


def test_a_good_file_imports_and_a_second_time_changes_nothing(master, tmp_path):
    path = discounts_file(tmp_path, DISCOUNTS)
    report = run_import(master, path)
    assert (report.of("discounts").inserted, report.of("discounts").unchanged) == (4, 0)
    assert stored(master) == [
        ("DSC-1", "item", "percent", D(10), None, "Loyalty 10 %", "95", date(2026, 1, 1),
         None, None, 0, True, "I-1", None),
        ("DSC-2", "plan", "fixed", D("5.5"), None, "Hosting bundle", "100", date(2026, 1, 1),
         None, date(2026, 7, 1), 1, False, None, "HOST-M-EUR"),
        ("DSC-3", "bill", "percent", D("12.5"), "WELCOME", "Welcome offer", "95",
         date(2026, 2, 15), 3, None, 0, True, None, None),
        ("DSC-4", "bill", "fixed", D(500), None, "Yen off", "95", date(2026, 1, 1), None, None,
         0, True, None, None),
    ]  # fmt: skip
    again = run_import(master, path)
    assert (again.of("discounts").inserted, again.of("discounts").unchanged) == (0, 4)
    # the same ref with another value is refused, naming the field
    changed = [dict(DISCOUNTS[0], value="15"), *DISCOUNTS[1:]]
    error = assert_refused(master, discounts_file(tmp_path, changed), "discounts[0] (ref DSC-1)",
                           "value")  # fmt: skip
    assert "the importer never overwrites" in str(error)


def _set(index: int, **changes: Any) -> list[dict[str, Any]]:
    records = [dict(r) for r in DISCOUNTS]
    for name, value in changes.items():
        if value is None:
            records[index].pop(name, None)
        else:
            records[index][name] = value
    return records


BAD = [
    (_set(0, item=None), 0, "item", "needs its item"),
    (_set(0, price_plan="HOST-M-EUR"), 0, "price_plan", "takes no price_plan"),
    (_set(1, price_plan=None), 1, "price_plan", "needs its price_plan"),
    (_set(2, item="I-3"), 2, "item", "takes no item"),
    (_set(0, item="I-3"), 0, "item", "'I-3' is not an item of account 'ACC-1'"),
    (_set(0, item="NO-SUCH"), 0, "item", "unknown contract item 'NO-SUCH'"),
    (_set(1, price_plan="SETUP-JPY"), 1, "price_plan", "is in JPY, the account 'ACC-1'"),
    (_set(0, account="NOBODY"), 0, "account", "unknown account 'NOBODY'"),
    (_set(0, value="100.5"), 0, "value", "at most 100, not 100.5"),
    (_set(0, value="0"), 0, "value", "above 0"),
    (_set(1, value="5.555"), 1, "value", "not an amount in EUR"),
    (_set(3, value="0.5"), 3, "value", "not an amount in JPY"),
    (_set(0, reason_code="123"), 0, "reason_code", "not an EN 16931 allowance reason"),
    (_set(0, reason_code="9"), 0, "reason_code", "does not match"),
    (_set(1, end_date="2026-01-01"), 1, "end_date", "not after start_date 2026-01-01"),
    (_set(2, cycles=0), 2, "cycles", "less than the minimum"),
    (_set(2, scope="account"), 2, "scope", "is not one of"),
    (_set(2, kind="free"), 2, "kind", "is not one of"),
    (_set(2, description=None), 2, "description", "required"),
    (_set(2, start_date="2026-02-30"), 2, "start_date", "not a valid date"),
    (_set(3, ref="DSC-1"), 3, "ref", "duplicate ref 'DSC-1'"),
    (_set(1, stackable="no"), 1, "stackable", "is not of type 'boolean'"),
]


@pytest.mark.parametrize(("records", "index", "field", "words"), BAD)
def test_each_bad_field_refuses_the_file_naming_record_and_field(
    master, tmp_path, records, index, field, words
):
    path = discounts_file(tmp_path, records)
    record = f"discounts[{index}] (ref {records[index]['ref']})"
    error = assert_refused(master, path, record, field)
    assert words in str(error)


def test_export_then_import_into_a_fresh_database_gives_the_same_rows(
    master,
    tmp_path,
    db_url,
    other_engine,  # noqa: F811
):
    run_import(master, discounts_file(tmp_path, DISCOUNTS))
    out = tmp_path / "terms.json"
    result = CliRunner().invoke(app, ["export", "terms", "--out", str(out), "--database", db_url])
    assert result.exit_code == 0, result.output
    assert "exported 4 discounts" in result.output
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document == terms_document_of(master)
    assert document["discounts"][1] == {
        "ref": "DSC-2", "account": "ACC-1", "scope": "plan", "price_plan": "HOST-M-EUR",
        "kind": "fixed", "value": "5.5", "description": "Hosting bundle", "reason_code": "100",
        "start_date": "2026-01-01", "priority": 1, "stackable": False, "end_date": "2026-07-01",
    }  # fmt: skip
    # into the database it came from: all unchanged
    assert run_import(master, out).of("discounts").unchanged == 4
    # into a fresh one with the same master data: the same rows
    fresh = other_engine
    run_import(fresh, MASTER)
    assert run_import(fresh, out).of("discounts").inserted == 4
    assert stored(fresh) == stored(master)


def terms_document_of(engine: Engine) -> dict[str, Any]:
    with unit_of_work(engine) as s:
        return terms_document(s)
