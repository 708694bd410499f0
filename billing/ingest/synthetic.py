"""Synthetic data: a deterministic, realistic population for demos, tests and benchmarks.

``seed`` builds a fixed catalogue (tax rates, products, price plans of every model in EUR, GBP
and CHF) and then accounts, one bill unit, one contract with 2-4 items and the usage of each
account; with ``wallets``, prepaid credits for a share of them
(``billing.ingest.synthetic_wallets``). The same arguments give the same rows, byte for byte:
every random draw comes from ``numpy.random.default_rng([seed, block])`` for blocks of
``BLOCK`` accounts, and names come from small Faker pools built once per seed, so neither the
clock nor the chunk size matters.
Rows are generated and loaded chunk by chunk (COPY on PostgreSQL), all in one transaction.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from typing import Any

import numpy as np
from faker import Faker
from sqlalchemy import Connection, Engine, Table, func, select
from stdnum.ch import uid
from stdnum.es import cif
from stdnum.iso7064 import mod_11_10
from stdnum.pt import nif

from billing.domain.errors import ConfigurationError
from billing.domain.periods import first_bill_date
from billing.ingest import synthetic_terms
from billing.ingest.synthetic_commitments import draw_terms
from billing.ingest.synthetic_wallets import SeededWallets, seed_wallets
from billing.store.bulk import (
    BulkLoader,
    Column,
    checks_after_load,
    lock_for_load,
    next_id,
    sync_sequence,
)
from billing.store.models import Account, Base, Product

BLOCK = 1_000
"""Accounts per random stream: the unit of determinism (chunks are whole blocks)."""
DEFAULT_CHUNK = 50_000
USAGE_DAYS = 30
CENT = Decimal("0.01")

Progress = Callable[[int], None]
Batch = dict[str, Column]

# --- catalogue --------------------------------------------------------------------------------

TAX_CATEGORIES = (
    {"code": "standard", "name": "Standard rate"},
    {"code": "reduced", "name": "Reduced rate"},
    {
        "code": "zero",
        "name": "Exempt: insurance",
        "vat_category": "E",
        "exemption_code": "VATEX-EU-135-1",
        "exemption_reason": "Directive 2006/112/EC art. 135(1)(a) (CGI art. 261 C-2°)",
    },
)
"""The tax classes (``billing.domain.vat``): the device insurance is exempt, like any
insurance transaction in the EU."""
RATES_FROM = date(2000, 1, 1)
TAX_RATES: tuple[tuple[str, str, str, date], ...] = (
    *(
        (category, country, rate, RATES_FROM)
        for country, standard, reduced in (
            ("FR", "0.20", "0.055"),
            ("PT", "0.23", "0.06"),
            ("BE", "0.21", "0.06"),
            ("ES", "0.21", "0.10"),
            ("DE", "0.19", "0.07"),
            ("GB", "0.20", "0.05"),
            ("CH", "0.077", "0.025"),
        )
        for category, rate in (("standard", standard), ("reduced", reduced), ("zero", "0"))
    ),
    ("standard", "CH", "0.081", date(2024, 1, 1)),
    ("reduced", "CH", "0.026", date(2024, 1, 1)),
)
"""(category, country, rate, valid_from); Swiss rates rose on 2024-01-01."""

CURRENCIES = ("EUR", "GBP", "CHF")
FX = {"EUR": Decimal(1), "GBP": Decimal("0.86"), "CHF": Decimal("0.95")}
"""List prices are set in EUR and converted once, rounded to the cent, for the other currencies."""


@dataclass(frozen=True)
class Offer:
    """A product with its price plan, priced in EUR (tiers as (up_to, unit_price, flat_fee))."""

    code: str
    name: str
    tax_category: str
    gl_account: str
    model: str
    unit_price: str | None = None
    timing: str | None = None
    proration: str = "by_day"
    period_months: int = 1
    unit: str = "unit"
    package_size: str | None = None
    tiers: tuple[tuple[str | None, str, str], ...] = ()
    median_use: float = 0.0
    whole_units: bool = False


RECURRING = (
    Offer("FIBRE-100", "Fibre 100 Mbit/s", "standard", "706100", "recurring", "29.99", "advance"),
    Offer("FIBRE-1G", "Fibre 1 Gbit/s", "standard", "706100", "recurring", "44.99", "advance"),
    Offer("MOBILE-50G", "Mobile 50 GB", "standard", "706200", "recurring", "14.99", "advance"),
    Offer("TV-PLUS", "TV Plus", "standard", "706300", "recurring", "9.99", "advance", "full"),
    Offer("EBOOK-CLUB", "E-book club", "reduced", "706400", "recurring", "7.49", "advance", "none"),
    Offer(
        "DOMAIN-YEAR", "Domain name, yearly", "standard", "706500", "recurring", "12.00",
        "advance", "none", period_months=12,
    ),
    Offer("DEVICE-CARE", "Device insurance", "zero", "706800", "recurring", "4.99", "advance"),
    Offer("SUPPORT-PRO", "Premium support", "standard", "706600", "recurring", "19.90", "arrears"),
    Offer("CLOUD-VM", "Cloud server", "standard", "706700", "recurring", "24.00", "arrears"),
)  # fmt: skip
RECURRING_WEIGHTS = (0.25, 0.15, 0.18, 0.08, 0.05, 0.04, 0.05, 0.08, 0.12)
USAGE = (
    Offer(
        "SMS", "Text messages", "standard", "706210", "per_unit", "0.05", unit="sms",
        median_use=3, whole_units=True,
    ),
    Offer(
        "CALL-INTL", "International calls", "standard", "706220", "per_unit", "0.12",
        unit="min", median_use=4.5,
    ),
    Offer(
        "DATA-GB", "Mobile data", "standard", "706230", "graduated", unit="GB",
        tiers=(("10", "0.00", "0"), ("50", "1.00", "0"), (None, "0.50", "0")), median_use=1.2,
    ),
    Offer(
        "API-CALLS", "API calls (thousands)", "standard", "706710", "volume", unit="kcall",
        tiers=(("100", "0.20", "0"), ("1000", "0.15", "5.00"), (None, "0.10", "10.00")),
        median_use=2.5,
    ),
    Offer(
        "STORAGE-PACK", "Storage, packs of 100 GB", "standard", "706720", "package", "2.00",
        unit="GB", package_size="100", median_use=20,
    ),
)  # fmt: skip
PRODUCT_NAMES: dict[str, dict[str, str]] = {
    "FIBRE-100": {"fr": "Fibre 100 Mbit/s", "pt": "Fibra 100 Mbit/s", "de": "Glasfaser 100 Mbit/s"},
    "FIBRE-1G": {"fr": "Fibre 1 Gbit/s", "pt": "Fibra 1 Gbit/s", "de": "Glasfaser 1 Gbit/s"},
    "MOBILE-50G": {
        "fr": "Forfait mobile 50 Go",
        "pt": "Tarifário móvel 50 GB",
        "de": "Mobilfunk 50 GB",
    },
    "TV-PLUS": {"fr": "TV Plus", "pt": "TV Plus", "de": "TV Plus"},
    "EBOOK-CLUB": {
        "fr": "Club de livres numériques",
        "pt": "Clube de livros digitais",
        "de": "E-Book-Club",
    },
    "DOMAIN-YEAR": {
        "fr": "Nom de domaine, annuel",
        "pt": "Nome de domínio, anual",
        "de": "Domainname, jährlich",
    },
    "DEVICE-CARE": {
        "fr": "Assurance appareil",
        "pt": "Seguro do equipamento",
        "de": "Geräteversicherung",
    },
    "SUPPORT-PRO": {"fr": "Assistance premium", "pt": "Suporte premium", "de": "Premium-Support"},
    "CLOUD-VM": {"fr": "Serveur cloud", "pt": "Servidor na nuvem", "de": "Cloud-Server"},
    "SMS": {"fr": "SMS", "pt": "Mensagens SMS", "de": "SMS"},
    "CALL-INTL": {
        "fr": "Appels internationaux",
        "pt": "Chamadas internacionais",
        "de": "Auslandsgespräche",
    },
    "DATA-GB": {"fr": "Données mobiles", "pt": "Dados móveis", "de": "Mobile Daten"},
    "API-CALLS": {
        "fr": "Appels API (milliers)",
        "pt": "Chamadas API (milhares)",
        "de": "API-Aufrufe (Tausend)",
    },
    "STORAGE-PACK": {
        "fr": "Stockage, packs de 100 Go",
        "pt": "Armazenamento, pacotes de 100 GB",
        "de": "Speicher, Pakete zu 100 GB",
    },
    "ENERGY-KWH": {
        "fr": "Recharge de véhicule électrique",
        "pt": "Carregamento de veículo elétrico",
        "de": "Ladestrom für Elektrofahrzeuge",
    },
    "ROAMING-MB": {"fr": "Données en itinérance", "pt": "Dados em roaming", "de": "Roaming-Daten"},
    "SETUP-FEE": {"fr": "Frais d'installation", "pt": "Instalação", "de": "Installation"},
    "ROUTER": {"fr": "Routeur", "pt": "Router", "de": "Router"},
}
"""The products' names on invoices in fr, pt and de (``products.name_translations``): the
offers are defined below this table; a test fails when one lacks a name."""
USAGE_WEIGHTS = (0.2, 0.2, 0.25, 0.15, 0.2)
UTI = (
    Offer(
        "ENERGY-KWH", "EV charging energy", "standard", "706900", "volume", unit="kWh",
        tiers=(("100", "0.25", "0"), ("500", "0.22", "0"), (None, "0.20", "0")), median_use=15,
    ),
    Offer(
        "ROAMING-MB", "Roaming data", "standard", "706240", "per_unit", "0.01", unit="MB",
        median_use=80,
    ),
)  # fmt: skip
UTI_WEIGHTS = (0.5, 0.5)
ONE_TIME = (
    Offer("SETUP-FEE", "Installation", "standard", "706010", "one_time", "49.00"),
    Offer("ROUTER", "Router", "standard", "706020", "one_time", "89.00"),
)
ONE_TIME_WEIGHTS = (0.7, 0.3)
OFFERS = (*RECURRING, *USAGE, *UTI, *ONE_TIME)
METERED = (*USAGE, *UTI)

UTI_SHARE = 0.35
ONE_TIME_SHARE = 0.30
OVERRIDE_SHARE = 0.05


def plan_code(offer: Offer, currency: str) -> str:
    """The price plan code of an offer in a currency, e.g. ``FIBRE-100-EUR``."""
    return f"{offer.code}-{currency}"


def _convert(eur: str, currency: str) -> Decimal:
    """An EUR list price in ``currency``, rounded half up to the cent."""
    return (Decimal(eur) * FX[currency]).quantize(CENT, ROUND_HALF_UP)


@dataclass(frozen=True)
class Catalogue:
    """Plan ids by offer (rows, in ``OFFERS`` order) and currency (columns, ``CURRENCIES``)."""

    plan_ids: np.ndarray
    prices: dict[int, Decimal]


def ensure_catalogue(conn: Connection) -> Catalogue:
    """Insert whichever catalogue rows are missing (a second seed reuses the first one's)."""
    _insert_missing(
        conn,
        Base.metadata.tables["tax_categories"],
        "code",
        [
            {"vat_category": "S", "exemption_code": None, "exemption_reason": None, **category}
            for category in TAX_CATEGORIES
        ],
    )  # fmt: skip  (the same keys in every row: an executemany takes the first row's)
    rates = Base.metadata.tables["tax_rates"]
    have = set(conn.execute(select(rates.c.category_code, rates.c.country, rates.c.valid_from)))
    new_rates = [
        {"category_code": cat, "country": cc, "rate": Decimal(rate), "valid_from": since}
        for cat, cc, rate, since in TAX_RATES
        if (cat, cc, since) not in have
    ]
    if new_rates:
        conn.execute(rates.insert(), new_rates)
    _insert_missing(conn, Base.metadata.tables["products"], "code", [
        {"code": o.code, "name": o.name, "name_translations": PRODUCT_NAMES.get(o.code),
         "tax_category": o.tax_category, "gl_account": o.gl_account}
        for o in OFFERS
    ])  # fmt: skip
    products = dict(conn.execute(select(Product.code, Product.id)).tuples().all())
    plans = Base.metadata.tables["price_plans"]
    plan_rows = [_plan_row(o, c, products[o.code]) for o in OFFERS for c in CURRENCIES]
    added = _insert_missing(conn, plans, "code", plan_rows)
    plan_ids = dict(conn.execute(select(plans.c.code, plans.c.id)).tuples().all())
    _insert_tiers(conn, {code: plan_ids[code] for code in added})
    ids = np.array([[plan_ids[plan_code(o, c)] for c in CURRENCIES] for o in OFFERS], np.int64)
    prices = {
        plan_ids[plan_code(o, c)]: _convert(o.unit_price, c)
        for o in OFFERS
        for c in CURRENCIES
        if o.unit_price is not None
    }
    return Catalogue(plan_ids=ids, prices=prices)


def _plan_row(offer: Offer, currency: str, product_id: int) -> dict[str, Any]:
    """The price plan row of an offer in a currency."""
    return {
        "code": plan_code(offer, currency),
        "product_id": product_id,
        "currency": currency,
        "model": offer.model,
        "timing": offer.timing,
        "proration": offer.proration,
        "unit_price": None if offer.unit_price is None else _convert(offer.unit_price, currency),
        "package_size": None if offer.package_size is None else Decimal(offer.package_size),
        "period_months": offer.period_months,
        "unit": offer.unit,
    }


def _insert_tiers(conn: Connection, new_plans: dict[str, int]) -> None:
    """Insert the tiers of the price plans created by this seed."""
    rows = [
        {
            "price_plan_id": new_plans[plan_code(offer, currency)],
            "position": position,
            "up_to": None if up_to is None else Decimal(up_to),
            "unit_price": _convert(price, currency),
            "flat_fee": _convert(flat, currency),
        }
        for offer in OFFERS
        for currency in CURRENCIES
        if plan_code(offer, currency) in new_plans
        for position, (up_to, price, flat) in enumerate(offer.tiers, start=1)
    ]
    if rows:
        conn.execute(Base.metadata.tables["price_tiers"].insert(), rows)


def _insert_missing(
    conn: Connection, table: Table, key: str, rows: list[dict[str, Any]]
) -> list[str]:
    """Insert the rows whose ``key`` is not in ``table`` yet; return the keys inserted."""
    have = set(conn.execute(select(table.c[key])).scalars())
    new = [row for row in rows if row[key] not in have]
    if new:
        conn.execute(table.insert(), new)
    return [row[key] for row in new]


# --- people and places ------------------------------------------------------------------------


@dataclass(frozen=True)
class Country:
    """Where accounts live: locale for names, language, currency, share of the population."""

    code: str
    locale: str
    language: str
    currency: str
    share: float
    number_first: bool
    direct_debit: float
    card: float


COUNTRIES = (
    Country("FR", "fr_FR", "fr", "EUR", 0.55, True, 0.45, 0.30),
    Country("PT", "pt_PT", "pt", "EUR", 0.30, False, 0.45, 0.30),
    Country("BE", "fr_BE", "fr", "EUR", 0.04, False, 0.45, 0.30),
    Country("ES", "es_ES", "en", "EUR", 0.04, False, 0.45, 0.30),
    Country("DE", "de_DE", "en", "EUR", 0.03, False, 0.45, 0.30),
    Country("GB", "en_GB", "en", "GBP", 0.02, True, 0.20, 0.40),
    Country("CH", "fr_CH", "fr", "CHF", 0.02, False, 0.20, 0.40),
)
BELGIAN_PLACES = (
    ("1000", "Bruxelles"), ("4000", "Liège"), ("5000", "Namur"), ("6000", "Charleroi"),
    ("7000", "Mons"), ("1300", "Wavre"), ("1348", "Louvain-la-Neuve"), ("6700", "Arlon"),
)  # fmt: skip
EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example.com")
"""Reserved domains (RFC 2606): a mailer pointed at seeded data can never reach a real person."""
POOL = 300


@dataclass(frozen=True)
class Pools:
    """Names and places of one country, drawn once from Faker (seeded) and then recombined."""

    first: tuple[str, ...]
    last: tuple[str, ...]
    first_ascii: tuple[str, ...]
    last_ascii: tuple[str, ...]
    streets: tuple[str, ...]
    places: tuple[tuple[str, str], ...]
    companies: tuple[str, ...]
    company_slugs: tuple[str, ...]


def ascii_slug(text: str, sep: str = "") -> str:
    """Lower-case ASCII letters and digits of ``text`` (accents dropped), joined by ``sep``."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    words = "".join(ch if ch.isalnum() else " " for ch in folded).split()
    return sep.join(words)


@cache
def country_pools(seed: int) -> tuple[Pools, ...]:
    """The name and place pools of every country in ``COUNTRIES`` for a seed (built once)."""
    return tuple(_pools(country, seed * 100 + index) for index, country in enumerate(COUNTRIES))


def _pools(country: Country, seed: int) -> Pools:
    """Draw one country's pools from a seeded Faker instance."""
    fake = Faker(country.locale)
    fake.seed_instance(seed)
    first = tuple(fake.first_name() for _ in range(POOL))
    last = tuple(fake.last_name() for _ in range(POOL))
    street_source = Faker("fr_FR") if country.code == "BE" else fake
    street_source.seed_instance(seed)
    streets = tuple(_capitalized(street_source.street_name()) for _ in range(POOL))
    places: tuple[tuple[str, str], ...]
    if country.code == "BE":
        places = BELGIAN_PLACES
    else:
        places = tuple((fake.postcode(), fake.city()) for _ in range(POOL))
    companies = tuple(fake.company() for _ in range(POOL // 2))
    return Pools(
        first=first,
        last=last,
        first_ascii=tuple(ascii_slug(name) or "client" for name in first),
        last_ascii=tuple(ascii_slug(name) or "client" for name in last),
        streets=streets,
        places=places,
        companies=companies,
        company_slugs=tuple(ascii_slug(name, "-") or "company" for name in companies),
    )


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


# --- IBANs and VAT numbers --------------------------------------------------------------------

BANKS: dict[str, tuple[tuple[str, str], ...]] = {
    "FR": (("30004", "BNPAFRPP"), ("30003", "SOGEFRPP"), ("30002", "CRLYFRPP"),
           ("20041", "PSSTFRPP"), ("10278", "CMCIFR2A"), ("11306", "AGRIFRPP")),
    "PT": (("0035", "CGDIPTPL"), ("0033", "BCOMPTPL"), ("0010", "BBPIPTPL"),
           ("0007", "BESCPTPL"), ("0036", "MPIOPTPL")),
    "BE": (("001", "GEBABEBB"), ("310", "BBRUBEBB"), ("068", "GKCCBEBB")),
    "ES": (("2100", "CAIXESBB"), ("0049", "BSCHESMM"), ("0182", "BBVAESMM")),
    "DE": (("10050000", "BELADEBEXXX"), ("20050550", "HASPDEHHXXX"), ("70150000", "SSKMDEMMXXX")),
    "GB": (("NWBK", "NWBKGB2L"), ("BARC", "BARCGB22")),
    "CH": (("00230", "UBSWCHZH80A"), ("04835", "CRESCHZZ80A")),
}  # fmt: skip


def _as_digits(text: str) -> str:
    """Letters as ISO 13616 numbers (A=10 ... Z=35), digits unchanged."""
    return "".join(str(int(ch, 36)) for ch in text)


def iban_from_bban(country: str, bban: str) -> str:
    """The IBAN of a BBAN: ISO 13616 check digits, ``98 - (bban + country + 00) mod 97``."""
    check = 98 - int(_as_digits(bban + country + "00")) % 97
    return f"{country}{check:02d}{bban}"


def _es_control(digits: str) -> int:
    weights = (1, 2, 4, 8, 5, 10, 9, 7, 3, 6)
    value = 11 - sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    return {11: 0, 10: 1}.get(value, value)


def national_bban(country: str, bank: str, branch: int, account: int) -> str:
    """A BBAN in the country's format, with its national check digits where it has them."""
    if country == "FR":
        acc = f"{account % 10**11:011d}"
        key = 97 - (89 * int(bank) + 15 * (branch % 10**5) + 3 * int(acc)) % 97
        return f"{bank}{branch % 10**5:05d}{acc}{key:02d}"
    if country == "PT":
        nib = f"{bank}{branch % 10**4:04d}{account % 10**11:011d}"
        return f"{nib}{98 - int(nib) * 100 % 97:02d}"
    if country == "BE":
        head = f"{bank}{account % 10**7:07d}"
        return f"{head}{int(head) % 97 or 97:02d}"
    if country == "ES":
        office = f"{bank}{branch % 10**4:04d}"
        acc = f"{account % 10**10:010d}"
        return f"{office}{_es_control('00' + office)}{_es_control(acc)}{acc}"
    if country == "DE":
        body = account % 10**9
        return f"{bank}{body:09d}{_luhn_digit(body)}"
    if country == "GB":
        return f"{bank}{branch % 10**6:06d}{account % 10**8:08d}"
    if country == "CH":
        return f"{bank}{account % 10**12:012d}"
    raise ConfigurationError(f"no IBAN format for country {country!r}")


def _vat_id(country: str, number: int) -> str:
    """A VAT number in the country's format with its real check digits (python-stdnum agrees:
    ``billing.domain.buyers.vat_id_problem``); deterministic in ``number``."""
    if country == "FR":
        body = number % 10**8
        siren = body * 10 + _luhn_digit(body)
        return f"FR{(12 + 3 * (siren % 97)) % 97:02d}{siren:09d}"  # stdnum.fr.tva's key
    if country == "PT":
        digits = f"5{number % 10**7:07d}"
        return f"PT{digits}{nif.calc_check_digit(digits)}"
    if country == "BE":
        body = number % (9 * 10**6) + 10**6  # 0 + 7 digits, then 97 - body mod 97
        return f"BE0{body:07d}{97 - body % 97:02d}"
    if country == "DE":
        digits = f"{number % 9 * 10**7 + 10**7 + number % 10**7:08d}"  # no leading 0
        return f"DE{digits}{mod_11_10.calc_check_digit(digits)}"
    if country == "ES":
        digits = f"B{number % 10**7:07d}"  # a sociedad limitada: a CIF with a digit check
        return f"ES{digits}{cif.calc_check_digits(digits)[0]}"
    if country == "GB":
        digits = f"{number % 9 * 10**6 + 10**6 + number % 10**6:07d}"  # >= 1000000
        weighted = sum(w * int(d) for w, d in zip((8, 7, 6, 5, 4, 3, 2), digits, strict=True))
        return f"GB{digits}{-weighted % 97:02d}"
    if country == "CH":
        body = number % 10**8
        check = uid.calc_check_digit(f"{body:08d}")
        if check == "10":  # no UID ends in 10: take the next number
            body = (body + 1) % 10**8
            check = uid.calc_check_digit(f"{body:08d}")
        digits = f"{body:08d}{check}"
        return f"CHE-{digits[:3]}.{digits[3:6]}.{digits[6:]} TVA"
    raise ConfigurationError(f"no VAT number format for country {country!r}")


def _luhn_digit(body: int) -> int:
    """The Luhn check digit to append to ``body`` (also German check method 00)."""
    total = 0
    for index, ch in enumerate(reversed(str(body))):
        d = int(ch) * (2 if index % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return (10 - total % 10) % 10


# --- the population ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedReport:
    """What a seed inserted (the catalogue counts are those of the whole synthetic catalogue)."""

    accounts: int
    bill_units: int
    contracts: int
    contract_items: int
    usage_records: int
    products: int
    price_plans: int
    first_account_id: int | None
    discounts: int = 0
    commitments: int = 0
    trial_items: int = 0
    wallets: int = 0
    wallet_grants: int = 0


@dataclass
class _Ids:
    """The next free primary key of each loaded table."""

    account: int
    bill_unit: int
    contract: int
    item: int
    usage: int
    discount: int = 0
    commitment: int = 0


@dataclass(frozen=True)
class _Context:
    start: date
    usage_per_account: int
    catalogue: Catalogue
    pools: tuple[Pools, ...]
    next_bill: dict[tuple[int, str], date]
    discount_share: float = 0.0
    terms: bool = False
    """Commitments and trials too (``billing.ingest.synthetic_commitments``)."""


TABLES = tuple(
    Base.metadata.tables[name]
    for name in ("accounts", "bill_units", "contracts", "contract_items", "usage_records")
)
DISCOUNTS_TABLE = Base.metadata.tables["discounts"]
"""Loaded too when a share of the accounts get discounts (``billing.ingest.synthetic_terms``)."""
COMMITMENTS_TABLE = Base.metadata.tables["commitments"]
"""Loaded too with ``terms`` (``billing.ingest.synthetic_commitments``)."""
CYCLES = ("monthly", "quarterly", "yearly")
CYCLE_WEIGHTS = (0.85, 0.10, 0.05)


def seed(
    engine: Engine,
    *,
    accounts: int,
    usage_per_account: int,
    start: date,
    seed: int = 42,
    progress: Progress | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    discount_share: float = 0.0,
    terms: bool = False,
    wallets: bool = False,
) -> SeedReport:
    """Seed a population in one transaction: all of it is committed, or none of it.
    ``discount_share`` of the accounts get discounts (``billing.ingest.synthetic_terms``);
    ``terms``: a share of the accounts get commitments and of the recurring items trials
    (``billing.ingest.synthetic_commitments``); ``wallets``: a share of the accounts get
    prepaid credits (``billing.ingest.synthetic_wallets``)."""
    with engine.begin() as conn:
        return seed_population(
            conn,
            accounts=accounts,
            usage_per_account=usage_per_account,
            start=start,
            seed=seed,
            progress=progress,
            chunk_size=chunk_size,
            discount_share=discount_share,
            terms=terms,
            wallets=wallets,
        )


def seed_population(
    conn: Connection,
    *,
    accounts: int,
    usage_per_account: int,
    start: date,
    seed: int = 42,
    progress: Progress | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    discount_share: float = 0.0,
    terms: bool = False,
    wallets: bool = False,
) -> SeedReport:
    """Generate and load the population chunk by chunk on ``conn``; never commits."""
    if accounts < 0 or usage_per_account < 0:
        raise ConfigurationError("accounts and usage per account must not be negative")
    if not 0 <= discount_share <= 1:
        raise ConfigurationError("the share of accounts with discounts is between 0 and 1")
    if chunk_size <= 0 or chunk_size % BLOCK:
        raise ConfigurationError(f"chunk size must be a positive multiple of {BLOCK}")
    tables = (
        *TABLES,
        *((DISCOUNTS_TABLE,) if discount_share else ()),
        *((COMMITMENTS_TABLE,) if terms else ()),
    )
    lock_for_load(conn, tables)
    catalogue = ensure_catalogue(conn)
    ids = _Ids(*(next_id(conn, table) for table in TABLES))
    if discount_share:
        ids.discount = next_id(conn, DISCOUNTS_TABLE)
    if terms:
        ids.commitment = next_id(conn, COMMITMENTS_TABLE)
    context = _Context(
        start=start,
        usage_per_account=usage_per_account,
        catalogue=catalogue,
        pools=country_pools(seed),
        next_bill={(d, c): first_bill_date(start, d, c) for d in range(1, 32) for c in CYCLES},
        discount_share=discount_share,
        terms=terms,
    )
    first_account = ids.account if accounts else None
    counts = dict.fromkeys((t.name for t in tables), 0)
    trials = 0
    with checks_after_load(conn, tables), BulkLoader(conn) as loader:
        in_flight = 0
        for first_block, last_block in _chunks(accounts, chunk_size):
            blocks = range(first_block, last_block)
            batches = [
                _block(
                    np.random.default_rng([seed, b]),
                    context,
                    ids,
                    _block_size(b, accounts),
                    np.random.default_rng([seed, b, synthetic_terms.DISCOUNT_STREAM]),
                )
                for b in blocks
            ]
            loader.wait()
            _report(progress, in_flight)
            for table in tables:
                counts[table.name] += loader.load(
                    table, _concat([batch[table.name] for batch in batches])
                )
            trials += sum(
                sum(d is not None for d in batch["contract_items"].get("trial_end_date", ()))
                for batch in batches
            )
            in_flight = sum(_block_size(b, accounts) for b in blocks)
        loader.wait()
        _report(progress, in_flight)
    for table in tables:
        sync_sequence(conn, table)
    credits = (
        seed_wallets(
            conn,
            first_account_id=first_account,
            accounts=counts["accounts"],
            start=start,
            seed=seed,
        )
        if wallets
        else SeededWallets()
    )
    return SeedReport(
        accounts=counts["accounts"],
        bill_units=counts["bill_units"],
        contracts=counts["contracts"],
        contract_items=counts["contract_items"],
        usage_records=counts["usage_records"],
        discounts=counts.get("discounts", 0),
        commitments=counts.get("commitments", 0),
        trial_items=trials,
        products=len(OFFERS),
        price_plans=len(OFFERS) * len(CURRENCIES),
        first_account_id=first_account,
        wallets=credits.wallets,
        wallet_grants=credits.grants,
    )


def _report(progress: Progress | None, accounts: int) -> None:
    """Tell the caller that ``accounts`` more accounts are in the database."""
    if progress is not None and accounts:
        progress(accounts)


def _chunks(accounts: int, chunk_size: int) -> Iterator[tuple[int, int]]:
    """Ranges of block numbers, ``chunk_size`` accounts' worth each."""
    blocks = -(-accounts // BLOCK)
    step = chunk_size // BLOCK
    for first in range(0, blocks, step):
        yield first, min(first + step, blocks)


def _block_size(block: int, accounts: int) -> int:
    return min(BLOCK, accounts - block * BLOCK)


def _concat(batches: Sequence[Batch]) -> Batch:
    """Join the blocks' columns into one chunk."""
    out: Batch = {}
    for name, first in batches[0].items():
        if isinstance(first, np.ndarray):
            out[name] = np.concatenate([b[name] for b in batches])
        else:
            out[name] = [value for b in batches for value in b[name]]
    return out


def _block(
    rng: np.random.Generator,
    ctx: _Context,
    ids: _Ids,
    n: int,
    terms_rng: np.random.Generator,
) -> dict[str, Batch]:
    """Every row of ``n`` accounts, drawn from one random stream (their discounts from
    ``terms_rng``, so the other rows are the same with or without them); advances ``ids``."""
    people, currency = _accounts(rng, ctx, ids.account, n)
    units = _bill_units(rng, ctx, ids, n)
    contracts, items, metered = _contracts(rng, ctx, ids, currency, n)
    usage = _usage(rng, ctx, ids.usage, *metered)
    people["usage_threshold"] = _usage_thresholds(rng, n)  # drawn last: the rest stays as it was
    block = {
        "accounts": people,
        "bill_units": units,
        "contracts": contracts,
        "contract_items": items,
        "usage_records": usage,
    }
    if ctx.discount_share:
        recurring = np.asarray(items["item_type"]) == ITEM_TYPES[ITEM_RECURRING]
        block["discounts"] = synthetic_terms.discount_batch(
            terms_rng,
            first_id=ids.discount,
            share=ctx.discount_share,
            accounts=np.arange(ids.account, ids.account + n, dtype=np.int64),
            recurring_items=np.asarray(items["id"])[recurring],
            recurring_plans=np.asarray(items["price_plan_id"])[recurring],
            fx=[FX[CURRENCIES[c]] for c in currency.tolist()],
            start=ctx.start,
        )
        ids.discount += len(block["discounts"]["id"])
    if ctx.terms:  # drawn last: the rows above are the same with or without terms
        codes = [CURRENCIES[c] for c in currency.tolist()]
        trial_ends, commitments = draw_terms(
            rng, ctx.start, ids.commitment, contracts, items, codes, FX
        )
        items["trial_end_date"] = trial_ends
        block["commitments"] = commitments
        ids.commitment += len(commitments["id"])
    ids.account += n
    ids.bill_unit += n
    ids.contract += n
    ids.item += len(items["id"])
    ids.usage += len(usage["id"])
    return block


THRESHOLD_SHARE = 0.2
THRESHOLDS = (Decimal("1.00"), Decimal("2.00"), Decimal("5.00"))
THRESHOLD_WEIGHTS = (0.5, 0.3, 0.2)


def _usage_thresholds(rng: np.random.Generator, n: int) -> list[Decimal | None]:
    """Progressive billing (``billing.domain.thresholds``): a share of the accounts bill their
    usage early past a few units of their currency, which a few days of the seeded usage pass
    (every account has a usage item). Drawn after every other column of the block, so adding
    them changed none of the others."""
    has = (rng.random(n) < THRESHOLD_SHARE).tolist()
    which = _pick(rng, THRESHOLD_WEIGHTS, n).tolist()
    return [THRESHOLDS[w] if h else None for h, w in zip(has, which, strict=True)]


def _pick(rng: np.random.Generator, weights: Sequence[float], n: int) -> np.ndarray:
    """``n`` indexes drawn with the given weights."""
    p = np.asarray(weights, dtype=float)
    return rng.choice(len(p), size=n, p=p / p.sum())


def _accounts(
    rng: np.random.Generator, ctx: _Context, first_id: int, n: int
) -> tuple[Batch, np.ndarray]:
    """Account rows (names, addresses, e-mail, language and currency of the country, payment),
    and each account's currency as an index in ``CURRENCIES``."""
    country = _pick(rng, [c.share for c in COUNTRIES], n)
    draws = rng.integers(0, 2**62, size=(n, 8)).tolist()
    company = (rng.random(n) < 0.12).tolist()
    status = _pick(rng, (0.94, 0.04, 0.02), n).tolist()
    created = (rng.integers(1, 1500, size=n)).tolist()
    pay_roll = rng.random(n).tolist()
    rows: dict[str, list[Any]] = {name: [] for name in _ACCOUNT_COLUMNS}
    for i, c in enumerate(country.tolist()):
        _account_row(rows, ctx, first_id + i, COUNTRIES[c], ctx.pools[c], draws[i], company[i],
                     ("active", "inactive", "closed")[status[i]],
                     ctx.start - timedelta(days=created[i]), pay_roll[i])  # fmt: skip
    currency = np.array([CURRENCIES.index(COUNTRIES[c].currency) for c in country.tolist()])
    return dict(rows), currency


_ACCOUNT_COLUMNS = (
    "id", "ref", "name", "address_line", "postal_code", "city", "country", "language",
    "currency", "email", "vat_id", "status", "payment_method", "iban", "bic", "mandate_ref",
    "mandate_date", "card_token", "payment_terms_days", "balance", "created_on", "customer_type",
)  # fmt: skip
ZERO = Decimal(0)
TERMS = (30, 30, 30, 30, 30, 30, 30, 15, 45, 60)


def _account_row(
    rows: dict[str, list[Any]],
    ctx: _Context,
    account_id: int,
    country: Country,
    pools: Pools,
    r: list[int],
    company: bool,
    status: str,
    created_on: date,
    pay_roll: float,
) -> None:
    """Append one account's values to the column lists."""
    first, last = r[0] % len(pools.first), r[1] % len(pools.last)
    street, number = pools.streets[r[2] % len(pools.streets)], r[3] % 180 + 1
    postal_code, city = pools.places[r[4] % len(pools.places)]
    domain = EMAIL_DOMAINS[r[5] % len(EMAIL_DOMAINS)]
    if company:
        which = r[6] % len(pools.companies)
        name = pools.companies[which]
        email = f"billing@{pools.company_slugs[which]}.{domain}"
        vat_id: str | None = _vat_id(country.code, r[7])
    else:
        name = f"{pools.first[first]} {pools.last[last]}"
        suffix = r[6] % 100
        email = f"{pools.first_ascii[first]}.{pools.last_ascii[last]}{suffix or ''}@{domain}"
        vat_id = None
    ref = f"{ACCOUNT_PREFIX}{account_id:09d}"
    method = (
        "direct_debit"
        if pay_roll < country.direct_debit
        else "card"
        if pay_roll < country.direct_debit + country.card
        else "invoice"
    )
    iban = bic = mandate_ref = card_token = None
    mandate_date = None
    if method == "direct_debit":
        bank, bic = BANKS[country.code][r[7] % len(BANKS[country.code])]
        iban = iban_from_bban(country.code, national_bban(country.code, bank, r[3], r[2]))
        mandate_ref, mandate_date = f"MD-{ref}", created_on
    elif method == "card":
        card_token = f"tok_{r[7]:016x}"
    values = (
        account_id, ref, name,
        f"{number} {street}" if country.number_first else f"{street} {number}",
        postal_code, city, country.code, country.language, country.currency, email, vat_id,
        status, method, iban, bic, mandate_ref, mandate_date, card_token,
        0 if method == "card" else TERMS[r[5] % len(TERMS)], ZERO, created_on,
        "business" if company else "consumer",
    )  # fmt: skip
    for column, value in zip(_ACCOUNT_COLUMNS, values, strict=True):
        rows[column].append(value)


def _bill_units(rng: np.random.Generator, ctx: _Context, ids: _Ids, n: int) -> Batch:
    """One bill unit per account: a quarter bill on the 1st, the rest on any day 1..31."""
    day = np.where(rng.random(n) < 0.25, 1, rng.integers(1, 32, size=n)).tolist()
    cycle = [CYCLES[c] for c in _pick(rng, CYCLE_WEIGHTS, n).tolist()]
    return {
        "id": np.arange(ids.bill_unit, ids.bill_unit + n, dtype=np.int64),
        "account_id": np.arange(ids.account, ids.account + n, dtype=np.int64),
        "billing_day": np.asarray(day, dtype=np.int64),
        "cycle": cycle,
        "next_bill_date": [ctx.next_bill[d, c] for d, c in zip(day, cycle, strict=True)],
        "billing_state": ["ready"] * n,
        "series_code": ["INV"] * n,
    }


ITEM_RECURRING, ITEM_USAGE, ITEM_UTI, ITEM_ONE_TIME = 0, 1, 2, 3
ITEM_TYPES = ("recurring", "usage", "uti", "one_time")
QUANTITIES = tuple(Decimal(q) for q in range(6))
TERM_MONTHS = (12, 24, 1)
DISCOUNTS = (Decimal("0.80"), Decimal("0.85"), Decimal("0.90"))


def _contracts(
    rng: np.random.Generator, ctx: _Context, ids: _Ids, currency: np.ndarray, n: int
) -> tuple[Batch, Batch, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One contract per account with a recurring item, a usage item, and maybe a UTI item and
    a one-time item, in that order; also returns what usage needs: the first metered item id,
    the number of metered items and their offers (indexes in ``METERED``), per account."""
    contract_ids = np.arange(ids.contract, ids.contract + n, dtype=np.int64)
    term = _pick(rng, (0.6, 0.25, 0.15), n)
    contracts: Batch = {
        "id": contract_ids,
        "ref": [f"CTR-{i:09d}" for i in contract_ids.tolist()],
        "account_id": np.arange(ids.account, ids.account + n, dtype=np.int64),
        "start_date": [ctx.start] * n,
        "term_months": np.asarray(TERM_MONTHS, dtype=np.int64)[term],
        "auto_renew": (rng.random(n) < 0.9).tolist(),
        "notice_days": np.where(term == 2, 15, 30),
        "status": ["active"] * n,
    }
    has_uti = rng.random(n) < UTI_SHARE
    has_one_time = rng.random(n) < ONE_TIME_SHARE
    offer = np.stack(
        [
            _pick(rng, RECURRING_WEIGHTS, n),
            len(RECURRING) + _pick(rng, USAGE_WEIGHTS, n),
            len(RECURRING) + len(USAGE) + _pick(rng, UTI_WEIGHTS, n),
            len(RECURRING) + len(METERED) + _pick(rng, ONE_TIME_WEIGHTS, n),
        ],
        axis=1,
    )
    quantity = np.stack(
        [
            _pick(rng, (0.85, 0.08, 0.04, 0.02, 0.01), n) + 1,
            np.ones(n, dtype=np.int64),
            np.ones(n, dtype=np.int64),
            _pick(rng, (0.9, 0.1), n) + 1,
        ],
        axis=1,
    )
    discount = np.where(rng.random(n) < OVERRIDE_SHARE, rng.integers(0, 3, size=n), -1)
    present = np.stack([np.ones(n, bool), np.ones(n, bool), has_uti, has_one_time], axis=1)
    owner, kind = np.nonzero(present)
    item_ids = np.arange(ids.item, ids.item + len(owner), dtype=np.int64)
    plan = ctx.catalogue.plan_ids[offer[owner, kind], currency[owner]]
    items: Batch = {
        "id": item_ids,
        "ref": [f"ITM-{i:010d}" for i in item_ids.tolist()],
        "contract_id": contract_ids[owner],
        "price_plan_id": plan,
        "item_type": [ITEM_TYPES[k] for k in kind.tolist()],
        "quantity": [QUANTITIES[q] for q in quantity[owner, kind].tolist()],
        "price_override": _overrides(ctx, plan, kind, discount[owner]),
        "start_date": [ctx.start] * len(owner),
        "status": ["active"] * len(owner),
    }
    first_usage_item = item_ids[kind == ITEM_USAGE]
    metered = (first_usage_item, 1 + has_uti.astype(np.int64), offer[:, 1:3] - len(RECURRING))
    return contracts, items, metered


def _overrides(
    ctx: _Context, plan: np.ndarray, kind: np.ndarray, discount: np.ndarray
) -> list[Decimal | None]:
    """A negotiated price on a few recurring items: 10-20 % off the list price, to the cent."""
    out: list[Decimal | None] = [None] * len(plan)
    for i in np.nonzero((kind == ITEM_RECURRING) & (discount >= 0))[0].tolist():
        list_price = ctx.catalogue.prices[int(plan[i])]
        out[i] = (list_price * DISCOUNTS[discount[i]]).quantize(CENT, ROUND_HALF_UP)
    return out


MEDIAN_USE = np.array([o.median_use for o in METERED])
WHOLE_UNITS = np.array([o.whole_units for o in METERED])
MAX_MILLI = 9_999_999


def _usage(
    rng: np.random.Generator,
    ctx: _Context,
    first_id: int,
    first_item: np.ndarray,
    item_count: np.ndarray,
    offers: np.ndarray,
) -> Batch:
    """``usage_per_account`` usage rows per account on its metered items, over 30 days from the
    start, ordered by item and time; quantities have at most 3 decimals."""
    m, n = ctx.usage_per_account, len(first_item)
    owner = np.repeat(np.arange(n), m)
    pick = rng.integers(0, item_count[owner])
    seconds = rng.integers(0, USAGE_DAYS * 86_400, size=len(owner))
    offer = offers[owner, pick]
    quantity = MEDIAN_USE[offer] * np.exp(0.9 * rng.standard_normal(len(owner)))
    milli = np.where(WHOLE_UNITS[offer], np.maximum(np.rint(quantity), 1) * 1000, quantity * 1000)
    milli = np.clip(np.rint(milli), 1, MAX_MILLI).astype(np.int64)
    item = first_item[owner] + pick
    order = np.lexsort((seconds, item))
    ids = np.arange(first_id, first_id + len(owner), dtype=np.int64)
    values, index = np.unique(milli[order], return_inverse=True)
    decimals = np.empty(len(values), dtype=object)
    decimals[:] = [Decimal(v).scaleb(-3) for v in values.tolist()]
    return {
        "id": ids,
        "external_id": [f"USG-{i:012d}" for i in ids.tolist()],
        "contract_item_id": item[order],
        "quantity": decimals[index].tolist(),
        "occurred_at": np.datetime64(ctx.start, "s") + seconds[order],
        "status": ["pending"] * len(owner),
    }


ACCOUNT_PREFIX = "ACC-"  # every synthetic account's ref: ACC-000000001, ...


def seeded_accounts(engine: Engine) -> int:
    """How many synthetic accounts the database holds already (``make demo`` seeds once)."""
    with engine.connect() as connection:
        query = select(func.count()).select_from(Account.__table__)
        query = query.where(Account.ref.like(f"{ACCOUNT_PREFIX}%"))
        return connection.scalar(query) or 0
