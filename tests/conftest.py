"""Shared fixtures: every database test runs on SQLite and on PostgreSQL, each in its own store.

PostgreSQL comes from ``BILLING_TEST_POSTGRES_URL`` (default: the local trust-auth server).
Each test gets a fresh schema there, and a fresh file on SQLite. In CI (``CI=true``) an
unreachable PostgreSQL fails the run instead of skipping.

The ``engine`` fixture does not migrate each test's store: every pytest process (each xdist
worker is one) migrates one template per database once, and each test gets a copy of it
(docs/testing.md). SQLite: the migrated file is copied. PostgreSQL: the statements the
migration sent to the server are recorded once, rendered with their parameters, and replayed
into the test's fresh schema in one round trip. tests/billing/test_schema.py checks that a
copy equals a fresh ``upgrade`` on both databases.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import OperationalError

from billing.store.db import make_engine
from billing.store.migrate import upgrade

# A developer's `make server` records its stack under var/prefect, and `billing run` reports
# to a running stack (flows/stack.py). Tests only talk to servers they start themselves: the
# session gets a PREFECT_HOME of its own (tests/operations pass their stacks' homes explicitly).
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="openbill-tests-prefect-")

# An xdist worker starts with COLUMNS=80 in its environment; billing.cli.common's console
# would take it and wrap the CLI's tables at 80. Without it, a worker is what a serial run
# without a terminal is (tests/billing/cli/test_show.py reads whole rows).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)

PG_URL = os.environ.get(
    "BILLING_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
if PG_URL.startswith("postgresql://"):
    PG_URL = "postgresql+psycopg2://" + PG_URL.removeprefix("postgresql://")

_pg_checked: dict[str, bool] = {}


def _postgres_available() -> bool:
    if "ok" not in _pg_checked:
        try:
            probe = make_engine(PG_URL)
            with probe.connect() as conn:
                conn.execute(text("select 1"))
            probe.dispose()
            _pg_checked["ok"] = True
        except OperationalError:
            _pg_checked["ok"] = False
    return _pg_checked["ok"]


def require_postgres() -> None:
    """Skip locally, fail in CI, when PostgreSQL does not answer."""
    if _postgres_available():
        return
    message = f"PostgreSQL does not answer at {PG_URL}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def pg_schema_url(schema: str) -> str:
    """A URL whose connections use ``schema`` as search path."""
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}"


# A test's commits need not wait for PostgreSQL's WAL flush: nothing survives a server crash
# in a test anyway, and every other session sees a commit at once either way (tests only).
NO_WAL_FLUSH = "SET LOCAL synchronous_commit TO off"


def _no_wal_flush(dbapi_connection: Any, _record: Any) -> None:
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")
    dbapi_connection.commit()


_admin_engines: list[Engine] = []


def _admin() -> Engine:
    """One engine per process for creating, cloning and dropping schemas (its pool is kept:
    a new connection costs more than the statements it sends)."""
    if not _admin_engines:
        _admin_engines.append(make_engine(PG_URL))
    return _admin_engines[0]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    while _admin_engines:
        _admin_engines.pop().dispose()


@contextmanager
def scratch_schema() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema's name, dropped afterwards."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with _admin().begin() as conn:
        conn.execute(text(NO_WAL_FLUSH))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield schema
    finally:
        with _admin().begin() as conn:
            conn.execute(text(NO_WAL_FLUSH))
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema, dropped after the test."""
    with scratch_schema() as schema:
        yield schema


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """An empty database URL, once for SQLite and once for PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'billing.db'}"
    schema = request.getfixturevalue("pg_schema")
    return pg_schema_url(schema)


# --- Template databases: migrate once per process, copy per test ---------------------------


def _worker() -> str:
    """This pytest process's name: ``gw0``, ``gw1``... under xdist, else ``main``."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to the latest revision, once per process (never written again)."""
    path = tmp_path_factory.mktemp(f"template-{_worker()}") / "billing.db"
    eng = make_engine(f"sqlite:///{path}")
    upgrade(eng)
    eng.dispose()
    with closing(sqlite3.connect(path)) as conn:  # the WAL into the file: one file is the store
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def copy_sqlite_template(template: Path, url: str) -> None:
    """Make the file of SQLite ``url`` a copy of the migrated template."""
    target = Path(url.split("///", 1)[-1])
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, target)


@dataclass(frozen=True)
class PgTemplate:
    """The migrated template schema and the script that rebuilds it in another schema."""

    schema: str
    script: str

    def clone_into(self, schema: str) -> None:
        """Replay the migration's statements into the existing, empty ``schema``."""
        raw = _admin().raw_connection()
        try:
            with raw.cursor() as cursor:
                cursor.execute(f"{NO_WAL_FLUSH}; SET LOCAL search_path TO {schema};\n{self.script}")
            raw.commit()
        finally:
            raw.close()  # back to the pool


def _record_statements(eng: Engine) -> list[str]:
    """Every statement ``eng`` sends from now on, rendered with its parameters (psycopg2)."""
    sent: list[str] = []

    @event.listens_for(eng, "before_cursor_execute")
    def _record(conn: Any, cursor: Any, statement: str, params: Any, ctx: Any, many: bool) -> None:
        for one in params if many else [params]:
            rendered = cursor.mogrify(statement, one) if one else statement.encode()
            sent.append(rendered.decode() if isinstance(rendered, bytes) else rendered)

    return sent


def migrated_pg_template(schema: str) -> PgTemplate:
    """Migrate the empty ``schema`` with ``upgrade`` and keep what it sent as a script."""
    eng = make_engine(pg_schema_url(schema))
    try:
        sent = _record_statements(eng)
        upgrade(eng)
    finally:
        eng.dispose()
    for statement in sent:  # the replay must land in whichever schema it is given
        assert schema not in statement, f"the migration names its schema: {statement}"
    return PgTemplate(schema, ";\n".join(s.rstrip().rstrip(";") for s in sent) + ";")


@pytest.fixture(scope="session")
def pg_template() -> Iterator[PgTemplate]:
    """A PostgreSQL schema migrated once per process (its name holds the xdist worker's)."""
    require_postgres()
    schema = f"tpl_{_worker()}_{uuid.uuid4().hex[:8]}"
    with _admin().begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield migrated_pg_template(schema)
    finally:
        with _admin().begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


def migrated_copy(request: pytest.FixtureRequest, url: str) -> None:
    """Make the empty store at ``url`` (from ``db_url``) a copy of its backend's template."""
    if url.startswith("sqlite"):
        copy_sqlite_template(request.getfixturevalue("sqlite_template"), url)
    else:
        schema = request.getfixturevalue("pg_schema")  # the one in ``url``
        assert url == pg_schema_url(schema)
        request.getfixturevalue("pg_template").clone_into(schema)


@pytest.fixture
def engine(request: pytest.FixtureRequest, db_url: str) -> Iterator[Engine]:
    """A migrated database on each backend (a copy of the session's template)."""
    migrated_copy(request, db_url)
    eng = make_engine(db_url)
    if eng.dialect.name == "postgresql":
        event.listen(eng, "connect", _no_wal_flush)
    yield eng
    eng.dispose()


# --- xdist: tests that share one process-wide resource run on one worker -------------------

# Session fixtures start once per process. tests/operations starts a whole `make server`
# stack, tests/reliability the reference day and tests/flows a Prefect server with Great
# Expectations loaded: under `--dist loadgroup` (make test) each folder is one group, run on
# one worker, so each starts once. Two workers each starting a Prefect server cost more CPU
# than the flow tests gain from running side by side (docs/testing.md).
XDIST_GROUPS = {
    "operations": "operations-stack",
    "reliability": "reliability-reference-day",
    "flows": "flows-prefect-server",
}


# The flows are thin adapters with no SQL of their own (import-linter keeps SQL below jobs/):
# the fast suite runs them on the embedded default, SQLite. Their PostgreSQL runs are marked
# slow (`make test-slow`, which CI runs as well); the jobs, ops and store beneath run on both
# backends in the fast suite.
FAST_SUITE_BACKEND = {"flows": "sqlite"}


def _backend(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("db_url") if callspec is not None else None


@pytest.hookimpl(tryfirst=True)  # before xdist's worker turns xdist_group marks into node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent
    for item in items:
        folder = item.path.relative_to(tests).parts[0]
        fast_backend = FAST_SUITE_BACKEND.get(folder)
        if fast_backend is not None and _backend(item) not in (None, fast_backend):
            item.add_marker(pytest.mark.slow)
        relative = item.path.relative_to(tests)
        group = XDIST_GROUPS.get(relative.as_posix())
        if group is None and len(relative.parts) > 1:
            group = XDIST_GROUPS.get(relative.parts[0])
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
