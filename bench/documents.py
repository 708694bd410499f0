"""Invoice documents per second: the project's pipeline against a bare WeasyPrint loop.

    bench/documents.py --invoices N --processes P      (defaults 2000 and os.cpu_count())

Seeds a synthetic population (French and Portuguese accounts, some on direct debit) in a
SQLite file, bills it with ``run_bill_day``, then measures, with the same number of spawned
worker processes and the same batches of 50:
1. the pipeline: ``render_in_processes`` -- read the bills, XML export + our XSD, CII + the
   Factur-X XSD (+ the EN 16931 Schematron on the first invoice of each batch), the PDF/A-3b
   with the CII embedded as it is written (attachment + Factur-X XMP), both files written to
   a document store;
2. the bare loop: ``HTML(string=...).write_pdf()`` of the same template, already filled in,
   with the same stylesheet, URL fetcher (the logo) and PDF variant, and nothing else.
Both clocks start once every worker has started and warmed up (fonts, stylesheet, Schematron),
and stop when the last invoice is done. Prints both rates, then the ratio pipeline / bare.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, wait
from datetime import date
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from billing.billday import run_bill_day  # noqa: E402
from billing.db import make_engine, unit_of_work  # noqa: E402
from billing.documents import render as pipeline  # noqa: E402
from billing.documents.model import invoice_ids, load_invoices  # noqa: E402
from billing.documents.pdf import PDF_VARIANT, InvoiceRenderer  # noqa: E402
from billing.documents.seller import DEFAULT_SELLER  # noqa: E402
from billing.migrate import upgrade  # noqa: E402
from billing.synthetic import seed  # noqa: E402

START, AS_OF = date(2026, 10, 1), date(2026, 11, 1)
PER_BATCH = 50


@cache
def _bare_renderer() -> InvoiceRenderer:
    return InvoiceRenderer(DEFAULT_SELLER)


def _warm_bare() -> None:
    _bare_renderer()


def _warm_pipeline() -> None:
    from billing.documents.validation import _schematron

    pipeline._warm_up(DEFAULT_SELLER.to_dict())
    _schematron()


def _ready(_: int) -> int:
    time.sleep(0.3)  # long enough for every worker to take one
    return os.getpid()


def bare_batch(pages: list[str]) -> int:
    """The bare loop: WeasyPrint on already-filled HTML, same stylesheet and variant."""
    from weasyprint import HTML

    from billing.documents.fetcher import AssetFetcher

    renderer = _bare_renderer()
    for html in pages:  # the same fetcher, so the logo is drawn as in the pipeline
        HTML(string=html, url_fetcher=AssetFetcher(renderer._assets)).write_pdf(
            stylesheets=[renderer._css], font_config=renderer._fonts, pdf_variant=PDF_VARIANT
        )
    return len(pages)


def timed(processes: int, warm, work, batches: list) -> float:
    """Seconds for ``work`` over ``batches`` in a warmed-up pool of spawned processes."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context, initializer=warm) as pool:
        wait([pool.submit(_ready, n) for n in range(processes * 2)])
        started = time.perf_counter()
        for future in [pool.submit(work, batch) for batch in batches]:
            future.result()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-documents-"))
    url = f"sqlite:///{work / 'billing.db'}"
    engine = make_engine(url)
    upgrade(engine)
    seed(engine, accounts=args.invoices, usage_per_account=3, start=START)
    run_bill_day(engine, AS_OF, "bench")
    with unit_of_work(engine) as session:
        ids = invoice_ids(session, bill_dates=(date.min, AS_OF))[: args.invoices]
        invoices = list(load_invoices(session, ids))
    lines = sum(len(i.lines) for i in invoices)
    print(f"{len(ids):,} invoices ({lines / len(ids):.1f} lines each), {args.processes} processes")

    settings = pipeline.RenderSettings(
        database_url=url,
        store_url=str(work / "documents"),
        seller=DEFAULT_SELLER.to_dict(),
        schematron="sample",
    )
    batches = list(pipeline.chunks(ids, PER_BATCH))
    seconds = timed(args.processes, _warm_pipeline, _PipelineBatch(settings), batches)
    rendered = sum(1 for _ in (work / "documents").rglob("*.pdf"))
    assert rendered == len(ids), f"{rendered} PDFs for {len(ids)} invoices"
    pipeline_rate = len(ids) / seconds
    print(f"pipeline: {pipeline_rate:.1f} invoices/s ({seconds:.1f} s, XML + CII + Factur-X PDF)")

    renderer = InvoiceRenderer(DEFAULT_SELLER)
    pages = [renderer.html(invoice) for invoice in invoices]
    page_batches = [pages[i : i + PER_BATCH] for i in range(0, len(pages), PER_BATCH)]
    seconds = timed(args.processes, _warm_bare, bare_batch, page_batches)
    bare_rate = len(pages) / seconds
    print(f"bare WeasyPrint: {bare_rate:.1f} invoices/s ({seconds:.1f} s, PDF only)")
    print(f"ratio pipeline / bare: {pipeline_rate / bare_rate:.2f}")


class _PipelineBatch:
    """A picklable callable: one pipeline batch in a worker."""

    def __init__(self, settings: pipeline.RenderSettings) -> None:
        self.settings = settings

    def __call__(self, bill_ids: list[int]) -> int:
        result = pipeline.render_batch(self.settings, bill_ids)
        if result.failed:
            raise RuntimeError(f"not rendered: {result.failed}")
        return result.rendered


if __name__ == "__main__":
    main()
