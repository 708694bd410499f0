"""The shadow bill run's comparison: this run's bills against the previous cycle's, per account.

Pure: values in (what each account was billed in its previous cycle, what the dry run bills
it now, the accounts the dry run failed), values out (a ``ShadowReport``). No database, no
clock. ``billing.ops.shadow`` reads the two sides, ``billing.jobs.shadow_bill_run`` runs the
dry run and calls ``compare``.

The comparison is per account and currency (an account bills in one currency; an account
whose currency changed shows as missing in the old one and new in the other):

- **new**: billed now, not in its previous cycle;
- **missing**: billed in its previous cycle, not now (and the dry run did not fail it);
- **changed**: billed in both, and the gross moved by more than *both* thresholds: more than
  ``absolute`` (in the currency's units) and more than ``percent`` % of the previous gross.
  A threshold of 0 lets any change through it, so ``absolute=0`` compares by percent only
  and ``percent=0`` by amount only; both 0 flag every change;
- **failed**: the dry run could not bill the account (the real run would fail it too).

The previous cycle is defined by the reader (``billing.ops.shadow``): per bill unit, the
cycle bill dated its last closed cycle.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from billing.domain.errors import BillingError
from billing.domain.money import minor_unit

ZERO = Decimal(0)
HUNDRED = Decimal(100)
PERCENT_PLACES = Decimal("0.01")


class Billed(NamedTuple):
    """What an account is billed in one currency: how many bills, and their gross."""

    account: str
    currency: str
    bills: int
    gross: Decimal


class Kind(StrEnum):
    """What the comparison found for an account (in the order a report lists them)."""

    FAILED = "failed"
    MISSING = "missing"
    CHANGED = "changed"
    NEW = "new"


KIND_ORDER = tuple(Kind)


@dataclass(frozen=True)
class Thresholds:
    """How much a gross may move before the account counts as changed: strictly more than
    ``absolute`` and strictly more than ``percent`` % of the previous gross (both, see the
    module's docstring). Defaults: 1.00 and 5 %."""

    absolute: Decimal = Decimal("1.00")
    percent: Decimal = Decimal("5")

    def __post_init__(self) -> None:
        for name in ("absolute", "percent"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                raise BillingError(f"shadow threshold {name} must be a Decimal >= 0, not {value!r}")

    def exceeded(self, previous: Decimal, now: Decimal) -> bool:
        """Whether going from ``previous`` to ``now`` moves by more than both thresholds."""
        change = abs(now - previous)
        return change > self.absolute and change * HUNDRED > abs(previous) * self.percent


@dataclass(frozen=True)
class AccountChange:
    """One account (in one currency) the comparison flags."""

    account: str
    currency: str
    kind: Kind
    previous_bills: int
    previous_gross: Decimal
    now_bills: int
    now_gross: Decimal
    reason: str = ""
    """Why the dry run failed the account (``failed`` only)."""

    @property
    def change(self) -> Decimal:
        return self.now_gross - self.previous_gross

    @property
    def percent(self) -> Decimal | None:
        """The change in % of the previous gross, to 0.01 (half up); None from nothing."""
        return percent_of(self.change, self.previous_gross)


@dataclass(frozen=True)
class CurrencyTotal:
    """One currency: the previous cycle's bills and gross against this run's, over the
    accounts compared."""

    currency: str
    previous_bills: int
    previous_gross: Decimal
    now_bills: int
    now_gross: Decimal

    @property
    def change(self) -> Decimal:
        return self.now_gross - self.previous_gross

    @property
    def percent(self) -> Decimal | None:
        return percent_of(self.change, self.previous_gross)


@dataclass(frozen=True)
class ShadowReport:
    """The comparison: the flagged accounts (by kind, then account), the totals per currency,
    how many accounts were compared and how many of those are unflagged."""

    as_of: date
    thresholds: Thresholds
    changes: tuple[AccountChange, ...]
    totals: tuple[CurrencyTotal, ...]
    compared: int
    unchanged: int
    counts: Mapping[Kind, int] = field(default_factory=dict)

    def of(self, kind: Kind) -> list[AccountChange]:
        return [c for c in self.changes if c.kind == kind]


def percent_of(change: Decimal, base: Decimal) -> Decimal | None:
    """``change`` as a percentage of ``base``, to 0.01 half up; None when ``base`` is 0."""
    if base == 0:
        return None
    with decimal.localcontext(prec=34, rounding=decimal.ROUND_HALF_UP):
        return (change * HUNDRED / abs(base)).quantize(PERCENT_PLACES)


def _summed(rows: Iterable[Billed]) -> dict[tuple[str, str], tuple[int, Decimal]]:
    """Bills and gross per (account, currency): an account's bill units add up."""
    out: dict[tuple[str, str], tuple[int, Decimal]] = {}
    for row in rows:
        if not isinstance(row.gross, Decimal):
            raise TypeError(f"gross is a Decimal, not {type(row.gross).__name__}")
        bills, gross = out.get((row.account, row.currency), (0, ZERO))
        out[(row.account, row.currency)] = (bills + row.bills, gross + row.gross)
    return out


def compare(
    as_of: date,
    previous: Iterable[Billed],
    now: Iterable[Billed],
    failed: Mapping[str, str] | None = None,
    thresholds: Thresholds | None = None,
) -> ShadowReport:
    """Compare this run (``now``) with the previous cycle, account by account.

    ``failed`` maps the accounts the dry run failed to the reason. A failed account with no
    previous bill is listed once, without currency.
    """
    thresholds = thresholds or Thresholds()
    failed = dict(failed or {})
    before, after = _summed(previous), _summed(now)
    changes: list[AccountChange] = []
    unchanged = 0
    keys = sorted(set(before) | set(after))
    for key in keys:
        account, currency = key
        (pb, pg), (nb, ng) = before.get(key, (0, ZERO)), after.get(key, (0, ZERO))
        kind: Kind | None
        if account in failed:
            kind = Kind.FAILED
        elif pb and not nb:
            kind = Kind.MISSING
        elif nb and not pb:
            kind = Kind.NEW
        elif thresholds.exceeded(pg, ng):
            kind = Kind.CHANGED
        else:
            kind = None
        if kind is None:
            unchanged += 1
            continue
        changes.append(
            AccountChange(account, currency, kind, pb, pg, nb, ng, failed.get(account, ""))
        )
    listed = {account for account, _ in keys}
    for account in sorted(set(failed) - listed):
        changes.append(AccountChange(account, "", Kind.FAILED, 0, ZERO, 0, ZERO, failed[account]))
    changes.sort(key=lambda c: (KIND_ORDER.index(c.kind), c.account, c.currency))
    return ShadowReport(
        as_of=as_of,
        thresholds=thresholds,
        changes=tuple(changes),
        totals=_totals(before, after),
        compared=len(keys) + len(set(failed) - listed),
        unchanged=unchanged,
        counts={kind: sum(1 for c in changes if c.kind == kind) for kind in KIND_ORDER},
    )


def _totals(
    before: Mapping[tuple[str, str], tuple[int, Decimal]],
    after: Mapping[tuple[str, str], tuple[int, Decimal]],
) -> tuple[CurrencyTotal, ...]:
    sums: dict[str, list[int | Decimal]] = {}
    for side, rows in ((0, before), (2, after)):
        for (_, currency), (bills, gross) in rows.items():
            row = sums.setdefault(currency, [0, ZERO, 0, ZERO])
            row[side] += bills
            row[side + 1] += gross
    return tuple(
        CurrencyTotal(currency, int(r[0]), Decimal(r[1]), int(r[2]), Decimal(r[3]))
        for currency, r in sorted(sums.items())
    )


# ---- the gate ----


@dataclass(frozen=True)
class GateLimits:
    """How many accounts of each kind the gate lets through before the real run stops;
    None: that kind does not stop it. Defaults: any missing or changed account stops the run,
    new and failed accounts do not (new customers are normal; a failure is the real run's own
    to report)."""

    max_missing: int | None = 0
    max_changed: int | None = 0
    max_new: int | None = None
    max_failed: int | None = None

    def limit(self, kind: Kind) -> int | None:
        return {
            Kind.MISSING: self.max_missing,
            Kind.CHANGED: self.max_changed,
            Kind.NEW: self.max_new,
            Kind.FAILED: self.max_failed,
        }[kind]


NAMED_IN_MESSAGE = 20


def gate_problem(report: ShadowReport, limits: GateLimits) -> str | None:
    """Why the real run must not go on (the kinds over their limit, naming the accounts),
    or None when the shadow run stayed within the limits."""
    over: list[str] = []
    for kind in KIND_ORDER:
        limit = limits.limit(kind)
        found = report.of(kind)
        if limit is None or len(found) <= limit:
            continue
        names = ", ".join(_named(c) for c in found[:NAMED_IN_MESSAGE])
        more = f" and {len(found) - NAMED_IN_MESSAGE} more" if len(found) > NAMED_IN_MESSAGE else ""
        over.append(f"{len(found)} {kind} (at most {limit}): {names}{more}")
    if not over:
        return None
    return (
        f"shadow bill run as of {report.as_of} against the previous cycle: "
        + "; ".join(over)
        + ". Nothing was billed."
    )


def _named(change: AccountChange) -> str:
    if change.kind == Kind.CHANGED:
        before, after = (
            amount(v, change.currency) for v in (change.previous_gross, change.now_gross)
        )
        return f"{change.account} ({before} -> {after} {change.currency})"
    return change.account


# ---- the CSV ----


def amount(value: Decimal, currency: str) -> str:
    """A plain decimal in the currency's minor units (``-12.50``, ``1200`` JPY); the sums of
    bills are already in them, so nothing is rounded. Without a currency, as it is."""
    return str(value.quantize(minor_unit(currency)) if currency else value)


CSV_HEADER = (
    "kind",
    "account",
    "currency",
    "previous_bills",
    "previous_gross",
    "now_bills",
    "now_gross",
    "change",
    "change_percent",
    "reason",
)


def csv_rows(report: ShadowReport) -> list[Sequence[str]]:
    """The report as CSV rows (after ``CSV_HEADER``): one per flagged account, then one
    ``total`` row per currency (no account). Amounts are plain decimals (``-12.50``)."""
    rows: list[Sequence[str]] = []
    for c in report.changes:
        rows.append(
            (
                str(c.kind),
                c.account,
                c.currency,
                str(c.previous_bills),
                amount(c.previous_gross, c.currency),
                str(c.now_bills),
                amount(c.now_gross, c.currency),
                amount(c.change, c.currency),
                "" if c.percent is None else str(c.percent),
                c.reason,
            )
        )
    for t in report.totals:
        rows.append(
            (
                "total",
                "",
                t.currency,
                str(t.previous_bills),
                amount(t.previous_gross, t.currency),
                str(t.now_bills),
                amount(t.now_gross, t.currency),
                amount(t.change, t.currency),
                "" if t.percent is None else str(t.percent),
                "",
            )
        )
    return rows
