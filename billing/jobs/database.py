"""Which database a job's steps use: an Engine, a URL, or a reference resolved where it runs.

A job carries its database as ``Database``: an ``Engine`` for Python callers and tests; a URL
or an ``EngineSource`` (a database block) for the Prefect flows, whose steps may run in another
thread or a Dask worker process. Each step asks ``engine_of`` for the engine: one per URL and
process, so a step run in a worker opens its own pool, and nothing is read from the environment.
"""

from __future__ import annotations

from threading import Lock
from typing import Protocol

from sqlalchemy import Engine

from billing.store.db import make_engine


class EngineSource(Protocol):
    """A database named by reference (a Prefect block, say), resolved where the step runs."""

    def engine(self) -> Engine: ...


Database = Engine | str | EngineSource
"""A step's database: an Engine, its URL, or an ``EngineSource``; a URL or a source is what
crosses to a worker process (Dask), which then opens its own pool."""

_ENGINES: dict[str, Engine] = {}
_LOCK = Lock()


def engine_of(database: Database) -> Engine:
    """The engine of ``database``: itself when it is one, else this process's engine for the URL."""
    if isinstance(database, Engine):
        return database
    if not isinstance(database, str):
        return database.engine()
    with _LOCK:
        engine = _ENGINES.get(database)
        if engine is None:
            engine = _ENGINES[database] = make_engine(database)
        return engine


def dispose_engines() -> None:
    """Close every pool ``engine_of`` opened (tests, or before a fork)."""
    with _LOCK:
        engines = list(_ENGINES.values())
        _ENGINES.clear()
    for engine in engines:
        engine.dispose()
