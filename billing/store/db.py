"""Engines and sessions. The caller owns the session life cycle; operations never commit.

The database URL comes from the caller, else ``BILLING_DATABASE_URL``, else a SQLite file under
``var/``. This module is the one place that reads that variable.

``open_database`` is how a command gets a database it can trust: the URL parses, its driver
exists, the server answers, a SQLite file is not created by accident, and ``check_schema`` says
whether the schema is at the latest migration. Each problem is a ``DatabaseUnavailable`` or a
``SchemaNotReady`` whose message is one line naming the URL (never its password).
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from billing.domain.errors import ConfigurationError

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


def make_engine(
    url: str | None = None, *, create: bool = True, read_only: bool = False, **kwargs: Any
) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys, WAL and a busy timeout.

    With ``create`` (the default) a SQLite file's directory is made; the file itself appears on
    the first connection. ``open_database`` passes ``create=False`` for commands that only read.
    A SQLite unit of work takes the write lock when it begins, unless ``read_only``: a report's
    transaction begins deferred and reads its WAL snapshot beside a running bill day.
    """
    url = database_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if create and path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; emit it ourselves so a
        # unit of work is one real transaction (BEGIN IMMEDIATE takes the write lock).
        event.listen(engine, "connect", _disable_pysqlite_begin)
        event.listen(engine, "begin", _begin_deferred if read_only else _begin_immediate)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _disable_pysqlite_begin(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _begin_immediate(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _begin_deferred(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")


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


class DatabaseUnavailable(ConfigurationError):
    """The database URL cannot be used: unparsable, unknown driver, no file, no answer."""


class SchemaNotReady(ConfigurationError):
    """The database answers but has no billing schema, or not at the latest migration."""


_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def shown_url(url: str | URL) -> str:
    """``url`` fit to print: the password replaced by ``***``, even when the URL does not parse."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return _PASSWORD.sub(r"\1***@", url)


def parse_database_url(url: str) -> URL:
    """The parsed URL, once its dialect and driver are known to load."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise DatabaseUnavailable(
            f"{shown_url(url)!r} is not a database URL "
            "(e.g. sqlite:///var/billing.db or postgresql://user@host:5432/db)"
        ) from None
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        raise DatabaseUnavailable(
            f"{shown_url(parsed)}: unknown database driver {parsed.drivername!r} "
            "(use sqlite:///PATH or postgresql://...)"
        ) from None
    if dialect.is_async:
        raise DatabaseUnavailable(
            f"{shown_url(parsed)}: {parsed.drivername!r} is an asyncio driver; "
            "use postgresql:// (psycopg2) or sqlite:///PATH"
        )
    try:
        dialect.import_dbapi()
    except ImportError as error:
        raise DatabaseUnavailable(
            f"{shown_url(parsed)}: the driver for {parsed.drivername!r} is not installed "
            f"({error.name or error})"
        ) from None
    return parsed


def _sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite URL; None for an in-memory database."""
    database = url.database or ""
    if database in ("", ":memory:") or url.query.get("mode") == "memory":
        return None
    return Path(database.removeprefix("file:"))


def open_database(
    url: str | None = None, *, create: bool = False, read_only: bool = False, **kwargs: Any
) -> Engine:
    """An engine on a database that answers; raises ``DatabaseUnavailable`` with one line.

    ``read_only`` SQLite transactions begin deferred, so a report never waits for (or holds)
    the write lock a bill run takes.

    Without ``create`` a SQLite file that does not exist is an error, not a new empty file:
    only the commands that write the schema (``billing db upgrade``, ``import``, ``seed``) pass
    ``create=True``. PostgreSQL connections give up after ``connect_timeout`` (10 s) unless the
    URL sets another.
    """
    parsed = parse_database_url(database_url(url))
    shown = shown_url(parsed)
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_file(parsed)
        if path is not None and not create and not path.is_file():
            raise DatabaseUnavailable(
                f"{shown}: no database file {str(path)!r}: "
                "run `make demo` (demo data) or `billing db upgrade` (empty schema)"
            )
    elif parsed.get_driver_name() == "psycopg2" and "connect_timeout" not in parsed.query:
        kwargs.setdefault("connect_args", {}).setdefault("connect_timeout", 10)
    engine = make_engine(
        parsed.render_as_string(hide_password=False), create=create, read_only=read_only, **kwargs
    )
    try:
        with engine.connect():
            pass
    except DBAPIError as error:
        engine.dispose()
        raise DatabaseUnavailable(f"{shown}: cannot connect: {_first_line(error)}") from error
    return engine


def _first_line(error: DBAPIError) -> str:
    """The driver's own message, first line, without the FATAL prefix and extra spaces."""
    text = str(error.orig).strip().splitlines()[0] if str(error.orig).strip() else str(error)
    return re.sub(r"\s+", " ", text.replace("FATAL:", "")).strip()


VERSIONS = Path(__file__).parent / "migrations" / "versions"
_REVISION_LINE = re.compile(r"^(revision|down_revision)\b[^=\n]*=\s*(.+)$", re.MULTILINE)


def migration_heads() -> set[str]:
    """The revisions no migration builds on: what ``alembic heads`` says, without importing
    Alembic (a report then starts in a fraction of the time)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in VERSIONS.glob("*.py"):
        found = dict(_REVISION_LINE.findall(script.read_text(encoding="utf-8")))
        if "revision" not in found:
            continue
        revisions.add(ast.literal_eval(found["revision"]))
        down = ast.literal_eval(found.get("down_revision", "None"))
        parents.update([down] if isinstance(down, str) else down or ())
    return revisions - parents


def schema_heads(engine: Engine) -> tuple[set[str], set[str]]:
    """The database's current revisions (table ``alembic_version``) and the migrations' heads."""
    with engine.connect() as conn:
        current: set[str] = set()
        if inspect(conn).has_table("alembic_version"):
            current = set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    return current, migration_heads()


def check_schema(engine: Engine) -> None:
    """Raise ``SchemaNotReady`` unless the database is at the latest migration."""
    current, heads = schema_heads(engine)
    if current != heads:
        raise SchemaNotReady(
            f"{shown_url(engine.url)}: no billing schema (or not at the latest revision): "
            "run `billing db upgrade`"
        )


def is_empty(engine: Engine) -> bool:
    """No tables at all: a database that ``billing import`` or ``seed`` may create the schema in."""
    return not inspect(engine).get_table_names()
