"""``billing check`` and ``billing run`` fail in one line when the checks or the server fail."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import date

from sqlalchemy import func, select, update
from typer.testing import CliRunner

from billing.billday import run_bill_day
from billing.db import unit_of_work
from billing.models import Bill, BillUnit
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
