"""Engines and sessions. The caller owns the session life cycle; operations never commit.

The database URL comes from the caller, else ``BILLING_DATABASE_URL``, else a SQLite file under
``var/``. This module is the one place that reads that variable.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")

DEFAULT_SQLITE = "sqlite:///var/billing.db"


def database_url(url: str | None = None) -> str:
    """The URL to use: the one given, else ``BILLING_DATABASE_URL``, else ``var/billing.db``."""
    return url or os.environ.get("BILLING_DATABASE_URL") or DEFAULT_SQLITE


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys, WAL and a busy timeout."""
    url = database_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; emit it ourselves so a
        # unit of work is one real transaction (BEGIN IMMEDIATE takes the write lock).
        event.listen(engine, "connect", _disable_pysqlite_begin)
        event.listen(engine, "begin", _begin_immediate)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _disable_pysqlite_begin(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _begin_immediate(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def unit_of_work(engine: Engine, *, isolation: str | None = None) -> Iterator[Session]:
    """One transaction: commits when the block ends, rolls back on any error.

    ``isolation`` applies on PostgreSQL (SQLite transactions are serializable already).
    """
    if isolation and engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level=isolation)
    with session_factory(engine)() as session, session.begin():
        yield session


def retry_transient(work: Callable[[], T], *, attempts: int = 6, first_delay: float = 0.2) -> T:
    """Run ``work``; on a transient database error (lost connection, serialization failure,
    busy SQLite) run it again with exponential backoff. Flows use task retries instead."""
    for attempt in range(attempts):
        try:
            return work()
        except OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(first_delay * 2**attempt)
    raise AssertionError("unreachable")
