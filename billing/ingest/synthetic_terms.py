"""Synthetic discounts: a share of the synthetic accounts get discounts of every shape.

``billing.ingest.synthetic`` calls ``discount_batch`` once per block of accounts, with a random
stream of its own (``numpy.random.default_rng([seed, block, DISCOUNT_STREAM])``): the other
tables' rows are the same with or without discounts, and the discounts the same for the same
seed. Each chosen account gets one shape, on its recurring item (the first item of its
contract) or its bill, from the contract's start:

====  ======================================================================================
0     item, 10/15/20 %, no end
1     plan (the recurring item's), fixed 2/3/5 EUR a cycle (converted), reason 102
2     bill, 5/10/15 % for 3, 6 or 12 cycles
3     item 10 % and a non-stackable bill 20 % after it (which skips the item, reduced first)
4     item, fixed 1/2/3 EUR a cycle until 90 days after the start, reason 103 (temporary)
5     bill, 15 % for 3 cycles, coupon WELCOME15
====  ======================================================================================
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np

from billing.store.bulk import Column

DISCOUNT_STREAM = 21
"""The third number of each block's discount stream (the others use ``[seed, block]``)."""
DEFAULT_SHARE = 0.15
"""The share of accounts ``billing seed`` and the demo give discounts (``seed`` takes 0)."""
SHAPES = 6
PERCENTS = (Decimal(10), Decimal(15), Decimal(20))
FIXED_EUR = (Decimal(2), Decimal(3), Decimal(5))
CYCLES = (3, 6, 12)
COLUMNS = (
    "id", "ref", "account_id", "scope", "contract_item_id", "price_plan_id", "kind", "value",
    "coupon_code", "description", "reason_code", "start_date", "cycles", "end_date", "priority",
    "stackable",
)  # fmt: skip
CENT = Decimal("0.01")


def discount_batch(
    rng: np.random.Generator,
    *,
    first_id: int,
    share: float,
    accounts: np.ndarray,
    recurring_items: np.ndarray,
    recurring_plans: np.ndarray,
    fx: list[Decimal],
    start: date,
) -> dict[str, Column]:
    """The discount rows of one block: ``accounts`` (ids) with, per account, its recurring item
    and that item's price plan, and the exchange rate from EUR of its currency."""
    n = len(accounts)
    chosen = np.nonzero(rng.random(n) < share)[0].tolist()
    shape = rng.integers(0, SHAPES, size=n).tolist()
    pick = rng.integers(0, 3, size=n).tolist()
    rows: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    next_id = first_id

    def add(k: int, **values: Any) -> None:
        nonlocal next_id
        row = {
            "id": next_id,
            "ref": f"DSC-{next_id:09d}",
            "account_id": int(accounts[k]),
            "contract_item_id": None,
            "price_plan_id": None,
            "coupon_code": None,
            "reason_code": "95",
            "start_date": start,
            "cycles": None,
            "end_date": None,
            "priority": 0,
            "stackable": True,
            **values,
        }
        for name in COLUMNS:
            rows[name].append(row[name])
        next_id += 1

    for k in chosen:
        item, plan, i = int(recurring_items[k]), int(recurring_plans[k]), pick[k]
        s = shape[k]
        if s in (0, 3):
            percent = PERCENTS[0] if s == 3 else PERCENTS[i]
            add(
                k,
                scope="item",
                contract_item_id=item,
                kind="percent",
                value=percent,
                description=f"Loyalty discount {percent} %",
            )
            if s == 3:
                add(
                    k,
                    scope="bill",
                    kind="percent",
                    value=Decimal(20),
                    priority=1,
                    stackable=False,
                    description="Partner rate 20 % (not combinable)",
                )
        elif s == 1:
            add(
                k,
                scope="plan",
                price_plan_id=plan,
                kind="fixed",
                value=_money(FIXED_EUR[i], fx[k]),
                reason_code="102",
                description="Bundle discount",
            )
        elif s == 2:
            add(
                k,
                scope="bill",
                kind="percent",
                value=Decimal(5 * (i + 1)),
                cycles=CYCLES[i],
                description=f"Welcome offer {5 * (i + 1)} % for {CYCLES[i]} cycles",
            )
        elif s == 4:
            add(
                k,
                scope="item",
                contract_item_id=item,
                kind="fixed",
                value=_money(Decimal(i + 1), fx[k]),
                reason_code="103",
                end_date=start + timedelta(days=90),
                description="Spring promotion",
            )
        else:
            add(
                k,
                scope="bill",
                kind="percent",
                value=Decimal(15),
                cycles=3,
                coupon_code="WELCOME15",
                description="Coupon WELCOME15: 15 % for 3 cycles",
            )
    return {name: values for name, values in rows.items()}


def _money(eur: Decimal, rate: Decimal) -> Decimal:
    """An amount set in EUR in another currency, rounded to the cent."""
    return (eur * rate).quantize(CENT, ROUND_HALF_UP)
