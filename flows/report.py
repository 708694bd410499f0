"""How every flow reports: one progress artifact per run, tables in the one format of
``billing.ops.run_report``, and files as links the UI can open.

Files are links only when ``BillRunSettings.files_url`` names the HTTP server of the local
stack (``<files_url>/output/<path under output_dir>``); a browser refuses ``file://`` links
from the UI, so without a server a file is shown as its path, as plain text.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote
from uuid import UUID

import httpx
from prefect import get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

from billing.ops.run_report import ProgressPlan, money, shown


class RunProgress:
    """One progress artifact for a whole run, moved forward step by step up to 100.

    Steps that run side by side (cycle fees, collection, refunds) report from their task
    threads: one update at a time, under a lock. Two at once made a PostgreSQL-backed Prefect
    server answer 500 (seen in tests/flows). The bar is what the operator watches, not a
    record: an update the server refuses is logged as a warning and the run goes on.
    """

    def __init__(self, key: str, title: str, steps: Sequence[tuple[str, int]]) -> None:
        self.title = title
        self.plan = ProgressPlan(steps)
        self._lock = threading.Lock()
        # create_progress_artifact dispatches sync/async; in a flow it returns the id.
        self.id = cast(
            UUID, create_progress_artifact(0.0, key=key, description=f"{self.title}: starting")
        )

    def _show(self, percent: Decimal, text: str) -> None:
        # Prefect's progress artifact takes a float; the plan itself stays exact.
        try:
            update_progress_artifact(self.id, float(percent), description=text[:2000])
        except (httpx.HTTPError, PrefectHTTPStatusError, ObjectNotFound) as error:
            get_run_logger().warning("progress bar not updated (%s): %s", error, text)

    def step(self, step: str, fraction: Decimal | int = 1, note: str | None = None) -> None:
        """``fraction`` of ``step`` is done (and every step before it)."""
        with self._lock:
            self._show(self.plan.at(step, fraction), f"{self.title}: {note or step}")

    def note(self, note: str) -> None:
        """Say what happened without moving the bar (a run that stops short of 100)."""
        with self._lock:
            self._show(self.plan.percent, f"{self.title}: {note}")

    def done(self, note: str = "done") -> None:
        with self._lock:
            self._show(self.plan.finish(), f"{self.title}: {note}")


class Measures:
    """A run's measures in order: each value as the flow returns it, and as the artifact
    shows it (``shown``, or ``money`` for an amount)."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, Any, str]] = []

    def add(self, measure: str, value: Any, text: str | None = None) -> None:
        self.rows.append((measure, value, shown(value) if text is None else text))

    def money(self, measure: str, amount: Decimal | str, currency: str) -> None:
        """An amount: returned as a ``Decimal``, shown as ``1,234.50 EUR``."""
        value = Decimal(amount)
        self.add(measure, value, money(value, currency))

    def summary(self) -> dict[str, Any]:
        """What the flow returns: measure -> value (Python callers, the CLI, benchmarks)."""
        return {measure: value for measure, value, _ in self.rows}

    def table(self) -> list[dict[str, str]]:
        return [{"measure": measure, "value": text} for measure, _, text in self.rows]

    def publish(self, key: str, description: str) -> dict[str, Any]:
        """The table artifact; returns ``summary()``."""
        create_table_artifact(self.table(), key=key, description=description)
        return self.summary()


def publish_table(rows: list[dict[str, str]], key: str, description: str) -> None:
    """A table artifact of rows whose cells are already text (``shown``)."""
    bad = [v for row in rows for v in row.values() if not isinstance(v, str)]
    if bad:
        raise TypeError(f"table cells must be shown as text first, got {bad[:3]!r}")
    create_table_artifact(rows, key=key, description=description)


def publish_markdown(text: str, key: str, description: str) -> None:
    create_markdown_artifact(text, key=key, description=description)


def output_url(path: str | Path, output_dir: str, files_url: str) -> str | None:
    """``<files_url>/output/<path under output_dir>``, or None without a server (or for a
    file outside output_dir)."""
    if not files_url:
        return None
    file, base = Path(path).resolve(), Path(output_dir).resolve()
    if not file.is_relative_to(base):
        return None
    return f"{files_url.rstrip('/')}/output/{quote(file.relative_to(base).as_posix())}"


def file_markdown(label: str, path: str | Path, output_dir: str, files_url: str) -> str:
    """A markdown link to the file over the stack's HTTP server, else its path as text."""
    url = output_url(path, output_dir, files_url)
    if url is None:
        return f"{label}: `{Path(path).resolve()}`"
    return f"[{label}]({url})"


def file_text(path: str | Path, output_dir: str, files_url: str) -> str:
    """A table cell for a file: its URL over the stack's HTTP server, else its path."""
    return output_url(path, output_dir, files_url) or str(Path(path).resolve())
