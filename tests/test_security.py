"""Security rules proven end to end: where ged may send requests (server-side request
forgery), logins and tokens, sessions and CSRF, and the integrity checks of the
stored documents and of the audit trail.

tests/test_connections.py already refuses private targets by literal address and
"localhost", and at connection time; tests/test_foundation.py covers revoking a
token and disabling an account over the API; tests/test_archive.py covers fsck on a
corrupted and a stray blob. This file adds what those leave out.
"""

from __future__ import annotations

import re
import sqlite3

import pytest

from conftest import PASSWORD, text_pdf, web_login
from fixtures.estates import estate

ANNUAL = "Dossier comptable annuel 2026"


# --- server-side request forgery --------------------------------------------------------------

# Private, loopback, link-local and metadata targets written in the ways a URL can
# hide them: other numeric forms of an address, IPv6 wrappers, a name that resolves there.
DISGUISED_TARGETS = [
    "https://0x7f000001/hook", "https://017700000001/hook", "https://127.1/hook",
    "https://0x7f.0.0.1/hook", "https://[::ffff:7f00:1]/hook", "https://[0:0:0:0:0:0:0:1]/hook",
    "https://[fd00:ec2::254]/latest/meta-data/", "https://169.254.170.2/v2/credentials",
    "https://[fe80::a9fe:a9fe]/", "https://100.100.100.200/latest/meta-data/",
    "https://192.0.0.192/", "https://[64:ff9b::a9fe:a9fe]/", "https://LOCALHOST/hook",
    "https://localhost:8443/hook", "https://224.0.0.1/hook", "https://255.255.255.255/hook",
]


def test_disguised_private_targets_are_refused_unless_allowed(app, client, world, firm_tools,
                                                              monkeypatch, tally):
    from config import Config
    from ged.deliveries import guard
    from ged.models import Connection

    cfg = app.config["GED"]
    cfg.allow_private_targets = False
    tool = firm_tools.install("webhook", "Webhook")
    for url in DISGUISED_TARGETS:
        resp = client.post(f"/api/v1/companies/{world.company_a.id}/connections",
                           json={"integration_id": tool["id"], "url": url},
                           headers=world.staff.headers)
        assert resp.status_code == 400, (url, resp.get_json())
        assert resp.get_json()["error"]["message"], url
        tally.add("security")
    assert Connection.select().count() == 0
    # GED_ALLOW_PRIVATE_TARGETS=1 (on-premises tools) lets them through; unset, it does not.
    monkeypatch.setenv("GED_ALLOW_PRIVATE_TARGETS", "1")
    assert Config.from_env().allow_private_targets is True
    assert guard.check_url("http://127.0.0.1:8080/hook", allow_private=True)
    monkeypatch.delenv("GED_ALLOW_PRIVATE_TARGETS")
    assert Config.from_env().allow_private_targets is False
    with pytest.raises(guard.TargetRefused):
        guard.check_url("https://127.0.0.1/hook", allow_private=False)


def test_a_redirect_to_the_metadata_service_is_never_followed(
        app, client, world, firm_tools, webhook_receiver, drain_deliveries, tally):
    """A tool answering 307 to the cloud metadata address: neither the connection
    test nor a delivery follows it; both say why."""
    metadata = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
    tool = firm_tools.install("webhook", "Webhook")
    conn = firm_tools.connect(world.company_a, tool, url=webhook_receiver.hook())
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    firm_tools.switch(achats, conn, "on")
    webhook_receiver.answer((307, {"Location": metadata}), (302, {"Location": metadata}))
    result = client.post(f"/api/v1/connections/{conn['id']}/test",
                         headers=world.staff.headers).get_json()
    assert result["ok"] is False and result["status_code"] == 307
    assert "169.254.169.254" in result["error"]
    doc = firm_tools.upload(achats, "facture.pdf", text_pdf("Redirection"))
    drain_deliveries()
    (delivery,) = firm_tools.deliveries(doc["id"])
    assert delivery["status"] == "failed" and delivery["attempts"] == 1
    assert "169.254.169.254" in delivery["last_error"]
    assert [h.path for h in webhook_receiver.hits] == ["/hook", "/hook"]
    tally.add("security", 2)


# --- logins and tokens ------------------------------------------------------------------------


def _token_attempt(client, email, password, ip):
    return client.post("/api/v1/tokens", json={"email": email, "password": password,
                                               "name": "x"},
                       environ_base={"REMOTE_ADDR": ip})


def test_login_throttling_per_account_and_address_and_per_address(app, client, world, tally):
    """Failures past the allowance refuse that address for that account (the right
    password included), without saying whether the account exists, while the account's
    owner elsewhere still signs in; four times as many from one address refuse that
    address for every account, while other addresses still sign in.
    (The allowance is lowered from its default of 5 to keep the test quick.)"""
    cfg = app.config["GED"]
    cfg.login_max_attempts = 2
    # Per account and address.
    for _ in range(2):
        assert _token_attempt(client, "staff@un.example", "wrong", "10.0.0.1").status_code == 401
    r = _token_attempt(client, "staff@un.example", PASSWORD, "10.0.0.1")
    assert r.status_code == 429 and r.get_json()["error"]["code"] == "too_many_attempts"
    assert int(r.headers["Retry-After"]) > 60
    # The owner, from their own address, is not locked out by someone else's guesses.
    assert _token_attempt(client, "staff@un.example", PASSWORD, "10.9.9.9").status_code == 201
    # The web form is the same door: refused too from the guessing address, in French.
    web = app.test_client()
    page = web.get("/login", environ_base={"REMOTE_ADDR": "10.0.0.1"}).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = web.post("/login", data={"email": "staff@un.example", "password": PASSWORD,
                                 "csrf_token": token}, environ_base={"REMOTE_ADDR": "10.0.0.1"})
    assert r.status_code == 429 and "Trop de tentatives" in r.get_data(as_text=True)
    # An unknown account answers like a known one, then is refused like one.
    for _ in range(2):
        r = _token_attempt(client, "personne@un.example", "wrong", "10.1.0.1")
        assert r.status_code == 401 and r.get_json()["error"]["code"] == "bad_credentials"
    assert _token_attempt(client, "personne@un.example", "x", "10.1.0.1").status_code == 429

    # Per address: one address trying many accounts, four times the account allowance.
    ip = "192.0.2.66"
    for i in range(8):
        assert _token_attempt(client, f"guess{i}@un.example", "wrong", ip).status_code == 401, i
    assert _token_attempt(client, "admin@un.example", PASSWORD, ip).status_code == 429
    assert _token_attempt(client, "admin@un.example", PASSWORD, "192.0.2.67").status_code == 201
    # A success clears the pair's own count.
    for ip in ("198.51.100.1", "198.51.100.3"):
        _token_attempt(client, "client-a@un.example", "wrong", ip)
        assert _token_attempt(client, "client-a@un.example", PASSWORD, ip).status_code == 201
    _token_attempt(client, "client-a@un.example", "wrong", "198.51.100.1")
    assert _token_attempt(client, "client-a@un.example", PASSWORD,
                          "198.51.100.1").status_code == 201
    tally.add("security", 6)


def test_tokens_are_stored_hashed_and_revocable_by_their_owner(app, client, world, cfg, tally):
    import datetime as dt
    import hashlib

    from ged.models import ApiToken, utcnow

    r = client.post("/api/v1/tokens", json={"email": "client-a@un.example",
                                            "password": PASSWORD, "name": "script"})
    plain, token_id = r.get_json()["token"], r.get_json()["id"]
    h = {"Authorization": f"Bearer {plain}"}
    # Only the SHA-256 of a token is kept; its text is nowhere in the database file.
    row = ApiToken.get_by_id(token_id)
    assert row.token_hash == hashlib.sha256(plain.encode()).hexdigest()
    from ged.db import db

    db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    database = cfg.database_url.removeprefix("sqlite:///")
    for path in (database, database + "-wal"):
        try:
            with open(path, "rb") as fh:
                assert plain.encode() not in fh.read()
        except FileNotFoundError:
            pass
    with sqlite3.connect(database) as conn:
        assert not conn.execute("SELECT count(*) FROM api_token WHERE token_hash = ?",
                                (plain,)).fetchone()[0]
    # Another client cannot revoke it (nor learn it exists); its owner can, at once.
    other = client.delete(f"/api/v1/tokens/{token_id}", headers=world.client_b.headers)
    assert other.status_code == 404
    assert client.get("/api/v1/me", headers=h).status_code == 200
    assert client.delete(f"/api/v1/tokens/{token_id}", headers=h).status_code == 204
    r = client.get("/api/v1/me", headers=h)
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "token_revoked"
    # An admin revokes any token of the firm; an expired token stops by itself.
    staff_token = ApiToken.get(ApiToken.user == world.staff.user.id)
    assert client.delete(f"/api/v1/tokens/{staff_token.id}",
                         headers=world.admin.headers).status_code == 204
    assert client.get("/api/v1/me", headers=world.staff.headers).status_code == 401
    admin_token = ApiToken.get(ApiToken.user == world.admin.user.id)
    ApiToken.update(expires_at=utcnow() - dt.timedelta(seconds=1)).where(
        ApiToken.id == admin_token.id).execute()
    r = client.get("/api/v1/me", headers=world.admin.headers)
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "token_expired"
    tally.add("security", 4)


def test_session_cookie_flags_and_secure_behind_https(app, world, tally):
    from ged import create_app

    cfg = app.config["GED"]
    assert web_login(app.test_client(), "admin@un.example").get("/entreprises").status_code == 200
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = client.post("/login", data={"email": "admin@un.example", "password": PASSWORD,
                                       "csrf_token": token})
    set_cookie = [v for k, v in resp.headers.items() if k == "Set-Cookie"
                  and v.startswith("ged_session=")]
    assert set_cookie and "HttpOnly" in set_cookie[0] and "SameSite=Lax" in set_cookie[0]
    assert "Secure" not in set_cookie[0]  # plain http on 127.0.0.1 in these tests
    # Served as https://, the cookies are Secure.
    cfg.public_url = "https://ged.cabinet.example"
    https_app = create_app(cfg)
    assert https_app.config["SESSION_COOKIE_SECURE"] is True
    assert https_app.config["REMEMBER_COOKIE_SECURE"] is True
    secure = https_app.test_client()
    page = secure.get("/login", base_url="https://ged.cabinet.example").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = secure.post("/login", base_url="https://ged.cabinet.example",
                       headers={"Referer": "https://ged.cabinet.example/login"},
                       data={"email": "admin@un.example", "password": PASSWORD,
                             "csrf_token": token})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:300]
    session = [v for k, v in resp.headers.items() if k == "Set-Cookie"
               and v.startswith("ged_session=")]
    assert "Secure" in session[0] and "HttpOnly" in session[0]
    tally.add("security", 2)


# The one-click unsubscribe of RFC 8058 is posted by mail clients, which carry no form
# token: its signed link is the authorisation (tests/test_comments_notifications.py).
CSRF_EXEMPT = {"web.notifications.unsubscribe"}


def _post_rules(app):
    for rule in app.url_map.iter_rules():
        if (rule.endpoint.startswith("web.") and "POST" in rule.methods
                and rule.endpoint not in CSRF_EXEMPT):
            yield rule


def test_every_state_changing_form_needs_its_csrf_token(app, web, world, tally):
    """Generated from the URL map: every POST page of the web interface, posted by a
    logged-in admin (who may do everything) without a CSRF token, or with another
    session's token, is refused with a 400 and changes nothing."""
    from flask import url_for

    from ged.models import AuditEvent

    own = estate(world, world.company_a, world.client_a, "csrf")
    values = {"folder_id": own["folder"], "document_id": own["document"],
              "company_id": own["company"], "connection_id": own["connection"],
              "delivery_id": own["delivery"], "user_id": own["user"], "drop_id": own["drop"],
              "request_id": own["request"], "token": "x" * 40}
    admin = web(world.admin)
    stranger = web()
    stranger.get("/login")  # a valid token, but of another session
    before = AuditEvent.select().count()
    form = {"name": "Nouveau", "state": "on", "active": "0", "email": "n@un.example",
            "role": "staff", "legal_hold": "1", "reason": "x", "next": "/"}
    tried = []
    for rule in _post_rules(app):
        with app.test_request_context():
            url = url_for(rule.endpoint, **{a: values[a] for a in rule.arguments})
        for label, token in (("no token", None), ("another session's token", stranger.token)):
            data = dict(form)
            if token:
                data["csrf_token"] = token
            resp = admin.client.post(url, data=data)
            assert resp.status_code == 400, (url, label, resp.status_code)
            assert "jeton CSRF" in resp.get_data(as_text=True), (url, label)
        tried.append(rule.endpoint)
    assert len(tried) >= 20 and "web.auth.logout" in tried and "web.folders.upload" in tried
    assert AuditEvent.select().count() == before
    # The same admin with the right token gets through (the check is not a blanket refusal).
    admin.get(f"/dossiers/{own['folder']}")
    resp = admin.post(f"/dossiers/{own['folder']}/sous-dossier", {"name": "Avec jeton"})
    assert resp.status_code == 302
    tally.add("security", len(tried) * 2)


def test_a_disabled_users_sessions_and_tokens_stop_at_once(app, client, web, world, tally):
    """The admin disables staff through the admin page: the staff member's open web
    session and API token stop on their very next request; re-enabled, the old
    session stays closed (a new login is needed) and the old token stays revoked
    (issue 17: re-enabling must not bring back tokens that may have leaked)."""
    staff = web(world.staff)
    assert staff.get("/entreprises").status_code == 200
    assert client.get("/api/v1/me", headers=world.staff.headers).status_code == 200
    admin = web(world.admin)
    admin.get("/admin/utilisateurs")
    r = admin.post(f"/admin/utilisateurs/{world.staff.user.id}/actif", {"active": "0"})
    assert r.status_code == 302
    r = staff.get("/entreprises")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    r = client.get("/api/v1/me", headers=world.staff.headers)
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "account_disabled"
    login = web()
    login.get("/login")
    r = login.post("/login", {"email": "staff@un.example", "password": PASSWORD})
    assert r.status_code in (401, 403) and "désactivé" in r.get_data(as_text=True)
    admin.get("/admin/utilisateurs")
    admin.post(f"/admin/utilisateurs/{world.staff.user.id}/actif", {"active": "1"})
    assert staff.get("/entreprises").status_code == 302
    r = client.get("/api/v1/me", headers=world.staff.headers)
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "token_revoked"
    assert web(world.staff).get("/entreprises").status_code == 200  # a new sign-in works
    # A new password also ends the other sessions.
    from ged import accounts

    again = web(world.staff)
    assert again.get("/entreprises").status_code == 200
    accounts.set_password(world.admin.user, world.staff.user, "un nouveau mot de passe")
    assert again.get("/entreprises").status_code == 302
    tally.add("security", 3)


# --- integrity of the stored documents and of the audit trail -----------------------------------


def test_fsck_reports_a_corrupted_a_missing_and_a_stray_blob_and_changes_nothing_unasked(
        client, world, cfg, ged_cli, tally):
    import os
    import time

    from ged import runtime
    from ged.models import Document

    achats = world.folder(world.company_a, ANNUAL, "Achats")
    docs = []
    for name in ("sain.pdf", "abime.pdf", "disparu.pdf"):
        r = client.post(f"/api/v1/folders/{achats.id}/documents", headers=world.staff.headers,
                        data={"file": [(__import__("io").BytesIO(text_pdf(name)), name)]},
                        content_type="multipart/form-data")
        docs.append(r.get_json()["items"][0])
    clean = ged_cli("fsck")
    assert clean.returncode == 0 and "3 blob(s)" in clean.stdout and "clean" in clean.stdout

    store = runtime.store()
    damaged = store.path(docs[1]["sha256"])
    original = damaged.read_bytes()
    damaged.write_bytes(original[:-5] + b"XXXXX")
    store.path(docs[2]["sha256"]).unlink()
    stray_sha = "cd" * 32
    stray = store.path(stray_sha)
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"left behind by a crash")
    hour_ago = time.time() - 7200
    os.utime(stray, (hour_ago, hour_ago))
    snapshot = sorted((p, p.stat().st_size) for p in (cfg.data_dir / "blobs").rglob("*")
                      if p.is_file())

    report = ged_cli("fsck")
    assert report.returncode == 1
    out = report.stdout
    assert f"ERROR: blob {docs[1]['sha256']}: corrupt" in out
    assert f"ERROR: blob {docs[2]['sha256']}: named by the database, missing" in out
    assert f"warning: stray blob {stray_sha}" in out and "2 error(s)" in out
    # Without --repair nothing was touched: the same files, the same rows.
    assert sorted((p, p.stat().st_size) for p in (cfg.data_dir / "blobs").rglob("*")
                  if p.is_file()) == snapshot
    assert Document.select().count() == 3 and damaged.read_bytes() != original

    repaired = ged_cli("fsck", "--repair")
    assert "repaired: removed stray blob" in repaired.stdout
    assert not stray.exists()
    # Repair never deletes or rewrites a document's bytes, even damaged ones.
    assert damaged.exists() and store.exists(docs[0]["sha256"])
    assert repaired.returncode == 1  # data at risk stays reported until restored
    tally.add("security", 3)


def test_audit_verify_detects_an_edited_a_deleted_and_an_inserted_event(
        client, world, cfg, ged_cli, tally):
    from ged import audit
    from ged.models import AuditEvent

    achats = world.folder(world.company_a, ANNUAL, "Achats")
    for i in range(3):
        client.post("/api/v1/folders", json={"parent_id": achats.id, "name": f"Lot {i}"},
                    headers=world.staff.headers)
    ok = ged_cli("audit", "verify")
    assert ok.returncode == 0 and "intact" in ok.stdout
    database = cfg.database_url.removeprefix("sqlite:///")
    events = list(AuditEvent.select().where(AuditEvent.firm == world.firm.id)
                  .order_by(AuditEvent.seq))
    middle = events[len(events) // 2]

    def tamper(sql, *args):
        with sqlite3.connect(database) as conn:
            conn.execute(sql, args)

    def restore_all():
        with sqlite3.connect(database) as conn:
            conn.execute("DELETE FROM audit_event")
            conn.executemany(
                "INSERT INTO audit_event (seq, id, firm_id, company_id, actor_id, actor_label, "
                "action, object_type, object_id, details, firm_only, created_at, prev_hash, hash) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", saved)

    with sqlite3.connect(database) as conn:
        saved = conn.execute(
            "SELECT seq, id, firm_id, company_id, actor_id, actor_label, action, object_type, "
            "object_id, details, firm_only, created_at, prev_hash, hash FROM audit_event"
        ).fetchall()

    cases = [
        ("an edited action", "UPDATE audit_event SET action = 'folder.nothing' WHERE seq = ?",
         middle.seq),
        ("edited details", "UPDATE audit_event SET details = '{\"name\": \"autre\"}' WHERE seq = ?",
         middle.seq),
        ("a deleted event", "DELETE FROM audit_event WHERE seq = ?", middle.seq),
        ("the first event deleted", "DELETE FROM audit_event WHERE seq = ?", events[0].seq),
        ("an inserted event",
         "INSERT INTO audit_event (id, firm_id, actor_label, action, firm_only, created_at, "
         "prev_hash, hash) SELECT 'forged0000000000000000000', firm_id, 'x', 'folder.created', "
         "0, created_at, hash, hash FROM audit_event WHERE seq = ?", middle.seq),
    ]
    for label, sql, seq in cases:
        tamper(sql, seq)
        result = ged_cli("audit", "verify")
        assert result.returncode == 1 and "PROBLEM" in result.stdout, (label, result.stdout)
        restore_all()
        assert audit.verify() == [], label
        tally.add("security")


def test_an_anchored_audit_head_reveals_removed_newest_events(
        client, world, cfg, ged_cli, tally, tmp_path):
    """Deleting the newest events leaves a chain that is intact but shorter: only a head
    kept outside the database (`ged audit head`) can tell, and `verify --anchor` does."""
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    for i in range(3):
        client.post("/api/v1/folders", json={"parent_id": achats.id, "name": f"Lot {i}"},
                    headers=world.staff.headers)
    head = ged_cli("audit", "head")
    assert head.returncode == 0
    lines = [line for line in head.stdout.splitlines() if line.startswith(world.firm.id)]
    assert len(lines) == 1
    anchors = tmp_path / "anchors.log"
    anchors.write_text(head.stdout)
    assert ged_cli("audit", "verify", "--anchor", str(anchors)).returncode == 0
    # Later events do not disturb an older anchor.
    client.post("/api/v1/folders", json={"parent_id": achats.id, "name": "Lot 4"},
                headers=world.staff.headers)
    assert ged_cli("audit", "verify", "--anchor", str(anchors)).returncode == 0

    database = cfg.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(database) as conn:
        conn.execute("DELETE FROM audit_event WHERE seq IN (SELECT seq FROM audit_event "
                     "WHERE firm_id = ? ORDER BY seq DESC LIMIT 2)", (world.firm.id,))
    plain = ged_cli("audit", "verify")
    assert plain.returncode == 0  # the chain alone cannot tell
    anchored = ged_cli("audit", "verify", "--anchor", str(anchors))
    assert anchored.returncode == 1 and "newest events were removed" in anchored.stdout
    bad = tmp_path / "bad.log"
    bad.write_text("not an anchor\n")
    refused = ged_cli("audit", "verify", "--anchor", str(bad))
    assert refused.returncode != 0 and "not a line of `ged audit head`" in refused.stderr
    tally.add("security")


def test_logout_revokes_a_copied_session_cookie(app, world):
    """A session cookie copied before logout stops working after it."""
    from conftest import web_login

    browser = web_login(app.test_client(), world.staff.user.email)
    stolen = browser.get_cookie("ged_session").value
    assert browser.get("/entreprises").status_code == 200
    page = browser.get("/entreprises").get_data(as_text=True)
    from conftest import csrf_token_of

    browser.post("/logout", data={"csrf_token": csrf_token_of(page)})
    thief = app.test_client()
    thief.set_cookie("ged_session", stolen)
    r = thief.get("/entreprises")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
