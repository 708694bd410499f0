"""Issue #21's "done when": a bill run over a seeded population that uses every commercial
term passes every post-billing check, on both databases.

The synthetic population (``billing.ingest.synthetic``) gets every term: discounts of every
shape (``discount_share``), minimum commitments and trials (``terms``), wallets with grants and
top-ups (``wallets``) and usage thresholds (always). The UTI daemon runs inside the first
cycle, so the thresholds bill usage early; bill day then closes two cycles. Each term must have
done something (counted below, not assumed), every check passes, and a rerun of both jobs for
the same dates adds nothing. (The UTI daemon is rerun before the bill days, not after: once
bill day has closed a cycle that ended before Process Now, the open cycle holding Process Now
is the next one, whose usage a run of that Process Now may then bill early, rightly.)
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Engine, func, select

from billing.domain.charge_keys import KeyKind, like_kind
from billing.domain.enums import WalletEntryKind
from billing.ingest.synthetic import seed
from billing.jobs.bill_day import run_bill_day
from billing.jobs.uti_schedule_generator import run_uti_schedule_generator
from billing.store.db import unit_of_work
from billing.store.models import Bill, Charge, ChargeKind, ContractItem
from billing.store.models_terms import WalletEntry
from tests.expectations.direct import run_rules_directly

START = date(2027, 1, 1)
MID_CYCLE = datetime(2027, 1, 20, 12)
BILL_DAYS = (date(2027, 2, 1), date(2027, 3, 1))
THRESHOLD = like_kind(KeyKind.THRESHOLD)


def _counts(engine: Engine) -> dict[str, int]:
    billed = Charge.bill_id.is_not(None)
    with unit_of_work(engine) as s:
        return {
            "discount lines": s.scalar(
                select(func.count()).where(Charge.kind == ChargeKind.DISCOUNT, billed)
            ),
            "shortfall lines": s.scalar(
                select(func.count()).where(Charge.kind == ChargeKind.COMMITMENT, billed)
            ),
            "threshold charges billed": s.scalar(
                select(func.count()).where(
                    Charge.charge_key.like(like_kind(KeyKind.THRESHOLD)), billed
                )
            ),
            "items in trial": s.scalar(
                select(func.count()).where(ContractItem.trial_end_date.is_not(None))
            ),
            "fees after a trial": s.scalar(
                select(func.count())
                .select_from(Charge)
                .join(ContractItem, ContractItem.id == Charge.contract_item_id)
                .where(
                    Charge.kind == ChargeKind.RECURRING,
                    ContractItem.trial_end_date.is_not(None),
                    Charge.period_start >= ContractItem.trial_end_date,
                    billed,
                )
            ),
            "wallet consumption": s.scalar(
                select(func.count()).where(WalletEntry.kind == WalletEntryKind.CONSUMPTION)
            ),
            "charges": s.scalar(select(func.count()).select_from(Charge)),
            "bills": s.scalar(select(func.count()).select_from(Bill)),
            "wallet entries": s.scalar(select(func.count()).select_from(WalletEntry)),
        }


def test_a_population_with_every_term_bills_and_passes_every_check(engine):
    seed(
        engine,
        accounts=400,
        usage_per_account=6,
        start=START,
        seed=21,
        discount_share=0.15,
        terms=True,
        wallets=True,
    )
    run_uti_schedule_generator(engine, MID_CYCLE, "uti")
    with unit_of_work(engine) as s:
        early = s.scalar(select(func.count()).where(Charge.charge_key.like(THRESHOLD)))
    run_uti_schedule_generator(engine, MID_CYCLE, "uti-again")  # the same Process Now: nothing
    with unit_of_work(engine) as s:
        assert s.scalar(select(func.count()).where(Charge.charge_key.like(THRESHOLD))) == early
    for day in BILL_DAYS:
        run_bill_day(engine, day, f"bill-day-{day}")
        report = run_rules_directly(engine, day)
        assert report.success, [(r.name, r.sample) for r in report.failed]
    counts = _counts(engine)
    for term in (
        "discount lines",
        "shortfall lines",
        "threshold charges billed",
        "items in trial",
        "fees after a trial",
        "wallet consumption",
    ):
        assert counts[term] > 0, (term, counts)

    for day in BILL_DAYS:
        run_bill_day(engine, day, f"bill-day-{day}-again")
    assert _counts(engine) == counts
