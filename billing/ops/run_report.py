"""What a run reports: its figures in one format, the totals of the bills it made, and the
change against the previous run.

Pure billing (no Prefect): the flows turn these values and texts into artifacts.

One format everywhere, locale-neutral: a comma between thousands and a point before the
decimals, money with its currency code after the amount (``1,234.50 EUR``, ``-15.00 EUR``),
counts grouped the same way (``12,345``), dates as ISO (``2027-02-01``), date-times to the
minute (``2027-02-01 09:30``), yes/no, and an em dash for "nothing". Never a Python repr.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from billing.domain.money import minor_units
from billing.store.models import Bill

NOTHING = "—"
ZERO = Decimal(0)


# --- formatting ---------------------------------------------------------------------------


def _decimal(amount: Decimal, places: int) -> str:
    """``amount`` grouped by thousands, with at least ``places`` decimals and as many more as
    its significant digits need (nothing is hidden by rounding, no trailing zeros added)."""
    exponent = amount.normalize().as_tuple().exponent  # 199.200000 from the database: 1 place
    shown_places = max(places, -exponent if isinstance(exponent, int) else 0)
    text = f"{amount:,.{shown_places}f}"
    return "0" + text[2:] if text.startswith("-0") and amount.is_zero() else text


def money(amount: Decimal, currency: str) -> str:
    """``1,234.50 EUR``: the currency's minor units at least, its code after the amount."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"money is a Decimal, not {type(amount).__name__}")
    return f"{_decimal(amount, minor_units(currency))} {currency}"


def signed_money(amount: Decimal, currency: str) -> str:
    """``+30.00 EUR``, ``-15.00 EUR``, ``0.00 EUR``: a change, with its sign."""
    return ("+" if amount > 0 else "") + money(amount, currency)


def count(value: int) -> str:
    """``12,345``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"a count is an int, not {type(value).__name__}")
    return f"{value:,}"


def signed_count(value: int) -> str:
    """``+1``, ``-2``, ``0``: a change in a count."""
    return ("+" if value > 0 else "") + count(value)


def shown(value: Any) -> str:
    """Any value a run reports, as text in the one format (see the module's docstring)."""
    if value is None:
        return NOTHING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return count(value)
    if isinstance(value, Decimal):
        return _decimal(value, 0)
    if isinstance(value, float):
        raise TypeError("a run reports Decimal amounts and int counts, never floats")
    if isinstance(value, datetime):
        spec = "minutes" if value.second == 0 and value.microsecond == 0 else "seconds"
        return value.isoformat(sep=" ", timespec=spec)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return shown(value.value)
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return "; ".join(f"{shown(k)}: {shown(v)}" for k, v in value.items()) or NOTHING
    if isinstance(value, Iterable):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
        return ", ".join(shown(v) for v in items) or NOTHING
    return str(value)


def number_range(first: int, how_many: int) -> str:
    """``1..12``: the numbers a series gave (``1..1`` for one)."""
    return f"{first:,}..{first + how_many - 1:,}"


def numbered(blocks: Iterable[Mapping[str, Any]]) -> int:
    """How many bills the numbering step numbered, over its blocks (``{"count": n, ...}``)."""
    return sum(int(block["count"]) for block in blocks)


def total_applied(per_kind: Mapping[str, int]) -> int:
    """All of a result's counts per kind together (``{"quantity": 2, "price": 1}`` -> 3)."""
    return sum(per_kind.values())


# --- totals of the bills a run made -------------------------------------------------------


@dataclass(frozen=True)
class CurrencyTotals:
    """The bills of one currency: how many, and their net, tax and gross."""

    bills: int = 0
    net: Decimal = ZERO
    tax: Decimal = ZERO
    gross: Decimal = ZERO


def run_totals(session: Session, run_ids: Sequence[str]) -> dict[str, CurrencyTotals]:
    """Per currency, the bills the runs ``run_ids`` made (``bills.run_id``), summed in SQL."""
    if not run_ids:
        return {}
    rows = session.execute(
        select(
            Bill.currency,
            func.count(Bill.id),
            func.sum(Bill.net),
            func.sum(Bill.tax),
            func.sum(Bill.gross),
        )
        .where(Bill.run_id.in_(list(run_ids)))
        .group_by(Bill.currency)
        .order_by(Bill.currency)
    ).all()
    return {
        currency: CurrencyTotals(int(bills), net or ZERO, tax or ZERO, gross or ZERO)
        for currency, bills, net, tax, gross in rows
    }


@dataclass(frozen=True)
class CurrencyChange:
    """One currency of this run against the previous run: counts and gross, with the change."""

    currency: str
    bills: int
    previous_bills: int
    gross: Decimal
    previous_gross: Decimal

    @property
    def bills_change(self) -> int:
        return self.bills - self.previous_bills

    @property
    def gross_change(self) -> Decimal:
        return self.gross - self.previous_gross


def compare(
    current: Mapping[str, CurrencyTotals], previous: Mapping[str, CurrencyTotals]
) -> list[CurrencyChange]:
    """Every currency of either run, in code order; a currency one run lacks counts as 0."""
    none = CurrencyTotals()
    return [
        CurrencyChange(
            currency,
            current.get(currency, none).bills,
            previous.get(currency, none).bills,
            current.get(currency, none).gross,
            previous.get(currency, none).gross,
        )
        for currency in sorted(set(current) | set(previous))
    ]


# --- the run summary ----------------------------------------------------------------------


@dataclass(frozen=True)
class StepCount:
    """One count of one step: ``("billing", "bills", 2)``."""

    step: str
    measure: str
    value: int


def summary_markdown(
    title: str,
    totals: Mapping[str, CurrencyTotals],
    steps: Sequence[StepCount],
    *,
    previous_name: str | None = None,
    previous: Mapping[str, CurrencyTotals] | None = None,
    note: str | None = None,
) -> str:
    """The run summary: totals per currency, counts per step, and the change against the
    previous run (``previous_name``; none when this is the first run)."""
    out = [f"# {title}", ""]
    if note:
        out += [note, ""]
    out += ["## Bills of this run", ""]
    if totals:
        out += ["| currency | bills | net | tax | gross |", "| --- | ---: | ---: | ---: | ---: |"]
        for currency, t in sorted(totals.items()):
            out.append(
                f"| {currency} | {count(t.bills)} | {money(t.net, currency)} "
                f"| {money(t.tax, currency)} | {money(t.gross, currency)} |"
            )
    else:
        out.append("No bills.")
    out += ["", "## Counts per step", "", "| step | measure | count |", "| --- | --- | ---: |"]
    out += [f"| {s.step} | {s.measure} | {count(s.value)} |" for s in steps]
    out += ["", "## Against the previous run", ""]
    if previous_name is None or previous is None:
        out.append("No previous run to compare with.")
    elif not totals and not previous:
        out.append(f"Previous run: {previous_name}. Neither run made bills.")
    else:
        out += [
            f"Previous run: {previous_name}.",
            "",
            "| currency | bills | previous | change | gross | previous | change |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for c in compare(totals, previous):
            cur = c.currency
            out.append(
                f"| {cur} | {count(c.bills)} | {count(c.previous_bills)} "
                f"| {signed_count(c.bills_change)} | {money(c.gross, cur)} "
                f"| {money(c.previous_gross, cur)} | {signed_money(c.gross_change, cur)} |"
            )
    return "\n".join(out) + "\n"


# --- progress -----------------------------------------------------------------------------


class ProgressPlan:
    """A run's steps with their weights, as one percentage that only ever goes up.

    ``at(step, fraction)`` is the percentage when ``fraction`` of ``step`` is done and every
    step before it is; a step reported out of order, or a fraction that shrinks (a catch-up
    pass finds more units), never moves the percentage back.
    """

    def __init__(self, steps: Sequence[tuple[str, int]]) -> None:
        if not steps or any(weight <= 0 for _, weight in steps):
            raise ValueError("a progress plan needs steps with positive weights")
        self.steps = tuple(steps)
        self._total = sum(weight for _, weight in steps)
        self._before: dict[str, int] = {}
        done = 0
        for name, weight in steps:
            self._before[name] = done
            done += weight
        self._weights = dict(steps)
        self.percent = Decimal(0)

    def at(self, step: str, fraction: Decimal | int = 1) -> Decimal:
        """The percentage once ``fraction`` (0..1) of ``step`` is done; never less than before."""
        share = min(max(Decimal(fraction), Decimal(0)), Decimal(1))
        done = (self._before[step] + self._weights[step] * share) * 100 / self._total
        self.percent = max(self.percent, done)
        return self.percent

    def finish(self) -> Decimal:
        """The run is over: 100."""
        self.percent = Decimal(100)
        return self.percent


def batch_share(result: Any) -> Decimal:
    """How much of a bill run's due units are handled (billed or failed), for ``at``."""
    return share(result.billed + len(result.failed), result.units)


def share(done: int, of: int) -> Decimal:
    """``done`` of ``of`` as a fraction for ``ProgressPlan.at`` (1 when there is nothing to do)."""
    return Decimal(1) if of <= 0 else Decimal(min(done, of)) / Decimal(of)
