"""Errors of invoice documents and their delivery, under the engine's ``BillingError``.

BillingError(ValueError)
+-- DocumentError                 an invoice document cannot be built, checked or stored
|   +-- InvoiceValidationError    the XML breaks our XSD, the CII XSD or the EN 16931 Schematron
|   +-- UnsafeResourceError       a template or a value referred to something we never fetch
+-- DeliveryError                 an invoice e-mail cannot be sent
    +-- HeaderInjectionError      a header value that could add a header, or cannot be written
    +-- TransientDeliveryError    worth retrying: connection lost, 4xx reply
    +-- PermanentDeliveryError    never worth retrying: 5xx reply, refused recipient
"""

from __future__ import annotations

from collections.abc import Sequence

from billing.domain.errors import BillingError


class DocumentError(BillingError):
    """An invoice document that cannot be built, validated or stored."""


class InvoiceValidationError(DocumentError):
    """The XML does not validate; ``problems`` lists every message (rule id first)."""

    def __init__(self, what: str, problems: Sequence[str]):
        shown = "\n".join(f"- {p}" for p in problems[:20])
        more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{what}: {len(problems)} problem(s)\n{shown}{more}")
        self.problems = tuple(problems)


class UnsafeResourceError(DocumentError):
    """A URL the renderer refuses: only packaged assets are ever fetched."""


class DeliveryError(BillingError):
    """An invoice e-mail that cannot be sent."""


class HeaderInjectionError(DeliveryError):
    """A header value with CR or LF: it could add headers or recipients."""


class TransientDeliveryError(DeliveryError):
    """A failure worth retrying later (lost connection, 4xx reply)."""


class DeliveryUnknownError(DeliveryError):
    """The link failed after the message data went out: the server may have accepted it."""


class PermanentDeliveryError(DeliveryError):
    """A failure that retrying cannot fix (5xx reply, refused recipient)."""
