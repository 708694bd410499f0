"""The few SQL idioms that differ between SQLite and PostgreSQL, in one place."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from itertools import count
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    ARRAY,
    Engine,
    Integer,
    String,
    Table,
    UniqueConstraint,
    any_,
    bindparam,
    func,
    select,
    text,
    update,
)
from sqlalchemy import column as sql_column
from sqlalchemy import table as sql_table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from billing.store.bulk import NULL, csv_buffer, next_id


def dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def id_in(session: Session, column: Any, ids: Sequence[int]) -> ColumnElement[bool]:
    """``column IN ids``: one array parameter on PostgreSQL, an expanded list on SQLite."""
    if dialect(session) == "postgresql":
        return column == any_(bindparam("ids", list(ids), type_=ARRAY(Integer), unique=True))  # type: ignore[no-any-return]
    return column.in_(list(ids))  # type: ignore[no-any-return]


def key_in(session: Session, column: Any, keys: Sequence[str]) -> ColumnElement[bool]:
    """``column IN keys`` for text keys: one array parameter on PostgreSQL, a list on SQLite."""
    if dialect(session) == "postgresql":
        return column == any_(bindparam("keys", list(keys), type_=ARRAY(String), unique=True))  # type: ignore[no-any-return]
    return column.in_(list(keys))  # type: ignore[no-any-return]


def take_ids(session: Session, table: Any, count: int) -> list[int]:
    """``count`` new primary keys of ``table``, ascending, for rows inserted later in the
    transaction: from the serial's sequence on PostgreSQL; above ``max(id)`` on SQLite, whose
    ``BEGIN IMMEDIATE`` keeps every other writer out until commit."""
    if count <= 0:
        return []
    if dialect(session) == "postgresql":
        taken = session.execute(
            text(
                "SELECT nextval(seq) FROM (SELECT pg_get_serial_sequence(:table, 'id') AS seq) s,"
                " generate_series(1, :count)"
            ),
            {"table": table.name, "count": count},
        ).scalars()
        return sorted(taken)
    first = next_id(session.connection(), table)
    return list(range(first, first + count))


def insert_ignoring_duplicates(
    session: Session, table: Any, rows: Sequence[dict[str, Any]]
) -> None:
    """Insert rows, silently skipping those whose unique key already exists (idempotent writes)."""
    bulk_insert(session, table, rows, on_conflict="nothing")


def lock_for_update(session: Session, stmt: Any) -> Any:
    """``SELECT ... FOR UPDATE`` where the database has row locks (SQLite locks the file)."""
    return stmt.with_for_update() if dialect(session) == "postgresql" else stmt


_temp_tables = count()
COPY_ROWS = 10_000
"""Rows per COPY into a temporary table: bounds the CSV text held at once."""


def bulk_insert(
    session: Session,
    table: Any,
    rows: Sequence[dict[str, Any]],
    *,
    on_conflict: str | None = None,
    update: Sequence[str] = (),
    update_where: Any = None,
    returning: Sequence[str] = (),
) -> list[Any]:
    """Insert many rows into ``table`` (a ``Model.__table__``) fast.

    ``on_conflict`` is None, "nothing" or "update" (the columns in ``update``).

    PostgreSQL: COPY into a temporary table, then one INSERT ... SELECT, so a batch costs two
    round trips whatever its size; a plain insert (no conflict clause, nothing returned) is one
    COPY straight into ``table``. SQLite: one executemany of the same core insert.
    """
    if not rows:
        return []
    names = list(rows[0])
    is_pg = dialect(session) == "postgresql"
    if is_pg and on_conflict is None and not returning:
        _copy(session, table.name, table, names, rows)
        return []
    make = postgresql.insert if is_pg else sqlite.insert
    stmt: Any
    if is_pg:
        source = _copy_to_temp(session, table, names, rows)
        stmt = make(table).from_select(names, select(*(source.c[n] for n in names)))
    else:
        stmt = make(table)
    if on_conflict == "nothing":
        stmt = stmt.on_conflict_do_nothing()
    elif on_conflict == "update":
        stmt = stmt.on_conflict_do_update(
            index_elements=_unique_key(table),
            set_={n: stmt.excluded[n] for n in update},
            where=update_where,
        )
    if returning:
        stmt = stmt.returning(*(table.c[n] for n in returning))
    result = session.execute(stmt) if is_pg else session.execute(stmt, list(rows))
    return list(result.all()) if returning else []


def bulk_update(
    session: Session,
    table: Any,
    rows: Sequence[dict[str, Any]],
    *,
    values: Callable[[Any], dict[str, Any]],
    key: str = "id",
    where: Any = None,
    returning: Sequence[str] = (),
) -> list[Any]:
    """Update many rows of ``table``, each matched on ``key`` with its own values.

    ``rows`` name columns of ``table``; ``values(source)`` builds the SET clause from
    ``source.c[name]`` (a row's value). PostgreSQL, several rows: COPY into a temporary table,
    then ONE ``UPDATE ... FROM``. One row, or SQLite (in process, no round trips): one UPDATE
    per row. Returns the ``returning`` columns of the rows updated.

    On PostgreSQL the target rows are also matched with ``key = ANY(ARRAY(SELECT key FROM
    source))``: an index scan on ``key`` whatever the statistics. The temporary table has none,
    and the target's may be stale (rows written since the last ANALYZE): joined on estimates,
    a chunk's update became a sequential scan of the whole table, once per chunk.
    """
    if not rows:
        return []
    names = list(rows[0])
    if dialect(session) == "postgresql" and len(rows) > 1:
        source = _copy_to_temp(session, table, names, rows)
        keys = func.array(select(source.c[key]).scalar_subquery())
        stmt = (
            update(table)
            .where(table.c[key] == source.c[key], table.c[key] == any_(keys))
            .values(**values(source))
        )
        if where is not None:
            stmt = stmt.where(where)
        if returning:
            stmt = stmt.returning(*(table.c[n] for n in returning))
        result = session.execute(stmt.execution_options(synchronize_session=False))
        return list(result.all()) if returning else []
    params = SimpleNamespace(c=_Columns({n: bindparam(f"src_{n}", table.c[n].type) for n in names}))
    stmt = update(table).where(table.c[key] == params.c[key]).values(**values(params))
    if where is not None:
        stmt = stmt.where(where)
    if returning:
        stmt = stmt.returning(*(table.c[n] for n in returning))
    stmt = stmt.execution_options(synchronize_session=False)
    found: list[Any] = []
    for row in rows:
        result = session.execute(stmt, {f"src_{n}": row[n] for n in names})
        if returning:
            found.extend(result.all())
    return found


class _Columns(dict[str, Any]):
    """Bound parameters named like columns: ``c["name"]`` or ``c.name``, as a table's ``.c``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def refresh_statistics(engine: Engine, tables: Sequence[str]) -> None:
    """ANALYZE ``tables`` (those that exist) on PostgreSQL, in one short transaction.

    A bill run writes millions of rows before autovacuum looks at them: planned on statistics
    of the empty tables, the next steps' joins turn into a sequential scan per chunk. SQLite
    plans without such statistics: nothing to do there.
    """
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as conn:
        existing = set(
            conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            ).scalars()
        )
        for table in sorted(set(tables) & existing):
            conn.execute(text(f"ANALYZE {table}"))


def rowcount(result: Any) -> int:
    """Rows matched by an UPDATE or DELETE (``CursorResult.rowcount``)."""
    return int(result.rowcount)


def _unique_key(table: Table) -> list[str]:
    """The one single-column unique key of ``table`` (charge_key, bill_key, ...)."""
    keys = [
        c.columns.keys()[0]
        for c in table.constraints
        if isinstance(c, UniqueConstraint) and len(c.columns) == 1
    ]
    if len(keys) != 1:
        raise ValueError(f"{table.name}: expected one single-column unique key, found {keys}")
    return keys


def _copy_to_temp(
    session: Session, table: Table, names: list[str], rows: Sequence[dict[str, Any]]
) -> Any:
    """COPY ``rows`` into an empty temporary table shaped like ``names`` of ``table``."""
    name = _staging_table(session, table, names)
    _copy(session, name, table, names, rows)
    return sql_table(name, *(sql_column(n) for n in names))


def _copy(
    session: Session, target: str, table: Table, names: list[str], rows: Sequence[dict[str, Any]]
) -> None:
    """COPY the ``names`` columns of ``rows`` (columns of ``table``) into the table ``target``."""
    copy = f"COPY {target} ({', '.join(names)}) FROM STDIN WITH (FORMAT csv, NULL '{NULL}')"
    connection = session.connection()
    driver_error = connection.dialect.loaded_dbapi.Error
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        for start in range(0, len(rows), COPY_ROWS):  # the CSV text of a part at a time
            part = rows[start : start + COPY_ROWS]
            columns = {n: [row[n] for row in part] for n in names}
            cursor.copy_expert(copy, csv_buffer(table, columns, "postgresql"))
    except driver_error as error:
        # The raw cursor bypasses SQLAlchemy: wrap its error as SQLAlchemy would (a lost
        # connection becomes an OperationalError), so callers and retries see one kind.
        raise DBAPIError.instance(
            copy, None, error, driver_error, dialect=connection.dialect
        ) from error
    finally:
        with contextlib.suppress(driver_error):
            cursor.close()


_staging_names: dict[tuple[str, tuple[str, ...]], str] = {}


def _staging_table(session: Session, table: Table, names: list[str]) -> str:
    """An empty temporary table for ``names`` of ``table``, dropped at the end of the transaction.

    A transaction that loads the same columns again (a batch bills its units in slices) empties
    and reuses its table instead of creating one more: each new table holds its locks until
    commit, and PostgreSQL's lock table is shared by every session.
    """
    key = (table.name, tuple(names))
    name = _staging_names.get(key) or _staging_names.setdefault(
        key, f"tmp_{table.name}_{next(_temp_tables)}"
    )
    empty_copy = f"SELECT {', '.join(names)} FROM {table.name} WITH NO DATA"
    session.execute(
        text(
            f"CREATE TEMP TABLE IF NOT EXISTS {name} ON COMMIT DROP AS {empty_copy}; "
            f"TRUNCATE {name}"
        )
    )
    return name
