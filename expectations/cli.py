"""What ``billing check`` (registered in flows/cli.py) prints: the checks and their Data Docs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from billing.cli.common import console

if TYPE_CHECKING:
    from expectations.runner import CheckReport


def print_report(report: CheckReport) -> None:
    title = f"post-billing checks as of {report.as_of}"
    table = Table("expectation", "success", "unexpected", title=title)
    for result in report.results:
        count = "error" if result.unexpected_count is None else str(result.unexpected_count)
        mark = "[green]yes[/green]" if result.success else "[red]no[/red]"
        table.add_row(result.name, mark, count)
    console.print(table)
    for result in report.failed:
        if result.error:
            console.print(f"[red]{result.name}[/red]: {result.error}", soft_wrap=True)
    console.print(f"Data Docs: {report.data_docs}", soft_wrap=True, highlight=False)
