"""What every flow needs: its blocks (with local fallbacks), an engine, and retry rules."""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import cache
from typing import Any

from prefect import Task
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.objects import TaskRun
from prefect.exceptions import ObjectNotFound
from prefect.states import State
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from billing.db import database_url, make_engine
from blocks.bill_run_settings import BillRunSettings
from blocks.billing_database import BillingDatabase
from blocks.provisioning_webhook import ProvisioningWebhook


def _load(block: type[Any], name: str | None) -> Any:
    if not name:
        return None
    try:
        return block.load(name)
    except ValueError:  # no block document of that name: use the local fallback
        return None


def load_settings(name: str | None) -> BillRunSettings:
    """The named BillRunSettings block, or the BRM defaults when there is none."""
    return _load(BillRunSettings, name) or BillRunSettings()


def resolve_database_url(block_name: str | None) -> str:
    """The BillingDatabase block's URL, else ``BILLING_DATABASE_URL``, else var/billing.db."""
    block = _load(BillingDatabase, block_name)
    return block.url.get_secret_value() if block else database_url()


def load_webhook(name: str | None) -> ProvisioningWebhook | None:
    return _load(ProvisioningWebhook, name)


@cache
def engine_for(block_name: str | None) -> Engine:
    """One engine (and pool) per process and database block."""
    return make_engine(resolve_database_url(block_name))


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


def today_if_none(value: date | None) -> date:
    """The flow edge is where "not given" becomes today; nothing below reads the clock."""
    return value or date.today()


def now_if_none(value: datetime | None) -> datetime:
    """Cn285 *Process Now* at the flow edge: naive UTC like usage stamps; "not given" is now."""
    if value is None:
        return datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    if value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


class DaemonFailed(RuntimeError):
    """Some accounts failed: the run ends Failed and names them; the next run retries them."""
