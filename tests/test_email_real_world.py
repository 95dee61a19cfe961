"""The e-mail drop with mail as real clients write it (tests/fixtures/mails.py), sent
over SMTP to the real receiver: what can be deposited is deposited, what is not a
document is ignored, what is refused is said (SMTP reply, audit trail, and a French
reply through the real outgoing relay to an authenticated sender only)."""

from __future__ import annotations

import email
import email.policy

import pytest

from conftest import png_bytes, text_pdf
from fixtures import mails
from fixtures.documents import phone_photo

AUTH = ("Authentication-Results: mx.cabinet.test; dkim=pass header.d=boulangerie-martin.fr; "
        "spf=pass smtp.mailfrom=marie.durand@boulangerie-martin.fr")
AUTH_UN = "Authentication-Results: mx.cabinet.test; dkim=pass header.d=un.example"


@pytest.fixture
def relay(cfg, tmp_path):
    """ged's outgoing relay: the embedded outbox (a real aiosmtpd) keeping what is sent."""
    from ged import outbox

    directory = tmp_path / "relay"
    controller = outbox.start(directory)
    cfg.smtp_host, cfg.smtp_port, cfg.smtp_tls = "127.0.0.1", controller.port, "none"
    cfg.mail_from = "ged@cabinet.test"
    cfg.smtpd_trusted_authserv = ["mx.cabinet.test"]

    def sent():
        return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
                for p in outbox.messages(directory)]

    yield sent
    controller.stop()


def names_in(folder) -> list[str]:
    from ged.models import Document

    return sorted(d.name for d in Document.select().where(Document.folder == folder.id))


def events(action: str) -> list:
    from ged.models import AuditEvent

    return list(AuditEvent.select().where(AuditEvent.action == action).order_by(AuditEvent.seq))


def nothing_left_staged(cfg) -> bool:
    tmp = cfg.data_dir / "tmp"
    return not tmp.exists() or not any(tmp.iterdir())


@pytest.fixture(scope="module")
def photos():
    return [phone_photo([f"Ticket de caisse {i}", f"Total {12 + i},40 EUR"]) for i in range(3)]


def test_outlook_forward_deposits_the_pdf_and_photos_and_ignores_the_body(
        world, drop_smtp, relay, cfg, photos):
    """The issue's message: a forwarded Outlook mail with a PDF, three photos, a
    signature logo shown in the body and ATT0000n.htm fragments. Everything that is a
    document arrives; nothing is refused; nobody is written to."""
    root = world.folder(world.company_a)
    address = drop_smtp.address(world.company_a)
    raw = mails.outlook_forward(address, pdf=text_pdf("Facture F2026-031"), photos=photos,
                                logo=png_bytes(120, 40), headers=[AUTH])
    code, text = drop_smtp.deliver(raw, address, "marie.durand@boulangerie-martin.fr")
    assert code == 250 and "4 document(s) deposited" in text
    assert names_in(root) == ["Facture F2026-031.pdf", "IMG_20260301_101512.jpg",
                              "IMG_20260302_101512.jpg", "IMG_20260303_101512.jpg"]
    received = events("email.received")
    assert len(received) == 1 and len(received[0].details["documents"]) == 4
    assert received[0].details["refused"] == []
    assert {i["name"] for i in received[0].details["ignored"]} == {
        "image001.png", "ATT00001.htm", "ATT00002.htm", "ATT00003.htm", "ATT00004.htm"}
    assert relay() == [] and nothing_left_staged(cfg)


def test_bad_attachments_are_refused_the_rest_deposited_and_the_sender_told(
        world, drop_smtp, relay, cfg, photos):
    """An executable, a PDF that is a JPEG, a damaged PDF among good files: the good
    ones are deposited, the bad ones listed in the SMTP reply, the audit trail and a
    French reply to the authenticated sender."""
    root = world.folder(world.company_a)
    address = drop_smtp.address(world.company_a)
    bad = [("setup.exe", "application/octet-stream", b"MZ\x90\x00\x03" + b"\x00" * 500),
           ("devis.pdf", "application/pdf", photos[0]),
           ("releve.pdf", "application/pdf", b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\n"),
           ("vide.pdf", "application/pdf", b"")]
    raw = mails.outlook_forward(address, pdf=text_pdf("Facture F2026-031"), photos=photos[:1],
                                logo=png_bytes(120, 40), extra=bad, headers=[AUTH])
    code, text = drop_smtp.deliver(raw, address, "marie.durand@boulangerie-martin.fr")
    assert code == 250, text
    assert "2 document(s) deposited; 4 attachment(s) not accepted" in text
    for name in ("setup.exe", "devis.pdf", "releve.pdf", "vide.pdf"):
        assert name in text
    assert names_in(root) == ["Facture F2026-031.pdf", "IMG_20260301_101512.jpg"]

    refused = {r["name"]: r["code"] for r in events("email.received")[0].details["refused"]}
    assert refused == {"setup.exe": "unsupported_type", "devis.pdf": "content_mismatch",
                       "releve.pdf": "corrupt_file", "vide.pdf": "empty_file"}

    [reply] = relay()
    assert reply["To"] == "marie.durand@boulangerie-martin.fr"
    assert reply["Subject"] == "Pièces jointes non déposées : TR: Factures mars"
    assert reply["Auto-Submitted"] == "auto-replied" and reply["In-Reply-To"]
    body = reply.get_content()
    assert "2 document(s) ont été déposé(s)" in body and "Facture F2026-031.pdf" in body
    assert "setup.exe : Ce type de fichier n'est pas accepté" in body
    assert "devis.pdf : Le contenu du fichier ne correspond pas à son extension." in body
    assert "releve.pdf : Le fichier est endommagé" in body
    assert "vide.pdf : le fichier est vide." in body
    assert nothing_left_staged(cfg)


def test_only_bad_attachments_is_a_550_with_the_reasons(world, drop_smtp, relay, cfg):
    """Nothing acceptable left: the message is refused whole, naming each file, and
    nothing is stored; an unauthenticated sender gets no reply (no backscatter)."""
    address = drop_smtp.address(world.company_a)
    raw = mails.simple(address, [("virus.pdf", "application/pdf", b"MZ\x90\x00" + b"\x00" * 300),
                                 ("page.html", "text/html", b"<html><script>x</script></html>")])
    code, text = drop_smtp.deliver(raw, address, "jean@un.example")
    assert code == 550 and "nothing was deposited" in text
    assert "virus.pdf" in text and "page.html" in text
    from ged.models import Document

    assert Document.select().count() == 0 and nothing_left_staged(cfg)
    [event] = events("email.refused")
    assert {r["name"] for r in event.details["refused"]} == {"virus.pdf", "page.html"}
    assert relay() == []


def test_apple_mail_inline_pdf_and_photo_are_documents_the_logo_is_not(
        world, drop_smtp, relay, cfg):
    """Apple Mail shows attachments inline: a PDF named only by Content-Type's
    RFC 2231 name*, a photo marked apple-inline, both deposited; the small logo in
    the signature is not; 2000-octet lines pass."""
    root = world.folder(world.company_a)
    address = drop_smtp.address(world.company_a)
    photo = phone_photo(["Ticket Carrefour", "Total 54,20 EUR"])
    raw = mails.apple_mail(address, pdf=text_pdf("Relevé de compte mars"),
                           pdf_name="Relevé de compte – mars.pdf", photo=photo,
                           logo=png_bytes(90, 30))
    code, text = drop_smtp.deliver(raw, address, "paul@un.example")
    assert code == 250, text
    assert names_in(root) == ["IMG_4521.jpeg", "Relevé de compte – mars.pdf"]
    from ged.models import Document

    doc = Document.get(Document.name == "IMG_4521.jpeg")
    from ged import runtime

    with runtime.store().open(doc.blob_id) as fh:
        assert fh.read() == photo


def test_thunderbird_gmail_and_odd_names(world, drop_smtp, relay, cfg):
    """RFC 2231 continuations in UTF-8, an unquoted RFC 2047 filename, a quoted one in
    Latin-1, a Windows path, a name only in Content-Type, no name at all, base64 in
    one long line; Gmail's pasted picture is part of the body."""
    root = world.folder(world.company_a)
    address = drop_smtp.address(world.company_a)
    pdf = text_pdf("Note de frais")
    jpeg = phone_photo(["Reçu café"] + [f"Ligne {i} : café crème 2,40 EUR" for i in range(40)])
    assert len(jpeg) > 64 * 1024  # its one base64 line is longer than the reader's pieces
    long_name = "Relevé bancaire Crédit Agricole compte courant février 2026.pdf"
    code, text = drop_smtp.deliver(mails.thunderbird(address, [(long_name, "application/pdf",
                                                                pdf)]), address)
    assert code == 250, text
    code, text = drop_smtp.deliver(mails.odd_names(address, text_pdf("Facture été"), jpeg), address)
    assert code == 250, text
    code, text = drop_smtp.deliver(
        mails.gmail(address, [("Quittance loyer.pdf", "application/pdf", text_pdf("Loyer"))],
                    pasted=png_bytes(300, 200)), address)
    assert code == 250 and "1 document(s) deposited" in text
    assert names_in(root) == sorted([long_name, "Facture été 2026.pdf", "Reçu café.jpg",
                                     "scan 12.pdf", "piece-jointe-4.pdf", "Quittance loyer.pdf"])
    assert nothing_left_staged(cfg)


@pytest.mark.skipif(not mails.have_openssl(), reason="openssl is needed to sign")
def test_smime_signed_clear_opaque_and_encrypted(world, drop_smtp, relay, cfg):
    """Signed by openssl as Outlook signs: the clear-signed message's smime.p7s is
    ignored; the opaque smime.p7m (DER, and BER streamed) is opened and its files
    deposited; an encrypted one is refused with the reason; a signed file
    (facture.pdf.p7m) is deposited as the file it signs."""
    root = world.folder(world.company_a)
    address = drop_smtp.address(world.company_a)
    for i, kwargs in enumerate([{}, {"opaque": True}, {"opaque": True, "stream": True}]):
        raw = mails.smime(address, [(f"facture-{i}.pdf", "application/pdf",
                                     text_pdf(f"Facture signée {i}"))], **kwargs)
        code, text = drop_smtp.deliver(raw, address, "jean@un.example")
        assert code == 250 and "1 document(s) deposited" in text, (kwargs, text)
    assert names_in(root) == ["facture-0.pdf", "facture-1.pdf", "facture-2.pdf"]
    ignored = [i["name"] for e in events("email.received") for i in e.details["ignored"]]
    assert ignored == ["smime.p7s"]

    code, text = drop_smtp.deliver(mails.smime_encrypted(address, text_pdf("x")), address)
    assert code == 550 and "encrypted" in text
    # A file signed on its own: the file is the document.
    signed = text_pdf("Facture électronique signée")
    code, text = drop_smtp.deliver(mails.signed_file(address, "facture-3.pdf", signed), address)
    assert code == 250, text
    assert len(names_in(root)) == 4 and nothing_left_staged(cfg)
    from ged import runtime
    from ged.models import Document

    with runtime.store().open(Document.get(Document.name == "facture-3.pdf").blob_id) as fh:
        assert fh.read() == signed


def test_pgp_signed_message(world, drop_smtp, relay):
    root = world.folder(world.company_a)
    address = drop_smtp.address(world.company_a)
    raw = mails.pgp_signed(address, [("avis.pdf", "application/pdf", text_pdf("Avis"))])
    code, text = drop_smtp.deliver(raw, address)
    assert code == 250 and names_in(root) == ["avis.pdf"]


def test_forwarded_messages_are_opened_down_to_a_bound(world, drop_smtp, relay, cfg):
    """A forward inside a forward (as message/rfc822, or a base64 .eml): its files are
    deposited; past five levels the deeper message is refused, and said so."""
    from ged import mailparts

    root = world.folder(world.company_a)
    address = drop_smtp.address(world.company_a)
    inner = mails.simple("fournisseur@example.org",
                         [("facture-fournisseur.pdf", "application/pdf", text_pdf("F-1"))])
    raw = mails.forwarded(address, inner, levels=2,
                          extra=[("bon.pdf", "application/pdf", text_pdf("Bon"))])
    code, text = drop_smtp.deliver(raw, address)
    assert code == 250 and "2 document(s) deposited" in text
    inner2 = mails.simple("x@example.org", [("avoir.pdf", "application/pdf", text_pdf("Avoir"))])
    code, text = drop_smtp.deliver(mails.forwarded(address, inner2, encode=True), address)
    assert code == 250, text
    assert names_in(root) == ["avoir.pdf", "bon.pdf", "facture-fournisseur.pdf"]

    deep = mails.simple("x@example.org", [("profond.pdf", "application/pdf", text_pdf("P"))])
    code, text = drop_smtp.deliver(
        mails.forwarded(address, deep, levels=mailparts.MAX_FORWARDED + 1), address)
    assert code == 550 and "forwarded more than" in text
    assert "profond.pdf" not in names_in(root) and nothing_left_staged(cfg)


def test_delivery_reports_are_never_deposited_nor_answered(world, drop_smtp, relay, cfg):
    """A bounce carrying a returned message with a PDF: nothing deposited, no reply
    (null sender, auto-submitted), recorded."""
    address = drop_smtp.address(world.company_a)
    returned = mails.simple("x@example.org", [("facture.pdf", "application/pdf", text_pdf("R"))])
    raw = mails.delivery_report(address, returned)
    code, text = drop_smtp.deliver(raw, address, "")
    assert code == 550 and "Delivery reports" in text
    from ged.models import Document

    assert Document.select().count() == 0 and relay() == []
    assert events("email.refused")[0].details["reason"] == "delivery report"


def test_no_reply_to_robots_or_the_unauthenticated(world, drop_smtp, relay, cfg):
    """Auto-replies, lists, null senders and unverified senders are never written to,
    even with refused attachments; an authenticated person is."""
    address = drop_smtp.address(world.company_a)
    files = [("ok.pdf", "application/pdf", text_pdf("ok")),
             ("x.exe", "application/octet-stream", b"MZ\x90\x00" + b"\x00" * 100)]
    cases = [([AUTH_UN, "Auto-Submitted: auto-replied"], "jean@un.example"),
             ([AUTH_UN, "Precedence: bulk"], "jean@un.example"),
             ([AUTH_UN, "List-Id: <compta.un.example>"], "jean@un.example"),
             ([AUTH_UN], ""),  # MAIL FROM:<>
             ([], "jean@un.example"),  # nothing vouches for the From
             (["Authentication-Results: mx.evil.test; dkim=pass header.d=un.example"],
              "jean@un.example")]
    for headers, mail_from in cases:
        raw = mails.simple(address, files, headers=headers)
        code, text = drop_smtp.deliver(raw, address, mail_from)
        assert code == 250 and "x.exe" in text, text
    assert relay() == []
    code, _text = drop_smtp.deliver(mails.simple(address, files, headers=[AUTH_UN]), address,
                                    "jean@un.example")
    assert code == 250 and [m["To"] for m in relay()] == ["jean@un.example"]
    assert len(events("email.received")) == len(cases) + 1


def test_winmail_calendar_and_cards(world, drop_smtp, relay):
    """winmail.dat is refused with a reason the sender can act on; calendar and
    contact cards are ignored."""
    root = world.folder(world.company_a)
    address = drop_smtp.address(world.company_a)
    code, text = drop_smtp.deliver(mails.outlook_winmail(address, pdf=text_pdf("R")), address)
    assert code == 250 and "winmail.dat" in text and "rich text" in text
    code, text = drop_smtp.deliver(mails.outlook_winmail(address), address)
    assert code == 550 and "winmail.dat" in text
    code, text = drop_smtp.deliver(mails.invitation_and_card(address, text_pdf("ODJ")), address)
    assert code == 250 and "not accepted" not in text
    assert names_in(root) == ["ordre du jour.pdf", "releve.pdf"]
    ignored = {i["why"] for i in events("email.received")[-1].details["ignored"]}
    assert ignored == {"calendar invitation", "contact card"}


def test_a_password_protected_pdf_is_kept_and_the_sender_warned(world, drop_smtp, relay):
    """A PDF that needs a password is deposited with a warning (filetypes' verdict),
    which the authenticated sender reads in French."""
    import io

    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(text_pdf("Bulletin de paie"))).pages:
        writer.add_page(page)
    writer.encrypt("motdepasse", "proprietaire")
    out = io.BytesIO()
    writer.write(out)
    address = drop_smtp.address(world.company_a)
    raw = mails.simple(address, [("paie.pdf", "application/pdf", out.getvalue())],
                       headers=[AUTH_UN])
    code, text = drop_smtp.deliver(raw, address, "jean@un.example")
    assert code == 250 and "1 document(s) deposited" in text and "'paie.pdf' kept" in text
    assert names_in(world.folder(world.company_a)) == ["paie.pdf"]
    [reply] = relay()
    assert reply["Subject"] == "Pièces déposées, à vérifier : Pièces"
    assert "« paie.pdf » est protégé par un mot de passe" in reply.get_content()


def test_the_streaming_reader_decodes_as_the_standard_library_does(tmp_path):
    """Random messages (binary, text, quoted-printable attachments, forwarded ones):
    every attachment the streaming reader stages is byte for byte what Python's own
    (whole-message) parser decodes."""
    import io
    import os
    import random
    from email.message import EmailMessage

    from ged import mailparts

    rng = random.Random(16)
    for trial in range(120):
        msg = EmailMessage()
        msg["Subject"] = f"essai {trial}"
        msg.set_content("corps " * rng.randint(0, 50))
        for i in range(rng.randint(1, 4)):
            kind = rng.choice(["binary", "text", "qp"])
            if kind == "binary":
                msg.add_attachment(rng.randbytes(rng.randint(0, 5000)), maintype="application",
                                   subtype="octet-stream", filename=f"f{i}.bin")
            elif kind == "text":
                msg.add_attachment("ligne é\n" * rng.randint(0, 100), filename=f"t{i}.txt")
            else:
                msg.add_attachment(("x" * rng.randint(0, 300) + "\n") * rng.randint(1, 5),
                                   filename=f"q{i}.txt", cte="quoted-printable")
        if rng.random() < 0.3:
            inner = EmailMessage()
            inner["Subject"] = "transféré"
            inner.set_content("x")
            inner.add_attachment(os.urandom(100), maintype="application", subtype="pdf",
                                 filename="dedans.pdf")
            msg.add_attachment(inner)
        raw = msg.as_bytes(policy=email.policy.SMTP)
        expected = [(p.get_filename(), p.get_payload(decode=True))
                    for p in email.message_from_bytes(raw, policy=email.policy.default).walk()
                    if not p.is_multipart() and p.get_filename()]
        reader = mailparts.Reader(lambda p: mailparts.FILE if p.filename else mailparts.SKIP,
                                  tmp_path, 10 ** 8, 1000)
        _headers, parts = reader.walk(io.BytesIO(raw))
        got = [(p.filename, p.staged.path.read_bytes()) for p in parts if p.filename]
        for part in parts:
            part.discard()
        assert got == expected, trial
