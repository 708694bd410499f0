"""Invoice documents per second: the project's pipeline against a bare WeasyPrint loop.

    bench/documents.py --invoices N --processes P --dask-workers 1,2
                                    (defaults 2000, os.cpu_count() and 1,2)

Seeds a synthetic population (French and Portuguese accounts, some on direct debit) in a
SQLite file, bills it with ``run_bill_day``, then measures, with the same number of spawned
worker processes and the same batches of 50:
1. the pipeline: ``render_in_processes`` -- read the bills, XML export + our XSD, CII + the
   Factur-X XSD (+ the EN 16931 Schematron on the first invoice of each batch), the PDF/A-3b
   with the CII embedded as it is written (attachment + Factur-X XMP), both files written to
   a document store;
2. the bare loop: ``InvoiceHTML(string=...).write_pdf()`` of the same template, already filled
   in, with the same stylesheets (the template's and the user-agent one), URL fetcher (the
   logo) and PDF variant, and nothing else, in
   workers with the same garbage-collector settings (``render.settle_heap``).
Both clocks start once every worker has started and warmed up (stylesheet, Schematron, one
invoice drawn so that fonts are loaded) and stop when the last invoice is done. Each side also
reports the CPU time its workers spent per invoice (``time.process_time`` around each batch),
which other load on the machine disturbs less than the wall clock.

Then the pipeline on Dask, as bill day renders on a Dask cluster
(``billing.documents.dask_render.render_on_dask``): the same invoices, the same batches,
into a fresh store, on a ``distributed.LocalCluster`` of each size in ``--dask-workers``
(worker processes of one thread each), started and warmed up (the pipeline's own worker
plugin, then the same warm-up as above on every worker) before the clock starts. Its CPU
time is the workers' whole processes' (Dask's own work included).

Prints each rate, then the scaling (each Dask size over the first, e.g. 2 workers / 1
worker), and last the ratio pipeline / bare (local processes on both sides).
"""

from __future__ import annotations

import argparse
import dataclasses
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

from billing.documents import render as pipeline  # noqa: E402
from billing.documents.fetcher import AssetFetcher  # noqa: E402
from billing.documents.model import invoice_ids, load_invoices  # noqa: E402
from billing.documents.pdf import PDF_VARIANT, InvoiceHTML, InvoiceRenderer  # noqa: E402
from billing.documents.seller import DEFAULT_SELLER  # noqa: E402
from billing.ingest.synthetic import seed  # noqa: E402
from billing.jobs.bill_day import run_bill_day  # noqa: E402
from billing.store.db import make_engine, unit_of_work  # noqa: E402
from billing.store.migrate import upgrade  # noqa: E402

START, AS_OF = date(2026, 10, 1), date(2026, 11, 1)
PER_BATCH = 50


@cache
def _bare_renderer() -> InvoiceRenderer:
    return InvoiceRenderer(DEFAULT_SELLER)


def _warm_bare(page: str) -> None:
    """Build the renderer and draw one invoice (fonts load), then the pipeline workers'
    garbage-collector settings, so that both sides run in the same kind of process."""
    _bare_renderer().visual_pdf(page)
    pipeline.settle_heap()


def _warm_pipeline(page: str) -> None:
    """The same for the pipeline's own cached renderer, plus the compiled Schematron, then
    the pipeline's own worker initializer (which settles the heap)."""
    from billing.documents.validation import _schematron

    seller = DEFAULT_SELLER.to_dict()
    pipeline._worker_renderer(tuple(sorted(seller.items()))).visual_pdf(page)
    _schematron()
    pipeline._warm_up(seller)


def _ready(_: int) -> int:
    time.sleep(0.3)  # long enough for every worker to take one
    return os.getpid()


def bare_pdf(renderer: InvoiceRenderer, html: str) -> bytes:
    """The bare loop's call: WeasyPrint on already-filled HTML with the same stylesheets,
    PDF variant and fetcher (so the logo is drawn as in the pipeline), and nothing else."""
    return InvoiceHTML(string=html, url_fetcher=AssetFetcher(renderer._assets)).write_pdf(
        stylesheets=[renderer._css], font_config=renderer._fonts, pdf_variant=PDF_VARIANT
    )


def bare_batch(pages: list[str]) -> tuple[int, float]:
    """The bare loop over a batch of filled-in pages."""
    cpu = time.process_time()
    renderer = _bare_renderer()
    for html in pages:
        bare_pdf(renderer, html)
    return len(pages), time.process_time() - cpu


def timed(processes: int, warm, page: str, work, batches: list) -> tuple[float, float]:
    """Wall seconds, and the workers' CPU seconds, for ``work`` over ``batches`` in a pool
    of spawned processes warmed up with ``warm(page)``."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        processes, mp_context=context, initializer=warm, initargs=(page,)
    ) as pool:
        wait([pool.submit(_ready, n) for n in range(processes * 2)])
        started = time.perf_counter()
        cpu = sum(future.result()[1] for future in [pool.submit(work, b) for b in batches])
        return time.perf_counter() - started, cpu


def _workers(count: int) -> str:
    return f"{count} worker" + ("s" if count != 1 else "")


def _worker_cpu(client) -> float:
    return sum(client.run(time.process_time).values())


def on_dask(workers: int, page: str, settings: pipeline.RenderSettings, ids: list[int]):
    """Wall seconds and the workers' CPU seconds of ``render_on_dask`` over ``ids`` on a
    local cluster of ``workers`` one-thread worker processes, warmed up first."""
    from distributed import Client, LocalCluster

    from billing.documents.dask_render import RenderWarmUp, render_on_dask

    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(workers)
        client.register_plugin(RenderWarmUp(settings.seller))
        client.run(_warm_pipeline, page)
        cpu = _worker_cpu(client)
        started = time.perf_counter()
        result = render_on_dask(settings, ids, client, per_batch=PER_BATCH)
        seconds = time.perf_counter() - started
        cpu = _worker_cpu(client) - cpu
        engines = client.run(_batches_here)  # each batch asks the engine cache once
    if result.failed or result.rendered != len(ids):
        raise RuntimeError(f"{result.rendered} rendered, not rendered: {result.failed}")
    return seconds, cpu, sorted(engines.values(), reverse=True)


def _batches_here() -> int:
    info = pipeline._worker_engine.cache_info()
    return info.hits + info.misses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--dask-workers",
        default="1,2",
        help="sizes of the Dask local clusters to render on, one after the other ('': none)",
    )
    args = parser.parse_args()
    sizes = [int(n) for n in args.dask_workers.split(",") if n.strip()]
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

    renderer = InvoiceRenderer(DEFAULT_SELLER)
    pages = [renderer.html(invoice) for invoice in invoices]
    settings = pipeline.RenderSettings(
        database_url=url,
        store_url=str(work / "documents"),
        seller=DEFAULT_SELLER.to_dict(),
        schematron="sample",
    )
    batches = list(pipeline.chunks(ids, PER_BATCH))
    seconds, cpu = timed(
        args.processes, _warm_pipeline, pages[0], _PipelineBatch(settings), batches
    )
    rendered = sum(1 for _ in (work / "documents").rglob("*.pdf"))
    assert rendered == len(ids), f"{rendered} PDFs for {len(ids)} invoices"
    pipeline_rate = len(ids) / seconds
    print(
        f"pipeline: {pipeline_rate:.1f} invoices/s ({seconds:.1f} s, "
        f"{1000 * cpu / len(ids):.1f} ms CPU per invoice, XML + CII + Factur-X PDF)"
    )

    page_batches = [pages[i : i + PER_BATCH] for i in range(0, len(pages), PER_BATCH)]
    seconds, cpu = timed(args.processes, _warm_bare, pages[0], bare_batch, page_batches)
    bare_rate = len(pages) / seconds
    print(
        f"bare WeasyPrint: {bare_rate:.1f} invoices/s ({seconds:.1f} s, "
        f"{1000 * cpu / len(pages):.1f} ms CPU per invoice, PDF only)"
    )

    dask_rates: dict[int, float] = {}
    for workers in sizes:
        store = work / f"documents-dask-{workers}"
        on = dataclasses.replace(settings, store_url=str(store))
        seconds, cpu, spread = on_dask(workers, pages[0], on, ids)
        rendered = sum(1 for _ in store.rglob("*.pdf"))
        assert rendered == len(ids), f"{rendered} PDFs for {len(ids)} invoices"
        dask_rates[workers] = len(ids) / seconds
        print(
            f"pipeline on Dask, {_workers(workers)}: {dask_rates[workers]:.1f} invoices/s "
            f"({seconds:.1f} s, {1000 * cpu / len(ids):.1f} ms CPU per invoice, workers' "
            f"whole processes; batches per worker {'/'.join(map(str, spread))})"
        )
    if len(sizes) > 1:
        first = sizes[0]
        for workers in sizes[1:]:
            print(
                f"scaling on Dask, {_workers(workers)} / {_workers(first)}: "
                f"{dask_rates[workers] / dask_rates[first]:.2f}"
            )
    for workers in sizes:
        print(f"ratio Dask {_workers(workers)} / bare: {dask_rates[workers] / bare_rate:.2f}")
    print(f"ratio pipeline / bare: {pipeline_rate / bare_rate:.2f}")


class _PipelineBatch:
    """A picklable callable: one pipeline batch in a worker."""

    def __init__(self, settings: pipeline.RenderSettings) -> None:
        self.settings = settings

    def __call__(self, bill_ids: list[int]) -> tuple[int, float]:
        cpu = time.process_time()
        result = pipeline.render_batch(self.settings, bill_ids)
        if result.failed:
            raise RuntimeError(f"not rendered: {result.failed}")
        return result.rendered, time.process_time() - cpu


if __name__ == "__main__":
    main()
