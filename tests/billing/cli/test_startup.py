"""Reports answer fast: they never import Prefect, Great Expectations, WeasyPrint or pandas.

Each command runs in a fresh interpreter (as ``billing`` does) on a migrated SQLite file; the
modules it loaded are read back from ``sys.modules`` after the command ran.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from billing.store.db import make_engine
from billing.store.migrate import upgrade

HEAVY = ("prefect", "great_expectations", "weasyprint", "pandas", "faker")

PROBE = """
import json, sys
from flows.cli import app
try:
    app(sys.argv[1:], prog_name="billing")
except SystemExit as done:
    code = done.code
heavy = sorted({name.split(".")[0] for name in sys.modules} & set(HEAVY_MODULES))
print(json.dumps({"code": code, "heavy": heavy}), file=sys.__stderr__)
"""


def loaded(*args: str) -> dict[str, object]:
    probe = PROBE.replace("HEAVY_MODULES", repr(HEAVY))
    done = subprocess.run(
        [sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=120
    )
    return json.loads(done.stderr.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory) -> str:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path_factory.mktemp('startup') / 'billing.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["issues"],
        ["show", "account", "NOPE"],
        ["export", "invoices", "-o", "/dev/null"],
        ["export", "journal", "--year", "2027", "--month", "1", "-o", "/dev/null"],
        ["payment", "settle", "--reference", "NONE"],
    ],
)
def test_reports_do_not_import_heavy_modules(sqlite_url, command):
    result = loaded(*command, "-d", sqlite_url)
    assert result["heavy"] == []
    assert result["code"] in (0, 1, 2)


def test_the_probe_sees_heavy_modules_when_a_command_loads_them(sqlite_url):
    result = loaded("run", "bill-day", "--as-of", "2027-01-01", "--account", "NOPE",
                    "-d", sqlite_url)  # fmt: skip
    assert result["code"] == 1
    assert "prefect" in result["heavy"]
