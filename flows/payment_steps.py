"""Bill day's payment steps as Prefect tasks: BRM ``pin_collect`` and ``pin_refund``.

They run in ``bill_day._after_billing`` beside ``cycle_fees``, once ``invoices`` has numbered
the new bills. Each retries on transient errors only: a lost database connection, or a card
processor that failed transiently (its charges are stored pending, so the retry replays them
under the same idempotency keys). After the last retry, charges still pending are reported and
resumed by the next run.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from prefect import task
from prefect.client.schemas.objects import TaskRun
from prefect.runtime import flow_run, task_run
from prefect.states import State
from prefect.tasks import Task, exponential_backoff
from sqlalchemy.exc import OperationalError

from billing.payments import collect, refund
from billing.payments.config import PaymentConfig, RetryPolicy
from billing.payments.errors import GatewayUnavailable
from billing.payments.gateway import PaymentGateway
from billing.payments.sandbox import SandboxGateway
from billing.payments.sepa import Creditor
from blocks.payment_gateway import PaymentGateway as GatewayBlock
from blocks.payment_settings import PaymentSettings
from flows.report import Measures, file_text
from flows.runtime import engine_for, load_settings

RETRIES = 3
DEFAULT_BLOCK = "default"


def transient_or_gateway(_task: Task[Any, Any], _run: TaskRun, state: State[Any]) -> bool:
    """Retry on transient database errors and on a processor that failed transiently."""
    try:
        state.result()
    except (OperationalError, GatewayUnavailable):
        return True
    except Exception:
        return False
    return False


PAYMENT_RETRIES: dict[str, Any] = {
    "retries": RETRIES,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_condition_fn": transient_or_gateway,
}


def _load(block: type[Any], name: str) -> Any:
    try:
        return block.load(name)
    except ValueError:  # no block document of that name: the defaults
        return block()


def payment_config() -> tuple[PaymentGateway, PaymentConfig]:
    """The gateway and the configuration from the blocks (defaults when none is saved)."""
    settings_block = flow_run.parameters.get("settings_block", DEFAULT_BLOCK) or DEFAULT_BLOCK
    gateway_block = _load(GatewayBlock, DEFAULT_BLOCK)
    settings = _load(PaymentSettings, DEFAULT_BLOCK)
    creditor = Creditor(
        name=gateway_block.creditor_name,
        iban=gateway_block.creditor_iban,
        bic=gateway_block.creditor_bic,
        creditor_id=gateway_block.creditor_id,
    )
    config = PaymentConfig(
        output_dir=Path(load_settings(settings_block).output_dir),
        creditor=creditor,
        retry=RetryPolicy(tuple(settings.retry_days)),
        debit_lead_days=settings.debit_lead_days,
        min_refund=settings.min_refund,
        file_transactions=settings.file_transactions,
    )
    gateway = SandboxGateway(
        gateway_block.sandbox_ledger,
        transient_failures=gateway_block.sandbox_transient_failures,
    )
    return gateway, config


def _retry_if_transient(transient: list[str], step: str) -> None:
    """Raise (so Prefect retries) while some calls failed transiently and retries remain."""
    if transient and task_run.run_count <= RETRIES:
        raise GatewayUnavailable(
            f"{step}: the processor failed transiently for {', '.join(sorted(transient)[:20])}"
        )


@task(name="collect_payments", **PAYMENT_RETRIES)
def collect_payments(database: str | None, as_of: date, run_id: str) -> dict[str, Any]:
    """Collect open bills by card and SEPA direct debit (pin_collect)."""
    gateway, config = payment_config()
    result = collect.collect_payments(engine_for(database), as_of, gateway, config, run_id=run_id)
    _retry_if_transient(result.transient, "collect")
    summary = result.summary()
    _artifact("bill-day-collect", f"Collection as of {as_of}", summary)
    return summary


@task(name="refund_payments", **PAYMENT_RETRIES)
def refund_payments(database: str | None, as_of: date, run_id: str) -> dict[str, Any]:
    """Refund credit balances by card or SEPA credit transfer (pin_refund)."""
    gateway, config = payment_config()
    result = refund.refund_payments(engine_for(database), as_of, gateway, config, run_id=run_id)
    _retry_if_transient(result.transient, "refund")
    summary = result.summary()
    _artifact("bill-day-refund", f"Refunds as of {as_of}", summary)
    return summary


AMOUNTS = {"debit_amounts": "direct debits pending", "transfer_amounts": "transfers pending"}


def _artifact(key: str, description: str, summary: dict[str, Any]) -> None:
    """The step's table: counts, amounts per currency as money, files, and each account or
    bill a step left out, one row each with why."""
    settings = load_settings(flow_run.parameters.get("settings_block", DEFAULT_BLOCK))
    measures = Measures()
    for name, value in summary.items():
        if name.endswith("_amounts"):
            what = AMOUNTS.get(name, name.removesuffix("_amounts"))
            for currency, amount in value.items():
                measures.money(f"{what} {currency}", amount, currency)
        elif name == "files":
            for path in value:
                text = file_text(path, settings.output_dir, settings.files_url)
                measures.add(f"SEPA file {Path(path).name}", path, text)
        elif isinstance(value, dict):
            measures.add(name.replace("_", " "), len(value))
            for ref, why in value.items():
                measures.add(f"{name.replace('_', ' ')} {ref}", why)
        elif isinstance(value, list):
            measures.add(name.replace("_", " "), len(value))
            if value:
                measures.add(f"{name.replace('_', ' ')}: which", value)
        else:
            measures.add(name.replace("_", " "), value)
    measures.publish(key, description)
