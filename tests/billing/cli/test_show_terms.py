"""``billing show account`` lists an account's commercial terms (SQLite and PostgreSQL): its
discounts and minimum commitments with what each applies to, its usage threshold, and each
item's trial end. The terms are those of tests/billing/test_export_terms.py, imported over the
master fixture."""

from __future__ import annotations

from tests.billing.cli.test_show import cells, run
from tests.billing.test_export_terms import TERMS, write
from tests.billing.test_importer import MASTER, run_import


def test_show_account_lists_the_terms(engine, tmp_path):
    run_import(engine, MASTER)
    run_import(engine, write(tmp_path, TERMS))

    first = run(engine, "show", "account", "ACC-1")
    assert first.exit_code == 0, first.output
    rows = cells(first.stdout)
    head = {r[0]: r[1] for r in rows if len(r) == 2}
    assert head["usage threshold"] == "25.00 EUR of unbilled usage"
    terms = [r for r in rows if len(r) == 6 and r[0] in ("discount", "commitment")]
    assert terms == [
        ["discount", "DSC-1", "item I-1", "10 %", "from 2026-01-01", "Loyalty 10 %"],
        ["discount", "DSC-2", "plan HOST-M-EUR", "5.50 EUR a cycle",
         "from 2026-01-01, until 2026-07-01", "Hosting bundle"],
        ["commitment", "MIN-1", "contract C-1", "50.00 EUR a cycle", "from 2026-02-01",
         "Hosting minimum"],
    ]  # fmt: skip

    second = run(engine, "show", "account", "ACC-2")
    rows = cells(second.stdout)
    assert {r[0]: r[1] for r in rows if len(r) == 2}["usage threshold"] == "-"
    items = {r[0]: r for r in rows if len(r) == 9}
    assert items["I-3"][7] == "2026-02-15" and items["I-4"][7] == "-"  # trial to
    terms = [r[:5] for r in rows if len(r) == 6 and r[0] in ("discount", "commitment")]
    assert terms == [
        ["discount", "DSC-3", "bill", "12.5 %", "from 2026-02-15, 3 cycles"],
        ["commitment", "MIN-2", "item I-3", "12.00 EUR a cycle",
         "from 2026-01-15, until 2027-01-15"],
    ]  # fmt: skip
