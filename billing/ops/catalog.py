"""Read the catalogue (price plans, tiers, products) and VAT rates into pure values."""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.domain.errors import ConfigurationError, PricingError
from billing.domain.late_usage import DEFAULT_LATE_USAGE_DAYS
from billing.domain.pricing import PricePlan, Tier
from billing.domain.vat import LineTax, Supply, TaxClass, VatCategory, determine
from billing.store.models import PricePlan as PlanRow
from billing.store.models import PriceTier, Product, TaxCategory, TaxRate


@dataclass(frozen=True)
class PlanInfo:
    """A price plan with what a charge needs from its product."""

    plan: PricePlan
    product_name: str
    tax_category: str
    late_usage_days: int = DEFAULT_LATE_USAGE_DAYS
    """The plan's lookback window for late usage (``billing.domain.late_usage``)."""


def load_plans(session: Session) -> dict[int, PlanInfo]:
    """Every price plan by id, validated (a bad plan raises PricingError naming it)."""
    tiers: dict[int, list[Tier]] = defaultdict(list)
    for t in session.scalars(
        select(PriceTier).order_by(PriceTier.price_plan_id, PriceTier.position)
    ):
        tiers[t.price_plan_id].append(Tier(t.up_to, t.unit_price, t.flat_fee))
    plans = {}
    rows = session.execute(select(PlanRow, Product.name, Product.tax_category).join(Product))
    for row, name, category in rows:
        plan = PricePlan(
            code=row.code,
            model=row.model.value,
            currency=row.currency,
            unit_price=row.unit_price,
            tiers=tuple(tiers.get(row.id, ())),
            package_size=row.package_size,
            proration=row.proration.value,
            timing=row.timing.value if row.timing else None,
            period_months=row.period_months,
        )
        plans[row.id] = PlanInfo(plan, name, category, row.late_usage_days)
    return plans


class TaxTable:
    """VAT rates by country and category, as valid on a date, and the catalogue's tax classes
    (what a category is: ``billing.domain.vat``)."""

    def __init__(
        self,
        rows: list[tuple[str, str, date, Decimal]],
        classes: Mapping[str, TaxClass] | None = None,
    ):
        self.classes = dict(classes or {})
        self._taxes: dict[tuple[str, str, bool, date], dict[str, LineTax | str]] = {}
        self._rates: dict[tuple[str, str], list[tuple[date, Decimal]]] = defaultdict(list)
        for country, category, valid_from, rate in sorted(rows, key=lambda r: r[2]):
            self._rates[(country, category)].append((valid_from, rate))

    def rates_for(self, country: str, on: date) -> dict[str, Decimal]:
        """Each category's rate in ``country`` on ``on`` (categories without one are absent)."""
        found = {}
        for (c, category), history in self._rates.items():
            if c != country:
                continue
            i = bisect_right([d for d, _ in history], on)
            if i:
                found[category] = history[i - 1][1]
        return found

    def taxes_for(
        self, seller_country: str, buyer_country: str, business: bool, on: date
    ) -> dict[str, LineTax | str]:
        """The VAT of each tax class for a buyer (a business or not) on ``on``, or why a class
        has none (the unit fails only if it bills that class). Memoized per (seller, country,
        business, date), as most units share them."""
        key = (seller_country, buyer_country, business, on)
        if key not in self._taxes:
            self._taxes[key] = self._determine(seller_country, buyer_country, business, on)
        return self._taxes[key]

    def _determine(
        self, seller_country: str, buyer_country: str, business: bool, on: date
    ) -> dict[str, LineTax | str]:
        rates = self.rates_for(buyer_country, on)
        found: dict[str, LineTax | str] = {}
        for code in self.classes.keys() | rates.keys():
            tax_class = self.classes.get(code, TaxClass(code))
            try:
                found[code] = determine(
                    tax_class,
                    seller_country=seller_country,
                    buyer_country=buyer_country,
                    business=business,
                    rates=rates,
                )
            except PricingError as error:
                found[code] = str(error)
        return found


def load_tax_classes(session: Session) -> dict[str, TaxClass]:
    """The catalogue's tax classes by code."""
    return {
        row.code: TaxClass(
            row.code,
            VatCategory(row.vat_category),
            Supply(row.supply),
            row.exemption_code,
            row.exemption_reason,
        )
        for row in session.scalars(select(TaxCategory))
    }


def load_tax_table(session: Session) -> TaxTable:
    rows = session.execute(
        select(TaxRate.country, TaxRate.category_code, TaxRate.valid_from, TaxRate.rate)
    ).all()
    if not rows:
        raise ConfigurationError("no VAT rates: import tax_rates before billing")
    return TaxTable([tuple(r) for r in rows], load_tax_classes(session))  # type: ignore[misc]
