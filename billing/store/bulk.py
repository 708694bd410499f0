"""Bulk loading of generated rows: COPY on PostgreSQL, executemany of core inserts on SQLite.

Rows arrive as columns (lists or numpy arrays) with their primary keys already assigned, so a
load never asks the database for ids. Every amount goes through ``billing.store.types.to_storage``:
the COPY path converts them itself, the SQLite path lets the ``Amount`` column type do it.
On PostgreSQL, COPY runs in a background thread while the caller builds the next batch, and
a load into empty tables checks its foreign keys once at the end (``checks_after_load``).
Nothing here commits: the caller's transaction covers the whole load.
"""

from __future__ import annotations

import csv
import enum
import io
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, Literal

import numpy as np
from sqlalchemy import Connection, Enum, Table, func, literal, select, text

from billing.store.types import Amount, to_storage

Column = Sequence[Any] | np.ndarray
NULL = r"\N"
COPY_READ_SIZE = 1 << 20


def next_id(conn: Connection, table: Table) -> int:
    """The first free primary key of ``table``: ``max(id) + 1``, or 1 when it is empty."""
    return int(conn.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()) + 1


def lock_for_load(conn: Connection, tables: Sequence[Table]) -> None:
    """Keep other writers out of ``tables`` until commit, so the ids taken here stay free.

    PostgreSQL only; SQLite's ``BEGIN IMMEDIATE`` already holds the one write lock.
    """
    if conn.dialect.name != "postgresql":
        return
    names = ", ".join(table.name for table in tables)
    conn.execute(text(f"LOCK TABLE {names} IN EXCLUSIVE MODE"))


def sync_sequence(conn: Connection, table: Table) -> None:
    """Move a PostgreSQL serial past the ids loaded by hand, so later inserts do not collide."""
    if conn.dialect.name != "postgresql":
        return
    conn.execute(
        text(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), max(id)) "
            f"FROM {table.name} HAVING max(id) IS NOT NULL"
        )
    )


@contextmanager
def checks_after_load(conn: Connection, tables: Sequence[Table]) -> Iterator[bool]:
    """Check foreign keys and build plain indexes once after a load into empty tables.

    On PostgreSQL, when every table is empty, their foreign keys and non-unique indexes are
    dropped for the load and re-created afterwards from the catalogue's own definitions, as
    pg_restore does: one bulk check instead of one per row. It all happens in the caller's
    transaction, so an error leaves the schema as it was. Yields whether it did so.
    """
    if conn.dialect.name != "postgresql" or any(
        conn.execute(select(literal(1)).select_from(table).limit(1)).first() for table in tables
    ):
        yield False
        return
    oids = "ARRAY[" + ", ".join(f"'{table.name}'::regclass" for table in tables) + "]"
    foreign_keys = conn.execute(
        text(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            f"FROM pg_constraint WHERE contype = 'f' AND conrelid = ANY({oids}) ORDER BY oid"
        )
    ).all()
    indexes = conn.execute(
        text(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
            f"WHERE indrelid = ANY({oids}) AND NOT indisunique ORDER BY indexrelid"
        )
    ).all()
    for table, name, _ in foreign_keys:
        conn.exec_driver_sql(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        conn.exec_driver_sql(f"DROP INDEX {name}")
    yield True
    conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
    for _, definition in indexes:
        conn.exec_driver_sql(definition)
    for table, name, definition in foreign_keys:
        conn.exec_driver_sql(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')


class BulkLoader:
    """Loads column batches in the order given, on one connection, in its transaction.

    On PostgreSQL the caller's thread turns a batch into CSV and one background thread COPYs
    it, so that generating the next batch overlaps the server's work (the connection is only
    ever used by one thread at a time: ``wait`` before touching it again). SQLite inserts at
    once. Use it as a context manager: leaving waits for every COPY, even on error.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._copying = conn.dialect.name == "postgresql"
        self._worker = ThreadPoolExecutor(1, "bulk-copy") if self._copying else None
        self._pending: list[Future[None]] = []

    def __enter__(self) -> BulkLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self.wait()
        finally:
            if self._worker is not None:
                self._worker.shutdown(wait=True)

    def load(self, table: Table, columns: Mapping[str, Column]) -> int:
        """Queue the rows given column by column (all the same length); return the row count."""
        lengths = {len(values) for values in columns.values()}
        if len(lengths) != 1:
            raise ValueError(f"{table.name}: columns differ in length {sorted(lengths)}")
        count = lengths.pop()
        if count == 0:
            return 0
        if self._worker is None:
            _executemany(self._conn, table, columns)
            return count
        sql = (
            f"COPY {table.name} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, NULL '{NULL}')"
        )
        buffer = csv_buffer(table, columns, self._conn.dialect.name)
        self._pending.append(self._worker.submit(self._copy, sql, buffer))
        return count

    def wait(self) -> None:
        """Block until every queued batch is in the database; re-raise a COPY's error."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def _copy(self, sql: str, buffer: io.StringIO) -> None:
        """COPY one CSV buffer through the connection's own psycopg2 cursor."""
        dbapi = self._conn.connection.dbapi_connection
        assert dbapi is not None
        cursor = dbapi.cursor()
        try:
            cursor.copy_expert(sql, buffer, size=COPY_READ_SIZE)
        finally:
            cursor.close()


def csv_buffer(table: Table, columns: Mapping[str, Column], dialect: str) -> io.StringIO:
    """The rows as CSV text, ready for COPY."""
    texts = [_csv_column(table, name, values, dialect) for name, values in columns.items()]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(zip(*texts, strict=True))
    buffer.seek(0)
    return buffer


def _csv_column(table: Table, name: str, values: Column, dialect: str) -> list[Any]:
    """One column as CSV-ready values: storage amounts, ISO dates, ``\\N`` for NULL."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "M":
        unit: Literal["D", "s"] = "D" if values.dtype == np.dtype("datetime64[D]") else "s"
        return np.datetime_as_string(values, unit=unit).tolist()
    if isinstance(values, np.ndarray) and values.dtype.kind in "iub":
        return values.tolist()
    column_type = table.c[name].type
    if isinstance(column_type, Amount):
        return _amounts(values, dialect)
    if isinstance(column_type, Enum):  # members as their values
        return [NULL if v is None else v.value if isinstance(v, enum.Enum) else v for v in values]
    return [NULL if value is None else value for value in values]


_EXACT_TYPES = frozenset({Decimal, int, type(None)})


def _amounts(values: Column, dialect: str) -> list[Any]:
    """Amounts in their stored form; each distinct value is converted (and checked) once.

    Only for Decimals and ints: a float equal to a Decimal already seen must still be refused,
    so a column holding any other type converts (and checks) every value.
    """
    if not {type(value) for value in values} <= _EXACT_TYPES:
        return [NULL if value is None else to_storage(value, dialect) for value in values]
    stored: dict[Any, Any] = {None: NULL}
    for value in set(values) - {None}:
        stored[value] = to_storage(value, dialect)
    return list(map(stored.__getitem__, values))


def _executemany(conn: Connection, table: Table, columns: Mapping[str, Column]) -> None:
    """Insert with one executemany of a core insert; column types convert the values."""
    names = list(columns)
    lists = [_python_column(values) for values in columns.values()]
    conn.execute(
        table.insert(), [dict(zip(names, row, strict=True)) for row in zip(*lists, strict=True)]
    )


def _python_column(values: Column) -> list[Any]:
    """A column as plain Python values (numpy ``datetime64[D]``/``[s]`` become date/datetime)."""
    return values.tolist() if isinstance(values, np.ndarray) else list(values)
