"""Bill day's documents step on a Dask cluster renders what local processes render.

A small synthetic population is billed by bill day with its documents step pointed at a real
``distributed.LocalCluster`` (two worker processes, one thread each, started in another
working directory), which renders the batches, writes the files and queues the e-mails. The
same invoices rendered again in this process, the local path, give the same bytes; every
bill has its PDF and its XML; each worker built its renderer once, before its first batch.
The two cluster tests take about 30 s together (a cluster, WeasyPrint warming up in three
processes), so they are slow; ``for_workers`` is checked in the fast suite.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from billing.documents import render
from billing.documents.dask_render import for_workers, render_on_dask
from billing.documents.model import invoice_ids
from billing.documents.render import RenderSettings
from billing.documents.seller import DEFAULT_SELLER
from billing.ingest.synthetic import seed
from billing.jobs.bill_day import Documents, render_invoice_documents, run_bill_day
from billing.store.db import unit_of_work
from billing.store.models import OutboxMessage
from tests.dask_cluster import local_cluster

START, AS_OF = date(2026, 10, 1), date(2026, 11, 1)
PER_BATCH = 4


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Two worker processes, one thread each, whose working directory is not the tests'."""
    with local_cluster(tmp_path_factory.mktemp("dask-workers")) as started:
        yield started


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_bill_day_renders_on_dask_workers_the_bytes_local_processes_render(
    engine, cluster, tmp_path
):
    from distributed import Client

    seed(engine, accounts=12, usage_per_account=2, start=START)
    with Client(cluster.scheduler_address) as client:
        batches_before = _batches_run(client)
    on_dask = tmp_path / "on-dask"
    documents = Documents(
        store_url=str(on_dask),
        seller=DEFAULT_SELLER,
        per_batch=PER_BATCH,
        dask_scheduler=cluster.scheduler_address,
    )
    result = run_bill_day(engine, AS_OF, "run-1", documents=documents)

    with unit_of_work(engine) as s:
        ids = invoice_ids(s, run_id="run-1")
        queued = s.scalar(select(func.count()).select_from(OutboxMessage))
    assert len(ids) >= 2 * PER_BATCH  # several batches, so both workers can take some
    assert result.documents == {
        "rendered": len(ids),
        "skipped": 0,
        "emails queued": len(ids),
        "failed": {},
        "invoices": len(ids),
    }
    assert queued == len(ids)
    rendered = _files(on_dask)
    assert sorted(Path(n).suffix for n in rendered) == sorted([".pdf", ".xml"] * len(ids))
    assert {Path(n).stem for n in rendered if n.endswith(".pdf")} == {
        Path(n).stem for n in rendered if n.endswith(".xml")
    }

    local = tmp_path / "local"
    settings = RenderSettings(
        database_url=engine.url.render_as_string(hide_password=False),
        store_url=str(local),
        seller=DEFAULT_SELLER.to_dict(),
    )
    again = render_invoice_documents(settings, ids, 1, PER_BATCH)  # in this process
    assert (again["rendered"], again["failed"]) == (len(ids), {})
    assert _files(local) == rendered

    with Client(cluster.scheduler_address) as client:
        renderers = client.run(lambda: render._worker_renderer.cache_info().currsize)
        batches = _batches_run(client) - batches_before
    assert list(renderers.values()) == [1, 1]  # each worker built one renderer, warmed up
    assert batches == -(-len(ids) // PER_BATCH)  # every batch ran on the workers


def _batches_run(client) -> int:
    """Batches the workers rendered so far: each asks its engine cache once."""
    infos = client.run(lambda: render._worker_engine.cache_info())
    return sum(info.hits + info.misses for info in infos.values())


@pytest.mark.slow
def test_a_rerun_on_dask_rewrites_the_same_bytes(engine, cluster, tmp_path):
    seed(engine, accounts=4, usage_per_account=1, start=START)
    run_bill_day(engine, AS_OF, "run-1")
    with unit_of_work(engine) as s:
        ids = invoice_ids(s, run_id="run-1")
    settings = RenderSettings(
        database_url=engine.url.render_as_string(hide_password=False),
        store_url=str(tmp_path / "store"),
        seller=DEFAULT_SELLER.to_dict(),
    )
    first = render_on_dask(settings, ids, cluster.scheduler_address, per_batch=2)
    before = _files(tmp_path / "store")
    second = render_on_dask(settings, ids, cluster.scheduler_address, per_batch=2)
    assert first.rendered == second.rendered == len(ids) and not second.failed
    assert _files(tmp_path / "store") == before and len(before) == 2 * len(ids)


def test_workers_get_absolute_paths(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    settings = RenderSettings(
        database_url="sqlite:///var/billing.db", store_url="var/documents", seller={}
    )
    moved = for_workers(settings)
    assert moved.database_url == f"sqlite:///{tmp_path / 'var' / 'billing.db'}"
    assert moved.store_url == str(tmp_path / "var" / "documents")
    remote = RenderSettings(
        database_url="postgresql+psycopg2://u:secret@db:5432/billing",
        store_url="s3://bucket/documents",
        seller={},
    )
    assert for_workers(remote) == remote


@pytest.mark.slow
def test_an_invoice_a_worker_cannot_render_is_reported_as_locally(engine, cluster, tmp_path):
    """Billed under the French seller's VAT rules, printed by a Portuguese seller: the
    reverse-charge invoice to a Portuguese business cannot be issued. The workers report it
    by number, as the local path does, and render the others."""
    seed(engine, accounts=12, usage_per_account=2, start=START)
    run_bill_day(engine, AS_OF, "run-1")
    with unit_of_work(engine) as s:
        ids = invoice_ids(s, run_id="run-1")
    seller = DEFAULT_SELLER.to_dict() | {"country": "PT"}
    settings = RenderSettings(
        database_url=engine.url.render_as_string(hide_password=False),
        store_url=str(tmp_path / "on-dask"),
        seller=seller,
    )
    on_dask = render_on_dask(settings, ids, cluster.scheduler_address, per_batch=PER_BATCH)
    local = render.render_in_processes(
        dataclasses.replace(settings, store_url=str(tmp_path / "local")), ids, processes=1
    )
    assert on_dask.failed and on_dask.failed == local.failed
    assert on_dask.rendered == local.rendered == len(ids) - len(local.failed)
    assert _files(tmp_path / "on-dask") == _files(tmp_path / "local")
