"""One real Prefect stack for the operations tests, started the way ``make server`` starts it.

``prefect_server`` runs ``scripts/server.py start --server-only`` on free loopback ports with
its own PREFECT_HOME and data folder (analytics off, the scheduler off so no daemon wakes up
mid-test; tests/operations/test_scheduler.py runs a stack of its own with it on). The server
requires the API auth string that ``server.py`` writes to ``<home>/api-auth-string``; every
client here sends it (``Stack.auth``, ``Stack.connected()``). ``deployed`` runs
``scripts/server.py start`` again on the same home: pool, limit, blocks, mail catcher, files
server, deployments and a worker, over a small seeded SQLite database. ``bill_day_run``
starts bill-day through the Prefect API with a chosen ``as_of`` and waits for it. Everything
is session-scoped, so the operations tests share one server; ``scripts/server.py stop`` ends
every process in the teardown, and any process group left behind is killed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from billing.store.db import make_engine, unit_of_work
from billing.store.migrate import upgrade
from flows import stack as local
from tests import builders as b

ROOT = Path(__file__).resolve().parents[2]
SERVER = [sys.executable, str(ROOT / "scripts" / "server.py")]
AS_OF = date(2027, 2, 1)
RUN_NAME = "bill-day 2027-02-01"  # the flow names its runs by their date
BILL_DAY = "bill-day/daily-01-00-utc"
EMAIL_SENDER = "invoice-email-sender/every-15-minutes"
TIERS = [("100", "0.10"), ("1000", "0.05"), (None, "0.01")]


@dataclass(frozen=True)
class Stack:
    home: Path
    port: int
    env: dict[str, str]
    database_url: str
    data_dir: Path
    files_port: int
    smtp_port: int

    @property
    def ui(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return f"{self.ui}/api"

    @property
    def files(self) -> str:
        return f"http://127.0.0.1:{self.files_port}"

    @property
    def output_dir(self) -> Path:
        return self.data_dir / "output"

    @property
    def mail_dir(self) -> Path:
        return self.data_dir / "mail"

    @property
    def auth_string(self) -> str:
        """The API's ``user:password`` as ``server.py`` wrote it (never in the test's env)."""
        return (self.home / local.AUTH_FILE).read_text().strip()

    @property
    def auth(self) -> tuple[str, str]:
        """HTTP Basic credentials for httpx."""
        user, _, password = self.auth_string.partition(":")
        return user, password

    def connected(self) -> Any:
        """Prefect settings for this stack, through flows/stack.py as the CLI will use them."""
        found = local.local_stack(self.home)
        assert found is not None, f"no running stack recorded under {self.home}"
        return local.connected(found)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_script(stack: Stack, *args: str, timeout: float = 240) -> str:
    """``scripts/server.py <args>`` on the stack's home, ports and data folder; its output."""
    where = [
        "--home",
        str(stack.home),
        "--port",
        str(stack.port),
        "--data-dir",
        str(stack.data_dir),
    ]
    ports = ["--files-port", str(stack.files_port), "--smtp-port", str(stack.smtp_port)]
    done = subprocess.run(
        [*SERVER, *args, *where, *ports],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"server.py {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _kill_leftovers(home: Path) -> None:
    """SIGKILL any process group whose pid file is still there (``stop`` failed or timed out)."""
    for pid_file in (home / "run").glob("*.pid"):
        try:
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)
        except (ProcessLookupError, ValueError, PermissionError):
            pass


def stack_environment(**settings: str) -> dict[str, str]:
    """This process's environment without PREFECT_* and BILLING_*, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "BILLING_"))}
    env.update(
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_WORKER_QUERY_SECONDS="1",
        **settings,
    )
    return env


def new_stack(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Stack:
    """A stack's home, data folder and three free loopback ports (nothing started)."""
    data = tmp_path_factory.mktemp("billing")
    return Stack(
        home=tmp_path_factory.mktemp("prefect-home"),
        port=_free_port(),
        env=env,
        database_url=f"sqlite:///{data / 'billing.db'}",
        data_dir=data,
        files_port=_free_port(),
        smtp_port=_free_port(),
    )


@contextmanager
def running(stack: Stack, *args: str, timeout: float = 240) -> Iterator[Stack]:
    """``server.py start <args>`` now, ``server.py stop`` (and SIGKILL of leftovers) at the end."""
    try:
        server_script(stack, "start", *args, timeout=timeout)
        yield stack
    finally:
        try:
            server_script(stack, "stop", "--timeout", "20", timeout=90)
        finally:
            _kill_leftovers(stack.home)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A Prefect server of our own (no pool, deployment or worker yet), scheduler off."""
    env = stack_environment(
        PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false", PREFECT_LOGGING_LEVEL="WARNING"
    )
    with running(new_stack(tmp_path_factory, env), "--server-only", timeout=180) as stack:
        yield stack


def seed_two_accounts(url: str) -> None:
    """A (FR, EUR, billing day 1) and B (GB, GBP, billing day 31, from Jan 15); VAT 20%.

    Bill day as of 2027-02-01 bills (hand-checked, as in tests/billing/test_billday.py):
    A: PRO 30.00 in advance for Jan and Feb, SUPPORT 2 x 12.00 in arrears, graduated usage
       250 = 100 x 0.10 + 150 x 0.05 = 17.50 -> net 101.50, tax 20.30, gross 121.80.
    B: UK-ARR 28.00 x 16/31 (Jan 15..31) = 14.45 -> tax 2.89, gross 17.34.
    """
    engine = make_engine(url)
    upgrade(engine)
    with unit_of_work(engine) as s:
        b.vat(s, {("standard", "FR"): "0.20", ("standard", "GB"): "0.20"})
        adv = b.plan(s, "PRO", "recurring", price="30.00", timing="advance")
        arr = b.plan(s, "SUPPORT", "recurring", price="12.00", timing="arrears")
        grad = b.plan(s, "API-GRAD", "graduated", tiers=TIERS)
        gbp_fee = b.plan(s, "UK-ARR", "recurring", "GBP", price="28.00", timing="arrears")
        a = b.account(s, "A", created=date(2027, 1, 1), billing_day=1)
        ca = b.contract(s, a, "CA", date(2027, 1, 1))
        b.item(s, ca, "A1", adv, "recurring", date(2027, 1, 1))
        b.item(s, ca, "A2", arr, "recurring", date(2027, 1, 1), quantity="2")
        a3 = b.item(s, ca, "A3", grad, "usage", date(2027, 1, 1))
        b.usage(s, a3, "u-a3-1", "200", datetime(2027, 1, 10, 8))
        b.usage(s, a3, "u-a3-2", "50", datetime(2027, 1, 31, 23, 59))
        bb = b.account(
            s, "B", country="GB", currency="GBP", created=date(2027, 1, 15), billing_day=31
        )
        cb = b.contract(s, bb, "CB", date(2027, 1, 15))
        b.item(s, cb, "B1", gbp_fee, "recurring", date(2027, 1, 15))
    engine.dispose()


@pytest.fixture(scope="session")
def deployed(prefect_server: Stack) -> Stack:
    """The whole ``make server`` stack over a seeded billing database.

    Its files (documents, reports, mail, sandbox ledger) go to the stack's tmp data folder
    (``--data-dir``), never into the checkout where flow runs start.
    """
    seed_two_accounts(prefect_server.database_url)
    server_script(prefect_server, "start", "--database", prefect_server.database_url)
    return prefect_server


@pytest.fixture(scope="session")
def bill_day_run(deployed: Stack) -> Any:
    """bill-day started through the API with as_of, run by the worker; its flow run."""
    from prefect.deployments import run_deployment

    with deployed.connected():
        return run_deployment(
            BILL_DAY,
            parameters={"as_of": AS_OF.isoformat()},
            timeout=150,
            poll_interval=1,
        )
