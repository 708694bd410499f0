"""A real Dask cluster for tests: two worker processes, one thread each."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def local_cluster(workdir: Path) -> Iterator[object]:
    """A ``distributed.LocalCluster`` whose workers start in ``workdir``, not the tests'
    working directory (so a relative path that reaches a worker unresolved shows up)."""
    from distributed import LocalCluster

    here = os.getcwd()
    os.chdir(workdir)
    try:
        cluster = LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
        )
    finally:
        os.chdir(here)
    try:
        yield cluster
    finally:
        cluster.close(timeout=30)
