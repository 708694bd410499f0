"""The post-billing rules run directly, without Great Expectations (docs/testing.md).

Each rule is one SQL query that must return no rows; GE runs it over a sub-select of the
whole table and reports the rows it got. ``run_rules_directly`` runs the same query
(``Rule.direct_query``) on the engine and builds the same ``CheckReport``: the count of rows,
the first ``sample_size`` of them turned into the same values (``expectations.runner``'s own
row conversion). It builds no Data Docs. Most rule tests use it: a GE run costs seconds.
tests/expectations/test_suites.py keeps the end-to-end GE runs (Data Docs, the CLI, a query
that fails, PostgreSQL's search path) and checks that both paths agree on the same data.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from pathlib import Path

from sqlalchemy import Engine, text

from expectations.runner import CheckReport, CheckResult, _sample_row
from expectations.suites import RULES, Rule, sql_date

NO_DATA_DOCS = Path("no-data-docs-on-the-direct-path")


def run_rules_directly(
    engine: Engine,
    as_of: date,
    *,
    sample_size: int = 5,
    rules: Iterable[Rule] = RULES,
) -> CheckReport:
    """What ``run_post_billing_checks`` reports, from the rules' SQL alone."""
    sql_date(as_of)  # a date, or TypeError, as on the GE path
    dialect = engine.dialect.name
    results = []
    with engine.connect() as conn:
        for rule in rules:
            rows = [dict(row) for row in conn.execute(text(rule.direct_query(as_of))).mappings()]
            sample = tuple(
                _sample_row(row, rule.amounts, dialect) for row in rows[: max(sample_size, 0)]
            )
            results.append(CheckResult(rule.name, rule.description, not rows, len(rows), sample))
    return CheckReport(
        as_of=as_of,
        success=all(r.success for r in results),
        results=tuple(results),
        data_docs=NO_DATA_DOCS,
    )
