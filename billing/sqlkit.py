"""The few SQL idioms that differ between SQLite and PostgreSQL, in one place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ARRAY, Integer, Table, any_, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement


def dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def id_in(session: Session, column: Any, ids: Sequence[int]) -> ColumnElement[bool]:
    """``column IN ids``: one array parameter on PostgreSQL, an expanded list on SQLite."""
    if dialect(session) == "postgresql":
        return column == any_(bindparam("ids", list(ids), type_=ARRAY(Integer), unique=True))  # type: ignore[no-any-return]
    return column.in_(list(ids))  # type: ignore[no-any-return]


def insert_ignoring_duplicates(
    session: Session, table: Table, rows: Sequence[dict[str, Any]]
) -> None:
    """Insert rows, silently skipping those whose unique key already exists (idempotent writes)."""
    if not rows:
        return
    make = postgresql.insert if dialect(session) == "postgresql" else sqlite.insert
    session.execute(make(table).on_conflict_do_nothing(), list(rows))


def lock_for_update(session: Session, stmt: Any) -> Any:
    """``SELECT ... FOR UPDATE`` where the database has row locks (SQLite locks the file)."""
    return stmt.with_for_update() if dialect(session) == "postgresql" else stmt
