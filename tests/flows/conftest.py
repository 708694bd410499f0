"""Flow tests run the real flows against a real, temporary Prefect server (prefect_test_harness)."""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
from sqlalchemy.engine import make_url


@contextmanager
def prefect_test_server(database_url: str) -> Iterator[None]:
    """``prefect_test_harness`` with the server's database at ``database_url``.

    The harness hard-codes a temporary SQLite file. Under two xdist workers, the flows' side
    by side tasks, logs and artifacts made that file lock; the server answers a locked write
    with 503 and Prefect's client backs off 2, 4, 8... seconds: one test took 73 s instead of
    13 s. The same server on a PostgreSQL database of this worker's own does not lock. The
    body is the harness's (prefect 3.8.8 testing/utilities.py) with that one setting changed.
    """
    import prefect.context
    import prefect.settings
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.server.database.dependencies import temporary_database_interface
    from prefect.testing.utilities import _find_available_port
    from prefect.utilities.asyncutils import run_coro_as_sync

    settings = prefect.settings
    with ExitStack() as stack:
        stack.enter_context(temporary_database_interface())
        stack.enter_context(
            settings.temporary_settings(
                updates={settings.PREFECT_SERVER_DATABASE_CONNECTION_URL: database_url}
            )
        )
        server = SubprocessASGIServer(port=_find_available_port())
        prior = SubprocessASGIServer._instances.get(None)
        SubprocessASGIServer._instances[None] = server
        server.start(timeout=120)
        stack.enter_context(
            settings.temporary_settings(updates={settings.PREFECT_API_URL: server.api_url})
        )
        stack.enter_context(
            prefect.context._temporary_global_settings_context(
                prefect.context.get_settings_context()
            )
        )
        try:
            yield
        finally:
            run_coro_as_sync(_drain_workers(APILogWorker, EventsWorker))
            server.stop()
            if prior is not None:
                SubprocessASGIServer._instances[None] = prior
            else:
                SubprocessASGIServer._instances.pop(None, None)


async def _drain_workers(log_worker: Any, events_worker: Any) -> None:
    """Send what the log and event workers hold before the server stops (as the harness)."""
    with contextlib.suppress(RuntimeError):  # the log worker never started
        result = log_worker.instance().drain()
        if inspect.isawaitable(result):
            await result
    result = events_worker.drain_all()
    if inspect.isawaitable(result):
        await result


# Per process: two pytest sessions on one PostgreSQL server (two checkouts, CI beside a
# developer) must not drop each other's Prefect database.
PREFECT_DATABASE = f"openbill_prefect_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"


def _admin_statements(*statements: str) -> bool:
    """Run ``statements`` on the test PostgreSQL server outside a transaction; False if it
    does not answer."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from billing.store.db import make_engine
    from tests.conftest import PG_URL

    admin = make_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for statement in statements:
                conn.execute(text(statement))
    except OperationalError:
        return False
    finally:
        admin.dispose()
    return True


def _worker_prefect_database() -> str | None:
    """A fresh PostgreSQL database for this process's Prefect server; None without one."""
    from tests.conftest import PG_URL

    drop = f'DROP DATABASE IF EXISTS "{PREFECT_DATABASE}" WITH (FORCE)'
    if not _admin_statements(drop, f'CREATE DATABASE "{PREFECT_DATABASE}"'):
        return None
    url = make_url(PG_URL).set(drivername="postgresql+asyncpg", database=PREFECT_DATABASE)
    return url.set(query={}).render_as_string(hide_password=False)


@pytest.fixture(scope="session", autouse=True)
def prefect_server():
    """A real Prefect server for the session: on PostgreSQL when it answers (see
    ``prefect_test_server``), else Prefect's own SQLite harness."""
    from prefect.testing.utilities import prefect_test_harness

    from flows.stack import local_prefect_settings

    database = _worker_prefect_database()
    with local_prefect_settings():
        if database is None:
            with prefect_test_harness(server_startup_timeout=120):
                yield
        else:
            with prefect_test_server(database):
                yield
            _admin_statements(f'DROP DATABASE IF EXISTS "{PREFECT_DATABASE}" WITH (FORCE)')


def artifacts(key: str) -> list[dict]:
    """The artifacts with ``key``, newest first, as the server's REST API returns them."""
    import httpx
    from prefect.settings import PREFECT_API_URL

    body = {"artifacts": {"key": {"any_": [key]}}, "limit": 10, "offset": 0, "sort": "CREATED_DESC"}
    response = httpx.post(f"{PREFECT_API_URL.value()}/artifacts/filter", json=body)
    response.raise_for_status()
    return response.json()


def task_runs(flow_run_id: object) -> list[dict]:
    """The task runs of a flow run, as the server's REST API returns them."""
    import httpx
    from prefect.settings import PREFECT_API_URL

    body = {"flow_runs": {"id": {"any_": [str(flow_run_id)]}}, "limit": 200, "offset": 0}
    response = httpx.post(f"{PREFECT_API_URL.value()}/task_runs/filter", json=body)
    response.raise_for_status()
    return response.json()


def run_artifacts(flow_run_id: object) -> list[dict]:
    """Every artifact a flow run created (its task runs' too), as the REST API returns them."""
    import httpx
    from prefect.settings import PREFECT_API_URL

    body = {"artifacts": {"flow_run_id": {"any_": [str(flow_run_id)]}}, "limit": 200, "offset": 0}
    response = httpx.post(f"{PREFECT_API_URL.value()}/artifacts/filter", json=body)
    response.raise_for_status()
    return response.json()


def flow_run(flow_run_id: object) -> dict:
    """A flow run as the REST API returns it (its name, parameters, state)."""
    import httpx
    from prefect.settings import PREFECT_API_URL

    response = httpx.get(f"{PREFECT_API_URL.value()}/flow_runs/{flow_run_id}")
    response.raise_for_status()
    return response.json()


@pytest.fixture
def holding_bank() -> Iterator[None]:
    """Bill day's debits (due 30 days out) in its own file: a Payment Settings block with a
    60-day horizon, a bank that holds files (the default, 14 days, would send them later)."""
    from blocks.payment_settings import PaymentSettings

    PaymentSettings(debit_horizon_days=60).save("default", overwrite=True)
    yield
    PaymentSettings.delete("default")
