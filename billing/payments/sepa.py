"""SEPA files: Core direct debits (pain.008.001.02) and credit transfers (pain.001.001.03).

Built with lxml rather than sepaxml's writer so that a file is a pure function of its rows: the
message id, the payment-information ids and the creation time (the run's ``as_of`` at
midnight) come from the caller, so rewriting a file after a crash gives the same bytes. Every
file is validated against the official XSD that the ``sepaxml`` package ships
(``sepaxml/schemas/pain.008.001.02.xsd``, ``pain.001.001.03.xsd``) before it is written.
IBANs and BICs are checked with ``schwifty``.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from importlib.resources import files
from pathlib import Path

from lxml import etree
from schwifty import BIC, IBAN
from stdnum.eu import at_02
from stdnum.exceptions import ValidationError

from billing.payments.errors import BankDetailsError
from billing.store.models_payments import PaymentFileKind

SEPA_CURRENCY = "EUR"
CENT = Decimal("0.01")
_ALLOWED = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-?:().,'+ ")


@dataclass(frozen=True)
class Creditor:
    """Who collects (and who pays refunds): name, account and SEPA creditor identifier."""

    name: str
    iban: str
    bic: str
    creditor_id: str

    def checked(self) -> Creditor:
        """The creditor with its IBAN and BIC in canonical form; BankDetailsError if invalid."""
        if not self.name.strip() or not self.creditor_id.strip():
            raise BankDetailsError("the creditor needs a name and a SEPA creditor identifier")
        try:  # ISO 7064 MOD 97-10 over the national part, as the EPC defines the identifier
            at_02.validate(self.creditor_id)
        except ValidationError as error:
            raise BankDetailsError(
                f"creditor_id {self.creditor_id!r} is not a SEPA creditor identifier ({error})"
            ) from None
        return Creditor(self.name, check_iban(self.iban), check_bic(self.bic), self.creditor_id)


@dataclass(frozen=True)
class DirectDebit:
    """One debit of a customer's account under its mandate."""

    end_to_end_id: str
    amount: Decimal
    debtor_name: str
    iban: str
    bic: str | None
    mandate_ref: str
    mandate_date: date
    sequence: str  # FRST or RCUR
    remittance: str
    collection_date: date  # ReqdColltnDt: a TARGET2 business day (billing.domain.direct_debit)


@dataclass(frozen=True)
class CreditTransfer:
    """One transfer to a customer's account (a refund)."""

    end_to_end_id: str
    amount: Decimal
    creditor_name: str
    iban: str
    bic: str | None
    remittance: str


def check_iban(value: str) -> str:
    """The IBAN in compact form, or BankDetailsError with schwifty's reason."""
    try:
        return str(IBAN(value).compact)
    except ValueError as error:
        raise BankDetailsError(f"IBAN {value!r} is not valid: {error}") from error


def check_bic(value: str) -> str:
    try:
        return str(BIC(value).compact)
    except ValueError as error:
        raise BankDetailsError(f"BIC {value!r} is not valid: {error}") from error


def sepa_text(value: str, length: int) -> str:
    """Text in the SEPA Latin character set (accents dropped, others replaced), cut to size."""
    plain = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    cleaned = "".join(ch if ch in _ALLOWED else " " for ch in plain).strip()
    return (cleaned or "-")[:length]


def sepa_amount(amount: Decimal) -> str:
    """A euro amount with two decimals; BankDetailsError if it has fractions of a cent."""
    if amount <= 0 or amount != amount.quantize(CENT):
        raise BankDetailsError(f"SEPA carries positive whole cents, not {amount}")
    return f"{amount.quantize(CENT)}"


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    node = etree.SubElement(parent, tag, attrs)
    if text is not None:
        node.text = text
    return node


def _path(parent: etree._Element, tags: str, text: str) -> None:
    """Nested elements ``A/B/C`` with ``text`` in the innermost."""
    node = parent
    for tag in tags.split("/"):
        node = _sub(node, tag)
    node.text = text


def _agent(parent: etree._Element, tag: str, bic: str | None) -> None:
    fin = _sub(_sub(parent, tag), "FinInstnId")
    if bic:
        _sub(fin, "BIC", bic)
    else:
        _path(fin, "Othr/Id", "NOTPROVIDED")


def _document(kind: PaymentFileKind) -> tuple[etree._Element, etree._Element]:
    ns = f"urn:iso:std:iso:20022:tech:xsd:{kind.value}"
    root = etree.Element(f"{{{ns}}}Document", nsmap={None: ns})
    return root, root


def _header(
    parent: etree._Element, msg_id: str, as_of: date, amounts: Sequence[Decimal], initiator: str
) -> None:
    header = _sub(parent, "GrpHdr")
    _sub(header, "MsgId", msg_id)
    _sub(header, "CreDtTm", f"{as_of.isoformat()}T00:00:00")
    _sub(header, "NbOfTxs", str(len(amounts)))
    _sub(header, "CtrlSum", sepa_amount(sum(amounts, Decimal(0))))
    _path(header, "InitgPty/Nm", sepa_text(initiator, 70))


def direct_debit_file(
    creditor: Creditor,
    debits: Sequence[DirectDebit],
    *,
    msg_id: str,
    as_of: date,
) -> bytes:
    """A pain.008.001.02 SEPA Core direct-debit initiation.

    One PmtInf per (sequence type, collection date): ``SeqTp`` and ``ReqdColltnDt`` are
    PmtInf-level elements of pain.008, so debits differing in either need their own block.
    Blocks in (sequence, date) order; the PmtInfId is ``{msg_id}-{sequence}-{YYYYMMDD}``.
    """
    if not debits:
        raise BankDetailsError("a direct-debit file needs at least one debit")
    kind = PaymentFileKind.DIRECT_DEBIT
    root, _ = _document(kind)
    body = _sub(root, "CstmrDrctDbtInitn")
    _header(body, msg_id, as_of, [d.amount for d in debits], creditor.name)
    groups: dict[tuple[str, date], list[DirectDebit]] = defaultdict(list)
    for debit in debits:
        groups[debit.sequence, debit.collection_date].append(debit)
    for sequence, collection_date in sorted(groups):
        group = groups[sequence, collection_date]
        info = _sub(body, "PmtInf")
        _sub(info, "PmtInfId", f"{msg_id}-{sequence}-{collection_date:%Y%m%d}")
        _sub(info, "PmtMtd", "DD")
        _sub(info, "BtchBookg", "true")
        _sub(info, "NbOfTxs", str(len(group)))
        _sub(info, "CtrlSum", sepa_amount(sum((d.amount for d in group), Decimal(0))))
        kind_info = _sub(info, "PmtTpInf")
        _path(kind_info, "SvcLvl/Cd", "SEPA")
        _path(kind_info, "LclInstrm/Cd", "CORE")
        _sub(kind_info, "SeqTp", sequence)
        _sub(info, "ReqdColltnDt", collection_date.isoformat())
        _path(info, "Cdtr/Nm", sepa_text(creditor.name, 70))
        _path(info, "CdtrAcct/Id/IBAN", creditor.iban)
        _agent(info, "CdtrAgt", creditor.bic)
        _sub(info, "ChrgBr", "SLEV")
        scheme = _sub(_sub(_sub(_sub(info, "CdtrSchmeId"), "Id"), "PrvtId"), "Othr")
        _sub(scheme, "Id", creditor.creditor_id)
        _path(scheme, "SchmeNm/Prtry", "SEPA")
        for debit in group:
            tx = _sub(info, "DrctDbtTxInf")
            _path(tx, "PmtId/EndToEndId", debit.end_to_end_id)
            _sub(tx, "InstdAmt", sepa_amount(debit.amount), Ccy=SEPA_CURRENCY)
            mandate = _sub(_sub(tx, "DrctDbtTx"), "MndtRltdInf")
            _sub(mandate, "MndtId", sepa_text(debit.mandate_ref, 35))
            _sub(mandate, "DtOfSgntr", debit.mandate_date.isoformat())
            _agent(tx, "DbtrAgt", debit.bic)
            _path(tx, "Dbtr/Nm", sepa_text(debit.debtor_name, 70))
            _path(tx, "DbtrAcct/Id/IBAN", debit.iban)
            _path(tx, "RmtInf/Ustrd", sepa_text(debit.remittance, 140))
    return _finish(root, kind)


def credit_transfer_file(
    debtor: Creditor,
    transfers: Sequence[CreditTransfer],
    *,
    msg_id: str,
    as_of: date,
    execution_date: date,
) -> bytes:
    """A pain.001.001.03 SEPA credit-transfer initiation (refunds paid from ``debtor``)."""
    if not transfers:
        raise BankDetailsError("a credit-transfer file needs at least one transfer")
    kind = PaymentFileKind.CREDIT_TRANSFER
    root, _ = _document(kind)
    body = _sub(root, "CstmrCdtTrfInitn")
    amounts = [t.amount for t in transfers]
    _header(body, msg_id, as_of, amounts, debtor.name)
    info = _sub(body, "PmtInf")
    _sub(info, "PmtInfId", f"{msg_id}-TRF")
    _sub(info, "PmtMtd", "TRF")
    _sub(info, "BtchBookg", "true")
    _sub(info, "NbOfTxs", str(len(transfers)))
    _sub(info, "CtrlSum", sepa_amount(sum(amounts, Decimal(0))))
    _path(_sub(info, "PmtTpInf"), "SvcLvl/Cd", "SEPA")
    _sub(info, "ReqdExctnDt", execution_date.isoformat())
    _path(info, "Dbtr/Nm", sepa_text(debtor.name, 70))
    _path(info, "DbtrAcct/Id/IBAN", debtor.iban)
    _agent(info, "DbtrAgt", debtor.bic)
    _sub(info, "ChrgBr", "SLEV")
    for transfer in transfers:
        tx = _sub(info, "CdtTrfTxInf")
        _path(tx, "PmtId/EndToEndId", transfer.end_to_end_id)
        _sub(_sub(tx, "Amt"), "InstdAmt", sepa_amount(transfer.amount), Ccy=SEPA_CURRENCY)
        if transfer.bic:
            _agent(tx, "CdtrAgt", transfer.bic)
        _path(tx, "Cdtr/Nm", sepa_text(transfer.creditor_name, 70))
        _path(tx, "CdtrAcct/Id/IBAN", transfer.iban)
        _path(tx, "RmtInf/Ustrd", sepa_text(transfer.remittance, 140))
    return _finish(root, kind)


def _finish(root: etree._Element, kind: PaymentFileKind) -> bytes:
    xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    validate(xml, kind)
    return bytes(xml)


def xsd_path(kind: PaymentFileKind) -> Path:
    """The official XSD of ``kind``, as shipped in the sepaxml package."""
    return Path(str(files("sepaxml") / "schemas" / f"{kind.value}.xsd"))


_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
"""Never loads a DTD, an external entity or anything over the network; no huge trees."""


@cache
def _schema(kind: PaymentFileKind) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(xsd_path(kind)), _PARSER))


def validate(xml: bytes, kind: PaymentFileKind) -> None:
    """BankDetailsError naming the first XSD violation, if ``xml`` is not a valid ``kind``."""
    schema = _schema(kind)
    if not schema.validate(etree.fromstring(xml, _PARSER)):
        error = schema.error_log.last_error
        raise BankDetailsError(f"{kind.value} file does not validate: {error}")


def write_atomically(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(content)
    partial.replace(path)
