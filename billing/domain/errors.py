"""The billing error tree. Every error is a ``ValueError`` that carries its own message.

BillingError(ValueError)
+-- MoneyError            bad amount or currency (float money, unknown currency, mixed currencies)
+-- PeriodError           impossible dates or cycles (billing day outside 1..31, empty period)
+-- PricingError          a price plan that cannot price (missing tiers, negative quantity)
+-- ImportFileError       a file that cannot be imported; names the record and the field
+-- ConfigurationError    missing or invalid settings (database URL, series, tax rate)
"""

from __future__ import annotations


class BillingError(ValueError):
    """Base of every error raised by the billing engine."""


class MoneyError(BillingError):
    """An amount or a currency that money cannot be built from."""


class PeriodError(BillingError):
    """Dates, periods or cycles that do not make sense."""


class PricingError(BillingError):
    """A price plan or a quantity that cannot be priced."""


class ConfigurationError(BillingError):
    """Missing or inconsistent configuration (tax rate, numbering series, database)."""


class ImportFileError(BillingError):
    """A file that cannot be imported. The message names the record and the field."""

    def __init__(self, message: str, *, record: str | None = None, field: str | None = None):
        where = ", ".join(
            p
            for p in (f"record {record}" if record else "", f"field {field}" if field else "")
            if p
        )
        super().__init__(f"{where}: {message}" if where else message)
        self.record = record
        self.field = field
