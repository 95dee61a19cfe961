"""Accounts: a forgotten password (a single-use link by mail, the same answer for any
address, web sessions end), a changed password, two-factor sign-in with codes
computed here, the firm's two-factor policy and default profile."""

from __future__ import annotations

import pytest

import re
import time

import pyotp

from conftest import PASSWORD

NEW_PASSWORD = "cheval agrafe batterie 2027"


def _link(mail) -> str:
    return re.search(r"(http\S+/mot-de-passe/\S+)", mail.message.get_content()).group(1)


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_a_forgotten_password_is_reset_once_by_the_mailed_link(
        client, web, world, smtp_sink, run_jobs):
    from ged.models import ActionToken

    user = world.client_a.user
    browser = web(world.client_a)
    assert browser.get("/mon-compte").status_code == 200
    known = client.post("/api/v1/password-reset", json={"email": user.email})
    unknown = client.post("/api/v1/password-reset", json={"email": "personne@nulle.part"})
    assert known.status_code == unknown.status_code == 202
    assert known.get_json() == unknown.get_json()
    run_jobs()
    assert [m.rcpt_tos for m in smtp_sink.messages] == [[user.email]]
    mail = smtp_sink.messages[0]
    assert "valable 30 minutes" in mail.message.get_content()
    url = _link(mail)
    token = url.rsplit("/", 1)[1]
    assert not ActionToken.select().where(ActionToken.token_hash == token).exists()  # hashed
    r = client.post("/api/v1/password-reset/confirm", json={"token": token, "password": "court"})
    assert r.status_code == 400
    r = client.post("/api/v1/password-reset/confirm",
                    json={"token": token, "password": NEW_PASSWORD})
    assert r.status_code == 200
    # The browser session ended; the API token stays.
    assert browser.get("/mon-compte").status_code == 302
    assert client.get("/api/v1/me", headers=world.client_a.headers).status_code == 200
    again = client.post("/api/v1/password-reset/confirm",
                        json={"token": token, "password": NEW_PASSWORD + "x"})
    assert again.status_code == 400 and again.get_json()["error"]["code"] == "invalid_reset_token"
    r = client.post("/api/v1/tokens", json={"email": user.email, "password": NEW_PASSWORD,
                                            "name": "after"})
    assert r.status_code == 201


def test_changing_ones_password_ends_other_sessions(client, web, world):
    first, second = web(world.staff), web(world.staff)
    page = first.get("/mon-compte").get_data(as_text=True)
    assert "Changer mon mot de passe" in page
    r = first.post("/mon-compte/mot-de-passe", {"current_password": PASSWORD,
                                                 "new_password": NEW_PASSWORD,
                                                 "confirm": NEW_PASSWORD})
    assert r.status_code == 302
    assert first.get("/mon-compte").status_code == 200  # this browser stays signed in
    assert second.get("/mon-compte").status_code == 302
    r = client.put("/api/v1/me/password", headers=world.staff.headers,
                   json={"current_password": PASSWORD, "new_password": "x" * 12})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "bad_password"


def test_an_admin_sends_a_reset_link(web, world, smtp_sink):
    admin = web(world.admin)
    r = admin.post(f"/admin/utilisateurs/{world.client_a.user.id}/reinitialisation")
    assert r.status_code == 302
    assert smtp_sink.to(world.client_a.user.email)
    r = web(world.staff).post(f"/admin/utilisateurs/{world.client_a.user.id}/reinitialisation")
    assert r.status_code == 403


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_two_factor_sign_in_with_codes_used_once(client, world):
    headers = world.staff.headers
    started = client.post("/api/v1/me/totp", headers=headers).get_json()
    assert started["otpauth_uri"].startswith("otpauth://totp/")
    otp = pyotp.TOTP(started["secret"])
    assert client.post("/api/v1/me/totp/confirm", headers=headers,
                       json={"code": "000000" if otp.now() != "000000" else "111111"}
                       ).status_code == 400
    codes = client.post("/api/v1/me/totp/confirm", headers=headers,
                        json={"code": otp.now()}).get_json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    login = {"email": world.staff.user.email, "password": PASSWORD, "name": "t"}
    r = client.post("/api/v1/tokens", json=login)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "totp_required"
    # The code of the next step (one step of drift is accepted), then never again.
    code = otp.at(time.time() + 30)
    assert client.post("/api/v1/tokens", json={**login, "totp": code}).status_code == 201
    r = client.post("/api/v1/tokens", json={**login, "totp": code})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "bad_totp"
    assert client.post("/api/v1/tokens", json={**login, "totp": codes[0]}).status_code == 201
    assert client.post("/api/v1/tokens", json={**login, "totp": codes[0]}).status_code == 400


def test_the_firm_policy_and_default_profile(client, world):
    r = client.get("/api/v1/firm", headers=world.staff.headers)
    assert r.status_code == 200 and r.get_json()["require_totp"] == "none"
    assert client.get("/api/v1/firm", headers=world.client_a.headers).status_code == 403
    assert client.patch("/api/v1/firm", headers=world.staff.headers,
                        json={"require_totp": "all"}).status_code == 403
    r = client.patch("/api/v1/firm", headers=world.admin.headers,
                     json={"require_totp": "staff", "default_role": "staff",
                           "default_company_ids": [world.company_b.id]})
    assert r.status_code == 200 and r.get_json()["default_company_ids"] == [world.company_b.id]
    r = client.post("/api/v1/users", headers=world.admin.headers,
                    json={"email": "nouveau@un.example", "name": "Nouveau", "role": "staff",
                          "password": PASSWORD})
    new_id = r.get_json()["id"]
    from ged.models import StaffAssignment

    assert [a.company_id for a in StaffAssignment.select().where(
        StaffAssignment.user == new_id)] == [world.company_b.id]
    # Staff without two-factor sign-in get no API token until they set it up.
    r = client.post("/api/v1/tokens", json={"email": "nouveau@un.example",
                                            "password": PASSWORD, "name": "t"})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "totp_setup_required"
    r = client.patch("/api/v1/firm", headers=world.admin.headers,
                     json={"default_company_ids": [world.company_b.id, "nope"]})
    assert r.status_code == 400
