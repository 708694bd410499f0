"""Tests for billing.store.sqlkit: bulk writes through a temporary table on PostgreSQL, ids taken
ahead and text keys on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from billing.store.db import make_engine, unit_of_work
from billing.store.models import TaxCategory, TaxRate
from billing.store.sqlkit import bulk_insert, bulk_update, key_in, take_ids
from tests.conftest import PgTemplate, migrated_schema, pg_schema_url

CATEGORIES = TaxCategory.__table__
RATE = {"category_code": "s", "country": "FR", "rate": Decimal("0.2")}


@pytest.fixture
def pg_engine(pg_template: PgTemplate) -> Iterator[Engine]:
    """A migrated PostgreSQL store (a copy of the process's template, as ``engine`` is)."""
    with migrated_schema(pg_template) as schema:
        engine = make_engine(pg_schema_url(schema))
        yield engine
        engine.dispose()


def _staging_tables(session: Session) -> int:
    return session.execute(
        text("SELECT count(*) FROM pg_class WHERE relpersistence = 't' AND relkind = 'r'")
    ).scalar_one()


def _locks(session: Session) -> int:
    return session.execute(
        text("SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid()")
    ).scalar_one()


def _rows(*codes: str) -> list[dict[str, str]]:
    return [{"code": code, "name": code.upper()} for code in codes]


def _suffix(session: Session, codes: tuple[str, ...], suffix: str) -> None:
    bulk_update(
        session, CATEGORIES, _rows(*codes), key="code",
        values=lambda src: {"name": src.c.name + suffix},
    )  # fmt: skip


def test_a_plain_insert_is_one_copy_straight_into_the_table(pg_engine):
    with unit_of_work(pg_engine) as s:
        assert bulk_insert(s, CATEGORIES, _rows("a", "b")) == []
        assert _staging_tables(s) == 0
        bulk_insert(s, CATEGORIES, _rows("b", "c"), on_conflict="nothing")  # needs the staging
        assert _staging_tables(s) == 1
        names = dict(s.execute(select(CATEGORIES.c.code, CATEGORIES.c.name)).all())
    assert names == {"a": "A", "b": "B", "c": "C"}


def test_a_transaction_loads_the_same_columns_through_one_temporary_table(pg_engine):
    with unit_of_work(pg_engine) as s:
        bulk_insert(s, CATEGORIES, _rows("a", "b"), on_conflict="nothing")
        _suffix(s, ("a", "b"), "!")
        tables, locks = _staging_tables(s), _locks(s)
        for codes in (("c", "d"), ("e", "f")):  # as the slices of a batch do
            bulk_insert(s, CATEGORIES, _rows(*codes), on_conflict="nothing")
            _suffix(s, codes, "?")
        assert (_staging_tables(s), _locks(s)) == (1, locks)  # no new table, no new lock
        names = dict(s.execute(select(CATEGORIES.c.code, CATEGORIES.c.name)).all())
    assert tables == 1
    assert names == {"a": "A!", "b": "B!", "c": "C?", "d": "D?", "e": "E?", "f": "F?"}
    with unit_of_work(pg_engine) as s:
        assert _staging_tables(s) == 0  # dropped at commit


def test_a_temporary_table_lost_with_a_savepoint_is_made_again(pg_engine):
    with unit_of_work(pg_engine) as s:
        with pytest.raises(RuntimeError), s.begin_nested():
            bulk_insert(s, CATEGORIES, _rows("a"), on_conflict="nothing")
            raise RuntimeError("roll the savepoint back")
        bulk_insert(s, CATEGORIES, _rows("b"), on_conflict="nothing")
        codes = s.execute(select(CATEGORIES.c.code)).scalars().all()
    assert codes == ["b"]


def test_ids_taken_ahead_are_new_ascending_and_free(engine: Engine) -> None:
    rates = TaxRate.__table__
    with unit_of_work(engine) as s:
        bulk_insert(s, CATEGORIES, _rows("s"))
        s.execute(rates.insert(), [{**RATE, "valid_from": date(2000 + i, 1, 1)} for i in range(3)])
        taken = take_ids(s, rates, 4)
        assert take_ids(s, rates, 0) == []
        highest = s.execute(select(func.max(rates.c.id))).scalar_one()
        assert taken == sorted(taken) and len(set(taken)) == 4 and taken[0] > highest
        rows = [{**RATE, "id": i, "valid_from": date(2010 + n, 1, 1)} for n, i in enumerate(taken)]
        bulk_insert(s, rates, rows)
        s.execute(rates.insert(), [{**RATE, "valid_from": date(2020, 1, 1)}])  # the default
        ids = s.execute(select(rates.c.id).order_by(rates.c.id)).scalars().all()
    assert len(ids) == len(set(ids)) == 8
    assert ids[3:7] == taken


def test_keys_match_text_columns(engine: Engine) -> None:
    with unit_of_work(engine) as s:
        bulk_insert(s, CATEGORIES, _rows("a", "b", "c"))
        found = s.scalars(
            select(CATEGORIES.c.code).where(key_in(s, CATEGORIES.c.code, ["c", "a", "x"]))
        ).all()
    assert sorted(found) == ["a", "c"]
