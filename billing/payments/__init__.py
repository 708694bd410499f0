"""Payments: BRM ``pin_collect`` and ``pin_refund``, and recording what customers pay.

- ``gateway``: the ``PaymentGateway`` seam (a card processor) and its results.
- ``sandbox``: a processor's test mode, with test card tokens and idempotency-key replay.
- ``ledger``: recording, settling and failing payments and refunds; applying them to bills.
- ``collect``: card charges and SEPA direct debits for the open bills (pin_collect).
- ``refund``: card refunds and SEPA credit transfers for credit balances (pin_refund).
- ``sepa``: pain.008.001.02 and pain.001.001.03 files, valid against the official XSDs.
- ``statement``: bank-statement CSV import.

Errors (every one a ``BillingError``, so a ``ValueError``)::

    PaymentError(BillingError)
    +-- GatewayUnavailable     the processor failed transiently; the same key may be retried
    +-- IdempotencyConflict    an idempotency key was reused for a different request
    +-- BankDetailsError       an IBAN, a BIC or a creditor identity that SEPA refuses
    +-- PaymentRecordError     a payment that cannot be recorded (unknown account, currency)
"""
