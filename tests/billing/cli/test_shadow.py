"""``billing shadow``: the shadow bill run from the command line, on the population of
tests/billing/test_shadow_bill_run.py (billed on 1 February, changed before 1 March)."""

from __future__ import annotations

import csv

from typer.testing import CliRunner, Result

from tests.billing.cli.test_show import cells, url_of
from tests.billing.test_shadow_bill_run import dump, population  # noqa: F401


def run(engine, *args: str) -> Result:  # type: ignore[no-untyped-def]
    from flows.cli import app

    return CliRunner().invoke(app, [*args, "-d", url_of(engine)], env={"COLUMNS": "200"})


def test_it_prints_the_totals_and_the_flagged_accounts_and_writes_the_csv(
    population,  # noqa: F811
    tmp_path,
):
    before = dump(population)
    out = tmp_path / "shadow.csv"
    result = run(population, "shadow", "--as-of", "2027-03-01", "-o", str(out))
    assert result.exit_code == 0, result.output
    rows = cells(result.stdout)
    assert ["EUR", "4", "108.00 EUR", "4", "114.60 EUR", "+6.60 (+6.11 %)"] in rows
    assert ["GBP", "1", "33.60 GBP", "1", "33.60 GBP", "0.00 (0.00 %)"] in rows
    assert ["changed", "PRICED", "24.00 EUR", "30.00 EUR", "+6.00 (+25.00 %)", ""] in rows
    assert ["missing", "GONE", "36.00 EUR", "0.00 EUR", "-36.00 (-100.00 %)", ""] in rows
    assert ["new", "NEW", "0.00 EUR", "36.00 EUR", "+36.00", ""] in rows
    assert [r[:2] for r in rows if r[0] == "failed"] == [["failed", "NOVAT"]]
    assert "7 account(s) compared: 1 failed, 1 missing, 1 changed, 1 new" in result.stderr
    with out.open(newline="") as f:
        assert [r[0] for r in csv.reader(f)] == [
            "kind", "failed", "missing", "changed", "new", "total", "total",
        ]  # fmt: skip
    assert dump(population) == before


def test_thresholds_and_accounts(population):  # noqa: F811
    result = run(
        population, "shadow", "--as-of", "2027-03-01", "--threshold-amount", "0",
        "--threshold-percent", "0", "--account", "SMALLER", "--account", "SAME",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [r[:2] for r in cells(result.stdout) if r[0] == "changed"] == [["changed", "SMALLER"]]


def test_the_gate_option_exits_1_naming_the_accounts(population):  # noqa: F811
    result = run(population, "shadow", "--as-of", "2027-03-01", "--gate")
    assert result.exit_code == 1
    assert "1 missing (at most 0): GONE" in " ".join(result.stderr.split())
    quiet = run(population, "shadow", "--as-of", "2027-03-01", "--gate", "--account", "SAME")
    assert quiet.exit_code == 0, quiet.output
    assert "No account is new, missing, changed or failed." in quiet.stdout


def test_a_bad_threshold_is_one_line(population):  # noqa: F811
    result = run(population, "shadow", "--as-of", "2027-03-01", "--threshold-percent", "-1")
    assert result.exit_code == 1
    assert "shadow threshold percent must be a Decimal >= 0" in result.stderr
    result = run(population, "shadow", "--threshold-amount", "lots")
    assert result.exit_code == 2
    assert "'lots' is not a decimal number" in result.output
