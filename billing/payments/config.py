"""How collection and refunds run: creditor, retry schedule, lead days, output folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from billing.domain.direct_debit import DEBIT_HORIZON_DAYS, DEFAULT_LEAD_DAYS
from billing.domain.errors import ConfigurationError
from billing.payments.sepa import Creditor

DEFAULT_RETRY_DAYS = (3, 7, 14)


@dataclass(frozen=True)
class RetryPolicy:
    """A failed collection is retried ``retry_days`` after the bill's first failure.

    With (3, 7, 14) a bill is tried on day 0, then on days 3, 7 and 14 after the first failure;
    when the fourth attempt fails too, the account enters dunning.
    """

    retry_days: tuple[int, ...] = DEFAULT_RETRY_DAYS

    def __post_init__(self) -> None:
        days = list(self.retry_days)
        if any(d <= 0 for d in days) or days != sorted(set(days)):
            raise ConfigurationError(
                f"retry days must be positive and increasing, not {self.retry_days}"
            )

    @property
    def attempts(self) -> int:
        """The first attempt and its retries."""
        return 1 + len(self.retry_days)

    def exhausted(self, failures: int) -> bool:
        return failures >= self.attempts

    def due(self, failures: int, first_failure: date | None, as_of: date) -> bool:
        """Whether attempt ``failures + 1`` of a bill is due on ``as_of``."""
        if failures == 0:
            return True
        if self.exhausted(failures) or first_failure is None:
            return False
        return as_of >= first_failure + timedelta(days=self.retry_days[failures - 1])


@dataclass(frozen=True, kw_only=True)
class PaymentConfig:
    """Everything pin_collect and pin_refund need besides the database and the gateway.

    ``creditor`` is None when no SEPA creditor is configured: debits and transfers are then
    skipped (and reported), card payments still run. SEPA files go under
    ``output_dir/<as_of>/sepa/<creditor id>/``. Card payments are stored, charged and recorded
    ``card_chunk`` at a time (one transaction each way per chunk).

    ``page_size`` accounts are planned at a time (in account id order), and each page's work is
    done before the next page is read, so memory does not grow with the number of accounts.
    ``file_transactions`` caps the transactions of one SEPA file: a run with more debits (or
    transfers) writes several files. The XSD sets no limit, but banks cap a file's transactions
    or its size, each its own way: set this to your bank's limit. The default, 10,000, gives a
    pain.008 file of about 7.5 MB and takes about 120 MiB to build and validate (100,000 would
    take 1.1 GiB). A file holds whole accounts, so it exceeds the cap only if one account alone
    has more transactions due than the cap.

    Direct debits (``billing.domain.direct_debit``): a bill is collected on its due date moved
    to the next TARGET2 business day, but at the earliest ``debit_lead_days`` TARGET2 business
    days (at least the rulebook's 1, D-1) after the run's ``as_of``. ``debit_horizon_days``:
    a debit whose collection date is more than that many calendar days after ``as_of`` is left
    for a later day's run; the default is the rulebook's 14 (``DEBIT_HORIZON_DAYS``: a
    collection is presented at most 14 calendar days before its due date). Set it higher only
    if the bank's agreement lets it hold files longer before presenting them.
    """

    output_dir: Path
    creditor: Creditor | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    debit_lead_days: int = DEFAULT_LEAD_DAYS
    debit_horizon_days: int = DEBIT_HORIZON_DAYS
    min_refund: Decimal = Decimal("0.01")
    card_chunk: int = 500
    page_size: int = 10_000
    file_transactions: int = 10_000

    def __post_init__(self) -> None:
        for name in ("card_chunk", "page_size", "file_transactions"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.debit_lead_days < 0:
            raise ConfigurationError(
                f"debit_lead_days must be zero or more, not {self.debit_lead_days}"
            )
        if self.debit_horizon_days < 0:
            raise ConfigurationError(
                f"debit_horizon_days must be zero or more, not {self.debit_horizon_days}"
            )

    def sepa_folder(self, as_of: date) -> Path:
        creditor_id = self.creditor.creditor_id if self.creditor else "none"
        return self.output_dir / as_of.isoformat() / "sepa" / creditor_id
