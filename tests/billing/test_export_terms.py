"""``billing export terms``: every kind of term leaves in the import format and comes back.

Both databases. The master fixture (tests/fixtures/import/master.json) gives accounts ACC-1,
ACC-2 (EUR) and ACC-3 (JPY), contracts C-1 (items I-1 recurring, I-2 usage) and C-2 (I-3
recurring, I-4 one-time). A terms file gives discounts, commitments, a usage threshold, a trial
and a wallet with a grant; the export of that database, imported into a fresh one with the
same master data, exports the very same document, and imported into its own database changes
nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from billing.cli import app
from billing.domain.errors import ImportFileError
from billing.ingest.export_terms import SECTIONS, terms_document
from billing.store.db import unit_of_work
from tests.billing.test_import_discounts import DISCOUNTS
from tests.billing.test_importer import MASTER, run_import
from tests.billing.test_synthetic import other_engine  # noqa: F401  (a second database)

TERMS: dict[str, list[dict[str, Any]]] = {
    "discounts": DISCOUNTS,
    "commitments": [
        {"ref": "MIN-1", "account": "ACC-1", "contract": "C-1", "amount": "50.00",
         "tax_category": "STD", "description": "Hosting minimum", "start_date": "2026-02-01"},
        {"ref": "MIN-2", "account": "ACC-2", "item": "I-3", "amount": "12",
         "tax_category": "RED", "description": "Yearly floor", "start_date": "2026-01-15",
         "end_date": "2027-01-15"},
    ],
    "usage_thresholds": [{"account": "ACC-1", "usage_threshold": "25.00"}],
    "trials": [{"item": "I-3", "trial_end_date": "2026-02-15"}],
    "wallets": [
        {"ref": "W-1", "account": "ACC-2", "name": "Credits", "currency": "EUR", "priority": 1,
         "topup_threshold": "20.00", "topup_amount": "100.00", "created_on": "2026-01-15",
         "grants": [{"key": "welcome", "amount": "50.00", "on_date": "2026-01-15",
                     "expires_on": "2026-06-30", "description": "Welcome offer"}]},
    ],
}  # fmt: skip


def write(tmp_path: Path, document: dict[str, Any], name: str = "terms.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def document_of(engine: Engine) -> dict[str, Any]:
    with unit_of_work(engine) as s:
        return terms_document(s)


def test_every_term_round_trips(engine, db_url, tmp_path, other_engine):  # noqa: F811
    run_import(engine, MASTER)
    report = run_import(engine, write(tmp_path, TERMS, "in.json"))
    assert {k: report.of(k).inserted for k in TERMS} == {
        "discounts": 4, "commitments": 2, "usage_thresholds": 1, "trials": 1, "wallets": 1,
    }  # fmt: skip
    out = tmp_path / "out.json"
    result = CliRunner().invoke(app, ["export", "terms", "--out", str(out), "--database", db_url])
    assert result.exit_code == 0, result.output
    exported = json.loads(out.read_text(encoding="utf-8"))
    assert list(exported) == list(SECTIONS)
    assert exported["usage_thresholds"] == TERMS["usage_thresholds"]
    assert exported["trials"] == TERMS["trials"]
    assert [c["ref"] for c in exported["commitments"]] == ["MIN-1", "MIN-2"]

    again = run_import(engine, out)  # into its own database: nothing changes
    assert {k: again.of(k).unchanged for k in TERMS} == {
        "discounts": 4, "commitments": 2, "usage_thresholds": 1, "trials": 1, "wallets": 1,
    }  # fmt: skip
    assert all(again.of(k).inserted == 0 for k in TERMS)

    run_import(other_engine, MASTER)  # a fresh database with the same master data
    run_import(other_engine, out)
    assert document_of(other_engine) == exported


@pytest.mark.parametrize(
    ("section", "record", "field", "words"),
    [
        ("usage_thresholds", {"account": "ACC-9", "usage_threshold": "5"}, "account", "ACC-9"),
        ("usage_thresholds", {"account": "ACC-1", "usage_threshold": "0"}, "usage_threshold",
         "not a positive amount"),
        ("trials", {"item": "I-2", "trial_end_date": "2026-02-01"}, "trial_end_date",
         "only a recurring item's fee has a trial"),
        ("trials", {"item": "I-1", "trial_end_date": "2026-01-10"}, "trial_end_date",
         "is not after start_date"),
        ("trials", {"item": "I-1", "trial_end_date": "2026-02-31"}, "trial_end_date",
         "not a valid date"),
    ],
)  # fmt: skip
def test_a_bad_field_names_the_record_and_changes_nothing(
    engine, tmp_path, section, record, field, words
):
    run_import(engine, MASTER)
    before = document_of(engine)
    with pytest.raises(ImportFileError) as error:
        run_import(engine, write(tmp_path, {section: [record]}))
    assert error.value.record.startswith(f"{section}[0]")
    assert error.value.field == field
    assert words in str(error.value)
    assert document_of(engine) == before


def test_the_import_never_overwrites_a_threshold_or_a_trial(engine, tmp_path):
    run_import(engine, MASTER)
    run_import(engine, write(tmp_path, TERMS, "in.json"))
    for section, record, field in (
        ("usage_thresholds", {"account": "ACC-1", "usage_threshold": "30.00"}, "usage_threshold"),
        ("trials", {"item": "I-3", "trial_end_date": "2026-03-01"}, "trial_end_date"),
    ):
        with pytest.raises(ImportFileError, match="never overwrites|billing trial extend") as e:
            run_import(engine, write(tmp_path, {section: [record]}))
        assert e.value.field == field
