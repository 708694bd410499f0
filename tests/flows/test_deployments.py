"""prefect.yaml against a real Prefect server: every deployment registers with its schedule.

The test starts ``prefect server start`` on a free loopback port with its own PREFECT_HOME,
creates the ``billing-pool`` process work pool, runs ``prefect --no-prompt deploy --all`` from
the repository root, and reads the deployments back over the REST API.

"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import yaml

# Its own `prefect server start` and a `prefect deploy --all` subprocess (about 45 s of a
# 2-core machine): a suite that starts its own server is slow-marked, as tests/operations.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))

EXPECTED = {
    # flow name: (deployment name, entrypoint, schedule, parameters)
    "contract-change-process": (
        "hourly",
        "flows/contract_change_process.py:contract_change_process",
        {"interval": 3600.0},
        {"database_block": "default", "per_batch": 500},
    ),
    "contract-item-renewal": (
        "daily-00-30-utc",
        "flows/contract_item_renewal.py:contract_item_renewal",
        {"cron": "30 0 * * *"},
        {"database_block": "default", "per_batch": 1000},
    ),
    "uti-schedule-generator": (
        "every-4-hours",
        "flows/uti_schedule_generator.py:uti_schedule_generator",
        {"interval": 14400.0},
        {"database_block": "default", "per_batch": 2000},
    ),
    "billing": (
        "daily-06-00-utc",
        "flows/billing_daemon.py:billing",
        {"cron": "0 6 * * *"},
        {"database_block": "default", "settings_block": "default"},
    ),
    "revrec-summary-journal": (
        "monthly-2nd-03-00-utc",
        "flows/revrec_summary_journal.py:revrec_summary_journal",
        {"cron": "0 3 2 * *"},
        {"database_block": "default", "post": False, "per_batch": 20000},
    ),
    "invoice-email-sender": (
        "every-15-minutes",
        "flows/invoice_email_sender.py:invoice_email_sender",
        {"interval": 900.0},
        {
            "database_block": "default",
            "smtp_block": "default",
            "store_block": "default",
            "seller_block": "default",
            "per_batch": 200,
        },
    ),
    "bill-day": (
        "daily-01-00-utc",
        "flows/bill_day.py:bill_day",
        {"cron": "0 1 * * *"},
        {
            "dry_run": False,
            "settings_block": "default",
            "database_block": "default",
            "webhook_block": "provisioning",
        },
    ),
    "render-invoices": (
        "on-demand",
        "flows/render_invoices.py:render_invoices",
        None,
        {"database_block": "default", "store_block": "default", "seller_block": "default"},
    ),
    "shadow-bill-run": (
        "on-demand",
        "flows/shadow_bill_run.py:shadow_bill_run",
        None,
        {"settings_block": "default", "database_block": "default"},
    ),
    "preview": (
        "on-demand",
        "flows/preview.py:preview",
        None,
        {"database_block": "default", "settings_block": "default", "seller_block": "default"},
    ),
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A real Prefect server for this module: (API URL, environment for CLI commands)."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=api,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
    )
    server_env = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
    log = (home / "server.log").open("w")
    server = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=server_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_healthy(api, server, home / "server.log")
        yield api, env
    finally:
        _stop(server)
        log.close()


def _wait_healthy(api: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"prefect server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"prefect server not healthy after 120 s: {log.read_text()[-2000:]}")


def _stop(server: subprocess.Popen) -> None:
    """Stop the server we started, with its children (its own process group)."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


def _cli(env: dict[str, str], *args: str) -> str:
    """``prefect <args>`` from the repository root."""
    done = subprocess.run(
        [sys.executable, "-m", "prefect", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def deployments(prefect_api: tuple[str, dict[str, str]]) -> dict[str, dict]:
    """Deploy prefect.yaml and read every deployment back, by flow name."""
    api, env = prefect_api
    _cli(env, "work-pool", "create", "billing-pool", "--type", "process")
    _cli(env, "--no-prompt", "deploy", "--all")
    body = {"limit": 200, "offset": 0, "sort": "NAME_ASC"}
    response = httpx.post(f"{api}/deployments/filter", json=body, timeout=30)
    response.raise_for_status()
    found = {}
    for deployment in response.json():
        flow = httpx.get(f"{api}/flows/{deployment['flow_id']}", timeout=30).json()
        found[flow["name"]] = deployment
    return found


def test_every_daemon_and_bill_day_is_deployed_under_a_name_that_says_when(deployments):
    """`<flow>/<when>`: the UI's list of deployments reads as the timetable, not 8 x "scheduled"."""
    assert sorted(deployments) == sorted(EXPECTED)
    assert {flow: d["name"] for flow, d in deployments.items()} == {
        flow: expected[0] for flow, expected in EXPECTED.items()
    }


@pytest.mark.parametrize("flow_name", sorted(EXPECTED))
def test_deployment_has_its_schedule_pool_limit_and_parameters(deployments, flow_name):
    _, entrypoint, schedule, parameters = EXPECTED[flow_name]
    deployment = deployments[flow_name]
    assert deployment["entrypoint"] == entrypoint
    assert deployment["work_pool_name"] == "billing-pool"
    assert deployment["parameters"] == parameters
    assert deployment["global_concurrency_limit"]["limit"] == 1
    if schedule is None:  # on demand only
        assert deployment["schedules"] == []
        return
    [registered] = deployment["schedules"]
    assert registered["active"] is True
    assert registered["schedule"]["timezone"] == "UTC"
    for field, value in schedule.items():
        assert registered["schedule"][field] == value


@pytest.mark.parametrize("flow_name", sorted(EXPECTED))
def test_run_form_describes_every_parameter(deployments, flow_name):
    """The UI's run form shows each parameter's description, from the docstring's Args."""
    properties = deployments[flow_name]["parameter_openapi_schema"]["properties"]
    assert properties
    undescribed = sorted(name for name, p in properties.items() if not p.get("description"))
    assert undescribed == []


def test_as_of_is_a_plain_date_field_in_the_run_form(deployments):
    as_of = deployments["bill-day"]["parameter_openapi_schema"]["properties"]["as_of"]
    assert (as_of["type"], as_of["format"], "anyOf" in as_of) == ("string", "date", False)


def test_yaml_schedules_match_the_seed():
    """UTI every 4 hours (the seed); every schedule active, every deployment alone at a time."""
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    by_entry = {d["entrypoint"]: d for d in spec["deployments"]}
    uti = by_entry["flows/uti_schedule_generator.py:uti_schedule_generator"]
    assert timedelta(seconds=uti["schedules"][0]["interval"]) == timedelta(hours=4)
    assert all(d["concurrency_limit"] == 1 for d in spec["deployments"])
    assert all(s["active"] for d in spec["deployments"] for s in d["schedules"])
    scheduled = [d for d in spec["deployments"] if d["schedules"]]
    assert len(scheduled) == 7 and all(d["name"] != "scheduled" for d in spec["deployments"])
