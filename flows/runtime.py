"""What every flow needs: its blocks (with local fallbacks), an engine, and retry rules."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import cache
from typing import Annotated, Any, TypeVar

from prefect import Task
from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.objects import TaskRun
from prefect.exceptions import ObjectNotFound
from prefect.runtime import flow_run as current_run
from prefect.states import State
from pydantic import MISSING, WithJsonSchema
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from billing.store.db import database_url, make_engine
from blocks.bill_run_settings import BillRunSettings
from blocks.billing_database import BillingDatabase
from blocks.provisioning_webhook import ProvisioningWebhook


class BlockNotUsable(RuntimeError):
    """A stored block exists but cannot be used (it fails validation, or the server failed):
    the run stops here rather than fall back to another database or a plain-text SMTP."""


B = TypeVar("B", bound=Block)


def load_block(kind: type[B], name: str | None, default: Callable[[], B] | None = None) -> B | None:
    """The block ``name`` of type ``kind``, the one loader every flow uses.

    Only when no block document of that name exists (or no name is given) is ``default()``
    used (None without a default). Anything else raises ``BlockNotUsable`` naming the block
    and why: a stored block that fails validation is a configuration error, not a reason to
    use the defaults.
    """
    if not name:
        return default() if default is not None else None
    try:
        return kind.load(name)
    except ValueError as error:
        if isinstance(error.__cause__, ObjectNotFound):
            return default() if default is not None else None
        raise BlockNotUsable(
            f"the {kind.get_block_type_name()} block {name!r} cannot be used: {error}"
        ) from error


def load_settings(name: str | None) -> BillRunSettings:
    """The named BillRunSettings block, or the BRM defaults when there is none."""
    settings = load_block(BillRunSettings, name, BillRunSettings)
    assert settings is not None
    return settings


def resolve_database_url(block_name: str | None) -> str:
    """The BillingDatabase block's URL, else ``BILLING_DATABASE_URL``, else var/billing.db."""
    block = load_block(BillingDatabase, block_name)
    return block.url.get_secret_value() if block else database_url()


def load_webhook(name: str | None) -> ProvisioningWebhook | None:
    return load_block(ProvisioningWebhook, name)


def engine_for(block_name: str | None) -> Engine:
    """One engine (and pool) per process, database block and BILLING_DATABASE_URL.

    Without a block the URL comes from BILLING_DATABASE_URL, which ``billing run --database``
    sets: an engine cached by the block name alone kept the first run's database for every
    later run in the same process (a CLI test then billed another test's database).
    """
    return _engine(block_name, os.environ.get("BILLING_DATABASE_URL"))


@cache
def _engine(block_name: str | None, _environment_url: str | None) -> Engine:
    return make_engine(resolve_database_url(block_name))


engine_for.cache_clear = _engine.cache_clear  # type: ignore[attr-defined]
engine_for.cache_info = _engine.cache_info  # type: ignore[attr-defined]


def ensure_concurrency_limit(name: str, limit: int) -> None:
    """Create the global concurrency limit ``name`` when the server has none by that name.

    An operator's existing limit is left as it is (see docs/operations.md).
    """
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=name, limit=limit)
            )


def transient_only(_task: Task[Any, Any], _run: TaskRun, state: State[Any]) -> bool:
    """Retry on transient database errors only (lost connection, lock, serialization)."""
    try:
        state.result()
    except OperationalError:
        return True
    except Exception:
        return False
    return False


# The run form's optional fields. ``date | None = None`` would render as an "any of" (date or
# null) picker; these render as one plain date (date-time, list, number) field. Their default
# is pydantic's MISSING (``NOT_GIVEN``), not None: a None default puts ``"default": null`` in
# the deployment's schema, and the UI's form then refuses an empty field ("None is not of
# type 'string'"). Without a default the field may stay empty (null). ``given()`` turns both
# into None at the flow edge; ``run_date``/``run_moment`` into the scheduled date (time).
NOT_GIVEN: Any = MISSING
RunDate = Annotated[date | None | MISSING, WithJsonSchema({"type": "string", "format": "date"})]
RunMoment = Annotated[
    datetime | None | MISSING, WithJsonSchema({"type": "string", "format": "date-time"})
]
TextList = Annotated[
    list[str] | None | MISSING, WithJsonSchema({"type": "array", "items": {"type": "string"}})
]
Count = Annotated[int | None | MISSING, WithJsonSchema({"type": "integer", "minimum": 1})]


def given(value: Any) -> Any:
    """None for an optional run-form field left empty: not passed (MISSING), null, or, in
    the parameters Prefect recorded for an in-process call, MISSING as JSON encoded it."""
    if value is MISSING or (isinstance(value, dict) and value.get("_name") == "MISSING"):
        return None
    return value


def scheduled_moment() -> datetime:
    """When this flow run was scheduled to start, naive UTC (now for a run started by hand).

    A scheduled run that starts late (a worker down, the previous run still going) still
    runs for the moment it was scheduled for, and its name says which.
    """
    start: datetime = current_run.scheduled_start_time
    return start.astimezone(UTC).replace(tzinfo=None, microsecond=0)


def run_date(value: date | str | None) -> date:
    """The flow edge is where "not given" becomes the scheduled date; nothing below reads
    the clock."""
    value = given(value)
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    return value or scheduled_moment().date()


def run_moment(value: datetime | str | None) -> datetime:
    """Cn285 *Process Now* at the flow edge: naive UTC like usage stamps; "not given" is the
    moment the run was scheduled for (now, for a run started by hand)."""
    value = given(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value is None:
        return scheduled_moment()
    if value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def dated_run_name() -> str:
    """``bill-day 2027-02-01``: the flow's name and the date it runs as of (``as_of``, else
    the scheduled date); ``(dry run)`` when it writes nothing. For ``flow_run_name=``."""
    parameters = current_run.parameters
    name = f"{current_run.flow_name} {run_date(parameters.get('as_of')).isoformat()}"
    return f"{name} (dry run)" if parameters.get("dry_run") else name


def timed_run_name() -> str:
    """``contract-change-process 2027-01-01 00:05``: a daemon's name and its Process Now."""
    moment = run_moment(current_run.parameters.get("process_now"))
    return f"{current_run.flow_name} {moment:%Y-%m-%d %H:%M}"


class DaemonFailed(RuntimeError):
    """Some accounts failed: the run ends Failed and names them; the next run retries them."""
