"""The demo a fresh install starts with (`make run`): its logins work, and the firm's
tool is linked with its switch on Achats, so a client's deposit there is forwarded;
with no mail relay configured the message lands in the outbox of the data dir."""

from __future__ import annotations

import email
import email.policy
import io

from conftest import text_pdf
from fixtures.web import FIRM_ONLY

PASSWORD = "demo-password-long"


def test_the_demo_forwards_a_clients_achats_deposit_to_the_outbox(app, cfg, web, run_jobs):
    from ged import demo, outbox
    from ged.models import Document, Folder

    logins = demo.ensure(PASSWORD)
    assert demo.ensure(PASSWORD) == logins  # idempotent
    relay = outbox.start(cfg.data_dir)
    cfg.smtp_host, cfg.smtp_port, cfg.smtp_tls = "127.0.0.1", relay.port, "none"
    try:
        client = web()
        client.login(demo.CLIENT, PASSWORD)
        home = client.get("/", follow_redirects=True).get_data(as_text=True)
        assert "Boulangerie Martin SARL" in home and "Cabinet Démo" in home
        achats = Folder.get(Folder.name == "Achats")
        ventes = Folder.get(Folder.name == "Ventes")
        for folder, name in ((achats, "facture-farine.pdf"), (ventes, "ticket-z.pdf")):
            r = client.post(f"/dossiers/{folder.id}/depot",
                            {"file": (io.BytesIO(text_pdf(f"Facture {name}")), name)},
                            content_type="multipart/form-data",
                            headers={"Accept": "application/json"})
            assert r.status_code == 201, r.get_json()
        run_jobs()

        [kept] = outbox.messages(cfg.data_dir)
        message = email.message_from_bytes(kept.read_bytes(), policy=email.policy.default)
        assert message["To"] == demo.TOOL_ADDRESS
        [attachment] = [p for p in message.iter_attachments()
                        if p.get_content_type() == "application/pdf"]
        assert attachment.get_filename() == "facture-farine.pdf"
        assert attachment.get_content().startswith(b"%PDF")
        statuses = {d.name: d.status for d in Document.select()}
        assert statuses == {"facture-farine.pdf": "validated", "ticket-z.pdf": "deposited"}

        # The client sees "Validé" and nothing of the tool; the staff sees the switch.
        page = client.get(f"/dossiers/{achats.id}").get_data()
        assert "Validé".encode() in page and not FIRM_ONLY.search(page)
        staff = web()
        staff.login(demo.STAFF, PASSWORD)
        page = staff.get(f"/dossiers/{achats.id}").get_data(as_text=True)
        assert "JeFacture.com" in page and "Activé" in page
    finally:
        relay.stop()
