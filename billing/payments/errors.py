"""The payment errors (see the tree in ``billing.payments``)."""

from __future__ import annotations

from billing.domain.errors import BillingError


class PaymentError(BillingError):
    """Base of the payment errors."""


class GatewayUnavailable(PaymentError):
    """The processor failed transiently: retrying with the same idempotency key is safe."""


class IdempotencyConflict(PaymentError):
    """An idempotency key came back with a different amount, currency or token."""


class BankDetailsError(PaymentError):
    """An IBAN, a BIC, a mandate or a creditor identity that a SEPA file cannot carry."""


class PaymentRecordError(PaymentError):
    """A payment that cannot be recorded: unknown account or bill, wrong currency, bad amount."""
