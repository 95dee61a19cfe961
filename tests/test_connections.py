"""Integrations and connections through the API: the catalog, installing and
connecting tools, testing a connection, rotating its secret, the tool's signed
verdicts, and the checks that keep ged from sending to private networks."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

from conftest import text_pdf

ANNUAL = "Dossier comptable annuel 2026"


def _sign(secret: str, body: str, *, msg_id: str | None = None, when: dt.datetime | None = None):
    """Headers a tool sends with a status message, signed with the reference library."""
    from standardwebhooks.webhooks import Webhook

    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    when = when or dt.datetime.now(dt.timezone.utc)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(when.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, when, body),
            "Content-Type": "application/json"}


def _post_status(client, delivery_id, secret, status, message=None, **kw):
    body = json.dumps({"status": status, **({"message": message} if message else {})})
    return client.post(f"/api/v1/deliveries/{delivery_id}/status", data=body,
                       headers=_sign(secret, body, **kw))


@pytest.fixture
def delivered(app, world, firm_tools, webhook_receiver, drain_deliveries):
    """A webhook connection of company A that has accepted one document from Achats."""
    integration = firm_tools.install("webhook", "Outil de pré-compta")
    conn = firm_tools.connect(world.company_a, integration, url=webhook_receiver.hook())
    webhook_receiver.secrets["current"] = conn["secret"]
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    firm_tools.switch(achats, conn, "on")
    doc = firm_tools.upload(achats, "facture.pdf", text_pdf("Facture verdict"))
    drain_deliveries()
    (delivery,) = firm_tools.deliveries(doc["id"])
    assert delivery["status"] == "accepted"
    return {"conn": conn, "doc": doc, "delivery": delivery, "achats": achats}


def test_catalog_and_installing_a_tool(client, world):
    staff, admin, h_client = world.staff.headers, world.admin.headers, world.client_a.headers
    items = client.get("/api/v1/integrations/catalog", headers=staff).get_json()["items"]
    by_name = {i["name"]: i for i in items}
    assert {n: i["kind"] for n, i in by_name.items()} == {
        "JeFacture.com": "email", "agiris": "email", "Sage": "http", "Pennylane": "http",
        "Dext": "email", "Webhook": "http", "paperless-ngx": "http", "E-mail": "email"}
    # paperless-ngx takes documents on its upload API: multipart, field "document".
    assert by_name["paperless-ngx"]["options"] == {"format": "multipart", "file_field": "document"}
    assert "post_document" in by_name["paperless-ngx"]["url_hint"]
    assert "Achats" in by_name["JeFacture.com"]["description"]
    assert by_name["JeFacture.com"]["suggested_folder"] == "Achats"
    for name in ("Sage", "Pennylane", "agiris", "Dext", "JeFacture.com"):
        assert "générique" in by_name[name]["description"]  # no claim of a private API

    assert client.post("/api/v1/integrations", json={"preset": "sage", "name": "Sage"},
                       headers=staff).status_code == 403
    resp = client.post("/api/v1/integrations", json={"preset": "sage", "name": "Sage 100"},
                       headers=admin)
    assert resp.status_code == 201 and resp.get_json()["kind"] == "http"
    resp = client.post("/api/v1/integrations", json={"kind": "email", "name": "Boîte GED"},
                       headers=admin)
    assert resp.status_code == 201 and resp.get_json()["preset"] is None
    for bad in ({"preset": "quickbooks", "name": "x"}, {"preset": "sage", "kind": "email",
                                                        "name": "x"}, {"name": "no kind"}):
        resp = client.post("/api/v1/integrations", json=bad, headers=admin)
        assert resp.status_code == 400 and resp.get_json()["error"]["code"]
    listed = client.get("/api/v1/integrations", headers=staff).get_json()["items"]
    assert [i["name"] for i in listed] == ["Sage 100", "Boîte GED"]
    # A client hears of none of it.
    for url in ("/api/v1/integrations/catalog", "/api/v1/integrations"):
        resp = client.get(url, headers=h_client)
        assert resp.status_code == 404
        assert resp.get_json() == {"error": {"code": "not_found", "message": "Not found."}}


def test_connecting_checks_targets_and_leaves_nothing_half_written(client, world, firm_tools):
    from ged.models import Connection

    mail_tool = firm_tools.install("email", "E-mail")
    http_tool = firm_tools.install("pennylane", "Pennylane")
    company = world.company_a
    bad = [
        (mail_tool, {"address": "not-an-address"}, "invalid_address"),
        (mail_tool, {"url": "https://example.org/"}, "invalid_url"),
        (http_tool, {}, "invalid_url"),
        (http_tool, {"url": "ftp://example.org/x"}, "invalid_url"),
        (http_tool, {"url": "https://user:pw@example.org/x"}, "invalid_url"),
        (http_tool, {"url": "https://93.184.215.14/x", "options": {"headers": {"webhook-id": "x"}}},
         "invalid_options"),
        (http_tool, {"url": "https://93.184.215.14/x", "options": {"headers": {"X-Key": "a\r\nb"}}},
         "invalid_options"),
        (mail_tool, {"address": "a@b.example", "options": {"colour": "blue"}}, "invalid_options"),
        (mail_tool, {"address": "a@b.example", "options": {"format": "multipart"}},
         "invalid_options"),
        (mail_tool, {"address": "a@b.example",
                     "options": {"send_original": False, "send_invoice_xml": False}},
         "nothing_to_send"),
        (http_tool, {"url": "https://93.184.215.14/x", "options": {"send_original": False}},
         "nothing_to_send"),
        (http_tool, {"url": "https://93.184.215.14/x", "options": {"format": "xml"}},
         "invalid_options"),
        (http_tool, {"url": "https://93.184.215.14/x", "options": {"inline_max_bytes": -1}},
         "invalid_options"),
        (http_tool, {"url": "https://93.184.215.14/x", "options": {"inline_max_bytes": "10"}},
         "invalid_options"),
        (http_tool, {"url": "https://93.184.215.14/x", "options": {"file_field": 'a"b'}},
         "invalid_options"),
        (http_tool, {"url": "https://93.184.215.14/x",
                     "options": {"headers": {"Authorization": "********"}}}, "invalid_options"),
    ]
    for integration, fields, code in bad:
        resp = client.post(f"/api/v1/companies/{company.id}/connections",
                           json={"integration_id": integration["id"], **fields},
                           headers=world.staff.headers)
        assert resp.status_code == 400, (fields, resp.get_json())
        assert resp.get_json()["error"]["code"] == code, (fields, resp.get_json())
    assert Connection.select().count() == 0

    conn = firm_tools.connect(company, http_tool, url="https://93.184.215.14/hook",
                              options={"headers": {"X-Api-Key": "k-123"}}, name="Pennylane A")
    assert conn["secret"].startswith("whsec_") and len(conn["secret"]) == 6 + 44
    # Every option, defaults filled in; header values (API keys) masked.
    assert conn["options"] == {"headers": {"X-Api-Key": "********"}, "format": "json",
                               "file_field": "file", "inline_max_bytes": 10 * 1024 * 1024,
                               "send_original": True, "send_invoice_xml": False}
    assert Connection.get_by_id(conn["id"]).options == {"headers": {"X-Api-Key": "k-123"}}
    listed = client.get(f"/api/v1/companies/{company.id}/connections",
                        headers=world.staff.headers).get_json()["items"]
    assert [c["name"] for c in listed] == ["Pennylane A"]
    assert "secret" not in listed[0] and "k-123" not in json.dumps(listed)
    # Staff not assigned to company B cannot connect it; a client sees nothing.
    resp = client.post(f"/api/v1/companies/{world.company_b.id}/connections",
                       json={"integration_id": http_tool["id"], "url": "https://93.184.215.14/"},
                       headers=world.staff.headers)
    assert resp.status_code == 404
    resp = client.get(f"/api/v1/companies/{company.id}/connections", headers=world.client_a.headers)
    assert resp.get_json() == {"error": {"code": "not_found", "message": "Not found."}}


def test_patch_and_delete_keep_the_delivery_history(client, world, firm_tools, delivered):
    conn, doc = delivered["conn"], delivered["doc"]
    h = world.staff.headers
    resp = client.patch(f"/api/v1/connections/{conn['id']}", json={"name": "Nouvel outil"}, headers=h)
    assert resp.status_code == 200 and resp.get_json()["name"] == "Nouvel outil"
    resp = client.patch(f"/api/v1/connections/{conn['id']}", json={"address": "x@y.example"},
                        headers=h)
    assert resp.status_code == 400
    resp = client.patch(f"/api/v1/connections/{conn['id']}", json={"paused": True}, headers=h)
    assert resp.get_json()["paused"] is True and resp.get_json()["paused_reason"]
    resp = client.post(f"/api/v1/documents/{doc['id']}/deliveries",
                       json={"connection_id": conn["id"]}, headers=h)
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "connection_paused"

    assert client.delete(f"/api/v1/connections/{conn['id']}", headers=h).status_code == 204
    assert client.get(f"/api/v1/connections/{conn['id']}", headers=h).status_code == 404
    assert client.get(f"/api/v1/companies/{world.company_a.id}/connections",
                      headers=h).get_json()["items"] == []
    (kept,) = firm_tools.deliveries(doc["id"])
    assert kept["id"] == delivered["delivery"]["id"] and kept["connection_name"] == "Nouvel outil"
    # A deleted connection takes no new deliveries, even where its switch was on.
    new = firm_tools.upload(delivered["achats"], "apres.pdf", text_pdf("Après suppression"))
    assert firm_tools.deliveries(new["id"]) == []


def test_connection_test_reports_without_recording_a_delivery(
        app, client, world, firm_tools, webhook_receiver, smtp_sink):
    from ged.models import AuditEvent, Delivery
    from fixtures.receivers import free_port

    h = world.staff.headers
    live = firm_tools.connect(world.company_a, firm_tools.install("webhook", "Webhook"),
                              url=webhook_receiver.hook("/test"))
    webhook_receiver.secrets["current"] = live["secret"]
    result = client.post(f"/api/v1/connections/{live['id']}/test", headers=h).get_json()
    assert result["ok"] is True and result["status_code"] == 200 and result["elapsed_ms"] >= 0
    (hit,) = webhook_receiver.to("/test")
    assert hit.metadata["type"] == "test" and hit.file is None
    assert hit.verified_with == ["current"] and hit.verified_by == "Webhook.verify"

    webhook_receiver.answer(500)
    result = client.post(f"/api/v1/connections/{live['id']}/test", headers=h).get_json()
    assert result["ok"] is False and result["status_code"] == 500 and "500" in result["error"]

    closed = firm_tools.connect(world.company_a, firm_tools.install("sage", "Sage"),
                                url=f"http://127.0.0.1:{free_port()}/hook")
    resp = client.post(f"/api/v1/connections/{closed['id']}/test", headers=h)
    assert resp.status_code == 200
    result = resp.get_json()
    assert result["ok"] is False and "status_code" not in result and result["error"]

    mailbox = firm_tools.connect(world.company_a, firm_tools.install("agiris", "agiris"),
                                 address="collecte@agiris.example")
    result = client.post(f"/api/v1/connections/{mailbox['id']}/test", headers=h).get_json()
    assert result["ok"] is True
    (message,) = smtp_sink.to("collecte@agiris.example")
    assert "Test de connexion" in message.message["Subject"]
    app.config["GED"].smtp_port = free_port()  # the relay is down
    result = client.post(f"/api/v1/connections/{mailbox['id']}/test", headers=h).get_json()
    assert result["ok"] is False and result["error"]

    assert Delivery.select().count() == 0
    tested = AuditEvent.select().where(AuditEvent.action == "connection.tested")
    assert tested.count() == 5 and all(e.firm_only for e in tested)
    resp = client.post(f"/api/v1/connections/{live['id']}/test", headers=world.client_a.headers)
    assert resp.status_code == 404


def test_rotated_secret_signs_alongside_the_old_one_during_the_grace_period(
        app, client, world, firm_tools, webhook_receiver, drain_deliveries, delivered):
    from ged.models import Connection

    conn, achats = delivered["conn"], delivered["achats"]
    old = conn["secret"]
    resp = client.post(f"/api/v1/connections/{conn['id']}/rotate-secret", headers=world.staff.headers)
    assert resp.status_code == 200
    new = resp.get_json()["secret"]
    assert new.startswith("whsec_") and new != old
    assert client.get(f"/api/v1/connections/{conn['id']}",
                      headers=world.staff.headers).get_json()["previous_secret_valid_until"]
    webhook_receiver.secrets = {"new": new, "old": old}

    doc = firm_tools.upload(achats, "apres-rotation.pdf", text_pdf("Rotation"))
    drain_deliveries()
    hit = webhook_receiver.to("/hook")[-1]
    assert hit.metadata["document_id"] == doc["id"]
    assert sorted(hit.verified_with) == ["new", "old"]
    assert len(hit.headers["webhook-signature"].split(" ")) == 2
    # The tool may still sign its answers with the old secret during the grace period.
    (delivery,) = firm_tools.deliveries(doc["id"])
    assert _post_status(client, delivery["id"], old, "validated").status_code == 200

    # Once the grace period is over, only the new secret signs and verifies.
    Connection.update(previous_secret_until=dt.datetime.now(dt.timezone.utc)
                      - dt.timedelta(seconds=1)).where(Connection.id == conn["id"]).execute()
    doc = firm_tools.upload(achats, "plus-tard.pdf", text_pdf("Plus tard"))
    drain_deliveries()
    assert webhook_receiver.to("/hook")[-1].verified_with == ["new"]
    (delivery,) = firm_tools.deliveries(doc["id"])
    assert _post_status(client, delivery["id"], old, "validated").status_code == 401
    assert _post_status(client, delivery["id"], new, "validated").status_code == 200


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_the_tools_verdict_is_signed_fresh_unique_and_final(
        app, client, world, firm_tools, webhook_receiver, delivered):
    from ged.models import AuditEvent, Delivery

    conn, delivery = delivered["conn"], delivered["delivery"]
    secret = conn["secret"]
    url = f"/api/v1/deliveries/{delivery['id']}/status"
    body = json.dumps({"status": "validated", "message": "Écriture passée au journal d'achats"})

    headers = _sign(secret, body)
    headers["webhook-signature"] = _sign("whsec_" + "A" * 44, body)["webhook-signature"]
    assert client.post(url, data=body, headers=headers).status_code == 401
    hour_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    resp = client.post(url, data=body, headers=_sign(secret, body, when=hour_ago))
    assert resp.status_code == 401 and resp.get_json()["error"]["code"] == "stale_timestamp"
    unsigned = client.post(url, data=body, headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 401
    assert Delivery.get_by_id(delivery["id"]).status == "accepted"

    signed = _sign(secret, body)
    resp = client.post(url, data=body, headers=signed)
    assert resp.status_code == 200 and resp.get_json() == {"id": delivery["id"], "status": "validated"}
    replay = client.post(url, data=body, headers=signed)
    assert replay.status_code == 401 and replay.get_json()["error"]["code"] == "replayed_message"

    late = _post_status(client, delivery["id"], secret, "rejected", "Doublon")
    assert late.status_code == 409
    (row,) = firm_tools.deliveries(delivered["doc"]["id"])
    assert row["status"] == "validated" and row["message"] == "Écriture passée au journal d'achats"
    assert _post_status(client, delivery["id"], secret, "validated").status_code == 200
    assert [e.action for e in AuditEvent.select().where(
        (AuditEvent.object_id == delivery["id"]) & AuditEvent.action.startswith("delivery."))
    ][-1] == "delivery.validated"

    # Another connection's tool, signing correctly with its own secret, cannot reach it.
    other = firm_tools.connect(world.company_a, firm_tools.install("webhook", "Autre"),
                               url=webhook_receiver.hook("/autre"))
    assert _post_status(client, delivery["id"], other["secret"], "rejected").status_code == 404
    assert _post_status(client, "01zzzzzzzzzzzzzzzzzzzzzzzz", secret, "validated").status_code == 404
    bad_body = client.post(url, data='{"status": "maybe"}', headers=_sign(secret, '{"status": "maybe"}'))
    assert bad_body.status_code == 400
    assert Delivery.get_by_id(delivery["id"]).status == "validated"


def test_a_rejection_is_shown_to_staff_and_the_document_says_rejected(
        client, world, firm_tools, delivered):
    conn, delivery, doc = delivered["conn"], delivered["delivery"], delivered["doc"]
    resp = _post_status(client, delivery["id"], conn["secret"], "rejected",
                        "Facture illisible : merci de la redéposer")
    assert resp.status_code == 200 and resp.get_json()["status"] == "rejected"
    failed = client.get("/api/v1/deliveries?status=rejected", headers=world.staff.headers).get_json()
    assert [d["message"] for d in failed["items"]] == ["Facture illisible : merci de la redéposer"]
    seen = client.get(f"/api/v1/documents/{doc['id']}", headers=world.client_a.headers).get_json()
    assert (seen["status"], seen["status_reason"]) == (
        "rejected", "Facture illisible : merci de la redéposer")  # tests/test_status.py: more


PRIVATE_URLS = [
    "https://127.0.0.1/hook", "https://10.1.2.3/hook", "https://192.168.1.20/hook",
    "https://172.16.5.4/hook", "https://169.254.169.254/latest/meta-data/", "https://[::1]/hook",
    "https://[fe80::1]/hook", "https://[::ffff:127.0.0.1]/hook", "https://0.0.0.0/hook",
    "https://100.64.0.7/hook", "https://localhost/hook",
    "https://2130706433/hook", "http://93.184.215.14/hook",
]


def test_private_targets_are_refused_when_connecting_and_again_when_delivering(
        app, client, world, firm_tools, webhook_receiver, drain_deliveries):
    from ged.models import Connection

    cfg = app.config["GED"]
    tool = firm_tools.install("webhook", "Webhook")
    # Created while on-premises targets were allowed; the setting is then turned off.
    conn = firm_tools.connect(world.company_a, tool, url=webhook_receiver.hook())
    cfg.allow_private_targets = False
    for url in PRIVATE_URLS:
        resp = client.post(f"/api/v1/companies/{world.company_a.id}/connections",
                           json={"integration_id": tool["id"], "url": url},
                           headers=world.staff.headers)
        assert resp.status_code == 400, url
        assert resp.get_json()["error"]["code"] in ("target_not_allowed", "invalid_url"), url
        resp = client.patch(f"/api/v1/connections/{conn['id']}", json={"url": url},
                            headers=world.staff.headers)
        assert resp.status_code == 400, url
    assert Connection.select().count() == 1

    achats = world.folder(world.company_a, ANNUAL, "Achats")
    firm_tools.switch(achats, conn, "on")
    doc = firm_tools.upload(achats, "facture.pdf", text_pdf("SSRF"))
    drain_deliveries()
    (delivery,) = firm_tools.deliveries(doc["id"])
    assert delivery["status"] == "failed" and delivery["attempts"] == 1
    assert "refusée" in delivery["last_error"] and "http" in delivery["last_error"]
    result = client.post(f"/api/v1/connections/{conn['id']}/test",
                         headers=world.staff.headers).get_json()
    assert result["ok"] is False and "refusée" in result["error"]
    assert webhook_receiver.hits == []


def test_the_guarded_connector_checks_the_address_it_connects_to(app, webhook_receiver):
    """A host name that passed an earlier check but resolves to loopback now (DNS
    rebinding) is refused at connection time, by the network backend itself."""
    from ged.deliveries import bodies, guard, http

    cfg = app.config["GED"]
    cfg.allow_private_targets = False
    body = bodies.Multipart()
    body.add("metadata", b"{}", 2, "application/json")
    port = webhook_receiver.url.rsplit(":", 1)[1]
    with pytest.raises(guard.TargetRefused):
        http.post(cfg, f"http://localhost:{port}/hook", {"content-length": str(len(body))},
                  body)
    assert webhook_receiver.hits == []
    assert guard.is_public_address("93.184.215.14")
    assert not guard.is_public_address("::ffff:10.0.0.1")
    assert not guard.is_public_address("2002:7f00:1::")  # 6to4 around 127.0.0.1
