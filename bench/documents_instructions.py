"""Render invoices in this one process, for counting instructions under cachegrind.

    bench/documents_instructions.py --db PATH --side pipeline|bare --render K

Wall-clock rates on a shared machine swing with other people's load; instruction counts do
not. The first call seeds PATH (60 accounts, as bench/documents.py seeds them) and bills it;
later calls reuse it. Each call reads and fills in the same 16 invoices, draws one to warm up,
then renders K more (K <= 15):
``pipeline`` is ``render_invoice`` (XML + our XSD, CII + Factur-X XSD, Factur-X PDF),
``bare`` is WeasyPrint on the already-filled HTML with the same stylesheet, fetcher and
variant. Instructions per invoice = (count at K=14 - count at K=4) / 10:

    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \\
        .venv/bin/python bench/documents_instructions.py --db /tmp/i.db --side bare --render 4
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from documents import bare_pdf  # noqa: E402  (bench/documents.py: the same bare call)

from billing.documents.model import invoice_ids, load_invoices  # noqa: E402
from billing.documents.pdf import InvoiceRenderer  # noqa: E402
from billing.documents.render import render_invoice  # noqa: E402
from billing.documents.seller import DEFAULT_SELLER  # noqa: E402
from billing.ingest.synthetic import seed  # noqa: E402
from billing.jobs.bill_day import run_bill_day  # noqa: E402
from billing.store.db import make_engine, unit_of_work  # noqa: E402
from billing.store.migrate import upgrade  # noqa: E402

START, AS_OF = date(2026, 10, 1), date(2026, 11, 1)
LOADED = 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--side", choices=("pipeline", "bare"), required=True)
    parser.add_argument("--render", type=int, default=4)
    args = parser.parse_args()
    engine = make_engine(f"sqlite:///{args.db}")
    if not args.db.exists():
        upgrade(engine)
        seed(engine, accounts=60, usage_per_account=3, start=START)
        run_bill_day(engine, AS_OF, "bench")
    with unit_of_work(engine) as session:  # the same reads and fills whatever K is
        ids = invoice_ids(session, bill_dates=(date.min, AS_OF))[:LOADED]
        invoices = list(load_invoices(session, ids))
    renderer = InvoiceRenderer(DEFAULT_SELLER)
    pages = [renderer.html(invoice) for invoice in invoices]
    for invoice, page in list(zip(invoices, pages, strict=True))[: args.render + 1]:
        if args.side == "pipeline":
            render_invoice(invoice, renderer)
        else:
            bare_pdf(renderer, page)


if __name__ == "__main__":
    main()
