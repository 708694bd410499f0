"""The Payment Settings block bounds how early a SEPA debit is sent (issue #18).

The default is the EPC SDD Core rulebook's 14 calendar days; a block saved when the field
could be empty (no horizon, debits sent up to two months ahead) loads with 14.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from billing.domain.direct_debit import DEBIT_HORIZON_DAYS
from blocks.payment_settings import PaymentSettings


def test_the_default_horizon_is_the_rulebooks_14_days():
    assert PaymentSettings().debit_horizon_days == DEBIT_HORIZON_DAYS == 14


def test_an_empty_horizon_saved_before_loads_as_14_days():
    assert PaymentSettings(debit_horizon_days=None).debit_horizon_days == 14
    assert PaymentSettings(debit_horizon_days=30).debit_horizon_days == 30


def test_a_negative_horizon_is_refused():
    with pytest.raises(ValidationError):
        PaymentSettings(debit_horizon_days=-1)
