"""preview: the next bill of one account as bill day would make it, written nowhere.

The preview itself is ``billing.ops.preview.preview_account``: the real bill-run path in a
transaction it rolls back. This flow is its thin adapter: the blocks in (database, the seller
whose VAT rules bill and whose identity a PDF prints, the output folder), the preview run,
its lines and totals published as artifacts (``preview-lines``, ``preview-totals``,
``preview-summary``), and, with ``pdf``, its PDF marked as a preview written under
``<output_dir>/previews/``. Deployed without a schedule as ``preview/on-demand``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow
from prefect.runtime import flow_run as current_run

from billing.documents.render import write_previews
from billing.domain.errors import BillingError
from billing.ops.preview import preview_account, preview_rows, preview_summary, preview_totals
from flows.report import file_markdown, publish_markdown, publish_table
from flows.runtime import (
    NOT_GIVEN,
    RunDate,
    engine_for,
    load_seller,
    load_settings,
    run_date,
)


class PreviewFailed(BillingError):
    """Bill day would fail the account: the preview says why (its billing issue)."""


def preview_run_name() -> str:
    """``preview ACC-1 2027-02-01``: the account and the date previewed."""
    parameters = current_run.parameters
    as_of = run_date(parameters.get("as_of")).isoformat()
    return f"preview {parameters.get('account')} {as_of}"


@flow(name="preview", flow_run_name=preview_run_name)
def preview(
    account: str,
    as_of: RunDate = NOT_GIVEN,
    pdf: bool = False,
    database_block: str = "default",
    settings_block: str = "default",
    seller_block: str = "default",
) -> dict[str, Any]:
    """Invoice preview: what bill day would bill for one account on a date; writes nothing.

    Args:
        account: The account's ref.
        as_of: The bill day to preview. Leave it empty for the date the run was scheduled
            for (today, for a run started by hand).
        pdf: Also write the bill's PDF, marked "PREVIEW — not an invoice", without a number
            or Factur-X XML, under the settings' output_dir, in previews/.
        database_block: Name of the Billing Database block; BILLING_DATABASE_URL when none
            exists.
        settings_block: Name of the Bill Run Settings block (output_dir, files_url).
        seller_block: Name of the Seller Identity block: its country's VAT rules bill (as
            on bill day), its identity is printed on the PDF.
    """
    day = run_date(as_of)
    seller = load_seller(seller_block)
    engine = engine_for(database_block or None)
    result = preview_account(engine, account, day, seller_country=seller.country, documents=pdf)
    summary = preview_summary(result)
    rows = preview_rows(result)
    if rows:
        publish_table(rows, "preview-lines", f"Preview of {account} as of {day}: lines")
        publish_table(
            preview_totals(result), "preview-totals", f"Preview of {account} as of {day}: bills"
        )
    text = [f"# {summary}"]
    files: list[str] = []
    if pdf and result.invoices:
        settings = load_settings(settings_block)
        target = Path(settings.output_dir) / "previews" / f"{account}-{day.isoformat()}.pdf"
        files = [str(p) for p in write_previews(result.invoices, target, seller)]
        text += [
            f"- {file_markdown(Path(f).name, f, settings.output_dir, settings.files_url)}"
            for f in files
        ]
    publish_markdown("\n\n".join(text), "preview-summary", f"Preview of {account} as of {day}")
    if result.failed:
        raise PreviewFailed(summary)
    return {
        "account": account,
        "as of": day,
        "bills": len(result.bills),
        "lines": len(rows),
        "totals": {currency: list(sums) for currency, sums in result.totals.items()},
        "pdf": files,
    }
