"""The e-mail channel: a real SMTP client (smtplib) talking to the real drop
receiver (aiosmtpd) started on a free port."""

from __future__ import annotations

import email.policy
import smtplib

import pytest

from conftest import png_bytes, text_pdf

ANNUAL = "Dossier comptable annuel 2026"


def docs_in(folder):
    from ged.models import Document

    return list(Document.select().where(Document.folder == folder.id).order_by(Document.name))


def nothing_stored(cfg):
    """No document row, no blob row, no blob file and no staged leftover."""
    from ged.models import Blob, Document

    blobs = [p for p in (cfg.data_dir / "blobs").rglob("*") if p.is_file() and len(p.name) == 64]
    staged = [p for p in (cfg.data_dir / "tmp").iterdir()] if (cfg.data_dir / "tmp").exists() else []
    return (Document.select().count() == 0 and Blob.select().count() == 0 and not blobs
            and not staged)


def test_client_mails_achats_and_the_documents_arrive(client, world, drop_smtp, cfg):
    """Staff gives Achats its own drop address; the client mails two invoices to it;
    both land in Achats with channel email and download byte-identical."""
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    r = client.post(f"/api/v1/folders/{achats.id}/drop-address", headers=world.staff.headers)
    assert r.status_code == 200, r.get_json()
    address = r.get_json()["address"]
    assert address.endswith("@" + cfg.mail_domain) and r.get_json()["folder_path"].endswith("/Achats")
    # The client sees the company's address and Achats's; a client of B sees neither.
    seen = client.get(f"/api/v1/companies/{world.company_a.id}/drop-addresses",
                      headers=world.client_a.headers).get_json()["items"]
    assert address in [d["address"] for d in seen] and seen[0]["folder_id"] is None
    assert client.get(f"/api/v1/companies/{world.company_a.id}/drop-addresses",
                      headers=world.client_b.headers).status_code == 404

    pdf, png = text_pdf("Facture EDF janvier"), png_bytes()
    msg = drop_smtp.message(address, sender="Client A <client-a@un.example>",
                            files=[("Facture été.pdf", pdf), ("ticket.png", png)])
    assert drop_smtp.send(msg, mail_from="client-a@un.example") == {}

    docs = docs_in(achats)
    assert [d.name for d in docs] == ["Facture été.pdf", "ticket.png"]
    assert {d.channel for d in docs} == {"email"}
    # Nothing vouched for the From: the deposit is the token's, labelled unverified.
    assert all(d.deposited_by_id is None for d in docs)
    assert "client-a@un.example (expéditeur non vérifié)" in docs[0].deposited_by_label
    for actor in (world.client_a, world.staff):
        r = client.get(f"/api/v1/documents/{docs[0].id}/file", headers=actor.headers)
        assert r.status_code == 200 and r.data == pdf
    assert client.get(f"/api/v1/documents/{docs[0].id}/file",
                      headers=world.client_b.headers).status_code == 404


def test_verified_sender_is_the_depositor_and_a_forged_one_is_not(client, world, drop_smtp, cfg):
    """Behind an MTA that checks DKIM, a From that passes is the client's own deposit;
    the same From without that MTA's verdict (or under a forger's own header) is not."""
    cfg.smtpd_trusted_authserv = ["mx.cabinet.test"]
    root = world.folder(world.company_a)
    address = drop_smtp.address(world.company_a)

    good = drop_smtp.message(address, sender="client-a@un.example", files=[("a.pdf", text_pdf("A"))],
                             headers={"Authentication-Results":
                                      "mx.cabinet.test; dkim=pass header.d=un.example; spf=pass"})
    drop_smtp.send(good)
    forged_headers = {"Authentication-Results": "mx.evil.test; dkim=pass header.d=un.example"}
    forged = drop_smtp.message(address, sender="client-a@un.example",
                               files=[("b.pdf", text_pdf("B"))], headers=forged_headers)
    drop_smtp.send(forged)
    wrong_domain = drop_smtp.message(
        address, sender="client-a@un.example", files=[("c.pdf", text_pdf("C"))],
        headers={"Authentication-Results": "mx.cabinet.test; dkim=pass header.d=evil.example"})
    drop_smtp.send(wrong_domain)

    by_name = {d.name: d for d in docs_in(root)}
    assert by_name["a.pdf"].deposited_by_id == world.client_a.user.id
    assert by_name["a.pdf"].deposited_by_label == "Client A <client-a@un.example>"
    for name in ("b.pdf", "c.pdf"):
        assert by_name[name].deposited_by_id is None
        assert "non vérifié" in by_name[name].deposited_by_label
    # The client's own e-mail deposit shows in the folder through the API as theirs.
    listed = client.get(f"/api/v1/folders/{root.id}", headers=world.client_a.headers).get_json()
    mine = [d for d in listed["documents"] if d["deposited_by"] == world.client_a.user.id]
    assert [d["name"] for d in mine] == ["a.pdf"]


def test_unknown_revoked_and_foreign_addresses_are_refused_at_rcpt(client, world, drop_smtp, cfg):
    old = drop_smtp.address(world.company_a)
    r = client.post(f"/api/v1/companies/{world.company_a.id}/drop-address/regenerate",
                    headers=world.staff.headers)
    assert r.status_code == 200 and r.get_json()["address"] != old
    assert client.post(f"/api/v1/companies/{world.company_a.id}/drop-address/regenerate",
                       headers=world.client_a.headers).status_code == 403
    for rcpt, code, words in [
        (old, 550, b"Unknown drop address"),
        ("0123456789abcdef0123@" + cfg.mail_domain, 550, b"Unknown drop address"),
        ("someone@example.org", 550, b"Relaying denied"),
    ]:
        msg = drop_smtp.message(rcpt, files=[("a.pdf", text_pdf())])
        with pytest.raises(smtplib.SMTPRecipientsRefused) as exc:
            drop_smtp.send(msg)
        status, text = exc.value.recipients[rcpt]
        assert status == code and words in text
    assert nothing_stored(cfg)


def test_what_can_be_deposited_is_and_the_rest_is_said(client, world, drop_smtp, cfg):
    """No attachment: 550, nothing stored. One bad attachment among good ones: the good
    ones are deposited and the reply names the bad ones. Only bad ones: 550 naming them,
    nothing stored."""
    address = drop_smtp.address(world.company_a)
    with pytest.raises(smtplib.SMTPDataError) as exc:
        drop_smtp.send(drop_smtp.message(address, files=[]))
    assert exc.value.smtp_code == 550 and b"No attachment" in exc.value.smtp_error
    assert nothing_stored(cfg)

    bad = [("virus.pdf", b"MZ\x90\x00" + b"\x00" * 300), ("vide.pdf", b"")]
    with pytest.raises(smtplib.SMTPDataError) as exc:
        drop_smtp.send(drop_smtp.message(address, files=bad))
    text = exc.value.smtp_error.decode()
    assert exc.value.smtp_code == 550
    assert "nothing was deposited" in text and "virus.pdf" in text and "vide.pdf" in text
    assert nothing_stored(cfg)

    files = [("bon.pdf", text_pdf()), bad[0], bad[1], ("photo.png", png_bytes())]
    code, text = drop_smtp.deliver(drop_smtp.message(address, files=files).as_bytes(
        policy=email.policy.SMTP), address)
    assert code == 250 and "2 document(s) deposited; 2 attachment(s) not accepted" in text
    assert "virus.pdf" in text and "vide.pdf" in text and "bon.pdf" not in text
    assert [d.name for d in docs_in(world.folder(world.company_a))] == ["bon.pdf", "photo.png"]


def test_limits_on_attachments_recipients_and_size(client, world, drop_smtp, cfg):
    from ged import smtpd
    from fixtures.drop_mail import DropServer, free_port

    address = drop_smtp.address(world.company_a)
    many = [(f"note{i}.txt", f"note {i}\n".encode()) for i in range(smtpd.MAX_ATTACHMENTS + 1)]
    with pytest.raises(smtplib.SMTPDataError) as exc:
        drop_smtp.send(drop_smtp.message(address, files=many))
    assert exc.value.smtp_code == 552 and b"Too many attachments" in exc.value.smtp_error

    # The 11th recipient is refused; the message goes once to the (same) drop address.
    rcpts = [address] * (smtpd.MAX_RECIPIENTS + 1)
    msg = drop_smtp.message(address, files=[("a.pdf", text_pdf("once"))])
    with smtplib.SMTP(drop_smtp.host, drop_smtp.port) as smtp:
        smtp.ehlo()
        codes = [smtp.rcpt(r)[0] for r in rcpts] if smtp.mail("x@example.org")[0] == 250 else []
        assert codes[:-1] == [250] * smtpd.MAX_RECIPIENTS and codes[-1] == 552
        assert smtp.data(msg.as_bytes(policy=email.policy.SMTP))[0] == 250
    assert len(docs_in(world.folder(world.company_a))) == 1

    # Past the size limit: one attachment too big for a deposit, and a message too big
    # for the receiver (a smaller limit keeps the test quick).
    cfg.max_upload_bytes = 100_000
    small = smtpd.make_controller("127.0.0.1", free_port())
    small.start()
    try:
        server = DropServer(small)
        big = text_pdf("x") + b"%" * 120_000
        with pytest.raises(smtplib.SMTPDataError) as exc:
            server.send(server.message(address, files=[("gros.pdf", big)]))
        assert exc.value.smtp_code == 550 and b"gros.pdf" in exc.value.smtp_error
        huge = [(f"p{i}.pdf", big) for i in range(10)]  # 1.6 MB once in base64
        with pytest.raises(smtplib.SMTPException) as exc:
            server.send(server.message(address, files=huge))
        assert getattr(exc.value, "smtp_code", None) == 552 or "552" in str(exc.value)
    finally:
        small.stop()
    assert len(docs_in(world.folder(world.company_a))) == 1


def test_one_message_to_two_companies_and_embedded_images_skipped(client, world, drop_smtp):
    """A message to A's and B's addresses deposits into both; the logo embedded in the
    HTML signature is not an attachment."""
    a, b = drop_smtp.address(world.company_a), drop_smtp.address(world.company_b)
    msg = drop_smtp.message([a, b])
    msg.add_alternative('<p>Bonjour</p><img src="cid:logo123@sig">', subtype="html")
    html = [p for p in msg.walk() if p.get_content_type() == "text/html"][0]
    html.add_related(png_bytes(), maintype="image", subtype="png", cid="<logo123@sig>",
                     filename="logo.png", disposition="inline")
    msg.add_attachment(text_pdf("Relevé"), maintype="application", subtype="pdf",
                       filename="releve.pdf")
    drop_smtp.send(msg)
    for company in (world.company_a, world.company_b):
        assert [d.name for d in docs_in(world.folder(company))] == ["releve.pdf"]
