"""Words, numbers, amounts and dates in the account's language (Babel), for the documents.

The words come from ``translations.CATALOGUE`` (en, fr, pt, de); any other language gets the
English words with that language's number and date formats when Babel knows it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal

from billing.documents.translations import translate

HOME_LOCALES = {"pt": "pt_PT", "fr": "fr_FR", "de": "de_DE", "es": "es_ES"}
DATE_PATTERNS = {"de": "dd.MM.yyyy", "fr": "dd/MM/yyyy", "pt": "dd/MM/yyyy"}
"""Numeric dates as invoices of these countries print them (30.01.2027, 30/01/2027); other
languages use their locale's medium form (en_GB: 30 Jan 2027)."""
"""Where a language meets a country Babel has no locale for (pt + GB), the European variant
(Babel's bare ``pt`` is Brazilian)."""


@cache
def locale_for(language: str, country: str) -> Locale:
    """The Babel locale of an account: ``fr`` + ``BE`` gives fr_BE; unknown ones give en."""
    language = (language or "en").replace("-", "_").split("_")[0].lower()
    for candidate in (f"{language}_{country.upper()}", HOME_LOCALES.get(language), language):
        if candidate is None:
            continue
        try:
            return Locale.parse(candidate)
        except (UnknownLocaleError, ValueError):
            continue
    return Locale.parse("en")


def unsigned_zero(amount: Decimal) -> Decimal:
    """``amount``, but a negative zero (``-0.00``, from negating a zero) as ``0.00``."""
    return amount.copy_abs() if amount == 0 else amount


@dataclass(frozen=True)
class Formatter:
    """Formats values for one account: labels, amounts, quantities, rates and dates."""

    locale: Locale
    currency: str

    @classmethod
    def for_account(cls, language: str, country: str, currency: str) -> Formatter:
        return cls(locale_for(language, country), currency)

    def text(self, key: str, **params: Any) -> str:
        """The catalogue's words for ``key`` in the account's language (``translations``)."""
        return translate(self.locale.language, key, **params)

    def terms(self, days: int, due: dt.date) -> str:
        """The payment terms: due on receipt (0 days), within 1 day, within n days."""
        if days <= 0:
            return self.text("terms_on_receipt")
        if days == 1:
            return self.text("terms_one_day", due=self.long_date(due))
        return self.text("terms_days", days=days, due=self.long_date(due))

    @property
    def lang(self) -> str:
        """A BCP 47 tag for the document (``fr-FR``)."""
        return str(self.locale).replace("_", "-")

    def email_body(
        self,
        *,
        name: str,
        number: str,
        bill_date: dt.date,
        amount: Decimal,
        due: dt.date,
        seller: str,
        credit_note: bool = False,
    ) -> str:
        """The invoice e-mail's text; a bill due on its own date is due on receipt. A credit
        note's (``amount`` as it states it, positive) says it is applied, then refunded."""
        params = {
            "name": name,
            "number": number,
            "date": self.long_date(bill_date),
            "amount": self.money(amount),
            "seller": seller,
        }
        if credit_note:
            return self.text("email_body_credit_note", **params)
        if due <= bill_date:
            return self.text("email_body_on_receipt", **params)
        return self.text("email_body", due=self.long_date(due), **params)

    def money(self, amount: Decimal) -> str:
        """An amount with its currency symbol, in the currency's minor units (a zero never
        prints a sign: a credit note's negated 0.00 VAT is 0,00 €, not -0,00 €)."""
        return format_currency(unsigned_zero(amount), self.currency, locale=self.locale)

    def price(self, amount: Decimal, places: int = 6) -> str:
        """A unit price: at least the currency's decimals, up to six (``places``) when the
        price has them; a stored unit price has at most six, so it prints exactly."""
        amount = unsigned_zero(amount)
        digits = max(-amount.normalize().as_tuple().exponent, 2)  # type: ignore[operator]
        pattern = self.locale.currency_formats["standard"].pattern.split(";")[0]
        pattern = pattern.replace("0.00", "0." + "0" * min(digits, places))
        return format_currency(
            amount, self.currency, format=pattern, locale=self.locale, currency_digits=False
        )

    def exact(self, amount: Decimal) -> str:
        """An unrounded amount (a tier's quantity x price) with all its decimals, at least
        the currency's: the line rounds their sum once."""
        return self.price(amount, places=12)

    def number(self, value: Decimal) -> str:
        """A quantity, without trailing zeros."""
        return format_decimal(
            unsigned_zero(value).normalize(), format="#,##0.######", locale=self.locale
        )

    def percent(self, rate: Decimal) -> str:
        """A tax rate like ``20 %`` (``0.20``) or ``5,5 %``."""
        return format_decimal((rate * 100).normalize(), format="#,##0.##", locale=self.locale) + (
            "\u00a0%" if self.locale.language in ("fr", "de", "pt", "es") else "%"
        )

    def date(self, value: dt.date) -> str:
        """A date as the language's invoices print it (``30.01.2027``, ``30/01/2027``)."""
        pattern = DATE_PATTERNS.get(self.locale.language, "medium")
        return format_date(value, format=pattern, locale=self.locale)

    def long_date(self, value: dt.date) -> str:
        return format_date(value, format="long", locale=self.locale)
