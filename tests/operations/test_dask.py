"""Bill day on a Dask cluster bills exactly what the default task runner bills.

The hand-checked population (tests/billing/test_billday.py), on SQLite and PostgreSQL, is
billed as of 2027-02-01 by the default runner and by ``flows.scale.bill_day_on_dask`` on a
local cluster of two worker processes. One bill unit per batch, so the two batches can spread
over both workers. The tasks find the database through a BillingDatabase block, which they
load over the Prefect API in the worker processes. The documents step renders both invoices
there too, into the default store (``var/documents``, relative to the flow's directory, which
the workers' is not), with the same bytes as the default runner's local rendering.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from billing.documents import render
from billing.store.db import unit_of_work
from billing.store.models import Bill
from blocks.bill_run_settings import BillRunSettings
from blocks.billing_database import BillingDatabase
from flows.bill_day import bill_day
from flows.runtime import engine_for
from flows.scale import bill_day_on_dask
from tests.billing.test_billday import population  # noqa: F401  (the hand-checked population)
from tests.dask_cluster import local_cluster

pytestmark = pytest.mark.slow
D = Decimal
AS_OF = date(2027, 2, 1)
# The hand-checked bills (tests/billing/test_billday.py): B's of Jan 31, then A's of Feb 1.
EXPECTED = [
    ("cyc:2:2027-01-31", "INV-00000001", "GBP", D("14.45"), D("2.89"), D("17.34")),
    ("cyc:1:2027-02-01", "INV-00000002", "EUR", D("166.00"), D("33.20"), D("199.20")),
]


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Two worker processes, one thread each, started in a tmp dir (their working directory)."""
    with local_cluster(tmp_path_factory.mktemp("dask")) as started:
        yield started


@pytest.fixture
def blocks(prefect_server, population, tmp_path, monkeypatch) -> Iterator[str]:  # noqa: F811
    """Settings (one unit per batch) and the population's database, under a fresh name."""
    monkeypatch.chdir(tmp_path)  # anything a step writes by default lands here
    name = f"dask-{uuid.uuid4().hex[:10]}"
    with prefect_server.connected():
        settings = BillRunSettings(per_batch=1, output_dir=str(tmp_path / "output"))
        settings.save(name)
        url = population.url.render_as_string(hide_password=False)
        BillingDatabase(url=url).save(name)
        yield name


def _bills(engine) -> list[tuple]:
    with unit_of_work(engine) as s:
        rows = s.execute(
            select(
                Bill.bill_key, Bill.bill_no, Bill.currency, Bill.net, Bill.tax, Bill.gross
            ).order_by(Bill.number)
        ).all()
    return [tuple(r) for r in rows]


def _documents(folder) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*.*")}


def _render_batches(dask_client) -> int:
    """How many document batches the Dask workers rendered (each opens its engine once)."""
    infos = dask_client.run(lambda: render._worker_engine.cache_info())
    return sum(info.hits + info.misses for info in infos.values())


def _engines_resolved(dask_client) -> int:
    """How many times the Dask workers asked ``engine_for`` for an engine."""
    infos = dask_client.run(lambda: engine_for.cache_info())
    return sum(info.hits + info.misses for info in infos.values())


@pytest.mark.parametrize("runner", ["default", "dask"])
def test_dask_runner_bills_like_the_default_runner(
    runner,
    dask_cluster,
    blocks,
    population,  # noqa: F811
    prefect_server,
    tmp_path,
):
    from distributed import Client

    parameters = {"as_of": AS_OF, "settings_block": blocks, "database_block": blocks}
    with Client(dask_cluster.scheduler_address) as client:
        before, batches_before = _engines_resolved(client), _render_batches(client)
        with prefect_server.connected():
            if runner == "dask":
                summary = bill_day_on_dask(dask_cluster.scheduler_address, **parameters)
            else:
                summary = bill_day(**parameters)
        on_workers = _engines_resolved(client) - before
        batches_on_workers = _render_batches(client) - batches_before
    assert summary["bills"] == 2
    assert _bills(population) == EXPECTED
    assert summary["documents rendered"] == summary["invoice e-mails queued"] == 2
    documents = _documents(tmp_path / "var" / "documents")
    assert sorted(documents) == [
        "2027/01/INV-00000001.pdf",
        "2027/01/INV-00000001.xml",
        "2027/02/INV-00000002.pdf",
        "2027/02/INV-00000002.xml",
    ]
    backend = population.url.get_backend_name()
    RENDERED[backend, runner] = documents
    if runner == "dask":
        assert on_workers > 0  # the batches ran in the worker processes
        assert batches_on_workers == 1  # so did the documents' one batch
    else:
        assert on_workers == 0
        assert batches_on_workers == 0
    other = RENDERED.get((backend, "default" if runner == "dask" else "dask"))
    if other is not None:  # both runners ran on this backend (in this process): same bytes
        assert documents == other


RENDERED: dict[tuple[str, str], dict[str, bytes]] = {}
