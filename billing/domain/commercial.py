"""Commercial terms on a cycle bill (issue #21): discounts, then the minimum commitments.

Pure: the bill run reads a unit's terms (``UnitTerms``, by ``billing.ops.commercial``) into its
snapshot, and the plan (``billing.domain.billplan``) calls ``term_specs`` once per cycle bill,
just before it assembles the bill. What comes back are charges of their own kind, keyed so a
rerun adds nothing, and billed as lines of that bill:

1. the bill's charges (fees, usage, one-time, corrections);
2. item and plan discounts (``billing.domain.discounts``), then bill discounts, each a negative
   ``discount`` line taxed like what it reduces, never taking a target below zero;
3. the minimum-commitment shortfall (``billing.domain.commitments``), on the discounted net;
4. tax, per line (``billing.domain.invoice``).

Prepaid credits are not a line: a wallet pays the bill before collection
(``billing.ops.wallets``). Terms apply to cycle bills only; an immediate bill (UTI,
progressive billing) is billed at its prices, and the cycle bill's terms see what it nets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import NamedTuple, Protocol

from billing.domain.enums import TERM_KINDS
from billing.domain.periods import Period
from billing.domain.schedule import ChargeSpec, CycleGrid


class BilledLine(Protocol):
    """What the terms read of any charge line: a bill's, or one a pass computes."""

    @property
    def kind(self) -> str: ...
    @property
    def charge_key(self) -> str: ...
    @property
    def contract_item_id(self) -> int | None: ...
    @property
    def period_start(self) -> date: ...
    @property
    def tax_category(self) -> str: ...
    @property
    def amount(self) -> Decimal: ...


class TermTarget(BilledLine, Protocol):
    """What the terms read of a charge on the bill (``billing.domain.billplan.Billable``)."""

    @property
    def id(self) -> int: ...
    @property
    def description(self) -> str: ...
    @property
    def period_end(self) -> date: ...


@dataclass(frozen=True)
class TermItem:
    """A contract item as the terms see it: its plan, its contract and when it is active."""

    item_id: int
    ref: str
    price_plan_id: int
    contract_id: int
    start: date
    end: date | None


@dataclass(frozen=True)
class DiscountTerm:
    """A discount as stored (``billing.store.models_terms.Discount``), as plain values."""

    id: int
    ref: str
    scope: str
    kind: str
    value: Decimal
    description: str
    reason_code: str
    start: date
    cycles: int | None
    end: date | None
    priority: int
    stackable: bool
    item_id: int | None = None
    plan_id: int | None = None


class Spent(NamedTuple):
    """A charge of a commitment's target already on an earlier bill (its period and net)."""

    period_start: date
    period_end: date
    amount: Decimal


@dataclass(frozen=True)
class CommitmentTerm:
    """A minimum commitment as stored (``billing.store.models_terms.Commitment``), with what
    the reader adds for the cycle billed (``billing.domain.commitments``)."""

    id: int
    ref: str
    amount: Decimal
    tax_category: str
    description: str
    start: date
    end: date | None
    contract_id: int | None = None
    item_id: int | None = None
    target_start: date | None = None
    target_end: date | None = None
    """When the target is active: the item's (or the contract's) start and first day not
    served; None: no bound."""
    billed: tuple[Spent, ...] = ()
    """The target's charges on earlier bills whose period overlaps the unit's cycle billed
    (the fee in advance billed when the cycle opened, an immediate bill's usage...)."""


@dataclass(frozen=True)
class Reversal:
    """A stored credit of a charge that discounts reduced on its bill: the share of that
    charge's list price the discounts took (a fraction in [0, 1], ``discounts.discounted_share``).
    The credit is a list price; the share of it the customer never paid is given back
    (``discounts.reversal_specs``)."""

    corrected_id: int
    share: Fraction


@dataclass(frozen=True)
class UnitTerms:
    """A bill unit's terms, and its account's items (all types) by id."""

    discounts: tuple[DiscountTerm, ...] = ()
    commitments: tuple[CommitmentTerm, ...] = ()
    items: Mapping[int, TermItem] = field(default_factory=dict)
    reversals: Mapping[str, Reversal] = field(default_factory=dict)
    """The unit's stored credits of discounted charges, by the credit's charge key."""

    def __bool__(self) -> bool:
        return bool(self.discounts or self.commitments)


@dataclass(frozen=True)
class TermCharge:
    """A computed term line: its spec, and the charge it reduces (an item discount's target;
    None for bill discounts and shortfalls)."""

    spec: ChargeSpec
    target_id: int | None = None


def term_specs(
    terms: UnitTerms,
    grid: CycleGrid,
    cycle: Period,
    charges: Sequence[TermTarget],
    currency: str,
) -> list[ChargeSpec]:
    """The discount and shortfall charges of the cycle bill of ``cycle`` (``bill_on`` its end).

    ``charges`` are the bill's charges; term charges already among them (a rerun after a crash
    left them stored) are not computed again, and no term reduces another term's line.
    """
    # Imported here: both modules import this one's types (TermTarget, UnitTerms, ...).
    from billing.domain.commitments import shortfall_specs
    from billing.domain.discounts import discount_specs, reversal_specs

    if not terms:
        return []
    stored = {c.charge_key for c in charges if c.kind in TERM_KINDS}
    targets = [c for c in charges if c.kind not in TERM_KINDS]
    discounts = discount_specs(terms, grid, cycle, targets, currency)
    discounts += reversal_specs(terms, cycle, targets, currency)
    shortfalls = shortfall_specs(terms, grid, cycle, targets, discounts, currency)
    return [s for s in (*discounts, *shortfalls) if s.charge_key not in stored]
