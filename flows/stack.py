"""The local stack that ``make server`` runs, found from its PREFECT_HOME, and a way to talk to it.

``scripts/server.py start`` writes ``<PREFECT_HOME>/stack.json`` (``write_stack``): the API,
UI and files server addresses, the path of the API auth-string file (never the secret itself)
and the mail catcher's Maildir and port. ``local_stack()`` reads it back and returns ``None``
when no server of that stack runs (no pid file, or its process is gone).

    stack = local_stack()                 # PREFECT_HOME, else var/prefect under the checkout
    if stack is not None:
        with connected(stack):            # PREFECT_API_URL and PREFECT_API_AUTH_STRING set
            run_deployment("bill-day/daily-01-00-utc", parameters={"as_of": "2027-02-01"})

``connected`` changes Prefect's settings for the ``with`` block only (no ``os.environ``
mutation), so it is safe in a process that talks to several servers in turn. Nothing here
imports Prefect at module level: ``scripts/server.py`` imports this module before it has
set the stack's environment.
"""

from __future__ import annotations

import json
import os
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STACK_FILE = "stack.json"
AUTH_FILE = "api-auth-string"


def default_home() -> Path:
    """``PREFECT_HOME`` when set, else ``var/prefect`` in the checkout (``make server``'s)."""
    return Path(os.environ.get("PREFECT_HOME") or ROOT / "var" / "prefect").expanduser().resolve()


@dataclass(frozen=True)
class Stack:
    """Where a running local stack answers, as ``scripts/server.py start`` recorded it."""

    home: Path
    api_url: str  # http://127.0.0.1:4200/api
    ui_url: str  # http://127.0.0.1:4200
    files_url: str  # http://127.0.0.1:4201 (serves /output/ and /documents/)
    auth_file: Path  # PREFECT_HOME/api-auth-string, mode 0600: "user:password"
    mail_dir: Path  # the mail catcher's Maildir (var/mail)
    smtp_port: int  # the mail catcher listens on 127.0.0.1:smtp_port

    @property
    def auth_string(self) -> str:
        """``user:password`` for the API (HTTP Basic) and the files server; read when asked."""
        return self.auth_file.read_text().strip()

    def to_json(self) -> str:
        values = asdict(self)
        values.update(
            home=str(self.home), auth_file=str(self.auth_file), mail_dir=str(self.mail_dir)
        )
        return json.dumps(values, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Stack:
        values = json.loads(text)
        return cls(
            home=Path(values["home"]),
            api_url=values["api_url"],
            ui_url=values["ui_url"],
            files_url=values["files_url"],
            auth_file=Path(values["auth_file"]),
            mail_dir=Path(values["mail_dir"]),
            smtp_port=int(values["smtp_port"]),
        )


def write_stack(stack: Stack) -> Path:
    """Record ``stack`` in ``<home>/stack.json`` (replaced in one step); its path."""
    path = stack.home / STACK_FILE
    partial = path.with_suffix(".json.partial")
    partial.write_text(stack.to_json())
    partial.replace(path)
    return path


def server_pid(home: Path) -> int | None:
    """The pid of the stack's server when it runs (not a zombie, still leading its group)."""
    try:
        pid = int((home / "run" / "server.pid").read_text())
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return pid if state != "Z" and os.getpgid(pid) == pid else None
    except (OSError, ValueError, IndexError):
        return None


def local_stack(home: Path | None = None) -> Stack | None:
    """The stack ``scripts/server.py start`` runs under ``home`` (default ``default_home()``),
    or ``None`` when its server is not running or it never recorded itself."""
    home = Path(home).expanduser().resolve() if home is not None else default_home()
    if server_pid(home) is None:
        return None
    try:
        return Stack.from_json((home / STACK_FILE).read_text())
    except (OSError, ValueError, KeyError):
        return None


def connected(stack: Stack) -> AbstractContextManager[Any]:
    """``prefect.settings.temporary_settings`` with PREFECT_API_URL and PREFECT_API_AUTH_STRING
    of ``stack``: Prefect clients created inside the ``with`` block talk to it."""
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    updates = {PREFECT_API_URL: stack.api_url, PREFECT_API_AUTH_STRING: stack.auth_string}
    return temporary_settings(updates=updates)


def local_prefect_settings() -> AbstractContextManager[Any]:
    """``temporary_settings`` for a run without a server, for the ``with`` block: Prefect's
    server analytics off (there may be no internet), and 120 s, not 20, for the temporary
    server to start (a loaded machine took longer). Each applies unless the environment set
    it already. A server started inside the block (the temporary in-process one, the test
    harness's) gets the settings too: Prefect passes the current settings to its subprocess.
    Nothing is written to ``os.environ``."""
    from prefect.settings import (
        PREFECT_SERVER_ANALYTICS_ENABLED,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    updates: dict[Any, Any] = {}
    if "PREFECT_SERVER_ANALYTICS_ENABLED" not in os.environ:
        updates[PREFECT_SERVER_ANALYTICS_ENABLED] = False
    if "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" not in os.environ:
        updates[PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS] = 120
    return temporary_settings(updates=updates)
