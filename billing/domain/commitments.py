"""Minimum commitments on a cycle bill: the shortfall below a minimum spend (issue #21).

See ``billing.domain.commercial`` for where they sit in the bill's order.
"""

from __future__ import annotations

from collections.abc import Sequence

from billing.domain.commercial import TermTarget, UnitTerms
from billing.domain.periods import Period
from billing.domain.schedule import ChargeSpec, CycleGrid


def shortfall_specs(
    terms: UnitTerms,
    grid: CycleGrid,
    cycle: Period,
    targets: Sequence[TermTarget],
    discounts: Sequence[ChargeSpec],
    currency: str,
) -> list[ChargeSpec]:
    """The shortfall lines of the cycle bill of ``cycle`` (on the net after ``discounts``)."""
    return []  # TODO(#21 commitments helper)
