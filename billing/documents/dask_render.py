"""Render invoice batches on a Dask cluster: the documents step of a bill day run there.

``render_on_dask`` submits ``render.render_batch`` once per batch of bills to the scheduler
at an address, as plain ``distributed`` futures, and merges the batches' ``RenderResult``: an
invoice that cannot be rendered comes back in ``failed`` as it does from worker processes. A
batch that raises (database down, a worker lost more often than Dask allows) makes the step
raise once every other batch has ended, as ``render_in_processes`` does, so that the runner
retries the step; a rerun rewrites the same bytes (the store's names and the PDF's dates come
from the bill).

Each worker opens its own engine from ``settings.database_url`` (``render._worker_engine``)
and writes to ``settings.store_url``, so both must mean the same thing on every worker:
``for_workers`` makes a relative SQLite path or store folder absolute first (a store on other
machines must then be a shared mount at that path, or an fsspec URL). The renderer
(stylesheets, fonts, logo) and the compiled Schematron are built once per worker process by
``RenderWarmUp``, a worker plugin registered once per cluster and seller, and kept in the
module caches of ``render``; workers that join later run it too.

This module imports ``distributed``; ``billing.jobs.bill_day`` imports it only when the
documents step is given a scheduler.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from distributed import Client
from distributed.diagnostics.plugin import WorkerPlugin
from sqlalchemy.engine import make_url

from billing.documents import render
from billing.documents.render import RenderResult, RenderSettings


class RenderWarmUp(WorkerPlugin):
    """Builds a worker's renderer and Schematron before its first batch, once per process."""

    idempotent = True  # registered again (a rerun, another bill day): left as it is

    def __init__(self, seller: dict[str, Any]) -> None:
        self.seller = seller
        digest = hashlib.sha256(json.dumps(seller, sort_keys=True, default=str).encode())
        self.name = f"openbill-render-warm-up-{digest.hexdigest()[:16]}"

    def setup(self, worker: Any) -> None:
        warm_up(self.seller)


def warm_up(seller: dict[str, Any]) -> None:
    """This process's renderer for ``seller`` and the compiled Schematron, then the
    rendering garbage-collector settings (``render._warm_up``)."""
    from billing.documents.validation import _schematron

    _schematron()
    render._warm_up(seller)


def for_workers(settings: RenderSettings) -> RenderSettings:
    """``settings`` with a relative SQLite path and a relative store folder made absolute
    (from this process's working directory), so that workers started elsewhere find them."""
    url = make_url(settings.database_url)
    database = url.database
    if url.get_backend_name() == "sqlite" and database and database != ":memory:":
        if not database.startswith("file:") and not Path(database).is_absolute():
            url = url.set(database=str(Path(database).resolve()))
    store = settings.store_url
    if "://" not in store:
        store = str(Path(store).resolve())
    return replace(
        settings, database_url=url.render_as_string(hide_password=False), store_url=store
    )


def render_on_dask(
    settings: RenderSettings,
    bill_ids: Sequence[int],
    scheduler: str | Client,
    *,
    per_batch: int = 50,
) -> RenderResult:
    """Render ``bill_ids`` in batches of ``per_batch`` on the Dask cluster of ``scheduler``
    (an address such as ``tcp://10.0.0.5:8786``, or a connected ``Client``)."""
    batches = list(render.chunks(bill_ids, per_batch))
    if not batches:
        return RenderResult()
    if isinstance(scheduler, Client):
        return _render(scheduler, for_workers(settings), batches)
    with Client(scheduler, set_as_default=False) as client:
        return _render(client, for_workers(settings), batches)


def _render(client: Client, settings: RenderSettings, batches: list[list[int]]) -> RenderResult:
    client.register_plugin(RenderWarmUp(settings.seller))
    futures = [client.submit(render.render_batch, settings, batch, pure=False) for batch in batches]
    total = RenderResult()
    error: BaseException | None = None
    for future in futures:  # waits for every batch, even after one failed
        problem = future.exception()
        if problem is not None:
            error = error or problem
            continue
        total = total.merge(future.result())
    if error is not None:
        raise error
    return total
