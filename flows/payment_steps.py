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

from billing.documents.seller import Seller
from billing.jobs.bill_day import Payments
from billing.payments.config import PaymentConfig, RetryPolicy
from billing.payments.errors import BankDetailsError
from billing.payments.sandbox import SandboxGateway
from billing.payments.sepa import Creditor
from blocks.bill_run_settings import BillRunSettings
from blocks.payment_gateway import PaymentGateway as GatewayBlock
from blocks.payment_settings import PaymentSettings
from flows.report import Measures, file_text
from flows.runtime import load_block, load_seller

DEFAULT_BLOCK = "default"


class SellerNotACreditor(ValueError):
    """The Seller Identity cannot collect by SEPA direct debit as it stands."""


def creditor_of(seller: Seller, block: str = DEFAULT_BLOCK) -> Creditor | None:
    """The SEPA creditor of the files: the seller of the invoices, field for field (name,
    IBAN, BIC, creditor identifier), so the invoice, its XML and the pain.008/pain.001 name
    one company. None when the seller has no creditor identifier (no direct debit)."""
    if not seller.creditor_id:
        return None
    missing = [name for name in ("iban", "bic") if not getattr(seller, name)]
    if missing:
        raise SellerNotACreditor(
            f"Seller Identity block {block!r}: {', '.join(missing)} required to collect by "
            "direct debit (creditor_id is set)"
        )
    creditor = Creditor(seller.name, seller.iban, seller.bic, seller.creditor_id)
    try:
        return creditor.checked()
    except BankDetailsError as error:
        raise SellerNotACreditor(f"Seller Identity block {block!r}: {error}") from None


# The creditor fields a Payment Gateway block had before the seller became the creditor.
OLD_CREDITOR_FIELDS = {
    "creditor_name": "name",
    "creditor_iban": "iban",
    "creditor_bic": "bic",
    "creditor_id": "creditor_id",
}


def _no_second_creditor(
    gateway: GatewayBlock, block: str, creditor: Creditor | None, seller_block: str
) -> None:
    """A Payment Gateway block saved before the seller became the creditor may still hold
    creditor fields: they must agree with the seller, or the run stops (never a silent
    switch to another creditor in the SEPA files)."""
    extra = gateway.model_extra or {}
    for old, field in OLD_CREDITOR_FIELDS.items():
        if old not in extra:
            continue
        now = getattr(creditor, field) if creditor is not None else ""
        if extra[old] != now:
            raise SellerNotACreditor(
                f"Payment Gateway block {block!r} still has {old} {extra[old]!r}, but the SEPA "
                f"creditor is the Seller Identity block {seller_block!r} ({field} {now!r}): "
                "set it on the seller and delete the field from the gateway block"
            )


def payments_setup(
    output_dir: str, block: str = DEFAULT_BLOCK, seller_block: str = DEFAULT_BLOCK
) -> Payments:
    """The gateway and the payment configuration from the blocks (defaults when none is
    saved), the seller as SEPA creditor; SEPA files go under ``output_dir`` (the Bill Run
    Settings' output folder)."""
    gateway_block = load_block(GatewayBlock, block, GatewayBlock)
    settings = load_block(PaymentSettings, block, PaymentSettings)
    assert gateway_block is not None and settings is not None
    creditor = creditor_of(load_seller(seller_block), seller_block)
    _no_second_creditor(gateway_block, block, creditor, seller_block)
    config = PaymentConfig(
        output_dir=Path(output_dir),
        creditor=creditor,
        retry=RetryPolicy(tuple(settings.retry_days)),
        debit_lead_days=settings.debit_lead_days,
        debit_horizon_days=settings.debit_horizon_days,
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
