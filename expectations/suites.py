"""The post-billing accuracy rules (BRM's post-billing queries) as Great Expectations suites.

Each rule is one ``UnexpectedRowsExpectation``: a SQL query that must return no rows. The
rules run over one table each (their GE asset), written ``{batch}`` in the query; GE
substitutes a sub-select of that table. GE's own substitution decides the alias:

- a query with a JOIN gets ``(SELECT ...)``, so it names the alias itself: ``{batch} AS b``;
- a query without a JOIN gets ``(SELECT ...) AS subselect``, so it writes ``FROM {batch}``.

GE runs the query as text, without bind parameters, so the only value put into the SQL is
``as_of``, rendered from a validated ``date`` (never a string from the user). Amounts are only
compared with other amounts or with 0, so the scaled integers of SQLite (value x 10**6,
see billing/store/types.py) and the NUMERIC of PostgreSQL give the same answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

import great_expectations as gx
from great_expectations.expectations import UnexpectedRowsExpectation

from billing.domain.charge_keys import KeyKind, like_kind
from billing.domain.discounts import TARGET_KINDS
from billing.store.usage import PRICED_QUANTITY

SUITE_PREFIX = "post_billing"
CYCLE_BILLS = like_kind(KeyKind.CYCLE_BILL)  # cyc:%, a constant: no user text in the SQL
DISCOUNT_REVERSALS = like_kind(KeyKind.DISCOUNT_REVERSAL)  # dsr:%, a constant
DISCOUNTED = ", ".join(f"'{kind}'" for kind in sorted(TARGET_KINDS))  # constants too
THRESHOLD_CHARGES = like_kind(KeyKind.THRESHOLD)  # thr:%, likewise
CYCLE_USAGE = like_kind(KeyKind.USAGE)  # use:%


@dataclass(frozen=True)
class Rule:
    """One guard: its name, the table it runs over, why it exists, and its query."""

    name: str
    table: str
    description: str
    sql: str
    amounts: tuple[str, ...] = ()  # result columns holding amounts (scaled on SQLite)

    def query(self, as_of: date) -> str:
        """The unexpected-rows query for a run as of ``as_of`` (``{batch}`` left for GE)."""
        return self.sql.replace("{as_of}", sql_date(as_of))

    def direct_query(self, as_of: date) -> str:
        """The same query over the table itself, for running a rule without GE (the tests do:
        docs/testing.md). GE's batch is the whole table, so ``{batch}`` becomes its name."""
        return self.query(as_of).replace("{batch}", self.table)

    def expectation(self, as_of: date) -> UnexpectedRowsExpectation:
        return UnexpectedRowsExpectation(
            unexpected_rows_query=self.query(as_of),
            description=f"{self.name}: {self.description}",
            meta={"rule": self.name, "table": self.table},
        )


def sql_date(value: date) -> str:
    """A date literal both databases compare with a DATE column (ISO text on SQLite)."""
    if isinstance(value, datetime) or not isinstance(value, date):
        raise TypeError(f"as_of must be a date, not {type(value).__name__}: {value!r}")
    return f"'{value.isoformat()}'"


RULES: tuple[Rule, ...] = (
    Rule(
        "bill_units_not_failed",
        "bill_units",
        "No bill unit is left in failed state (BRM: billing_state = 4).",
        """
        SELECT id AS bill_unit_id, account_id, next_bill_date, failure_reason
        FROM {batch}
        WHERE billing_state = 'failed'
        ORDER BY id
        """,
    ),
    Rule(
        "due_accounts_billed",
        "bill_units",
        "Every bill unit of an account that is not closed, due by as_of, was billed "
        "(BRM: accounts not billed).",
        """
        SELECT u.id AS bill_unit_id, a.ref AS account_ref, u.next_bill_date, u.billing_state
        FROM {batch} AS u
        JOIN accounts AS a ON a.id = u.account_id
        WHERE u.next_bill_date <= {as_of} AND a.status <> 'closed'
        ORDER BY u.id
        """,
    ),
    Rule(
        "bills_numbered",
        "bills",
        "Every bill has a number and a bill number (BRM: bills without a bill number).",
        """
        SELECT id AS bill_id, bill_key, series_code, number, bill_no
        FROM {batch}
        WHERE number IS NULL OR bill_no IS NULL
        ORDER BY id
        """,
    ),
    Rule(
        "bill_numbers_gapless",
        "bill_series",
        "Within each series the bill numbers are exactly 1 .. next_number - 1, each once.",
        """
        SELECT s.code AS series_code, s.next_number,
               COUNT(b.number) AS numbered, COUNT(DISTINCT b.number) AS distinct_numbers,
               MIN(b.number) AS lowest, MAX(b.number) AS highest
        FROM {batch} AS s
        LEFT JOIN bills AS b ON b.series_code = s.code AND b.number IS NOT NULL
        GROUP BY s.code, s.next_number
        HAVING COUNT(b.number) <> s.next_number - 1
            OR COUNT(DISTINCT b.number) <> COUNT(b.number)
            OR COALESCE(MIN(b.number), 1) <> 1
            OR COALESCE(MAX(b.number), 0) <> s.next_number - 1
        ORDER BY s.code
        """,
    ),
    Rule(
        "one_cycle_bill_per_unit_and_period",
        "bills",
        "A bill unit has at most one cycle bill (bill_key 'cyc:...') per cycle end.",
        """
        SELECT bill_unit_id, period_end, COUNT(*) AS bills,
               MIN(bill_key) AS first_key, MAX(bill_key) AS last_key
        FROM {batch}
        WHERE bill_key LIKE '"""
        + CYCLE_BILLS
        + """'
        GROUP BY bill_unit_id, period_end
        HAVING COUNT(*) > 1
        ORDER BY bill_unit_id, period_end
        """,
    ),
    Rule(
        "bill_totals_match_lines",
        "bills",
        "A bill's net, tax and gross are the sums of its lines' net, tax and gross (its lines "
        "are its charges: net is a charge's amount, gross its amount + tax).",
        """
        SELECT b.id AS bill_id, b.bill_key,
               b.net, l.net AS lines_net, b.tax, l.tax AS lines_tax,
               b.gross, l.gross AS lines_gross
        FROM {batch} AS b
        LEFT JOIN (
            SELECT bill_id, SUM(amount) AS net, SUM(tax) AS tax, SUM(amount + tax) AS gross
            FROM charges
            WHERE bill_id IS NOT NULL
            GROUP BY bill_id
        ) AS l ON l.bill_id = b.id
        WHERE b.net <> COALESCE(l.net, 0)
           OR b.tax <> COALESCE(l.tax, 0)
           OR b.gross <> COALESCE(l.gross, 0)
        ORDER BY b.id
        """,
        amounts=("net", "lines_net", "tax", "lines_tax", "gross", "lines_gross"),
    ),
    Rule(
        "bill_net_plus_tax_is_gross",
        "bills",
        "On every bill, net + tax = gross.",
        """
        SELECT id AS bill_id, bill_key, net, tax, gross
        FROM {batch}
        WHERE net + tax <> gross
        ORDER BY id
        """,
        amounts=("net", "tax", "gross"),
    ),
    Rule(
        "billed_charges_are_open_lines",
        "charges",
        "A charge on a bill is a line of it: open or closed, never calculated, planned or "
        "cancelled (a line's gross is its net + tax by construction).",
        """
        SELECT id AS charge_id, charge_key, bill_id, line_no, status
        FROM {batch}
        WHERE bill_id IS NOT NULL AND status NOT IN ('open', 'closed')
        ORDER BY id
        """,
    ),
    Rule(
        "due_date_not_before_bill_date",
        "bills",
        "A bill's payment due date is on or after its bill date.",
        """
        SELECT id AS bill_id, bill_key, bill_date, due_date
        FROM {batch}
        WHERE due_date < bill_date
        ORDER BY id
        """,
    ),
    Rule(
        "billed_cycle_charges_not_pending",
        "charges",
        "No charge of a billed cycle is left pending: no non-immediate charge is still "
        "'calculated' with bill_on on or before its bill unit's last bill date.",
        """
        SELECT c.id AS charge_id, c.charge_key, c.bill_unit_id, c.bill_on, u.last_bill_date
        FROM {batch} AS c
        JOIN bill_units AS u ON u.id = c.bill_unit_id
        WHERE c.status = 'calculated' AND NOT c.immediate AND c.bill_on <= u.last_bill_date
        ORDER BY c.id
        """,
    ),
    Rule(
        "collected_usage_attached_to_charge",
        "usage_records",
        "Every collected usage record names (by charge_key) a charge that exists.",
        """
        SELECT r.id AS usage_id, r.external_id, r.contract_item_id, r.charge_key
        FROM {batch} AS r
        LEFT JOIN charges AS c ON c.charge_key = r.charge_key
        WHERE r.status = 'collected' AND c.id IS NULL
        ORDER BY r.id
        """,
    ),
    Rule(
        "usage_charge_quantity_matches_usage",
        "charges",
        "A usage charge's quantity is the sum of the usage records it prices (by its range, "
        "or by key for records rated before ranges: billing.store.usage).",
        f"""
        SELECT c.id AS charge_id, c.charge_key, c.quantity, p.usage_quantity
        FROM (
            SELECT c.id, {PRICED_QUANTITY.format(c="c")} AS usage_quantity
            FROM {{batch}} AS c
            WHERE c.kind = 'usage'
        ) AS p
        JOIN charges AS c ON c.id = p.id
        WHERE c.quantity <> p.usage_quantity
        ORDER BY c.id
        """,
        amounts=("quantity", "usage_quantity"),
    ),
    Rule(
        "threshold_charges_billed",
        "charges",
        "Usage billed early past an account's usage threshold is billed: no threshold charge "
        "('thr:...') due before as_of is left off a bill (billing.ops.thresholds).",
        """
        SELECT id AS charge_id, charge_key, bill_unit_id, bill_on, status
        FROM {batch}
        WHERE charge_key LIKE '"""
        + THRESHOLD_CHARGES
        + """'
          AND bill_id IS NULL AND status <> 'cancelled' AND bill_on < {as_of}
        ORDER BY id
        """,
    ),
    Rule(
        "threshold_charges_within_cycle_total",
        "charges",
        "A cycle's threshold charges never bill more than the cycle's usage costs: the cycle "
        "usage charge that follows them (the price of the cycle's total less what they billed) "
        "is not negative, where that is exact: a plan whose price never falls as the quantity "
        "grows (not volume) and an item whose price never changed (no price override).",
        """
        SELECT c.id AS charge_id, c.charge_key, c.amount, SUM(t.amount) AS threshold_billed
        FROM {batch} AS c
        JOIN contract_items AS i ON i.id = c.contract_item_id
        JOIN price_plans AS p ON p.id = i.price_plan_id
        JOIN charges AS t ON t.contract_item_id = c.contract_item_id
            AND t.charge_key LIKE 'thr:' || substr(c.charge_key, 5) || ':%'
        WHERE c.charge_key LIKE '"""
        + CYCLE_USAGE
        + """'
          AND c.amount < 0 AND p.model <> 'volume' AND i.price_override IS NULL
          AND t.status <> 'cancelled'
        GROUP BY c.id, c.charge_key, c.amount
        ORDER BY c.id
        """,
        amounts=("amount", "threshold_billed"),
    ),
    Rule(
        "account_balance_matches_ledger",
        "accounts",
        "An account's balance is invoiced (bills' gross) - settled payments + settled refunds "
        "- prepaid credits consumed (wallet consumption pays a bill as a payment does).",
        """
        SELECT a.id AS account_id, a.ref AS account_ref, a.balance,
               COALESCE(inv.gross, 0) - COALESCE(pay.amount, 0) + COALESCE(rf.amount, 0)
                   + COALESCE(wal.amount, 0) AS expected_balance,
               inv.gross AS invoiced, pay.amount AS paid, rf.amount AS refunded,
               wal.amount AS prepaid_credits
        FROM {batch} AS a
        LEFT JOIN (
            SELECT account_id, SUM(gross) AS gross FROM bills GROUP BY account_id
        ) AS inv ON inv.account_id = a.id
        LEFT JOIN (
            SELECT account_id, SUM(amount) AS amount FROM payments
            WHERE status = 'settled' GROUP BY account_id
        ) AS pay ON pay.account_id = a.id
        LEFT JOIN (
            SELECT account_id, SUM(amount) AS amount FROM refunds
            WHERE status = 'settled' GROUP BY account_id
        ) AS rf ON rf.account_id = a.id
        LEFT JOIN (
            SELECT w.account_id, SUM(e.amount) AS amount
            FROM wallet_entries AS e JOIN wallets AS w ON w.id = e.wallet_id
            WHERE e.kind = 'consumption' GROUP BY w.account_id
        ) AS wal ON wal.account_id = a.id
        WHERE a.balance <> COALESCE(inv.gross, 0) - COALESCE(pay.amount, 0)
                           + COALESCE(rf.amount, 0) + COALESCE(wal.amount, 0)
        ORDER BY a.id
        """,
        amounts=("balance", "expected_balance", "invoiced", "paid", "refunded", "prepaid_credits"),
    ),
    Rule(
        "revenue_journal_balanced",
        "journal_entries",
        "Each revenue journal (year, month, currency) has as much debit as credit.",
        """
        SELECT year, month, currency, SUM(debit) AS debit, SUM(credit) AS credit
        FROM {batch}
        GROUP BY year, month, currency
        HAVING SUM(debit) <> SUM(credit)
        ORDER BY year, month, currency
        """,
        amounts=("debit", "credit"),
    ),
    Rule(
        "credit_notes_within_invoices",
        "charges",
        "No invoice line is credited beyond what it billed: its net plus every correction "
        "naming its charge (credit notes, termination credits, adjustments) is not negative.",
        """
        SELECT l.id AS charge_id, l.bill_id, l.line_no, l.amount AS net, c.corrected
        FROM {batch} AS l
        JOIN bills AS b ON b.id = l.bill_id
        JOIN (
            SELECT corrects_charge_id, SUM(amount) AS corrected
            FROM charges
            WHERE corrects_charge_id IS NOT NULL AND status <> 'cancelled'
            GROUP BY corrects_charge_id
        ) AS c ON c.corrects_charge_id = l.id
        WHERE b.type_code = '380' AND l.amount >= 0 AND l.amount + c.corrected < 0
        ORDER BY l.id
        """,
        amounts=("net", "corrected"),
    ),
    Rule(
        "discounts_within_their_targets",
        "charges",
        "No discount makes a line negative: every discount line is negative or zero (but the "
        "'dsr:' lines that give a discount back with a credit of a discounted charge), an item's "
        "discount lines on a bill never exceed its positive lines there, and a bill's discount "
        "lines of a tax category never exceed its positive lines of that category "
        "(billing.domain.discounts).",
        """
        SELECT d.bill_id, d.contract_item_id, d.tax_category, d.discounts, d.largest,
               COALESCE(i.targets, 0) AS item_targets,
               k.targets AS category_targets, k.discounts AS category_discounts
        FROM (
            SELECT c.bill_id, c.contract_item_id, c.tax_category,
                   SUM(c.amount) AS discounts,
                   MAX(CASE WHEN c.charge_key LIKE '"""
        + DISCOUNT_REVERSALS
        + """' THEN NULL ELSE c.amount END) AS largest
            FROM {batch} AS c
            WHERE c.kind = 'discount' AND c.bill_id IS NOT NULL
            GROUP BY c.bill_id, c.contract_item_id, c.tax_category
        ) AS d
        LEFT JOIN (
            SELECT bill_id, contract_item_id, SUM(amount) AS targets
            FROM charges
            WHERE bill_id IS NOT NULL AND amount > 0 AND kind IN ("""
        + DISCOUNTED
        + """)
            GROUP BY bill_id, contract_item_id
        ) AS i ON i.bill_id = d.bill_id AND i.contract_item_id = d.contract_item_id
        JOIN (
            SELECT bill_id, tax_category,
                   SUM(CASE WHEN kind = 'discount' THEN amount ELSE 0 END) AS discounts,
                   SUM(CASE WHEN amount > 0 AND kind IN ("""
        + DISCOUNTED
        + """) THEN amount ELSE 0 END)
                       AS targets
            FROM charges
            WHERE bill_id IS NOT NULL
            GROUP BY bill_id, tax_category
        ) AS k ON k.bill_id = d.bill_id AND k.tax_category = d.tax_category
        WHERE d.largest > 0
           OR (d.contract_item_id IS NOT NULL AND COALESCE(i.targets, 0) + d.discounts < 0)
           OR k.targets + k.discounts < 0
        ORDER BY d.bill_id, d.contract_item_id, d.tax_category
        """,
        amounts=("discounts", "largest", "item_targets", "category_targets", "category_discounts"),
    ),
    Rule(
        "commitment_shortfalls_positive_once",
        "charges",
        "A minimum commitment's shortfall line is never negative, and a cycle bill has at most "
        "one per commitment (its key 'min:{commitment}:{cycle start}' names both).",
        """
        SELECT c.id AS charge_id, c.charge_key, c.bill_id, c.amount, 'negative' AS problem
        FROM {batch} AS c
        WHERE c.kind = 'commitment' AND c.amount < 0
        UNION ALL
        SELECT MIN(c.id) AS charge_id, MIN(c.charge_key) AS charge_key, c.bill_id,
               SUM(c.amount) AS amount, 'more than one on a cycle bill' AS problem
        FROM {batch} AS c
        JOIN bills AS b ON b.id = c.bill_id
        WHERE c.kind = 'commitment' AND b.bill_key LIKE '"""
        + CYCLE_BILLS
        + """'
        GROUP BY c.bill_id, SUBSTR(c.charge_key, 1, LENGTH(c.charge_key) - 11)
        HAVING COUNT(*) > 1
        ORDER BY charge_id
        """,
        amounts=("amount",),
    ),
    Rule(
        "no_fee_during_trial",
        "charges",
        "No recurring fee charges a positive amount for a period that lies entirely before its "
        "item's trial end, once the corrections naming it (a trial extended after the fee was "
        "charged) are counted.",
        """
        SELECT c.id AS charge_id, c.charge_key, c.contract_item_id, c.period_start,
               c.period_end, i.trial_end_date, c.amount, COALESCE(k.corrected, 0) AS corrected
        FROM {batch} AS c
        JOIN contract_items AS i ON i.id = c.contract_item_id
        LEFT JOIN (
            SELECT corrects_charge_id, SUM(amount) AS corrected
            FROM charges
            WHERE corrects_charge_id IS NOT NULL AND status <> 'cancelled'
            GROUP BY corrects_charge_id
        ) AS k ON k.corrects_charge_id = c.id
        WHERE c.kind = 'recurring' AND c.status IN ('calculated', 'open', 'closed')
          AND i.trial_end_date IS NOT NULL AND c.period_end <= i.trial_end_date
          AND c.amount + COALESCE(k.corrected, 0) > 0
        ORDER BY c.id
        """,
        amounts=("amount", "corrected"),
    ),
    Rule(
        "bill_paid_within_gross",
        "bills",
        "No bill is paid beyond what it asks: 0 <= amount_paid <= gross (a credit note, whose "
        "gross is negative, is never paid).",
        """
        SELECT id AS bill_id, bill_key, bill_no, gross, amount_paid
        FROM {batch}
        WHERE amount_paid < 0
           OR amount_paid > CASE WHEN gross > 0 THEN gross ELSE 0 END
        ORDER BY id
        """,
        amounts=("gross", "amount_paid"),
    ),
    Rule(
        "wallet_balance_not_negative",
        "wallets",
        "A wallet's balance (grants + purchases - consumption - expiry: the sum of its "
        "entries) is never negative.",
        """
        SELECT w.id AS wallet_id, w.ref AS wallet_ref, w.currency, e.balance
        FROM {batch} AS w
        JOIN (
            SELECT wallet_id, SUM(amount) AS balance FROM wallet_entries GROUP BY wallet_id
        ) AS e ON e.wallet_id = w.id
        WHERE e.balance < 0
        ORDER BY w.id
        """,
        amounts=("balance",),
    ),
    Rule(
        "wallet_lots_not_overdrawn",
        "wallet_entries",
        "No lot (a grant or a purchase) gives more than it holds: its amount plus the "
        "consumption and expiry entries naming it is not negative, and those entries are of "
        "its own wallet.",
        """
        SELECT l.id AS lot_id, l.entry_key, l.wallet_id, l.amount,
               t.taken, t.other_wallets
        FROM {batch} AS l
        JOIN (
            SELECT n.lot_id, SUM(n.amount) AS taken,
                   SUM(CASE WHEN n.wallet_id <> o.wallet_id THEN 1 ELSE 0 END) AS other_wallets
            FROM wallet_entries AS n JOIN wallet_entries AS o ON o.id = n.lot_id
            GROUP BY n.lot_id
        ) AS t ON t.lot_id = l.id
        WHERE l.amount + t.taken < 0 OR t.other_wallets > 0
           OR l.kind NOT IN ('grant', 'purchase')
        ORDER BY l.id
        """,
        amounts=("amount", "taken"),
    ),
    Rule(
        "wallet_consumption_within_bill",
        "bills",
        "Prepaid credits never pay a bill more than its gross, nor more than it records as "
        "paid, and only from wallets of its own account and currency.",
        """
        SELECT b.id AS bill_id, b.bill_key, b.bill_no, b.gross, b.amount_paid, c.consumed,
               c.other_wallets
        FROM {batch} AS b
        JOIN (
            SELECT e.bill_id, -SUM(e.amount) AS consumed,
                   SUM(CASE WHEN w.account_id <> x.account_id OR w.currency <> x.currency
                            THEN 1 ELSE 0 END) AS other_wallets
            FROM wallet_entries AS e
            JOIN wallets AS w ON w.id = e.wallet_id
            JOIN bills AS x ON x.id = e.bill_id
            WHERE e.kind = 'consumption'
            GROUP BY e.bill_id
        ) AS c ON c.bill_id = b.id
        WHERE c.consumed > b.gross OR c.consumed > b.amount_paid OR c.other_wallets > 0
        ORDER BY b.id
        """,
        amounts=("gross", "amount_paid", "consumed"),
    ),
)


def rule_named(name: str) -> Rule:
    return next(rule for rule in RULES if rule.name == name)


def tables(rules: Iterable[Rule] = RULES) -> list[str]:
    """The tables the rules run over, in first-use order (one GE asset and suite each)."""
    return list(dict.fromkeys(rule.table for rule in rules))


def suite_name(table: str) -> str:
    return f"{SUITE_PREFIX}.{table}"


def build_suites(as_of: date, rules: Iterable[Rule] = RULES) -> dict[str, gx.ExpectationSuite]:
    """One expectation suite per table, holding that table's rules, keyed by table."""
    rules = tuple(rules)
    suites = {}
    for table in tables(rules):
        suite = gx.ExpectationSuite(name=suite_name(table))
        for rule in rules:
            if rule.table == table:
                suite.add_expectation(rule.expectation(as_of))
        suites[table] = suite
    return suites
