"""Shared fixtures: every database test runs on SQLite and on PostgreSQL, each in its own store.

PostgreSQL comes from ``BILLING_TEST_POSTGRES_URL`` (default: the local trust-auth server).
Each test gets a fresh schema there, and a fresh file on SQLite. In CI (``CI=true``) an
unreachable PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from billing.store.db import make_engine
from billing.store.migrate import upgrade

# A developer's `make server` records its stack under var/prefect, and `billing run` reports
# to a running stack (flows/stack.py). Tests only talk to servers they start themselves: the
# session gets a PREFECT_HOME of its own (tests/operations pass their stacks' homes explicitly).
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="openbill-tests-prefect-")

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


@contextmanager
def scratch_schema() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema's name, dropped afterwards."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield schema
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


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


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated database on each backend."""
    eng = make_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()
