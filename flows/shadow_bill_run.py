"""shadow-bill-run: bill day's billing as a dry run over the whole due population, compared
with each account's previous cycle. Writes nothing to the billing tables.

The job is ``billing.jobs.shadow_bill_run`` (the definition of the previous cycle is in
``billing.ops.shadow``, the comparison in ``billing.domain.shadow``). This flow is its thin
adapter: blocks in, the job run with ``PrefectRunner`` (a task run per batch, at most
``children`` at once under the ``bill-day-batches`` limit, one progress bar), the CSV under
``output_dir/<as_of>/<run id>/``, the tables out. ``publish_shadow`` also serves bill day's
gate (``flows/bill_day.py``, ``shadow_gate``).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.context import get_run_context
from pydantic import MISSING, WithJsonSchema

from billing.domain.shadow import Kind, Thresholds, amount
from billing.jobs import shadow_bill_run as job
from billing.jobs.shadow_bill_run import ShadowJob, ShadowResult, outcome
from billing.ops.run_report import count, money, shown
from flows.jobs import BlockDatabase, PrefectRunner
from flows.report import Measures, RunProgress, file_text, publish_table
from flows.runtime import (
    NOT_GIVEN,
    RunDate,
    TextList,
    dated_run_name,
    given,
    load_seller,
    load_settings,
    run_date,
)

BATCH_LIMIT = "bill-day-batches"
SELLER_BLOCK = "default"
ROWS_SHOWN = 1_000
"""Flagged accounts in the table artifact; the CSV holds them all."""

# One plain field each in the run form (flows/runtime.py says why): a threshold is a decimal
# typed as text (a number field would send a float), a limit a count that may stay empty.
Threshold = Annotated[
    Decimal, WithJsonSchema({"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"})
]
Limit = Annotated[int | None | MISSING, WithJsonSchema({"type": "integer", "minimum": 0})]


@flow(name="shadow-bill-run", flow_run_name=dated_run_name)
def shadow_bill_run(
    as_of: RunDate = NOT_GIVEN,
    accounts: TextList = NOT_GIVEN,
    threshold_amount: Threshold = Decimal("1.00"),
    threshold_percent: Threshold = Decimal("5"),
    settings_block: str = "default",
    database_block: str = "default",
) -> dict[str, Any]:
    """Shadow bill run: bill day as a dry run, compared with the previous cycle per account.

    Args:
        as_of: The bill date to shadow. Leave it empty for the date the run was scheduled
            for (today, for a run started by hand).
        accounts: Account refs: only these accounts. Empty: every account that is due.
        threshold_amount: An account has changed when its gross moved by more than this
            amount (in its currency) and by more than threshold_percent. 0: by percent only.
        threshold_percent: ...and by more than this percentage of its previous gross.
            0: by amount only.
        settings_block: Name of the Bill Run Settings block (children, per_batch,
            fetch_size, loglevel, output_dir, files_url); its defaults when none exists.
        database_block: Name of the Billing Database block; BILLING_DATABASE_URL when none
            exists.
    """
    as_of = run_date(as_of)
    settings = load_settings(settings_block)
    logger = get_run_logger()
    logger.setLevel(settings.log_level)
    run_id = str(get_run_context().flow_run.id)
    title = f"Shadow bill run {as_of}"
    shadow = ShadowJob(
        database=BlockDatabase(database_block),
        as_of=as_of,
        run_id=run_id,
        per_batch=settings.per_batch,
        children=settings.children,
        fetch_size=settings.fetch_size,
        account_refs=given(accounts),
        seller_country=load_seller(SELLER_BLOCK).country,
        thresholds=Thresholds(Decimal(threshold_amount), Decimal(threshold_percent)),
        csv_path=Path(settings.output_dir) / as_of.isoformat() / run_id / job.CSV_NAME,
    )
    progress = RunProgress("shadow-bill-run-progress", title, job.PROGRESS)
    result = job.shadow_bill_run(PrefectRunner(progress, batch_limit=BATCH_LIMIT), shadow)
    logger.info("%s: %s", title, outcome(result.report))
    summary = publish_shadow(result, settings, "shadow-bill-run", title)
    progress.done(outcome(result.report))
    return summary


def publish_shadow(result: ShadowResult, settings: Any, key: str, title: str) -> dict[str, Any]:
    """Three tables: ``<key>-summary`` (counts, totals, the CSV), ``<key>-accounts`` (the
    flagged accounts, the first ``ROWS_SHOWN``), ``<key>-totals`` (per currency). Returns the
    summary's values."""
    report, billing = result.report, result.billing
    measures = Measures()
    measures.add("as_of", report.as_of)
    measures.add("threshold amount", report.thresholds.absolute)
    measures.add("threshold percent", report.thresholds.percent)
    measures.add("bill units due", billing.units)
    measures.add("bills (dry run)", billing.bills)
    measures.add("accounts compared", report.compared)
    measures.add("accounts unchanged", report.unchanged)
    for kind in Kind:
        measures.add(f"accounts {kind}", report.counts.get(kind, 0))
    for t in report.totals:
        measures.money(f"previous gross {t.currency}", t.previous_gross, t.currency)
        measures.money(f"gross {t.currency}", t.now_gross, t.currency)
    if result.csv_path is not None:
        measures.add(
            "CSV",
            str(result.csv_path),
            file_text(result.csv_path, settings.output_dir, settings.files_url),
        )
    summary = measures.publish(f"{key}-summary", title)
    shown_rows = report.changes[:ROWS_SHOWN]
    more = len(report.changes) - len(shown_rows)
    publish_table(
        [
            {
                "kind": str(c.kind),
                "account": c.account,
                "currency": c.currency,
                "previous bills": count(c.previous_bills),
                "previous gross": money(c.previous_gross, c.currency) if c.currency else "",
                "bills": count(c.now_bills),
                "gross": money(c.now_gross, c.currency) if c.currency else "",
                "change": amount(c.change, c.currency) if c.currency else "",
                "change %": shown(c.percent),
                "reason": c.reason,
            }
            for c in shown_rows
        ],
        key=f"{key}-accounts",
        description=f"{title}: accounts new, missing, changed or failed"
        + (f" (the first {count(len(shown_rows))}; {count(more)} more in the CSV)" if more else ""),
    )
    publish_table(
        [
            {
                "currency": t.currency,
                "previous bills": count(t.previous_bills),
                "previous gross": money(t.previous_gross, t.currency),
                "bills": count(t.now_bills),
                "gross": money(t.now_gross, t.currency),
                "change": money(t.change, t.currency),
                "change %": shown(t.percent),
            }
            for t in report.totals
        ],
        key=f"{key}-totals",
        description=f"{title}: totals per currency against the previous cycle",
    )
    return summary
