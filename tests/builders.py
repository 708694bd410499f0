"""Small builders for hand-made populations in tests (ORM objects, one call per record)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from billing.domain.periods import first_bill_date
from billing.store.models import (
    Account,
    BillUnit,
    Contract,
    ContractItem,
    DeferredAction,
    PricePlan,
    PriceTier,
    Product,
    TaxCategory,
    TaxRate,
    UsageRecord,
)

D = Decimal


def vat(session: Session, rates: dict[tuple[str, str], str]) -> None:
    """Tax categories and rates: {(category, country): "0.20"}."""
    for category in sorted({c for c, _ in rates}):
        session.add(TaxCategory(code=category, name=category.title()))
    session.flush()
    for (category, country), rate in rates.items():
        session.add(
            TaxRate(
                category_code=category, country=country, rate=D(rate), valid_from=date(2000, 1, 1)
            )
        )
    session.flush()


def plan(
    session: Session,
    code: str,
    model: str,
    currency: str = "EUR",
    *,
    price: str | None = None,
    timing: str | None = None,
    tiers: list[tuple[str | None, str]] | None = None,
    proration: str = "by_day",
    tax: str = "standard",
    package: str | None = None,
) -> PricePlan:
    product = Product(code=f"P-{code}", name=f"Product {code}", tax_category=tax)
    session.add(product)
    session.flush()
    row = PricePlan(
        code=code,
        product_id=product.id,
        currency=currency,
        model=model,
        timing=timing,
        proration=proration,
        unit_price=D(price) if price is not None else None,
        package_size=D(package) if package else None,
    )
    session.add(row)
    session.flush()
    for position, (up_to, unit_price) in enumerate(tiers or [], start=1):
        session.add(
            PriceTier(
                price_plan_id=row.id,
                position=position,
                up_to=D(up_to) if up_to is not None else None,
                unit_price=D(unit_price),
            )
        )
    session.flush()
    return row


def account(
    session: Session,
    ref: str,
    *,
    country: str = "FR",
    currency: str = "EUR",
    created: date,
    billing_day: int = 1,
    cycle: str = "monthly",
) -> Account:
    acc = Account(
        ref=ref,
        name=f"Customer {ref}",
        country=country,
        currency=currency,
        email=f"{ref.lower()}@example.test",
        created_on=created,
    )
    session.add(acc)
    session.flush()
    session.add(
        BillUnit(
            account_id=acc.id,
            billing_day=billing_day,
            cycle=cycle,
            next_bill_date=first_bill_date(created, billing_day, cycle),
        )
    )
    session.flush()
    return acc


def contract(session: Session, acc: Account, ref: str, start: date) -> Contract:
    row = Contract(ref=ref, account_id=acc.id, start_date=start, term_months=12)
    session.add(row)
    session.flush()
    return row


def item(
    session: Session,
    ctr: Contract,
    ref: str,
    plan_row: PricePlan,
    item_type: str,
    start: date,
    quantity: str = "1",
) -> ContractItem:
    row = ContractItem(
        ref=ref,
        contract_id=ctr.id,
        price_plan_id=plan_row.id,
        item_type=item_type,
        quantity=D(quantity),
        start_date=start,
    )
    session.add(row)
    session.flush()
    return row


def usage(
    session: Session, it: ContractItem, external_id: str, quantity: str, at: datetime
) -> None:
    session.add(
        UsageRecord(
            external_id=external_id, contract_item_id=it.id, quantity=D(quantity), occurred_at=at
        )
    )
    session.flush()


def deferred(
    session: Session, acc: Account, ref: str, action: str, due: date, **params: str
) -> None:
    session.add(
        DeferredAction(ref=ref, account_id=acc.id, action=action, params=params, due_on=due)
    )
    session.flush()
