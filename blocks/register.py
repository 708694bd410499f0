"""Create the "default" block documents the deployments of prefect.yaml name.

    python -m blocks.register [--database URL] [--data-dir DIR] [--output-dir DIR]
                              [--files-url URL] [--smtp-port N] [--children N] [--overwrite]

Runs against the server of ``PREFECT_API_URL`` (and ``PREFECT_API_AUTH_STRING``). It saves,
each as "default":

- ``bill-run-settings``: BRM defaults, ``output_dir`` (``<data-dir>/output``) and ``files_url``;
- ``billing-database``: ``--database``, else ``BILLING_DATABASE_URL``, else ``var/billing.db``;
- ``smtp-server``: the local mail catcher, 127.0.0.1:``--smtp-port``, no TLS, no login;
- ``document-store``: ``<data-dir>/documents``;
- ``seller-identity``: the demo seller (``billing.documents.seller.DEFAULT_SELLER``);
- ``payment-gateway``: the sandbox processor, its ledger ``<data-dir>/sandbox-gateway.sqlite3``,
  the demo seller as SEPA creditor (one identity on invoices and in the SEPA files);
- ``payment-settings``: the defaults.

``<data-dir>`` is ``var`` in the checkout unless given. A relative SQLite path or folder is made
absolute, because flow runs may start in another directory. A block that exists already is
kept (an operator may have tuned it in the UI) unless ``--overwrite`` is given.

bill-day also names ``webhook_block: provisioning``. No such block is created: the provisioning
hook is optional, and without a ``provisioning-webhook/provisioning`` block bill day notifies
nobody (as with ``simulate_agent``). Create one to turn the hook on (docs/operations.md).
Production values (a real SMTP relay, your seller, your gateway) go in with ``--overwrite``
skipped, by saving the blocks from the UI or code: docs/operations.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect.blocks.core import Block

from billing.documents.seller import DEFAULT_SELLER
from blocks.bill_run_settings import BillRunSettings
from blocks.billing_database import BillingDatabase
from blocks.document_store import DocumentStoreLocation
from blocks.load import load_block
from blocks.payment_gateway import PaymentGateway
from blocks.payment_settings import PaymentSettings
from blocks.seller_identity import SellerIdentity
from blocks.smtp_server import SmtpServer

DEFAULT = "default"
ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
DEFAULT_SMTP_PORT = 8025  # the flows' fallback without a block (flows/runtime.py load_smtp)


def absolute_sqlite(url: str) -> str:
    """``sqlite:///var/x.db`` with an absolute path; any other URL as it is."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        return prefix + str(Path(url.removeprefix(prefix)).resolve())
    return url


def _save(block: Block, name: str, overwrite: bool) -> str:
    """Save ``block`` as ``name`` unless one exists and ``overwrite`` is off; say which.

    A stored block that fails validation is not replaced behind the operator's back:
    ``load_block`` raises ``BlockNotUsable`` naming it (``--overwrite`` replaces it)."""
    if not overwrite and load_block(type(block), name) is not None:
        return "kept"
    block.save(name, overwrite=True)
    return "saved"


def default_blocks(
    *,
    database_url: str | None = None,
    data_dir: str | Path | None = None,
    output_dir: str | Path | None = None,
    files_url: str = "",
    smtp_port: int = DEFAULT_SMTP_PORT,
    children: int | None = None,
) -> dict[str, Block]:
    """The "default" blocks of a local stack, by slug; folders absolute."""
    from billing.store.db import database_url as default_database_url

    data = Path(data_dir or ROOT / "var").resolve()
    settings = BillRunSettings(
        output_dir=str(Path(output_dir or data / "output").resolve()), files_url=files_url
    )
    if children:
        settings.children = children
    # One demo company on the invoices and in the SEPA files: the seller is the creditor.
    gateway = PaymentGateway(sandbox_ledger=str(data / "sandbox-gateway.sqlite3"))
    seller = SellerIdentity(**DEFAULT_SELLER.to_dict())
    return {
        "bill-run-settings": settings,
        "billing-database": BillingDatabase(
            url=absolute_sqlite(database_url or default_database_url())
        ),
        "smtp-server": SmtpServer(
            host=LOOPBACK, port=smtp_port, security="none", verify_certificate=False
        ),
        "document-store": DocumentStoreLocation(url=str(data / "documents")),
        "seller-identity": seller,
        "payment-gateway": gateway,
        "payment-settings": PaymentSettings(),
    }


def register(
    *,
    database_url: str | None = None,
    data_dir: str | Path | None = None,
    output_dir: str | Path | None = None,
    files_url: str = "",
    smtp_port: int = DEFAULT_SMTP_PORT,
    children: int | None = None,
    overwrite: bool = False,
) -> dict[str, str]:
    """Save every block of ``default_blocks`` as "default"; what happened to each ("saved"
    or "kept"), by ``slug/default``."""
    blocks = default_blocks(
        database_url=database_url,
        data_dir=data_dir,
        output_dir=output_dir,
        files_url=files_url,
        smtp_port=smtp_port,
        children=children,
    )
    return {f"{slug}/{DEFAULT}": _save(block, DEFAULT, overwrite) for slug, block in blocks.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m blocks.register",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--database", help="billing database URL (default BILLING_DATABASE_URL)")
    parser.add_argument("--data-dir", help="documents, output, sandbox ledger (default var)")
    parser.add_argument("--output-dir", help="BillRunSettings.output_dir (default DATA/output)")
    parser.add_argument("--files-url", default="", help="BillRunSettings.files_url")
    parser.add_argument(
        "--smtp-port",
        type=int,
        default=DEFAULT_SMTP_PORT,
        help=f"the local mail catcher's port (default {DEFAULT_SMTP_PORT})",
    )
    parser.add_argument("--children", type=int, help="BillRunSettings.children (default 5)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing blocks")
    args = parser.parse_args(argv)
    done = register(
        database_url=args.database,
        data_dir=args.data_dir,
        output_dir=args.output_dir,
        files_url=args.files_url,
        smtp_port=args.smtp_port,
        children=args.children,
        overwrite=args.overwrite,
    )
    for name, what in done.items():
        print(f"block {name}: {what}")


if __name__ == "__main__":
    main()
