"""`make test` relies on `--dist loadgroup` keeping a group on one worker (tests/conftest.py
XDIST_GROUPS): a server a group's tests share then starts once. pytest 9.2 with
pytest-xdist 3.8 broke that without an error, and the suite quietly paid for each server twice.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_loadgroup_keeps_a_group_on_one_worker(tmp_path):
    (tmp_path / "test_grouped.py").write_text(
        textwrap.dedent(
            """
            import os
            import pytest

            def _record(name):
                with open(os.path.join(os.path.dirname(__file__), name), "w") as f:
                    f.write(os.environ["PYTEST_XDIST_WORKER"])

            @pytest.mark.xdist_group("shared")
            @pytest.mark.parametrize("n", range(6))
            def test_grouped(n):
                _record(f"grouped-{n}")

            @pytest.mark.parametrize("n", range(6))
            def test_free(n):
                _record(f"free-{n}")
            """
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2"]
        + ["--dist", "loadgroup", "-c", "/dev/null", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    grouped = {(tmp_path / f"grouped-{n}").read_text() for n in range(6)}
    assert len(grouped) == 1, f"the group ran on {sorted(grouped)}"
