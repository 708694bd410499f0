"""Which database a job's steps use: an Engine, or a URL turned into one engine per process.

A job carries its database as ``Database`` (an ``Engine`` for Python callers and tests, a URL
for the Prefect flows, whose steps may run in another thread or a Dask worker process). Each
step asks ``engine_of`` for the engine: one per URL and process, so a step run in a worker
opens its own pool, and nothing is read from the environment.
"""

from __future__ import annotations

from threading import Lock

from sqlalchemy import Engine

from billing.store.db import make_engine

Database = Engine | str

_ENGINES: dict[str, Engine] = {}
_LOCK = Lock()


def engine_of(database: Database) -> Engine:
    """The engine of ``database``: itself when it is one, else this process's engine for the URL."""
    if isinstance(database, Engine):
        return database
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
