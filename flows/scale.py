"""Bill day on a Dask cluster: the same DAG, its batches and steps run by Dask workers.

Prefect fixes a flow's task runner when the flow is decorated, so this module runs
``bill_day.with_options(task_runner=DaskTaskRunner(address=...))``: nothing of the DAG changes,
only where the submitted tasks (``bill_accounts_batch``, ``apply_cycle_fees``,
``collect_payments``, ``refund_payments``) execute, and the documents step renders its
batches on the same cluster (``flows.document_steps.documents_scheduler``). At most
``BillRunSettings.children`` batches are in flight and the global limit ``bill-day-batches``
still holds, so raise both with the cluster's size.

Tasks on a Dask worker resolve the database themselves (``flows.runtime.engine_for``): name a
``BillingDatabase`` block (``database_block``), which they load through the Prefect API the
run's context carries. ``BILLING_DATABASE_URL`` only reaches workers whose own environment has
it (docs/operations.md, "Scaling out with Dask").

    python -m flows.scale --address tcp://scheduler:8786 --as-of 2027-02-01
"""

from __future__ import annotations

import argparse
import os
from datetime import date
from typing import Any

from prefect_dask import DaskTaskRunner

from flows.bill_day import bill_day

DASK_ADDRESS_ENV = "BILLING_DASK_ADDRESS"


class NoDaskAddress(ValueError):
    """Neither an address nor ``BILLING_DASK_ADDRESS`` says where the scheduler is."""


def dask_address(address: str | None = None) -> str:
    """The scheduler address given, else ``BILLING_DASK_ADDRESS``."""
    found = address or os.environ.get(DASK_ADDRESS_ENV)
    if not found:
        raise NoDaskAddress(f"give a Dask scheduler address or set {DASK_ADDRESS_ENV}")
    return found


def bill_day_on_dask(address: str | None = None, **parameters: Any) -> dict[str, Any]:
    """Run the bill-day flow with its tasks on the Dask scheduler at ``address``.

    parameters: those of ``flows.bill_day.bill_day`` (as_of, dry_run, accounts, blocks).
    """
    runner = DaskTaskRunner(address=dask_address(address))
    return bill_day.with_options(task_runner=runner)(**parameters)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.scale", description=__doc__)
    parser.add_argument("--address", help=f"Dask scheduler (default ${DASK_ADDRESS_ENV})")
    parser.add_argument("--as-of", type=date.fromisoformat, help="the run's date (default today)")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--account", action="append", help="only this account ref (repeat)")
    parser.add_argument("--settings-block", default="default")
    parser.add_argument("--database-block", default="default")
    args = parser.parse_args(argv)
    summary = bill_day_on_dask(
        args.address,
        as_of=args.as_of,
        dry_run=args.dry_run,
        accounts=args.account,
        settings_block=args.settings_block,
        database_block=args.database_block,
    )
    for measure, value in summary.items():
        print(f"{measure}: {value}")


if __name__ == "__main__":
    main()
