"""Migration 0010 (charges are the bill lines): a store billed at 0009, with bill_lines and
revenue shares on them, reads the same invoices, lines and shares once upgraded.

The 0009 store is made from one billed at head (bill days, a cancellation credit naming the
invoice it corrects, a credit note by hand, revenue shares): every table copied as 0009 had
it, each charge on a bill given its bill line back (the correction's charge its description
without the reference, as 0009 stored it), each share pointing at the line.
"""

from __future__ import annotations

import re
from contextlib import nullcontext
from datetime import date
from decimal import Decimal as D
from io import StringIO

import pytest
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    insert,
    inspect,
    select,
    text,
)

from billing.documents.model import load_invoices
from billing.jobs.bill_day import run_bill_day
from billing.ops.credit_notes import issue_credit_note
from billing.ops.export import write_json
from billing.store.db import make_engine, unit_of_work
from billing.store.migrate import upgrade
from billing.store.models import LINE_COLUMNS, Base, Charge
from billing.store.models_revrec import RevenueShare
from billing.store.types import Amount
from tests.billing.test_billday import seed_population
from tests.billing.test_revrec import run_revrec
from tests.conftest import pg_schema_url, scratch_schema

BEFORE = "0009_late_usage"
CORRECTS = re.compile(r", corrects (invoice \S+|the invoice of \d{4}-\d{2}-\d{2})$")

_old = MetaData()
BILL_LINES_0009 = Table(
    "bill_lines",
    _old,
    Column("id", Integer, primary_key=True),
    Column("bill_id", Integer),
    Column("charge_id", Integer),
    Column("position", Integer),
    Column("description", String(255)),
    Column("period_start", Base.metadata.tables["charges"].c.period_start.type),
    Column("period_end", Base.metadata.tables["charges"].c.period_end.type),
    Column("quantity", Amount()),
    Column("unit_price", Amount()),
    Column("net", Amount()),
    Column("tax_category", String(16)),
    Column("tax_rate", Amount()),
    Column("tax", Amount()),
    Column("gross", Amount()),
    Column("vat_category", String(2)),
)


def _billed(engine: Engine) -> None:
    seed_population(engine)
    for day in (date(2027, 2, 1), date(2027, 2, 28), date(2027, 3, 1)):
        run_bill_day(engine, day, f"run-{day}")
    with unit_of_work(engine) as s:
        issue_credit_note(
            s, invoice_no="INV-00000001", lines={1: D("5.00")}, reason="goodwill",
            as_of=date(2027, 3, 2),
        )  # fmt: skip
    run_revrec(engine, 2027, 2)


def _read(engine: Engine) -> dict[str, object]:
    """What a reader sees: documents' invoices, the export, the lines, the revenue shares."""
    with unit_of_work(engine) as s:
        out = StringIO()
        write_json(s, out)
        return {
            "invoices": [repr(invoice) for invoice in load_invoices(s)],
            "export": out.getvalue(),
            "lines": s.execute(
                select(*LINE_COLUMNS)
                .where(Charge.bill_id.is_not(None))
                .order_by(Charge.bill_id, Charge.line_no)
            ).all(),
            "shares": s.execute(
                select(
                    RevenueShare.id,
                    RevenueShare.charge_id,
                    RevenueShare.year,
                    RevenueShare.month,
                    RevenueShare.amount,
                ).order_by(RevenueShare.id)
            ).all(),  # fmt: skip
        }


def _copy_as_0009(source: Engine, target: Engine) -> int:
    """Copy every row of ``source`` (head) into ``target`` (at 0009) as 0009 stored it.
    Returns how many bill lines were written."""
    existing = {name: {c["name"] for c in inspect(target).get_columns(name)} for name in
                inspect(target).get_table_names()}  # fmt: skip
    tables = [t for t in Base.metadata.sorted_tables if t.name in existing]
    line_ids: dict[int, int] = {}
    with source.connect() as read, target.begin() as write:
        for table in reversed(tables):  # the seeded rows (series, ...) come from the source
            write.execute(delete(Table(table.name, MetaData())))
        for table in tables:
            names = [c.name for c in table.columns if c.name in existing[table.name]]
            old = Table(table.name, MetaData(), *(table.c[n].copy() for n in names))
            source_columns = [table.c[n] for n in names if n in table.c]
            if table.name == "revenue_shares":
                source_columns.append(table.c.charge_id)
            rows = [dict(r._mapping) for r in read.execute(
                select(*source_columns).order_by(*table.primary_key.columns)
            )]  # fmt: skip
            if table.name == "charges":
                for row in rows:
                    row["description"] = CORRECTS.sub("", row["description"])
            if table.name == "revenue_shares":
                old.append_column(Column("bill_line_id", Integer))
                for row in rows:
                    row["bill_line_id"] = line_ids[row.pop("charge_id")]
            if rows:
                write.execute(insert(old), rows)
            if table.name == "charges":
                charges = Base.metadata.tables["charges"]
                lines = read.execute(
                    select(charges)
                    .where(charges.c.bill_id.is_not(None))
                    .order_by(charges.c.bill_id, charges.c.line_no)
                ).all()
                line_rows = []
                for n, c in enumerate(lines, start=101):  # line ids unlike charge ids
                    line_ids[c.id] = n
                    line_rows.append(
                        {
                            "id": n, "bill_id": c.bill_id, "charge_id": c.id,
                            "position": c.line_no, "description": c.description,
                            "period_start": c.period_start, "period_end": c.period_end,
                            "quantity": c.quantity, "unit_price": c.unit_price, "net": c.amount,
                            "tax_category": c.tax_category, "tax_rate": c.tax_rate, "tax": c.tax,
                            "gross": c.amount + c.tax, "vat_category": c.vat_category,
                        }
                    )  # fmt: skip
                if line_rows:
                    write.execute(insert(BILL_LINES_0009), line_rows)
    return len(line_ids)


def test_a_0009_store_reads_the_same_once_its_lines_are_charges(engine, tmp_path):
    _billed(engine)
    expected = _read(engine)
    assert any(", corrects invoice INV-" in line.description for line in expected["lines"])
    assert expected["shares"] and expected["invoices"]
    postgres = engine.dialect.name == "postgresql"
    with scratch_schema() if postgres else nullcontext() as schema:
        url = pg_schema_url(schema) if schema else f"sqlite:///{tmp_path / 'at-0009.db'}"
        old = make_engine(url)
        try:
            upgrade(old, BEFORE)
            assert _copy_as_0009(engine, old) == len(expected["lines"])

            # A line that is not a copy of its charge would be lost: refused, nothing changed.
            with old.begin() as conn:
                conn.execute(text("UPDATE bill_lines SET net = net + 1 WHERE id = 101"))
            with pytest.raises(RuntimeError, match="line 101 / charge"):
                upgrade(old)
            with old.begin() as conn:
                assert (
                    conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == BEFORE
                )
                conn.execute(text("UPDATE bill_lines SET net = net - 1 WHERE id = 101"))

            upgrade(old)
            assert "bill_lines" not in inspect(old).get_table_names()
            assert _read(old) == expected
            with old.begin() as conn:  # the guarantees hold on the migrated rows
                with pytest.raises(Exception, match="line_on_bill"):
                    conn.execute(
                        text("UPDATE charges SET line_no = NULL WHERE bill_id IS NOT NULL")
                    )
        finally:
            old.dispose()


def test_downgrade_is_refused(engine):
    from alembic import command

    from billing.store.migrate import alembic_config

    config = alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        with pytest.raises(NotImplementedError, match="cannot be downgraded"):
            command.downgrade(config, BEFORE)
