"""The scheduler on, end to end: it guards the pins of prefect 3.8.8 and SQLAlchemy 2.0.58.

prefect 3.8.8's scheduler service fails on SQLAlchemy 2.1 (``InvalidRequestError: Can't
evaluate bulk DML statement``), and nothing scheduled then ever runs, while a manual run still
works. So this test does not start any run itself: a stack of its own is started through
``scripts/server.py`` with ``PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED=true``, a deployment of
the Contract Change Process daemon on a 10-second interval is registered with ``prefect
deploy`` (a test prefect.yaml, through ``--prefect-file``), and a change request is due in the
billing database. The test then waits for a run the scheduler created (``auto_scheduled``)
that the worker completed, checks the change in the database, and reads the server log for
a scheduler error. At the end ``scripts/server.py stop`` must leave no process running.
"""

from __future__ import annotations

import os
import re
import socket
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import select

from billing.store.db import make_engine, unit_of_work
from billing.store.migrate import upgrade
from billing.store.models import ChangeRequest, ContractItem, RequestStatus
from tests import builders as b
from tests.operations.conftest import new_stack, running, stack_environment

pytestmark = pytest.mark.slow
DEPLOYMENT = "contract-change-process/every-10-seconds"
D = Decimal


def _test_prefect_yaml(folder: Path) -> Path:
    spec = {
        "name": "openbill-scheduler-test",
        "prefect-version": "3.8.8",
        "deployments": [
            {
                "name": "every-10-seconds",
                "entrypoint": "flows/contract_change_process.py:contract_change_process",
                "parameters": {"database_block": "default", "per_batch": 500},
                "schedules": [{"interval": 10, "timezone": "UTC", "active": True}],
                "concurrency_limit": 1,
                "work_pool": {
                    "name": "billing-pool",
                    "work_queue_name": "default",
                    "job_variables": {},
                },
            }
        ],
    }
    path = folder / "prefect.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _change_request_due_today(url: str) -> None:
    """One contract item at quantity 1, and a change request to 3 effective today."""
    today = date.today()
    start = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    engine = make_engine(url)
    upgrade(engine)
    with unit_of_work(engine) as s:
        b.vat(s, {("standard", "FR"): "0.20"})
        plan = b.plan(s, "PRO", "recurring", price="30.00", timing="advance")
        account = b.account(s, "S", created=start, billing_day=1)
        item = b.item(s, b.contract(s, account, "CS", start), "S1", plan, "recurring", start)
        s.add(
            ChangeRequest(
                ref="CR-SCHEDULED",
                contract_item_id=item.id,
                kind="quantity",
                effective_date=today,
                new_quantity=D("3"),
            )
        )
    engine.dispose()


def _flow_runs(stack, deployment_id: str) -> list[dict]:
    """The deployment's runs, earliest first (the scheduler keeps up to 100 future ones)."""
    body = {
        "offset": 0,
        "limit": 200,
        "sort": "EXPECTED_START_TIME_ASC",
        "deployments": {"id": {"any_": [deployment_id]}},
    }
    response = httpx.post(f"{stack.api}/flow_runs/filter", json=body, auth=stack.auth, timeout=30)
    response.raise_for_status()
    return response.json()


RECORD = re.compile(r"^\d\d:\d\d:\d\d\.\d+ \| +(\w+) +\| ", re.MULTILINE)


def scheduler_errors(log: str) -> list[str]:
    """The records of the server log (each with its traceback lines) that are errors or
    tracebacks and come from, or pass through, the scheduler service."""
    starts = [m.start() for m in RECORD.finditer(log)] + [len(log)]
    records = [log[a:b] for a, b in zip(starts, starts[1:], strict=False)]
    return [
        record
        for record in records
        if ("Traceback" in record or RECORD.match(record).group(1) in ("ERROR", "CRITICAL"))
        and "schedul" in record.lower()
    ]


def test_scheduler_errors_are_found_in_a_server_log():
    """The log check above can fail: a scheduler traceback is found, other errors are not."""
    log = (
        "07:27:34.519 | ERROR   | prefect.server.utilities.worker_channel - heartbeat failed\n"
        "Traceback (most recent call last):\n  sqlite3.OperationalError: database is locked\n"
        "07:27:40.001 | INFO    | prefect.server.services.scheduler - Scheduled 100 runs.\n"
        "07:27:45.002 | ERROR   | docket.worker - Failed schedule_deployments\n"
        'Traceback (most recent call last):\n  File ".../prefect/server/services/scheduler.py"\n'
        "sqlalchemy.exc.InvalidRequestError: Can't evaluate bulk DML statement\n"
        "07:27:46.000 | INFO    | uvicorn - done\n"
    )
    [found] = scheduler_errors(log)
    assert "bulk DML" in found and "database is locked" not in found


def _closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def test_scheduler_runs_a_scheduled_daemon_through_the_worker(tmp_path_factory):
    env = stack_environment(PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="true")
    stack = new_stack(tmp_path_factory, env)
    _change_request_due_today(stack.database_url)
    prefect_file = _test_prefect_yaml(tmp_path_factory.mktemp("deployments"))
    args = ["--database", stack.database_url, "--prefect-file", str(prefect_file)]
    with running(stack, *args):
        response = httpx.get(
            f"{stack.api}/deployments/name/{DEPLOYMENT}", auth=stack.auth, timeout=30
        )
        response.raise_for_status()
        deployment_id = response.json()["id"]
        deadline = time.monotonic() + 180
        completed: list[dict] = []
        while not completed and time.monotonic() < deadline:
            runs = _flow_runs(stack, deployment_id)
            completed = [r for r in runs if r["state_type"] == "COMPLETED"]
            failed = [r for r in runs if r["state_type"] in ("FAILED", "CRASHED")]
            assert not failed, failed
            log = (stack.home / "logs" / "server.log").read_text(errors="replace")
            assert scheduler_errors(log) == []  # fail at once, not after the wait
            time.sleep(2)
        server_log = (stack.home / "logs" / "server.log").read_text(errors="replace")
        worker_log = (stack.home / "logs" / "worker.log").read_text(errors="replace")
        late = f"no completed run in 180 s\n{server_log[-3000:]}\n{worker_log[-3000:]}"
        assert completed, late
        # The scheduler made it: the test started nothing, and nobody else did.
        assert all(r["auto_scheduled"] for r in completed), completed
        assert runs and all(r["auto_scheduled"] for r in runs)
        pids = [int(p.read_text()) for p in (stack.home / "run").glob("*.pid")]
    assert "bulk DML" not in server_log
    assert scheduler_errors(server_log) == []
    engine = make_engine(stack.database_url)
    with unit_of_work(engine) as s:
        request = s.scalars(select(ChangeRequest)).one()
        quantity = s.scalar(select(ContractItem.quantity).where(ContractItem.ref == "S1"))
    engine.dispose()
    assert (request.status, request.processed_on, quantity) == (
        RequestStatus.APPLIED,
        date.today(),
        D("3"),
    )
    # make stop: nothing of the stack is left running, no port still open.
    assert len(pids) == 4
    for pid in pids:
        assert (
            not os.path.exists(f"/proc/{pid}")
            or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        ), pid
    for port in (stack.port, stack.files_port, stack.smtp_port):
        assert _closed(port), port
