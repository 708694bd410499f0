"""What every flow needs: its blocks (strictly loaded), its database, and the run form's types.

Configuration reaches a flow in two ways only: its blocks, read by ``load_block`` (the one
loader: a missing block means the defaults, a broken one stops the run), and, for a run
started in this process without a database block (``billing run --database``, ``make demo``,
tests), the database URL given with ``database_given(url)``. Nothing here writes
``os.environ``; ``BILLING_DATABASE_URL`` is read, as the last fallback, never set.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime
from functools import cache
from typing import Annotated, Any

from prefect import Task
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.objects import TaskRun
from prefect.exceptions import ObjectNotFound
from prefect.runtime import flow_run as current_run
from prefect.states import State
from pydantic import MISSING, WithJsonSchema
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from billing.documents.mail import SmtpSettings
from billing.documents.seller import DEFAULT_SELLER, Seller
from billing.store.db import database_url, make_engine
from blocks.bill_run_settings import BillRunSettings
from blocks.billing_database import BillingDatabase
from blocks.document_store import DocumentStoreLocation
from blocks.load import BlockNotUsable, load_block
from blocks.provisioning_webhook import ProvisioningWebhook
from blocks.seller_identity import SellerIdentity
from blocks.smtp_server import SmtpServer

__all__ = ["BlockNotUsable", "load_block"]  # the loader lives in blocks/load.py

DEFAULT_STORE = "var/documents"
DEFAULT_SMTP = SmtpSettings(host="localhost", port=8025, security="none")

_GIVEN_DATABASE: ContextVar[str | None] = ContextVar("billing_database_given", default=None)


@contextmanager
def database_given(url: str | None) -> Iterator[None]:
    """Flows started inside the ``with`` block (in this thread, or in tasks it submits) use
    ``url`` when they have no database block; ``None`` changes nothing.

    This is how ``billing run --database``, ``make demo`` and tests choose the database of
    an in-process flow run without writing ``os.environ``.
    """
    if not url:
        yield
        return
    token = _GIVEN_DATABASE.set(url)
    try:
        yield
    finally:
        _GIVEN_DATABASE.reset(token)


def given_database() -> str | None:
    """The URL of the innermost ``database_given`` block, if any."""
    return _GIVEN_DATABASE.get()


def load_settings(name: str | None) -> BillRunSettings:
    """The named BillRunSettings block, or the BRM defaults when there is none."""
    settings = load_block(BillRunSettings, name, BillRunSettings)
    assert settings is not None
    return settings


def resolve_database_url(block_name: str | None) -> str:
    """The BillingDatabase block's URL; without that block, the URL ``database_given``
    names, else ``BILLING_DATABASE_URL``, else var/billing.db."""
    block = load_block(BillingDatabase, block_name)
    if block is not None:
        return block.url.get_secret_value()
    return database_url(given_database())


def load_webhook(name: str | None) -> ProvisioningWebhook | None:
    return load_block(ProvisioningWebhook, name)


def load_seller(name: str | None) -> Seller:
    """The SellerIdentity block as a ``Seller``, or the demo seller when there is none."""
    block = load_block(SellerIdentity, name)
    if block is None:
        return DEFAULT_SELLER
    return Seller.from_dict(block.model_dump(exclude={"block_type_slug"}))


def load_store_url(name: str | None) -> str:
    """The document store's folder or URL (``var/documents`` when there is no block)."""
    block = load_block(DocumentStoreLocation, name)
    return block.url if block is not None else DEFAULT_STORE


def load_smtp(name: str | None) -> SmtpSettings:
    """The SmtpServer block as ``SmtpSettings`` (``localhost:8025`` plain without one)."""
    block = load_block(SmtpServer, name)
    if block is None:
        return DEFAULT_SMTP
    return SmtpSettings(
        host=block.host,
        port=block.port,
        security=block.security,
        username=block.username,
        password=block.password.get_secret_value(),
        timeout=block.timeout_seconds,
        sender=block.sender,
        sender_name=block.sender_name,
        verify_certificate=block.verify_certificate,
        delivery_log=block.delivery_log,
    )


def engine_for(block_name: str | None) -> Engine:
    """One engine (and pool) per process, database block and fallback URL.

    Without a block the URL is the one ``database_given`` names, else BILLING_DATABASE_URL:
    an engine cached by the block name alone kept the first run's database for every later
    run in the same process (a CLI test then billed another test's database).
    """
    return _engine(block_name, database_url(given_database()))


@cache
def _engine(block_name: str | None, _fallback_url: str) -> Engine:
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
