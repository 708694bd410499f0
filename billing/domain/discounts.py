"""Discounts on a cycle bill: percentage or fixed, on an item, a plan or the bill (issue #21).

See ``billing.domain.commercial`` for where they sit in the bill's order.
"""

from __future__ import annotations

from collections.abc import Sequence

from billing.domain.commercial import TermTarget, UnitTerms
from billing.domain.periods import Period
from billing.domain.schedule import ChargeSpec, CycleGrid


def discount_specs(
    terms: UnitTerms,
    grid: CycleGrid,
    cycle: Period,
    targets: Sequence[TermTarget],
    currency: str,
) -> list[ChargeSpec]:
    """The discount lines of the cycle bill of ``cycle``."""
    return []  # TODO(#21 discounts helper)
