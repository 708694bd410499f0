"""``FAST_SUITE_BACKEND`` (tests/conftest.py) sends the PostgreSQL runs of some folders and
files to ``make test-slow``. A renamed or moved file would silently leave the map (and run on
both backends again), and a broken hook would silently drop the runs from both suites: this
collects the listed paths as ``make test`` and ``make test-slow`` select them and checks each
entry's runs land where the map says, no more, no fewer.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tests.conftest import FAST_SUITE_BACKEND, FAST_SUITE_COLLECTED, fast_suite_backend

TESTS = Path(__file__).parent
ROOT = TESTS.parent
BACKENDS = ("sqlite", "postgresql")


PROBE = """
import json, os

def pytest_collection_finish(session):
    with open(os.environ["FAST_SUITE_PROBE"], "w") as out:
        marks = [[i.nodeid, i.get_closest_marker("slow") is not None] for i in session.items]
        json.dump(marks, out)
"""


def collected(paths: list[str], tmp_path: Path) -> tuple[list[str], list[str]]:
    """The node ids of ``paths`` that ``make test`` runs, and those ``make test-slow`` runs,
    with every test's marks as the hooks left them: this session's own when it collected
    every entry (``make test`` collects the whole suite in each process), else a collection
    of ``paths`` in a subprocess."""
    if all(
        any(n.startswith(f"{path}::") or n.startswith(f"{path}/") for n in FAST_SUITE_COLLECTED)
        for path in paths
    ):
        items = FAST_SUITE_COLLECTED.items()
        return [n for n, slow in items if not slow], [n for n, slow in items if slow]
    (tmp_path / "fast_suite_probe.py").write_text(PROBE)
    report = tmp_path / "collected.json"
    env = {**os.environ, "FAST_SUITE_PROBE": str(report)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
        + ["-p", "fast_suite_probe", *paths],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    items = json.loads(report.read_text())
    return [n for n, slow in items if not slow], [n for n, slow in items if slow]


def backend(node_id: str) -> str | None:
    """The ``db_url`` parameter in a node id's brackets, if any."""
    found = re.search(r"\[(.*)\]", node_id)
    params = set(found.group(1).split("-")) if found else set()
    return next((b for b in BACKENDS if b in params), None)


def entry(node_id: str) -> str:
    relative = Path(node_id.split("::", 1)[0]).relative_to("tests")
    key = relative.as_posix()
    return key if key in FAST_SUITE_BACKEND else relative.parts[0]


def test_every_entry_exists_and_names_a_backend():
    for path, fast in FAST_SUITE_BACKEND.items():
        assert (TESTS / path).exists(), f"FAST_SUITE_BACKEND lists {path}: no such file"
        assert fast in BACKENDS, f"{path}: {fast}"
        assert fast_suite_backend(Path(path)) == fast


def test_each_entrys_other_backend_runs_only_in_the_slow_suite(tmp_path):
    fast, slow = collected([f"tests/{path}" for path in FAST_SUITE_BACKEND], tmp_path)
    fast_runs = Counter((entry(n), backend(n)) for n in fast)
    slow_runs = Counter((entry(n), backend(n)) for n in slow)
    for path, kept in FAST_SUITE_BACKEND.items():
        (moved,) = set(BACKENDS) - {kept}
        # Every entry has database tests: its kept backend in make test, the other in
        # make test-slow, and never the other in make test.
        assert fast_runs[(path, kept)] > 0, f"{path}: no {kept} run in make test"
        assert slow_runs[(path, moved)] > 0, f"{path}: no {moved} run in make test-slow"
        assert fast_runs[(path, moved)] == 0, f"{path}: {moved} runs left in make test"
    # Each run moved to make test-slow keeps its twin on the kept backend: in make test, or
    # in make test-slow with it when the test is marked slow itself.
    everything = set(fast) | set(slow)
    for node_id in slow:
        if backend(node_id) not in (None, FAST_SUITE_BACKEND[entry(node_id)]):
            kept = FAST_SUITE_BACKEND[entry(node_id)]
            twin = re.sub(rf"\b{backend(node_id)}\b", kept, node_id)
            assert twin in everything, f"{node_id} runs on no other backend"
