"""Invoice preview of one account (issue #19), on SQLite and PostgreSQL.

The population is accounts A (EUR, billing day 1) and B (GBP, billing day 31) of
tests/billing/test_billday.py, plus a deferred price change of A due on its first bill day:
the preview must run bill day's deferred actions too, or it would differ from the bill.
"""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal
from typing import Any

import pypdf
import pytest
from sqlalchemy import Engine, inspect, select, text
from typer.testing import CliRunner

from billing.cli import app
from billing.jobs.bill_day import run_bill_day
from billing.ops.preview import Preview, PreviewBill, PreviewLine, preview_account
from billing.ops.views import UnknownAccounts
from billing.store.db import unit_of_work
from billing.store.models import LINE_COLUMNS, Account, Base, Bill, Charge, billed_line
from tests import builders as b
from tests.billing.test_billday import seed_population

D = Decimal
FEB = date(2027, 2, 1)


@pytest.fixture
def population(engine: Engine) -> Engine:
    seed_population(engine)
    with unit_of_work(engine) as s:
        a = s.scalars(select(Account).where(Account.ref == "A")).one()
        b.deferred(s, a, "price-A2", "change_price", FEB, item_ref="A2", price="15.00")
    return engine


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the database, in primary-key order: a database dump."""
    tables = set(inspect(engine).get_table_names())
    assert {t.name for t in Base.metadata.sorted_tables} <= tables
    with engine.connect() as conn:
        return {
            name: [
                tuple(row) for row in conn.execute(text(f'SELECT * FROM "{name}" ORDER BY 1')).all()
            ]
            for name in sorted(tables)
        }


def billed(engine: Engine, ref: str, run_id: str) -> tuple[PreviewBill, ...]:
    """The bills a bill-day run made for an account, as preview values (to compare)."""
    with unit_of_work(engine) as s:
        bills = s.scalars(
            select(Bill)
            .join(Account)
            .where(Account.ref == ref, Bill.run_id == run_id)
            .order_by(Bill.bill_date, Bill.id)
        ).all()
        found = []
        for bill in bills:
            lines = [
                (billed_line(row), row.kind)
                for row in s.execute(
                    select(*LINE_COLUMNS, Charge.kind)
                    .where(Charge.bill_id == bill.id)
                    .order_by(Charge.line_no)
                )
            ]
            found.append(
                PreviewBill(
                    bill.bill_date, bill.due_date, bill.period_start, bill.period_end,
                    bill.currency, bill.net, bill.tax, bill.gross,
                    tuple(
                        PreviewLine(
                            line.position, str(kind), line.description, line.period_start,
                            line.period_end, line.quantity, line.unit_price, line.net,
                            line.tax_category, line.vat_category, line.tax_rate, line.tax,
                            line.gross,
                        )
                        for line, kind in lines
                    ),
                )
            )  # fmt: skip
    return tuple(found)


def test_the_preview_writes_nothing(population):
    before = dump(population)

    preview = preview_account(population, "A", FEB, documents=True)
    nothing_due = preview_account(population, "B", date(2027, 1, 20))
    with pytest.raises(UnknownAccounts, match="unknown account 'NOPE'"):
        preview_account(population, "NOPE", FEB)

    assert len(preview.bills) == 1 and len(preview.invoices) == 1
    assert nothing_due.bills == ()
    assert dump(population) == before


def test_the_preview_is_what_bill_day_then_bills(population):
    preview_a = preview_account(population, "A", FEB)
    run_bill_day(population, FEB, "run-feb")
    preview_b = preview_account(population, "B", date(2027, 2, 28))  # after a bill day
    run_bill_day(population, date(2027, 2, 28), "run-feb-28")

    assert preview_a.bills and preview_b.bills
    assert preview_a.bills == billed(population, "A", "run-feb")
    assert preview_b.bills == billed(population, "B", "run-feb-28")
    (bill,) = preview_a.bills
    # A's SUPPORT (arrears, 2 units) at the price the deferred action set on 1 February:
    # 2 x 15.00, not 2 x 12.00. 20 % VAT per line, with the line's category.
    support = next(line for line in bill.lines if line.description == "Product SUPPORT")
    assert (support.unit_price, support.net, support.tax) == (D("15"), D("30"), D("6"))
    assert {(line.vat_category, line.tax_category, line.tax_rate) for line in bill.lines} == {
        ("S", "standard", D("0.2"))
    }
    assert bill.net == sum(line.net for line in bill.lines)
    assert bill.gross == bill.net + bill.tax
    assert preview_a.totals == {"EUR": (bill.net, bill.tax, bill.gross)}


def test_an_account_behind_previews_each_cycle_as_bill_day_bills_them(population):
    march = date(2027, 3, 1)
    preview = preview_account(population, "A", march)

    run_bill_day(population, march, "run-march")

    assert [bill.bill_date for bill in preview.bills] == [FEB, march]
    assert preview.bills == billed(population, "A", "run-march")


def test_nothing_due_is_said_with_the_next_bill_date(population):
    preview = preview_account(population, "A", date(2027, 1, 20))

    assert preview == Preview("A", date(2027, 1, 20), next_bill_date=FEB)


# --- the command --------------------------------------------------------------------------


def run_cli(engine: Engine, *args: str) -> Any:
    url = engine.url.render_as_string(hide_password=False)
    return CliRunner().invoke(app, ["preview", *args, "--database", url], env={"COLUMNS": "200"})


def test_the_command_prints_lines_and_totals_and_writes_a_marked_pdf(population, tmp_path):
    before = dump(population)
    path = tmp_path / "a.pdf"

    result = run_cli(population, "--account", "A", "--as-of", "2027-02-01", "--pdf", str(path))

    assert result.exit_code == 0, result.output
    assert "Product SUPPORT" in result.stdout and "S 20 %" in result.stdout
    assert "gross 206.40 EUR; nothing was written" in result.stdout
    reader = pypdf.PdfReader(io.BytesIO(path.read_bytes()))
    page = reader.pages[0].extract_text()
    assert "PREVIEW — not an invoice" in page
    assert "INV-" not in page
    assert reader.attachments == {}  # no factur-x.xml: nothing claims to be an invoice
    assert "PREVIEW" in str(reader.metadata["/Title"])
    assert dump(population) == before


def test_an_unknown_account_fails_and_writes_nothing(population):
    before = dump(population)

    result = run_cli(population, "--account", "NOPE", "--as-of", "2027-02-01")

    assert result.exit_code == 1
    assert "error: unknown account 'NOPE'" in result.output
    assert dump(population) == before


def test_a_cancellation_due_that_day_is_previewed_as_bill_day_credits_it(population):
    """Bill day runs the deferred actions, then the cancellations due, then billing
    (``billing.jobs.bill_day``): A1, billed in advance for February on 1 February and
    cancelled from 15 February (the population's deferred action), is credited on the bill
    of 1 March. The preview of 1 March shows that credit."""
    run_bill_day(population, FEB, "run-feb")
    march = date(2027, 3, 1)
    preview = preview_account(population, "A", march)

    run_bill_day(population, march, "run-march")

    assert preview.bills == billed(population, "A", "run-march")
    assert any(line.net < 0 for bill in preview.bills for line in bill.lines)
