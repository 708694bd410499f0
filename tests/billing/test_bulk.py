"""Tests for billing.store.bulk: the CSV text COPY loads."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from billing.domain.errors import MoneyError
from billing.store.bulk import csv_buffer
from billing.store.models import Charge, ChargeStatus

CHARGES = Charge.__table__
D = Decimal


def test_csv_holds_stored_amounts_enum_values_and_nulls() -> None:
    columns = {
        "amount": [D("1.50"), None, D("1.5"), 7],
        "status": [ChargeStatus.OPEN, "calculated", ChargeStatus.OPEN, None],
        "bill_on": [date(2026, 10, 1), None, date(2026, 10, 2), date(2026, 10, 3)],
    }
    text = csv_buffer(CHARGES, columns, "postgresql").read()
    assert text.splitlines() == [
        "1.50,open,2026-10-01",
        r"\N,calculated,\N",
        "1.50,open,2026-10-02",  # an equal amount is converted once; the value is the same
        r"7,\N,2026-10-03",
    ]
    scaled = csv_buffer(CHARGES, {"amount": [D("1.5"), D("-0.000001")]}, "sqlite").read()
    assert scaled.splitlines() == ["1500000", "-1"]


@pytest.mark.parametrize(
    "amounts",
    [
        [D("1.00"), 1.0],  # a float equal to a Decimal already seen is refused all the same
        [1.0, D("1.00")],
        [D("1.00"), True],
        [D("0.1234567")],  # more than six decimals
    ],
)
def test_csv_refuses_amounts_that_would_not_round_trip(amounts: list[object]) -> None:
    with pytest.raises(MoneyError):
        csv_buffer(CHARGES, {"amount": amounts}, "postgresql")
