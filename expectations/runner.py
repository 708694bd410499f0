"""Run the post-billing suites over a billing database and build their Data Docs.

One ephemeral GE context per run: its stores live in memory, and the only files it writes
are the Data Docs site under ``output_dir/data_docs``, made readable offline
(``expectations.offline``). Nothing goes to the repository or to the user's home. GE's
SQL datasource takes a connection string, not an engine, so the engine's URL is rendered
with its password and its query (PostgreSQL ``options`` such as ``-csearch_path=...``
survive); GE opens and disposes of its own engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import great_expectations as gx
from great_expectations.core import ExpectationValidationResult
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.datasource.fluent import SQLDatasource
from sqlalchemy import Engine

from billing.failpoints import failpoint
from billing.store.sqlkit import refresh_statistics
from billing.store.types import from_storage
from expectations.offline import make_offline
from expectations.suites import RULES, Rule, build_suites, sql_date, suite_name

SITE = "billing_checks"
DATASOURCE = "billing"
CHECKPOINT = "post_billing"


@dataclass(frozen=True)
class CheckResult:
    """One expectation's outcome; ``error`` is set when its query could not run."""

    name: str
    description: str
    success: bool
    unexpected_count: int | None
    sample: tuple[dict[str, Any], ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class CheckReport:
    """Every expectation's outcome, in rule order, and the Data Docs page to open."""

    as_of: date
    success: bool
    results: tuple[CheckResult, ...]
    data_docs: Path

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if not r.success)

    @property
    def passed(self) -> int:
        return len(self.results) - len(self.failed)

    def result(self, name: str) -> CheckResult:
        return next(r for r in self.results if r.name == name)


def _refresh_statistics(engine: Engine) -> None:
    """The checks run right after a bill run rewrote the big tables: fresh statistics first."""
    tables = {rule.table for rule in RULES} | {"usage_records", "payments"}
    refresh_statistics(engine, sorted(tables))


def run_post_billing_checks(
    engine: Engine,
    as_of: date,
    output_dir: Path,
    *,
    sample_size: int = 5,
    rules: Iterable[Rule] = RULES,
) -> CheckReport:
    """Run every rule over ``engine``'s database as of ``as_of``; Data Docs go to output_dir."""
    sql_date(as_of)  # a date, or TypeError before any work
    rules = tuple(rules)
    _refresh_statistics(engine)
    docs_dir = Path(output_dir).resolve() / "data_docs"
    context = gx.get_context(project_config=_project_config(docs_dir), mode="ephemeral")
    datasource = _add_datasource(context, engine)
    try:
        definitions = []
        for table, suite in build_suites(as_of, rules).items():
            asset = datasource.add_table_asset(name=table, table_name=table)
            batch = asset.add_batch_definition_whole_table(f"{table}_all")
            definitions.append(
                context.validation_definitions.add(
                    gx.ValidationDefinition(
                        name=suite_name(table), data=batch, suite=context.suites.add(suite)
                    )
                )
            )
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=CHECKPOINT,
                validation_definitions=definitions,
                result_format={"result_format": "COMPLETE"},
            )
        )
        outcome = checkpoint.run(run_id=RunIdentifier(run_name=f"as-of-{as_of.isoformat()}"))
        context.build_data_docs(site_names=[SITE])  # once, not once per suite as the action does
    finally:
        _dispose(datasource)
    make_offline(docs_dir)  # GE links its CSS and JS from CDNs: blank pages offline
    by_rule = {
        (r.expectation_config.meta or {}).get("rule"): r
        for run in outcome.run_results.values()
        for r in run.results
        if r.expectation_config is not None
    }
    dialect = engine.dialect.name
    results = tuple(_check_result(rule, by_rule[rule.name], sample_size, dialect) for rule in rules)
    failpoint("checks.done")
    return CheckReport(
        as_of=as_of,
        success=all(r.success for r in results),
        results=results,
        data_docs=docs_dir / "index.html",
    )


def _project_config(docs_dir: Path) -> DataContextConfig:
    """In-memory stores, one local Data Docs site, no analytics, no progress bars."""
    return DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        data_docs_sites={
            SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
    )


def _add_datasource(context: Any, engine: Engine) -> SQLDatasource:
    url = engine.url.render_as_string(hide_password=False)
    sources = context.data_sources
    if engine.dialect.name == "sqlite":
        return sources.add_sqlite(DATASOURCE, connection_string=url, create_temp_table=False)
    if engine.dialect.name == "postgresql":
        return sources.add_postgres(DATASOURCE, connection_string=url, create_temp_table=False)
    return sources.add_sql(DATASOURCE, connection_string=url, create_temp_table=False)


def _dispose(datasource: SQLDatasource) -> None:
    """Close the connections GE opened (its datasource and execution engines)."""
    execution = datasource.execution_engine  # built lazily by GE, may be None
    if execution is not None:
        execution.close()
    datasource.get_engine().dispose()


def _check_result(
    rule: Rule, result: ExpectationValidationResult, sample_size: int, dialect: str
) -> CheckResult:
    description = rule.description
    error = _error(result)
    if error is not None or "observed_value" not in result.result:
        return CheckResult(rule.name, description, False, None, error=error or "no result")
    details = result.result.get("details", {})
    rows = details.get("unexpected_rows", [])[: max(sample_size, 0)]
    return CheckResult(
        rule.name,
        description,
        bool(result.success),
        int(result.result["observed_value"]),
        tuple(_sample_row(row, rule.amounts, dialect) for row in rows),
    )


def _error(result: ExpectationValidationResult) -> str | None:
    """The first error GE caught: its info is flat, or keyed by the metric that failed."""
    info = result.exception_info or {}
    candidates = [info, *(v for v in info.values() if isinstance(v, Mapping))]
    for candidate in candidates:
        if candidate.get("raised_exception"):
            return str(candidate.get("exception_message") or "the query failed")
    return None


def _sample_row(row: Mapping[str, Any], amounts: tuple[str, ...], dialect: str) -> dict[str, Any]:
    """A row as the same values on both databases: amounts as Decimal, dates as ISO text."""
    sample = {}
    for key, value in row.items():
        if key in amounts:
            value = from_storage(value, dialect)
        elif isinstance(value, date | datetime):
            value = value.isoformat()
        sample[key] = value
    return sample
