"""Commitments and trial ends in the JSON import, and the commitments' export (issue #21).

The file is the master fixture (tests/fixtures/import/master.json: ACC-1 with contract C-1,
items I-1 recurring and I-2 usage; ACC-2 with C-2, items I-3 recurring and I-4 one-time; tax
categories STD and RED) with a ``commitments`` section and a trial on I-1.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select

from billing.ingest.import_commitments import export_commitments
from billing.ingest.importer_csv import Counts
from billing.store.db import unit_of_work
from billing.store.models import ContractItem
from billing.store.models_terms import Commitment
from tests.billing.test_importer import MASTER, assert_refused, row_counts, run_import

D = Decimal
COMMITMENTS = [
    {"ref": "MIN-1", "account": "ACC-1", "contract": "C-1", "amount": "100.00",
     "tax_category": "STD", "description": "Gold plan", "start_date": "2026-02-01"},
    {"ref": "MIN-2", "account": "ACC-2", "item": "I-3", "amount": "40", "tax_category": "RED",
     "start_date": "2026-02-15", "end_date": "2027-02-15"},
]  # fmt: skip


def document(change: Any = None) -> dict[str, Any]:
    doc = json.loads(MASTER.read_text(encoding="utf-8"))
    doc["contracts"][0]["items"][0]["trial_end_date"] = "2026-03-01"
    doc["commitments"] = json.loads(json.dumps(COMMITMENTS))
    if change is not None:
        change(doc)
    return doc


def write(tmp_path: Path, doc: dict[str, Any], name: str = "terms.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_a_good_file_imports_commitments_and_trial_ends(engine, tmp_path):
    report = run_import(engine, write(tmp_path, document()))
    assert report.counts["commitments"] == Counts(inserted=2)
    with unit_of_work(engine) as s:
        rows = {c.ref: c for c in s.scalars(select(Commitment))}
        items = {i.ref: i for i in s.scalars(select(ContractItem))}
        gold, small = rows["MIN-1"], rows["MIN-2"]
        assert (gold.account_id, gold.contract_id, gold.contract_item_id) == (
            items["I-1"].contract.account_id, items["I-1"].contract_id, None
        )  # fmt: skip
        assert (gold.amount, gold.tax_category, gold.description) == (D("100"), "STD", "Gold plan")
        assert (gold.start_date, gold.end_date) == (date(2026, 2, 1), None)
        assert (small.contract_id, small.contract_item_id) == (None, items["I-3"].id)
        assert small.description == "Minimum commitment MIN-2"  # when none is given
        assert (small.start_date, small.end_date) == (date(2026, 2, 15), date(2027, 2, 15))
        assert items["I-1"].trial_end_date == date(2026, 3, 1)
        assert items["I-3"].trial_end_date is None


def test_reimporting_changes_nothing(engine, tmp_path):
    path = write(tmp_path, document())
    run_import(engine, path)
    before = row_counts(engine)
    report = run_import(engine, path)
    assert report.counts["commitments"] == Counts(unchanged=2)
    assert report.counts["contract_items"] == Counts(unchanged=5)
    assert row_counts(engine) == before


def test_commitments_resolve_against_the_database(engine, tmp_path):
    run_import(engine, MASTER)
    report = run_import(engine, write(tmp_path, {"commitments": COMMITMENTS}))
    assert report.counts == {"commitments": Counts(inserted=2)}


def _set(index: int, **values: Any):
    def change(doc: dict[str, Any]) -> None:
        doc["commitments"][index].update(values)

    return change


def _drop(index: int, name: str):
    def change(doc: dict[str, Any]) -> None:
        del doc["commitments"][index][name]

    return change


def _both_targets(doc):
    doc["commitments"][0]["item"] = "I-1"


def _trial(**values: Any):
    def change(doc: dict[str, Any]) -> None:
        doc["contracts"][0]["items"][0].update(values)

    return change


def _trial_on_usage(doc):
    doc["contracts"][0]["items"][1]["trial_end_date"] = "2026-03-01"


MIN_1, MIN_2 = "commitments[0] (ref MIN-1)", "commitments[1] (ref MIN-2)"
I_1, I_2 = "contracts[0] (ref C-1).items[0] (ref I-1)", "contracts[0] (ref C-1).items[1] (ref I-2)"


@pytest.mark.parametrize(
    ("change", "record", "field", "words"),
    [
        (_set(0, account="ACC-404"), MIN_1, "account", "unknown account 'ACC-404'"),
        (_set(0, contract="C-404"), MIN_1, "contract", "unknown contract 'C-404'"),
        (_set(1, item="I-404"), MIN_2, "item", "unknown contract item 'I-404'"),
        (_set(0, contract="C-2"), MIN_1, "contract", "not a contract of account 'ACC-1'"),
        (_set(1, item="I-1"), MIN_2, "item", "not an item of account 'ACC-2'"),
        (_both_targets, MIN_1, "contract", "exactly one target"),
        (_drop(0, "contract"), MIN_1, "contract", "exactly one target"),
        (_set(1, tax_category="NOPE"), MIN_2, "tax_category", "unknown tax category 'NOPE'"),
        (_set(0, amount="-1"), MIN_1, "amount", "does not match"),
        (_set(0, amount="1.1234567"), MIN_1, "amount", "more than 6 decimals"),
        (_set(0, start_date="2026-02-30"), MIN_1, "start_date", "not a valid date"),
        (_set(1, end_date="2026-02-01"), MIN_2, "end_date", "before start_date"),
        (_set(1, end_date="2026-02-15"), MIN_2, "end_date", "not after start_date"),
        (_drop(1, "tax_category"), MIN_2, "tax_category", "required"),
        (_set(1, ref="MIN-1"), "commitments[1] (ref MIN-1)", "ref", "duplicate ref 'MIN-1'"),
        (_set(0, colour="gold"), MIN_1, "colour", "Additional properties"),
        (_trial(trial_end_date="2026-01-01"), I_1, "trial_end_date", "not after start_date"),
        (_trial(trial_end_date="2026-13-01"), I_1, "trial_end_date", "not a valid date"),
        (_trial(end_date="2026-02-01"), I_1, "trial_end_date", "after end_date 2026-02-01"),
        (_trial_on_usage, I_2, "trial_end_date", "only a recurring item's fee has a trial"),
    ],
)
def test_each_bad_field_is_refused_naming_record_and_field(
    engine, tmp_path, change, record, field, words
):
    error = assert_refused(engine, write(tmp_path, document(change)), record, field)
    assert words in str(error)


def test_a_changed_reimport_is_refused(engine, tmp_path):
    run_import(engine, write(tmp_path, document()))
    error = assert_refused(
        engine, write(tmp_path, document(_set(0, amount="120.00")), "b.json"), MIN_1, "amount"
    )
    assert "the importer never overwrites" in str(error)
    assert_refused(
        engine, write(tmp_path, document(_set(0, contract="C-2", account="ACC-2")), "c.json"),
        MIN_1, "account",
    )  # fmt: skip


def test_export_then_import_is_a_round_trip(engine, tmp_path):
    path = write(tmp_path, document())
    run_import(engine, path)
    with unit_of_work(engine) as s:
        exported = export_commitments(s)
    assert exported == [
        {"ref": "MIN-1", "account": "ACC-1", "contract": "C-1", "amount": "100",
         "tax_category": "STD", "description": "Gold plan", "start_date": "2026-02-01",
         "end_date": None},
        {"ref": "MIN-2", "account": "ACC-2", "item": "I-3", "amount": "40",
         "tax_category": "RED", "description": "Minimum commitment MIN-2",
         "start_date": "2026-02-15",
         "end_date": "2027-02-15"},
    ]  # fmt: skip
    # Imported again: unchanged. Deleted and imported: the same commitments again.
    again = write(tmp_path, {"commitments": exported}, "exported.json")
    assert run_import(engine, again).counts == {"commitments": Counts(unchanged=2)}
    with unit_of_work(engine) as s:
        s.execute(delete(Commitment))
    assert run_import(engine, again).counts == {"commitments": Counts(inserted=2)}
    with unit_of_work(engine) as s:
        assert export_commitments(s) == exported
