"""The bill run's tuning knobs, with the BRM seed's values as defaults."""

from __future__ import annotations

import logging

from prefect.blocks.core import Block
from pydantic import Field

LOG_LEVELS = {0: logging.ERROR, 1: logging.INFO, 2: logging.INFO, 3: logging.DEBUG}


class BillRunSettings(Block):
    """BRM pin_billd's pin.conf: children, per_batch, fetch_size, loglevel, simulate_agent."""

    _block_type_name = "Bill Run Settings"
    _description = "Parallelism, batch sizes, log level and provisioning switch of bill day."

    children: int = Field(5, ge=1, le=64, description="Batches running at once (BRM children).")
    per_batch: int = Field(20_000, ge=1, description="Bill units per batch (BRM per_batch).")
    batch_processes: int = Field(
        0,
        ge=0,
        description="Worker processes billing the batches (the Python of billing on every "
        "core); 0: one per CPU, at most children, on PostgreSQL, and none on SQLite (its one "
        "writer would make them queue). Not used when the flow's tasks run on Dask "
        "(flows/scale.py): its workers are the processes.",
    )
    fetch_size: int = Field(150_000, ge=1, description="Ids fetched per query (BRM fetch_size).")
    documents_per_batch: int = Field(
        50, ge=1, description="Invoices rendered per document batch (one commit each)."
    )
    documents_processes: int = Field(
        0, ge=0, description="Processes rendering document batches; 0: one per CPU."
    )
    documents_dask_address: str = Field(
        "",
        description="Dask scheduler whose workers render the document batches, e.g. "
        "tcp://10.0.0.5:8786; empty: the flow's own Dask cluster when it runs on one "
        "(flows/scale.py), else local processes.",
    )
    loglevel: int = Field(1, ge=0, le=3, description="0 errors, 1 info, 3 debug (BRM loglevel).")
    simulate_agent: bool = Field(
        False, description="Skip the provisioning hook, as BRM test runs do (simulate_agent=1)."
    )
    output_dir: str = Field(
        "var/output", description="Where each run writes its reports (Data Docs of the checks)."
    )
    files_url: str = Field(
        "",
        description="Base URL where the stack serves output_dir (as /output/) and the document "
        "store (as /documents/) over HTTP, e.g. http://127.0.0.1:4201; empty: artifacts show "
        "file paths instead of links.",
    )

    @property
    def log_level(self) -> int:
        return LOG_LEVELS[self.loglevel]
