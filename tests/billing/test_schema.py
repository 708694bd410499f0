"""The migrations build exactly the models' schema, and amounts round-trip on both databases."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import date
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from billing.domain.errors import MoneyError
from billing.store.db import unit_of_work
from billing.store.models import Account, Base
from billing.store.types import Amount


def test_migrations_match_models(engine):
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_upgrade_twice_changes_nothing(engine):
    from billing.store.migrate import upgrade

    upgrade(engine)
    with engine.connect() as conn:
        series = conn.execute(text("select code from bill_series order by code")).scalars().all()
    assert series == ["CN", "INV"]  # invoices, and credit notes (migration 0008)


def _account(ref: str, balance: Decimal) -> Account:
    return Account(
        ref=ref,
        name="Round Trip",
        country="FR",
        currency="EUR",
        balance=balance,
        created_on=date(2026, 1, 1),
    )


EXACT = [
    Decimal("0"),
    Decimal("0.000001"),
    Decimal("-0.000001"),
    Decimal("0.1") + Decimal("0.2"),
    Decimal("123456789012.123456"),
    Decimal("-999999999999.999999"),
    Decimal("19.99"),
]


def test_amounts_round_trip_exactly(engine):
    with unit_of_work(engine) as s:
        s.add_all(_account(f"A{i}", v) for i, v in enumerate(EXACT))
    with unit_of_work(engine) as s:
        got = s.scalars(select(Account.balance).order_by(Account.id)).all()
    assert got == EXACT
    assert all(isinstance(v, Decimal) for v in got)


def test_sum_in_sql_is_exact(engine):
    values = [Decimal("0.1")] * 10 + [Decimal("0.000003")] * 3
    with unit_of_work(engine) as s:
        s.add_all(_account(f"S{i}", v) for i, v in enumerate(values))
    with engine.connect() as conn:
        raw = conn.execute(text("select sum(balance) from accounts")).scalar_one()
    stored = Amount().process_result_value(raw, engine.dialect)
    assert stored == Decimal("1.000009")


@pytest.mark.parametrize(
    "bad", [0.1, 1.0, True, Decimal("0.0000001"), Decimal("NaN"), Decimal("1E12")]
)
def test_inexact_or_float_amounts_are_refused(engine, bad):
    with pytest.raises(Exception) as err:
        with unit_of_work(engine) as s:
            s.add(_account("BAD", bad))
    assert isinstance(err.value.__cause__ or err.value, MoneyError)
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from accounts")).scalar_one() == 0


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.decimals(
        min_value=Decimal("-999999999999.999999"),
        max_value=Decimal("999999999999.999999"),
        places=6,
        allow_nan=False,
        allow_infinity=False,
    )
)
def test_any_six_decimal_amount_round_trips(engine, value):
    with unit_of_work(engine) as s:
        s.query(Account).delete()
        s.add(_account("H", value))
    with unit_of_work(engine) as s:
        assert s.scalars(select(Account.balance)).one() == value


# --- The template databases (tests/conftest.py) are a fresh migration, nothing else ---------


def _schema_of(engine) -> dict[str, list[tuple]]:
    """Everything a migration decides, with the schema's own name left out: tables, columns,
    defaults, constraints, indexes, sequences, and every row (alembic_version, seeded rows)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            found = {
                "objects": [
                    tuple(row)
                    for row in conn.exec_driver_sql(
                        "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
                    )
                ]
            }
            tables = [name for kind, name, _, _ in found["objects"] if kind == "table"]
        else:
            schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()

            def rows(sql: str) -> list[tuple]:
                got = conn.execute(text(sql), {"s": schema})
                return sorted(tuple(str(v).replace(schema, "<schema>") for v in r) for r in got)

            found = {
                "columns": rows(
                    "SELECT table_name, column_name, ordinal_position, data_type,"
                    " character_maximum_length, numeric_precision, numeric_scale, is_nullable,"
                    " column_default, is_identity FROM information_schema.columns"
                    " WHERE table_schema = :s"
                ),
                "constraints": rows(
                    "SELECT c.conrelid::regclass::text, c.conname, c.contype,"
                    " pg_get_constraintdef(c.oid) FROM pg_constraint c"
                    " JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = :s"
                ),
                "indexes": rows(
                    "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = :s"
                ),
                "sequences": rows(
                    "SELECT sequencename, data_type, start_value, increment_by, last_value"
                    " FROM pg_sequences WHERE schemaname = :s"
                ),
            }
            tables = [
                name
                for (name,) in conn.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": schema}
                )
            ]
        for table in sorted(tables):
            found[f"rows:{table}"] = sorted(
                tuple(map(str, row)) for row in conn.exec_driver_sql(f"SELECT * FROM {table}")
            )
    return found


def test_the_template_copy_equals_a_fresh_migration(engine, tmp_path):
    """``engine`` is a copy of the session's template; ``upgrade`` into an empty store must
    give the very same schema and rows, on each database."""
    from billing.store.db import make_engine
    from billing.store.migrate import upgrade
    from tests.conftest import pg_schema_url, scratch_schema

    copied = _schema_of(engine)
    assert "rows:alembic_version" in copied and copied["rows:alembic_version"]
    assert "rows:bills" in copied and "rows:bill_series" in copied
    with scratch_schema() if engine.dialect.name == "postgresql" else nullcontext() as schema:
        url = pg_schema_url(schema) if schema else f"sqlite:///{tmp_path / 'fresh.db'}"
        fresh_engine = make_engine(url)
        try:
            upgrade(fresh_engine)
            fresh = _schema_of(fresh_engine)
        finally:
            fresh_engine.dispose()
    assert copied == fresh


def test_a_reset_copy_equals_a_fresh_migration(pg_template, tmp_path):
    """A copy a test wrote to, reset for the next test (tests/conftest.py ``migrated_schema``),
    gives the very same schema and rows as ``upgrade`` into an empty store: no row left, every
    sequence restarted, the seeded rows back."""
    from billing.jobs.bill_day import run_bill_day
    from billing.store.db import make_engine
    from billing.store.migrate import upgrade
    from tests.billing.test_billday import seed_population
    from tests.conftest import migrated_schema, pg_schema_url, scratch_schema

    with migrated_schema(pg_template) as schema:
        engine = make_engine(pg_schema_url(schema))
        try:
            seed_population(engine)  # rows in most tables, each referencing others
            run_bill_day(engine, date(2027, 2, 1), "run")
            with engine.begin() as conn:
                conn.execute(text("SELECT setval('journal_entries_id_seq', 41)"))
            used = _schema_of(engine)
            assert used["rows:bills"] and used["rows:charges"]
            assert pg_template.reset(schema)
            reset = _schema_of(engine)
        finally:
            engine.dispose()
    assert reset["rows:accounts"] == reset["rows:bills"] == []
    with scratch_schema() as fresh_schema:
        fresh_engine = make_engine(pg_schema_url(fresh_schema))
        try:
            upgrade(fresh_engine)
            fresh = _schema_of(fresh_engine)
        finally:
            fresh_engine.dispose()
    assert reset == fresh


def test_a_copy_whose_definition_a_test_changed_is_not_reused(pg_template):
    """A test that alters its schema (a dropped constraint, an added index) leaves a copy
    ``reset`` refuses: it is dropped, never handed to the next test."""
    from billing.store.db import make_engine
    from tests.conftest import pg_schema_url, scratch_schema

    changes = [
        "ALTER TABLE bills DROP CONSTRAINT ck_bills_due_after_bill",
        "CREATE INDEX ix_extra ON accounts (name)",
        "ALTER TABLE accounts ALTER COLUMN name DROP NOT NULL",
    ]
    for change in changes:
        with scratch_schema() as schema:
            pg_template.clone_into(schema)
            assert pg_template.reset(schema)
            engine = make_engine(pg_schema_url(schema))
            try:
                with engine.begin() as conn:
                    conn.execute(text(change))
            finally:
                engine.dispose()
            assert not pg_template.reset(schema), change
