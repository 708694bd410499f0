"""The Cn285 Billing daemon, defined once: bill every Invoicing Schedule due, then number.

    bill_accounts_batch (fanned out, at most ``children`` at once, in catch-up passes)
      -> number_invoices -> retire_planned_schedules

It bills with bill day's own steps (``billing.jobs.bill_day``): the due bill units (a closed
cycle, or immediate charges such as UTI lines) in batches, then numbering. There is no second
billing code path; deferred actions, cycle fees and payments stay bill day's. The Prefect
flow ``flows/billing_daemon.py`` runs it with ``PrefectRunner``; anything else with
``InProcessRunner``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from billing.jobs.bill_day import (
    Database,
    bill_batches,
    number_bills,
    numbered_count,
)
from billing.jobs.contract_item_renewal import retire_planned_schedules
from billing.jobs.runner import Call, Runner
from billing.ops import run_report
from billing.ops.billrun import BatchResult
from billing.ops.numbering import Numbered

PROGRESS = (("billing", 85), ("numbering", 10), ("retiring forecasts", 5))


@dataclass(frozen=True)
class BillingJob:
    """What the Billing daemon runs: the database (Engine or URL), *Process Now*'s date, the
    run id stamped on its bills, and how batches are cut and fanned out."""

    database: Database
    as_of: date
    run_id: str
    per_batch: int = 20_000
    children: int = 1
    fetch_size: int = 150_000
    seller_country: str | None = None
    """Whose VAT rules the bills follow (``billing.domain.vat``); None: the demo seller's."""


@dataclass
class BillingResult:
    billing: BatchResult
    numbered: list[Numbered] = field(default_factory=list)
    retired: int = 0


def billing_daemon(runner: Runner, job: BillingJob) -> BillingResult:
    """Bill the due units in batches (catch-up passes, like bill day), number, retire."""
    billing = bill_batches(
        runner,
        job.database,
        job.as_of,
        job.run_id,
        per_batch=job.per_batch,
        children=job.children,
        fetch_size=job.fetch_size,
        between_batches=False,
        seller_country=job.seller_country,
    )
    numbered = runner.step(Call("number_invoices", number_bills, (job.database,)))
    runner.progress("numbering", note=f"{run_report.count(numbered_count(numbered))} numbered")
    retired = runner.step(
        Call("retire_planned_schedules", retire_planned_schedules, (job.database,))
    )
    runner.progress("retiring forecasts", note=f"{retired} forecast line(s) retired")
    return BillingResult(billing, numbered, retired)
