"""Flow tests run the real flows against a real, temporary Prefect server (prefect_test_harness)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def prefect_server():
    from prefect.testing.utilities import prefect_test_harness

    from flows.stack import local_prefect_settings

    with local_prefect_settings(), prefect_test_harness(server_startup_timeout=120):
        yield


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
