"""Foundation: firms, users, roles, tokens, login, and the API's rules."""

from __future__ import annotations

import re

import pytest

from conftest import PASSWORD


def test_token_me_and_companies_by_role(client, world, other_world):
    # An admin gets a token with their password and sees who they are.
    r = client.post("/api/v1/tokens", json={"email": "admin@un.example", "password": PASSWORD,
                                            "name": "script"})
    assert r.status_code == 201
    token = r.get_json()["token"]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert me["email"] == "admin@un.example"
    assert me["role"] == "admin"
    assert me["firm"]["name"] == "Cabinet Un"

    # The admin sees both companies of the firm, none of the other firm.
    names = {c["name"] for c in client.get("/api/v1/companies",
                                           headers=world.admin.headers).get_json()["items"]}
    assert names == {"A of Cabinet Un", "B of Cabinet Un"}
    # Staff see only assigned companies; a client is refused.
    staff = client.get("/api/v1/companies", headers=world.staff.headers).get_json()["items"]
    assert [c["name"] for c in staff] == ["A of Cabinet Un"]
    r = client.get("/api/v1/companies", headers=world.client_a.headers)
    assert r.status_code == 403
    assert r.get_json()["error"]["code"] == "forbidden"


def test_bad_tokens_are_401_with_json_error(client, world):
    for header in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        r = client.get("/api/v1/me", headers=header)
        assert r.status_code == 401
        assert set(r.get_json()["error"]) == {"code", "message"}


def test_revoked_and_disabled_stop_at_once(client, world):
    from ged import accounts
    from ged.models import ApiToken

    tok = ApiToken.get(ApiToken.user == world.client_a.user.id)
    assert client.get("/api/v1/me", headers=world.client_a.headers).status_code == 200
    accounts.revoke_token(world.admin.user, tok)
    r = client.get("/api/v1/me", headers=world.client_a.headers)
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "token_revoked"

    assert client.get("/api/v1/me", headers=world.staff.headers).status_code == 200
    r = client.patch(f"/api/v1/users/{world.staff.user.id}", json={"active": False},
                     headers=world.admin.headers)
    assert r.status_code == 200 and r.get_json()["active"] is False
    r = client.get("/api/v1/me", headers=world.staff.headers)
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "account_disabled"


def test_wrong_password_is_refused_and_audited(client, world):
    from ged.models import AuditEvent

    r = client.post("/api/v1/tokens", json={"email": "admin@un.example", "password": "wrong",
                                            "name": "x"})
    assert r.status_code == 401
    assert r.get_json()["error"]["code"] == "bad_credentials"
    assert AuditEvent.select().where(AuditEvent.action == "login.failed").count() == 1
    r = client.post("/api/v1/tokens", json={"email": "nobody@un.example", "password": "wrong",
                                            "name": "x"})
    assert r.status_code == 401 and "Traceback" not in r.get_data(as_text=True)


def test_login_throttled_per_account(client, world):
    for _ in range(5):
        client.post("/api/v1/tokens", json={"email": "staff@un.example", "password": "bad",
                                            "name": "x"})
    # Even the right password is refused for a while.
    r = client.post("/api/v1/tokens", json={"email": "staff@un.example", "password": PASSWORD,
                                            "name": "x"})
    assert r.status_code == 429
    assert r.get_json()["error"]["code"] == "too_many_attempts"


def test_create_users_and_companies_rules(client, world, other_world):
    h = world.admin.headers
    # A client user needs a company of the admin's own firm.
    r = client.post("/api/v1/users", json={"email": "c@x.example", "name": "C", "role": "client"},
                    headers=h)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "company_required"
    r = client.post("/api/v1/users", json={"email": "c@x.example", "name": "C", "role": "client",
                                           "company_id": other_world.company_a.id}, headers=h)
    assert r.status_code == 404
    r = client.post("/api/v1/users", json={"email": "c@x.example", "name": "C", "role": "client",
                                           "company_id": world.company_b.id}, headers=h)
    assert r.status_code == 201 and r.get_json()["company_id"] == world.company_b.id
    # Staff may not create users.
    r = client.post("/api/v1/users", json={"email": "d@x.example", "name": "D", "role": "staff"},
                    headers=world.staff.headers)
    assert r.status_code == 403
    # Unknown fields and wrong types are refused with a clear error.
    r = client.post("/api/v1/companies", json={"name": "X", "bogus": 1}, headers=h)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "invalid_body"
    r = client.post("/api/v1/companies", json={"name": 12}, headers=h)
    assert r.status_code == 400
    r = client.post("/api/v1/companies", json={"name": "X", "siren": "123456789"}, headers=h)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "invalid_siren"
    r = client.post("/api/v1/companies", json={"name": "Nouvelle", "status": "prospect",
                                               "template": "annual"}, headers=h)
    assert r.status_code == 201
    body = r.get_json()
    assert body["status"] == "prospect" and body["root_folder_id"]
    tree = client.get(f"/api/v1/folders/{body['root_folder_id']}", headers=h).get_json()
    [annual] = tree["children"]
    assert annual["name"].startswith("Dossier comptable annuel ")
    sub = client.get(f"/api/v1/folders/{annual['id']}", headers=h).get_json()
    assert {c["name"] for c in sub["children"]} == {
        "Achats", "Ventes", "Banque", "Notes de frais", "Social", "Fiscal", "Juridique", "Divers"}


def test_staff_assignment(client, world, other_world):
    h = world.admin.headers
    r = client.put(f"/api/v1/companies/{world.company_b.id}/staff",
                   json={"user_ids": [world.staff.user.id]}, headers=h)
    assert r.status_code == 200
    names = {c["name"] for c in client.get("/api/v1/companies",
                                           headers=world.staff.headers).get_json()["items"]}
    assert names == {"A of Cabinet Un", "B of Cabinet Un"}
    # Another firm's admin cannot touch this company: 404, not 403.
    r = client.put(f"/api/v1/companies/{world.company_b.id}/staff", json={"user_ids": []},
                   headers=other_world.admin.headers)
    assert r.status_code == 404


def test_openapi_lists_the_contract_routes(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    for path in ("/api/v1/tokens", "/api/v1/me", "/api/v1/users", "/api/v1/companies",
                 "/api/v1/companies/{id}/staff", "/api/v1/folders/{id}/documents"):
        assert path in spec["paths"], path


def test_audit_chain_detects_edits(client, world):
    from ged import audit
    from ged.models import AuditEvent

    assert audit.verify() == []
    event = AuditEvent.select().order_by(AuditEvent.seq).first()
    AuditEvent.update(action="tampered").where(AuditEvent.seq == event.seq).execute()
    assert audit.verify()


def test_web_login_csrf_and_cookie_flags(app, world):
    client = app.test_client()
    app.config["WTF_CSRF_ENABLED"] = True
    # Without the CSRF token the form is refused with a readable page.
    r = client.post("/login", data={"email": "admin@un.example", "password": PASSWORD})
    assert r.status_code == 400
    assert "jeton CSRF" in r.get_data(as_text=True)
    page = client.get("/login").get_data(as_text=True)
    assert "Cabinet Un" in page  # the firm's brand on the login page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post("/login", data={"email": "admin@un.example", "password": "bad",
                                    "csrf_token": token})
    assert r.status_code == 401
    assert "Adresse e-mail ou mot de passe incorrect." in r.get_data(as_text=True)
    r = client.post("/login", data={"email": "admin@un.example", "password": PASSWORD,
                                    "csrf_token": token})
    assert r.status_code == 302
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = client.get("/entreprises").get_data(as_text=True)
    assert "A of Cabinet Un" in page and "B of Cabinet Un" in page


def test_security_headers_and_health(client):
    r = client.get("/login")
    assert "frame-ancestors" in r.headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in r.headers["Content-Security-Policy"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json() == {"database": "ok", "redis": "ok", "storage": "ok"}
