"""Column types that keep money exact on every database.

SQLite has no decimal type: ``Amount`` stores a scaled integer there (micro-units, 6 decimals),
and ``NUMERIC(20, 6)`` on PostgreSQL. Both sum exactly in SQL and round-trip a ``Decimal``.
Amounts stay under 10**12 in size on both, so that a 64-bit SQLite integer never overflows.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Numeric
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from billing.domain.errors import MoneyError

SCALE = 6
LIMIT = Decimal(10) ** 12
_QUANTUM = Decimal(1).scaleb(-SCALE)


def scaled(dialect_name: str) -> bool:
    """True where amounts are stored as scaled integers (SQLite)."""
    return dialect_name == "sqlite"


def to_storage(value: Decimal, dialect_name: str) -> int | Decimal:
    """The stored form of an amount: micro-units on SQLite, the Decimal itself elsewhere."""
    if isinstance(value, float | bool) or not isinstance(value, Decimal | int):
        raise MoneyError(f"amounts are Decimal, not {type(value).__name__}: {value!r}")
    value = Decimal(value)
    if not value.is_finite():
        raise MoneyError(f"amount {value} is not finite")
    if abs(value) >= LIMIT:
        raise MoneyError(f"amount {value} is out of range (its size must stay under {LIMIT:,})")
    if value != value.quantize(_QUANTUM):
        raise MoneyError(f"amount {value} has more than {SCALE} decimals")
    return int(value.scaleb(SCALE)) if scaled(dialect_name) else value


def from_storage(value: Any, dialect_name: str) -> Decimal | None:
    """The Decimal behind a stored amount, always with 6 decimals."""
    if value is None:
        return None
    if scaled(dialect_name):
        return Decimal(int(value)).scaleb(-SCALE).quantize(_QUANTUM)
    return Decimal(value).quantize(_QUANTUM)


class Amount(TypeDecorator[Decimal]):
    """An exact Decimal with six decimals (money, quantities, unit prices, tax rates)."""

    impl = Numeric(20, SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if scaled(dialect.name):
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(20, SCALE, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return to_storage(value, dialect.name)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return from_storage(value, dialect.name)
