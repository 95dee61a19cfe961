"""Invoice fields read right, in every syntax: Factur-X / ZUGFeRD 2.x CII in every
profile (MINIMUM, BASIC WL, BASIC, EN16931, EXTENDED, XRECHNUNG), ZUGFeRD 1.0, UBL 2.1
Invoice and CreditNote (PEPPOL BIS 3, XRechnung), bare and embedded in PDF/A-3.

The corpus (tests/fixtures/invoices.py) sets each field's truth from what it writes,
never by reading the XML back; sellers carry the identifiers that used to come out
wrong (a German Steuernummer or a Swedish "Godkänd för F-skatt" listed before the VAT
number, a Norwegian or Croatian bare 9-digit identifier, a SIRET only)."""

from __future__ import annotations

import io
import logging

import pytest

from fixtures import invoices, pdfs
from fixtures.invoices import SYNTAXES, corpus


def _fields(sample_or_xml, source=None):
    from ged.extraction.invoices import invoice_fields

    xml = getattr(sample_or_xml, "xml", sample_or_xml)
    return invoice_fields(xml, source=source)


def test_every_field_of_every_invoice_in_every_syntax_is_right():
    samples = corpus(seed=2026, per_syntax=40)
    assert {s.syntax for s in samples} == set(SYNTAXES)
    wrong = []
    for s in samples:
        got = _fields(s) or {}
        for key, value in s.expected.items():
            if got.get(key) != value:
                wrong.append((s.syntax, key, value, got.get(key)))
        if got.get("schema_valid") is not True:
            wrong.append((s.syntax, "schema_valid", True, got.get("schema_valid")))
    fields = len(samples) * (len(samples[0].expected) + 1)
    # The target is 99 % of fields; on this corpus every field is right.
    assert not wrong, f"{len(wrong)} wrong fields of {fields}: {wrong[:10]}"


@pytest.mark.parametrize("syntax", SYNTAXES)
def test_schema_validity_agrees_with_the_factur_x_library(syntax):
    """schema_valid against the library's own check (another code path), on a valid
    invoice and on the same invoice with an element the XSD does not allow."""
    from facturx import xml_check_xsd

    logging.getLogger("factur-x").setLevel(logging.CRITICAL)
    flavor = {"zugferd1": "zugferd", "peppol-creditnote": "ubl-2.1-creditnote",
              "peppol-invoice": "ubl-2.1-invoice", "xrechnung-ubl": "ubl-2.1-invoice"}.get(
        syntax, "factur-x")
    sample = corpus(seed=7, per_syntax=1)[SYNTAXES.index(syntax)]
    broken = sample.xml.replace(b"<ram:TypeCode>380", b"<ram:Unexpected/><ram:TypeCode>380", 1)
    broken = broken.replace(b"<cbc:IssueDate>", b"<cbc:Unexpected/><cbc:IssueDate>", 1)
    for xml in (sample.xml, broken):
        try:
            truth = bool(xml_check_xsd(xml, flavor=flavor))
        except Exception:  # noqa: BLE001 - the library raises on an invalid XML
            truth = False
        assert _fields(xml)["schema_valid"] is truth
    assert _fields(sample.xml)["schema_valid"] is True
    assert _fields(broken)["number"] == sample.expected["number"]  # read all the same


def test_vat_number_is_the_vat_scheme_registration_not_a_national_tax_number():
    from ged.extraction.invoices import invoice_fields

    for s in corpus(seed=11, per_syntax=30):
        seller = s.expected
        got = invoice_fields(s.xml)
        assert got["seller_vat"] == seller["seller_vat"], s.syntax
        assert "F-skatt" not in (got["seller_vat"] or "")
        assert "/" not in (got["seller_vat"] or "")  # a German Steuernummer (scheme FC)


def test_siren_only_from_a_french_identifier_with_a_valid_luhn_check():
    from ged.extraction.invoices import luhn_ok, siren_of

    assert siren_of("552081317", "0002") == "552081317"
    assert siren_of("552 081 317", "0002") == "552081317"
    assert siren_of("55208131700017", "0009") == "552081317"
    assert siren_of("FR03552081317", "VAT") == "552081317"
    assert siren_of("552081318", "0002") is None  # fails the Luhn check
    assert siren_of("987654321", None) is None  # a bare Norwegian organisation number
    assert siren_of("987654321", "0192") is None  # Norway's scheme
    assert siren_of("NO987654321MVA", "VAT") is None
    assert siren_of("DE123456789", "VAT") is None
    assert luhn_ok("732829320") and not luhn_ok("732829321")
    foreign = [s for s in corpus(seed=5, per_syntax=30) if s.expected["seller_siren"] is None]
    assert len(foreign) > 100
    for s in foreign:
        assert _fields(s)["seller_siren"] is None, (s.syntax, s.xml[:2000])


def test_dates_in_cii_formats_102_610_616_and_ubl_iso():
    from ged.extraction.invoices import iso_date

    assert iso_date("20260315", "102") == "2026-03-15"
    assert iso_date("202603", "610") == "2026-03"
    assert iso_date("202611", "616") == "2026-W11"
    assert iso_date("2026-03-15") == "2026-03-15"
    assert iso_date("2026-03-15+01:00") == "2026-03-15"
    assert iso_date("2026-03-15Z") == "2026-03-15"
    assert iso_date("20260230", "102") is None  # no such day
    assert iso_date("demain") is None
    kinds = {s.expected["due_date"][5:6] for s in corpus(seed=3, per_syntax=40)
             if s.syntax == "cii-extended" and s.expected["due_date"]}
    assert {"W"} <= kinds  # weeks (616) are in the corpus, and read right above


def test_tax_total_in_the_invoice_currency_when_repeated_in_another():
    foreign = [s for s in corpus(seed=13, per_syntax=40) if s.expected["currency"] != "EUR"]
    assert {s.syntax for s in foreign} >= {"cii-en16931", "cii-extended", "peppol-invoice",
                                           "peppol-creditnote"}
    for s in foreign:
        if s.syntax != "zugferd1":  # ZUGFeRD 1 had no VAT accounting currency
            assert b'currencyID="EUR"' in s.xml  # the VAT total in euros is there too
        assert _fields(s)["tax_total"] == s.expected["tax_total"], s.syntax


# --- embedded in PDF/A-3, through the deposit ---------------------------------------------------


def _attach(pdf: bytes, name: str, xml: bytes, **save) -> bytes:
    """Attach ``xml`` under ``name`` with pikepdf (how ZUGFeRD 1 producers did it)."""
    import pikepdf

    with pikepdf.open(io.BytesIO(pdf)) as doc:
        doc.attachments[name] = pikepdf.AttachedFileSpec(doc, xml, mime_type="text/xml")
        out = io.BytesIO()
        doc.save(out, **save)
        return out.getvalue()


def test_factur_x_pdfs_of_every_profile_zugferd1_and_encrypted_ones_are_read(
        client, world, deposit, run_jobs):
    import pikepdf

    folder = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    samples = corpus(seed=21, per_syntax=1)
    cases = []
    for s in samples:
        if s.syntax.startswith("cii-"):
            cases.append((s, invoices.facturx_pdf(s.xml)))
        elif s.syntax == "zugferd1":
            cases.append((s, _attach(pdfs.text_pdf(1), "ZUGFeRD-invoice.xml", s.xml)))
    # A Factur-X PDF a bank's software then protected with an owner password only.
    s = samples[SYNTAXES.index("cii-en16931")]
    cases.append((s, _attach(pdfs.text_pdf(1), "factur-x.xml", s.xml,
                             encryption=pikepdf.Encryption(user="", owner="x", R=6))))
    docs = [(s, deposit(world.client_a, folder, f"facture-{i}.pdf", pdf))
            for i, (s, pdf) in enumerate(cases)]
    # Bare files too: XRechnung UBL, a PEPPOL credit note, a CII without extension.
    for syntax, name in (("xrechnung-ubl", "xrechnung.xml"), ("peppol-creditnote", "avoir.xml"),
                         ("cii-basic", "facture-cii")):
        s = samples[SYNTAXES.index(syntax)]
        docs.append((s, deposit(world.client_a, folder, name, s.xml)))
    run_jobs()
    for s, doc in docs:
        got = client.get(f"/api/v1/documents/{doc.id}", headers=world.client_a.headers).get_json()
        fx = got["facturx"]
        assert fx is not None, (s.syntax, got["name"], got["text_status"])
        source = "facturx" if got["content_type"] == "application/pdf" else s.expected["source"]
        assert {**s.expected, "source": source} == {k: fx[k] for k in s.expected}, s.syntax
        assert fx["schema_valid"] is True, s.syntax
    assert docs[-1][1].name == "facture-cii.xml"  # no extension: the right one is added
