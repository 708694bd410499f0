"""``billing check`` and ``billing run`` fail in one line when the checks or the server fail."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from billing.jobs.bill_day import run_bill_day
from billing.store.db import unit_of_work
from billing.store.models import Bill, BillUnit
from tests.billing.test_billday import population  # noqa: F401


def test_failed_checks_end_in_one_line_on_stderr(population, tmp_path):  # noqa: F811
    from flows.cli import app

    run_bill_day(population, date(2027, 2, 1), "run-1")
    url = population.url.render_as_string(hide_password=False)
    args = ["check", "--as-of", "2027-02-01", "-d", url, "-o", str(tmp_path)]
    ok = CliRunner().invoke(app, args)
    assert ok.exit_code == 0, ok.output
    assert ok.stderr == ""
    with unit_of_work(population) as s:
        s.execute(update(BillUnit).values(billing_state="failed"))

    bad = CliRunner().invoke(app, args)

    assert bad.exit_code == 1
    (line,) = bad.stderr.strip().splitlines()
    assert line.startswith("error: 1 of ")
    assert "post-billing checks failed as of 2027-02-01: bill_units_not_failed (2)" in line
    assert line.endswith(f"details: {tmp_path.resolve() / 'data_docs' / 'index.html'}")


def test_run_with_a_prefect_server_down_is_one_line(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
    url = f"sqlite:///{tmp_path / 'b.db'}"
    code = "import sys; from flows.cli import app; app(sys.argv[1:], prog_name='billing')"
    done = subprocess.run(
        [sys.executable, "-c", code, "run", "bill-day", "--as-of", "2027-02-01", "-d", url],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: Prefect server http://127.0.0.1:{port}/api (PREFECT_API_URL)")
    assert "does not answer" in line and "make server" in line
    assert not (tmp_path / "b.db").exists()


def test_bill_day_with_an_unknown_account_does_not_start(population):  # noqa: F811
    from flows.cli import app

    url = population.url.render_as_string(hide_password=False)
    args = ["run", "bill-day", "--as-of", "2027-02-01", "--account", "NOPE", "-d", url]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == "error: unknown account 'NOPE'"
    with unit_of_work(population) as s:
        assert s.scalar(select(func.count()).select_from(Bill)) == 0


def _billing_subprocess(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from flows.cli import app; app(sys.argv[1:], prog_name='billing')"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=180
    )


@pytest.mark.slow
def test_run_against_a_server_that_refuses_the_credentials_is_one_line(tmp_path):
    """A real Prefect server with an auth string: /health answers anyone, the API does not."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    api = f"http://127.0.0.1:{port}/api"
    server_env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"),
                  "PREFECT_SERVER_API_AUTH_STRING": "admin:right",
                  "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}  # fmt: skip
    server_env.pop("PREFECT_API_URL", None)
    prefect = Path(sys.executable).with_name("prefect")
    server = subprocess.Popen(
        [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=server_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("the Prefect server did not start")
        url = f"sqlite:///{tmp_path / 'b.db'}"
        env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_API_AUTH_STRING": "admin:wrong"}
        done = _billing_subprocess(env, "run", "bill-day", "--as-of", "2027-02-01", "-d", url)
        assert done.returncode == 1, done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert line == (
            f"error: Prefect server {api} (PREFECT_API_URL) refused the credentials (HTTP 401): "
            "set PREFECT_API_AUTH_STRING to the server's user:password"
        )
        env["PREFECT_API_AUTH_STRING"] = "admin:right"
        right = _billing_subprocess(env, "run", "bill-day", "--as-of", "2027-02-01", "-d", url)
        assert right.returncode == 1
        assert (
            right.stderr.strip()
            .splitlines()[-1]
            .endswith(
                ": no database file "
                f"'{tmp_path / 'b.db'}': run `make demo` (demo data) or `billing db upgrade` "
                "(empty schema)"
            )
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
