"""Post-billing accuracy checks (BRM's post-billing queries) as Great Expectations suites.

``run_post_billing_checks(engine, as_of, output_dir)`` (expectations.runner) runs every rule of
``expectations.suites.RULES`` and returns a ``CheckReport``. This package never imports
Prefect. Great Expectations takes seconds to import, so the names below load on first use:
``billing check`` (flows/cli.py) imports it only when it runs.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "CheckReport": "expectations.runner",
    "CheckResult": "expectations.runner",
    "run_post_billing_checks": "expectations.runner",
    "RULES": "expectations.suites",
    "Rule": "expectations.suites",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'expectations' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
