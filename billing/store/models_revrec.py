"""Revenue recognition tables (Cn285 RevRec): revenue months and each line's monthly shares.

A ``RevenueShare`` is the part of an invoiced bill line's net that belongs to one service
month (allocated by day, see billing/ops/revrec.py). It is *recognized* once a month's summary
journal takes it (``revenue_month_id`` set), *deferred* until then. A ``RevenueMonth`` is the
header of a month's summary journal: ``draft`` while it can be re-run, ``posted`` once locked.
The month's ``journal_entries`` rows are found by their (year, month).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from billing.domain.enums import RevenueMonthStatus
from billing.store.models import Base, _enum
from billing.store.types import Amount


class RevenueMonth(Base):
    """The header of a month's RevRec summary journal (Cn285 ``summary_journal_daemon``)."""

    __tablename__ = "revenue_months"

    id: Mapped[int] = mapped_column(primary_key=True)
    year: Mapped[int] = mapped_column(Integer)
    month: Mapped[int] = mapped_column(Integer)
    status: Mapped[RevenueMonthStatus] = mapped_column(
        _enum(RevenueMonthStatus), default=RevenueMonthStatus.DRAFT
    )
    posted_on: Mapped[date | None] = mapped_column(Date)

    __table_args__ = (
        UniqueConstraint("year", "month"),
        CheckConstraint("month BETWEEN 1 AND 12", name="month_range"),
    )


class RevenueShare(Base):
    """The share of an invoiced bill line's net that belongs to one service month; the line is
    a charge on an invoiced bill (``charges.bill_id``, migration 0010)."""

    __tablename__ = "revenue_shares"

    id: Mapped[int] = mapped_column(primary_key=True)
    charge_id: Mapped[int] = mapped_column(ForeignKey("charges.id"))
    year: Mapped[int] = mapped_column(Integer)
    month: Mapped[int] = mapped_column(Integer)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal] = mapped_column(Amount)
    revenue_month_id: Mapped[int | None] = mapped_column(ForeignKey("revenue_months.id"))

    __table_args__ = (
        UniqueConstraint("charge_id", "year", "month"),
        Index("ix_revenue_shares_service_month", "year", "month"),
        Index("ix_revenue_shares_revenue_month", "revenue_month_id"),
        CheckConstraint("month BETWEEN 1 AND 12", name="month_range"),
    )
