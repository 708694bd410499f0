"""The synthetic population's commercial terms (issue #21): minimum commitments and trials.

``draw_terms`` is called once per block by ``billing.ingest.synthetic`` when it seeds with
terms, after every other draw of the block: the rows without terms are the same either way, and
the terms are deterministic by seed like the rest.

- **Commitments.** ``COMMITMENT_SHARE`` of the accounts commit to a minimum spend per cycle:
  60 % on their contract (all its items), 40 % on their recurring item. Half start with the
  contract; the other half 3 to 24 days later, inside a cycle (their first cycle is prorated).
  Minimums are set in EUR (``MINIMUMS``, about the price of a plan) and converted like prices.
- **Trials.** ``TRIAL_SHARE`` of the recurring items are free until ``TRIAL_DAYS`` days after
  their start: 14 days ends inside the first cycle, 30 and 45 later, in a cycle or on one of its
  first days.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np

COMMITMENT_SHARE = 0.15
CONTRACT_SHARE = 0.6
"""Of the commitments, those on the whole contract (the others are on the recurring item)."""
MID_CYCLE_SHARE = 0.5
MINIMUMS = (Decimal("25.00"), Decimal("50.00"), Decimal("120.00"))
TRIAL_SHARE = 0.10
TRIAL_DAYS = (14, 30, 45)
CENT = Decimal("0.01")
ITEM_RECURRING = "recurring"


def draw_terms(
    rng: np.random.Generator,
    start: date,
    first_id: int,
    contracts: Mapping[str, Any],
    items: Mapping[str, Any],
    currencies: Sequence[str],
    fx: Mapping[str, Decimal],
) -> tuple[list[date | None], dict[str, Any]]:
    """The trial end of each item (None: no trial) and the commitments of a block's accounts.

    ``contracts`` and ``items`` are the block's columns (one contract per account, in account
    order); ``currencies`` each account's currency code, in the same order; ``first_id`` the
    first free commitment id.
    """
    n = len(contracts["id"])
    recurring = np.array([t == ITEM_RECURRING for t in items["item_type"]], dtype=bool)
    trial = recurring & (rng.random(len(recurring)) < TRIAL_SHARE)
    trial_days = np.asarray(TRIAL_DAYS)[rng.integers(0, len(TRIAL_DAYS), size=len(recurring))]
    item_starts = items["start_date"]
    trial_ends: list[date | None] = [
        item_starts[i] + timedelta(days=int(trial_days[i])) if trial[i] else None
        for i in range(len(recurring))
    ]

    committed = rng.random(n) < COMMITMENT_SHARE
    on_contract = rng.random(n) < CONTRACT_SHARE
    offset = np.where(rng.random(n) < MID_CYCLE_SHARE, rng.integers(3, 25, size=n), 0)
    minimum = rng.integers(0, len(MINIMUMS), size=n)
    owners = np.nonzero(committed)[0]
    # Each contract's recurring item: items come in contract order, exactly one recurring each.
    first_item = np.asarray(items["id"])[recurring]
    ids = np.arange(first_id, first_id + len(owners), dtype=np.int64)
    account_ids = np.asarray(contracts["account_id"])
    contract_ids = np.asarray(contracts["id"])
    whole = on_contract[owners]
    pairs = list(zip(owners.tolist(), whole.tolist(), strict=True))
    commitments: dict[str, Any] = {
        "id": ids,
        "ref": [f"MIN-{i:09d}" for i in ids.tolist()],
        "account_id": account_ids[owners],
        "contract_id": [int(contract_ids[o]) if w else None for o, w in pairs],
        "contract_item_id": [None if w else int(first_item[o]) for o, w in pairs],
        "amount": [
            _converted(MINIMUMS[int(minimum[o])], currencies[o], fx) for o in owners.tolist()
        ],
        "tax_category": ["standard"] * len(owners),
        "description": [
            "Monthly spend, whole contract" if w else "Monthly spend, subscription"
            for w in whole.tolist()
        ],
        "start_date": [start + timedelta(days=int(offset[o])) for o in owners.tolist()],
        "end_date": [None] * len(owners),
    }
    return trial_ends, commitments


def _converted(eur: Decimal, currency: str, fx: Mapping[str, Decimal]) -> Decimal:
    return (eur * fx[currency]).quantize(CENT, ROUND_HALF_UP)
