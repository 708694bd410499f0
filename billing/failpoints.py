"""Failpoints: named places where a test can kill the process (``kill -9``) or act.

Modelled on FreeBSD's fail(9) and TiKV's fail-rs. ``failpoint("numbering.before_commit")`` is
a no-op unless the environment variable ``OPENBILL_FAILPOINT`` names it when this module is
first imported:

- ``OPENBILL_FAILPOINT=numbering.before_commit`` kills the process with SIGKILL on the first hit;
- ``OPENBILL_FAILPOINT=render.pdf_stored@3`` kills it on the third hit;
- several points may be armed, separated by commas; the first one reached kills.

Just before the kill, the point's name is appended to the file named by
``OPENBILL_FAILPOINT_LOG`` (when set), so a test can prove which point was really reached.

Hits are counted per process. A billing batch worker process (``billing.jobs.batch_workers``)
inherits the armed points, and by default a point it reaches kills its parent too: the bill-day
process tree dies as the one process dies in thread mode. ``OPENBILL_FAILPOINT_SCOPE=process``
kills the worker alone instead (a worker lost to the OOM killer, say), and then only once per
log file: a worker started again after it counts its hits from zero, and would die again.

In-process tests can also attach an action with ``on(name, action)`` (a context manager):
the callable runs at each hit, for example to sever the database connections at that exact
moment. With nothing armed, a failpoint costs one global lookup and a falsy test.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

ENV = "OPENBILL_FAILPOINT"
LOG_ENV = "OPENBILL_FAILPOINT_LOG"
SCOPE_ENV = "OPENBILL_FAILPOINT_SCOPE"

POINTS = (
    "billday.after_deferred",
    "billrun.after_claim",
    "billrun.write",
    "billrun.before_commit",
    "billday.between_batches",
    "numbering.before_commit",
    "billday.after_numbering",
    "cycle_fees.before_commit",
    "collect.planned",
    "collect.card_pending",
    "collect.card_answered",
    "collect.debit_file_written",
    "refund.card_pending",
    "refund.card_answered",
    "refund.transfer_file_written",
    "checks.done",
    "render.pdf_stored",
    "render.before_enqueue_commit",
    "email.claimed",
    "email.sent",
    "email.settled",
)
"""Every point the code calls, in the order of a bill day (``docs/reliability.md`` describes
each moment). ``billrun.write`` fires at each savepoint write of a pass's plan: once per pass,
and once more per half while a refused write is bisected."""


class FailpointSpecError(ValueError):
    """``OPENBILL_FAILPOINT`` is not a comma-separated list of ``name`` or ``name@N``."""


def parse(spec: str) -> dict[str, int]:
    """``"a,b@3"`` -> ``{"a": 1, "b": 3}``: each armed point and the hit that fires it."""
    armed: dict[str, int] = {}
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, _, nth = part.partition("@")
        try:
            hit = int(nth) if nth else 1
        except ValueError as error:
            raise FailpointSpecError(f"{ENV}: {part!r} is not name or name@N") from error
        if not name or hit < 1:
            raise FailpointSpecError(f"{ENV}: {part!r} is not name or name@N (N >= 1)")
        armed[name] = hit
    return armed


_kill_at: dict[str, int] = parse(os.environ.get(ENV, ""))
_actions: dict[str, Callable[[], None]] = {}
_hits: dict[str, int] = {}
_lock = threading.Lock()
_active = bool(_kill_at)
_also: list[int] = []
"""Processes a kill takes down too: a batch worker's parent (``kill_also``)."""


def kill_also(pid: int) -> None:
    """A point reached in this process kills ``pid`` first (unless the scope is ``process``)."""
    if os.environ.get(SCOPE_ENV, "tree") != "process":
        _also.append(pid)


def failpoint(name: str) -> None:
    """Kill the process (or run the attached action) here when ``name`` is armed."""
    if not _active:
        return
    with _lock:
        _hits[name] = hits = _hits.get(name, 0) + 1
        action = _actions.get(name)
        kill = _kill_at.get(name) == hits
    if kill:
        _die(name)
    if action is not None:
        action()


def _die(name: str) -> None:
    log = os.environ.get(LOG_ENV)
    if os.environ.get(SCOPE_ENV) == "process" and log and os.path.exists(log):
        with open(log, encoding="utf-8") as seen:
            if name in seen.read().split():
                return  # a worker already died here; this one, started after it, goes on
    if log:
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"{name}\n")
            out.flush()
            os.fsync(out.fileno())
    for pid in _also:
        os.kill(pid, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def hits(name: str) -> int:
    """How many times ``name`` was reached while failpoints were active in this process."""
    with _lock:
        return _hits.get(name, 0)


@contextmanager
def on(name: str, action: Callable[[], None]) -> Iterator[None]:
    """Run ``action`` at every hit of ``name`` inside the block (in-process tests)."""
    global _active
    with _lock:
        _actions[name] = action
        _hits.pop(name, None)
        _active = True
    try:
        yield
    finally:
        with _lock:
            _actions.pop(name, None)
            _active = bool(_kill_at or _actions)
