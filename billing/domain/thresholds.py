"""Usage thresholds (progressive billing, issue #21): bill an account's usage early.

An account may have a ``usage_threshold`` (a net amount, before tax, in its currency). Each run
of the UTI daemon (as of its Process Now) looks at the account's **open cycle**: the cycle of
its bill unit that holds Process Now (``in_open_cycle``). For each usage item (type ``usage``:
UTI items are billed at once anyway) the unbilled amount is

    price(quantity billed early in this cycle + quantity not priced yet) - amount billed early

(``rest_of_cycle``), so tiers apply to the cycle's total, as the cycle bill would apply them.
When the account's sum reaches the threshold (``charges_over``), every item with a positive
unbilled amount gets an immediate charge ``thr:{item}:{cycle bill date}:{process now}`` that the
Billing daemon (or bill day) bills at once.

The cycle bill then bills, per item, the same ``rest_of_cycle``: the price of the cycle's whole
quantity less what the cycle's threshold charges billed. The amounts telescope: the threshold
charges and the cycle charge of an item sum to the price of the cycle's total quantity, each
rounded once, exactly as one charge for the whole cycle would have been.

Which records each charge prices is the range model's (``billing.store.usage``): a threshold
charge's range is ``[cycle start, process now)`` up to the watermark the run read, and it
comes before the cycle's own charge, so a record it priced is priced by no other charge.

Pure: values in, values out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal

from billing.domain.late_usage import delta
from billing.domain.pricing import PricePlan, Rated


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min)


def in_open_cycle(process_now: datetime, last_bill_date: date | None, next_bill_date: date) -> bool:
    """Whether ``process_now`` falls in the bill unit's open cycle: from midnight of its last bill
    date (none: from its start) to midnight of its next bill date. A unit whose cycle has ended
    but is not billed yet waits for its cycle bill, which bills that usage whole."""
    if last_bill_date is not None and process_now < _midnight(last_bill_date):
        return False
    return process_now < _midnight(next_bill_date)


def rest_of_cycle(
    plan: PricePlan, billed_quantity: Decimal, billed_amount: Decimal, quantity: Decimal
) -> Rated:
    """What ``quantity`` more of a cycle costs when ``billed_quantity`` of the same cycle was
    billed early for ``billed_amount``: the price of the whole (each price rounded once, as a
    usage charge is) less what was billed. Graduated, 100 at 1.00 then 0.50, 80 billed early
    (80.00), 40 more: 120 cost 110.00, so 30.00 (priced alone, 40 would cost 40.00)."""
    return delta(plan, billed_quantity, billed_amount, quantity)


@dataclass(frozen=True)
class ItemUsage:
    """One usage item's part of an account's open cycle at a run's cut-off."""

    item_id: int
    plan: PricePlan
    """The plan its usage is rated with (its price override applied)."""
    billed_quantity: Decimal
    billed_amount: Decimal
    """What the cycle's threshold charges of the item billed already."""
    quantity: Decimal
    """The quantity no charge prices yet, up to the cut-off."""

    def unbilled(self) -> Rated:
        return rest_of_cycle(self.plan, self.billed_quantity, self.billed_amount, self.quantity)


def unbilled_total(priced: Sequence[tuple[ItemUsage, Rated]]) -> Decimal:
    """The account's unbilled usage amount: the sum over its items (net, before tax)."""
    return sum((rated.amount for _, rated in priced), Decimal(0))


def charges_over(usage: Sequence[ItemUsage], threshold: Decimal) -> list[tuple[ItemUsage, Rated]]:
    """The threshold charges of an account: none while its unbilled usage is below
    ``threshold``; once it reaches it, one per item whose unbilled amount is positive (an item
    whose unbilled amount is zero or negative, a volume tier that made the whole cheaper, keeps
    its records for a later charge, which prices them on the cycle's total again)."""
    priced = [(item, item.unbilled()) for item in usage]
    if not priced or unbilled_total(priced) < threshold:
        return []
    return [(item, rated) for item, rated in priced if rated.amount > 0]
