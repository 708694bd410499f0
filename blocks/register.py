"""Create the "default" block documents the deployments name: bill-run settings and database.

    python -m blocks.register [--database URL] [--output-dir DIR] [--children N] [--overwrite]

Runs against the server of ``PREFECT_API_URL``. A block that exists already is kept (an
operator may have tuned it in the UI) unless ``--overwrite`` is given. The database URL comes
from ``--database``, else ``BILLING_DATABASE_URL``, else ``var/billing.db``; a relative SQLite
path or output directory is made absolute, because flow runs may start in another directory.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect.blocks.core import Block

from blocks.bill_run_settings import BillRunSettings
from blocks.billing_database import BillingDatabase

DEFAULT = "default"


def absolute_sqlite(url: str) -> str:
    """``sqlite:///var/x.db`` with an absolute path; any other URL as it is."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        return prefix + str(Path(url.removeprefix(prefix)).resolve())
    return url


def _save(block: Block, name: str, overwrite: bool) -> str:
    """Save ``block`` as ``name`` unless one exists and ``overwrite`` is off; say which."""
    if not overwrite:
        try:
            type(block).load(name)
            return "kept"
        except ValueError:
            pass
    block.save(name, overwrite=True)
    return "saved"


def register(
    *,
    database_url: str | None = None,
    output_dir: str | None = None,
    children: int | None = None,
    overwrite: bool = False,
) -> dict[str, str]:
    """Create BillRunSettings "default" and BillingDatabase "default"; what happened to each."""
    from billing.db import database_url as default_database_url

    settings = BillRunSettings()
    settings.output_dir = str(Path(output_dir or settings.output_dir).resolve())
    if children:
        settings.children = children
    database = BillingDatabase(url=absolute_sqlite(database_url or default_database_url()))
    return {
        f"bill-run-settings/{DEFAULT}": _save(settings, DEFAULT, overwrite),
        f"billing-database/{DEFAULT}": _save(database, DEFAULT, overwrite),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m blocks.register", description=__doc__)
    parser.add_argument("--database", help="billing database URL (default BILLING_DATABASE_URL)")
    parser.add_argument("--output-dir", help="BillRunSettings.output_dir (default var/output)")
    parser.add_argument("--children", type=int, help="BillRunSettings.children (default 5)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing blocks")
    args = parser.parse_args(argv)
    done = register(
        database_url=args.database,
        output_dir=args.output_dir,
        children=args.children,
        overwrite=args.overwrite,
    )
    for name, what in done.items():
        print(f"block {name}: {what}")


if __name__ == "__main__":
    main()
