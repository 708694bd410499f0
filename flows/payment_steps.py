"""Bill day's payment steps, the Prefect side: their configuration from the blocks, and
their tables.

Collection and refunds themselves (BRM ``pin_collect`` and ``pin_refund``) are steps of the
bill-day job (``billing.jobs.bill_day``): they run side by side with cycle fees once the new
bills are numbered, and the job's ``PAYMENT_RETRY`` runs them again after a transient error (a
lost database connection, or a card processor that failed transiently: its charges are stored
pending, so the rerun replays them under the same idempotency keys). After the last run,
charges still pending are reported and resumed by the next run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from billing.jobs.bill_day import Payments
from billing.payments.config import PaymentConfig, RetryPolicy
from billing.payments.sandbox import SandboxGateway
from billing.payments.sepa import Creditor
from blocks.bill_run_settings import BillRunSettings
from blocks.payment_gateway import PaymentGateway as GatewayBlock
from blocks.payment_settings import PaymentSettings
from flows.report import Measures, file_text
from flows.runtime import load_block

DEFAULT_BLOCK = "default"


def payments_setup(output_dir: str, block: str = DEFAULT_BLOCK) -> Payments:
    """The gateway and the payment configuration from the blocks (defaults when none is
    saved); SEPA files go under ``output_dir`` (the Bill Run Settings' output folder)."""
    gateway_block = load_block(GatewayBlock, block, GatewayBlock)
    settings = load_block(PaymentSettings, block, PaymentSettings)
    assert gateway_block is not None and settings is not None
    creditor = Creditor(
        name=gateway_block.creditor_name,
        iban=gateway_block.creditor_iban,
        bic=gateway_block.creditor_bic,
        creditor_id=gateway_block.creditor_id,
    )
    config = PaymentConfig(
        output_dir=Path(output_dir),
        creditor=creditor,
        retry=RetryPolicy(tuple(settings.retry_days)),
        debit_lead_days=settings.debit_lead_days,
        min_refund=settings.min_refund,
        card_chunk=settings.card_chunk,
        page_size=settings.page_size,
        file_transactions=settings.file_transactions,
    )
    gateway = SandboxGateway(
        gateway_block.sandbox_ledger,
        transient_failures=gateway_block.sandbox_transient_failures,
    )
    return Payments(gateway, config)


AMOUNTS = {"debit_amounts": "direct debits pending", "transfer_amounts": "transfers pending"}


def publish_payments(
    key: str, description: str, summary: dict[str, Any], settings: BillRunSettings
) -> None:
    """A payment step's table: counts, amounts per currency as money, files, and each
    account or bill a step left out, one row each with why."""
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
