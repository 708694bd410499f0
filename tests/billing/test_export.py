"""Invoice export: JSON and CSV carry the numbered bills with their lines, amounts as text."""

from __future__ import annotations

import csv
import io
import json
from datetime import date

from typer.testing import CliRunner

from billing.jobs.bill_day import run_bill_day
from billing.ops.export import write_csv, write_json
from billing.store.db import unit_of_work
from tests.billing.test_billday import population  # noqa: F401


def test_json_export_has_bills_and_lines(population):  # noqa: F811
    run_bill_day(population, date(2027, 2, 1), "run")
    out = io.StringIO()
    with unit_of_work(population) as s:
        assert write_json(s, out) == 2
    invoices = json.loads(out.getvalue())
    assert [(i["bill_no"], i["account_ref"], i["currency"], i["gross"]) for i in invoices] == [
        ("INV-00000001", "B", "GBP", "17.34"),
        ("INV-00000002", "A", "EUR", "199.20"),
    ]
    first_line = invoices[1]["lines"][0]
    assert first_line == {
        "description": "Product PRO",
        "quantity": "1",
        "unit_price": "30",
        "amount": "30.00",
        "tax_rate": "0.2",
        "tax": "6.00",
        "vat_category": "S",
    }


def test_csv_export_has_one_row_per_line(population):  # noqa: F811
    run_bill_day(population, date(2027, 2, 1), "run")
    out = io.StringIO()
    with unit_of_work(population) as s:
        assert write_csv(s, out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 1 + 7  # B has one line, A seven
    assert {r["bill_no"] for r in rows} == {"INV-00000001", "INV-00000002"}
    a_lines = [r for r in rows if r["account_ref"] == "A"]
    from decimal import Decimal

    assert sum(Decimal(r["amount"]) for r in a_lines) == Decimal("166.00")
    assert {r["vat_category"] for r in rows} == {"S"}


def test_cli_export_writes_a_file(population, tmp_path):  # noqa: F811
    from flows.cli import app

    run_bill_day(population, date(2027, 2, 1), "run")
    target = tmp_path / "invoices.csv"
    url = population.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(
        app, ["export", "invoices", "--format", "csv", "-o", str(target), "-d", url]
    )
    assert result.exit_code == 0, result.output
    assert target.read_text().count("INV-0000000") == 8
