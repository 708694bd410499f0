"""Changes after the fact: when a correction is billed and what its line names (pure).

A change (quantity, price, swap), a termination or a deferred action can take effect before
bills already made: on a date inside a period billed in advance, or before a bill that already
closed its cycle. What it changes is never edited on the issued bill; it is settled as a
*correction*: a credit (``cxl:``) or an adjustment (``chg:``) charge for the part of the
period it corrects, which names the charge it corrects (``corrects_charge_id``).

The policy (docs/architecture.md, "Changes after the fact"):

- **Effective date.** Periods are ``[start, end)``. A termination, cancellation or swap
  effective on ``E`` serves the item up to ``E``: ``E`` itself is the first day *not* served
  and not billed. A quantity or price change effective on ``E`` bills ``E`` at the new terms.
- **Proration.** A correction is the fee of the corrected part at the new terms minus what was
  charged for it, each rounded once under the plan's proration policy (``by_day``: by days of
  the cycle; ``full``: any day served is the whole cycle; ``none``: only whole cycles).
- **When it is billed.** On the first bill dated on or after the effective date that is not
  made yet: a correction written before its unit's next bill is on that bill; one written for
  a date on or before the unit's last bill (the change came after the fact) is billed on the
  unit's next bill date (``settle_on``), never left pending behind a bill already made.
- **Reference.** The correction's bill line names the bill of the charge it corrects
  (``line_description``); the line's own period is the period it corrects.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date

from billing.domain.schedule import ChargeSpec

DESCRIPTION_LENGTH = 255
"""``charges.description`` holds this many characters (a billed charge's is its line's)."""


def settle_on(bill_on: date, last_bill_date: date | None, next_bill_date: date) -> date:
    """The date a charge written now is billed on: its own ``bill_on``, unless a bill of its
    unit dated on or after it was already made; then the unit's next bill date."""
    if last_bill_date is not None and bill_on <= last_bill_date:
        return next_bill_date
    return bill_on


def settled(spec: ChargeSpec, last_bill_date: date | None, next_bill_date: date) -> ChargeSpec:
    """``spec`` billed per ``settle_on``."""
    bill_on = settle_on(spec.bill_on, last_bill_date, next_bill_date)
    return spec if bill_on == spec.bill_on else dataclasses.replace(spec, bill_on=bill_on)


@dataclass(frozen=True)
class CorrectedBill:
    """The bill that holds a corrected charge: its number (None until numbered) and date."""

    bill_no: str | None
    bill_date: date


def line_description(description: str, corrected: CorrectedBill | None) -> str:
    """A correction's line text: its description and the bill it corrects, within the
    column's length (the description is shortened, never the reference)."""
    if corrected is None:
        return description
    if corrected.bill_no is not None:
        suffix = f", corrects invoice {corrected.bill_no}"
    else:  # a bill made but not numbered yet (its numbering step has not run)
        suffix = f", corrects the invoice of {corrected.bill_date.isoformat()}"
    return description[: DESCRIPTION_LENGTH - len(suffix)] + suffix
