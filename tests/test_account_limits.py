"""Accounts under attack: two-factor codes and recovery codes are limited like
passwords (the web sign-in's code step, ``POST /tokens`` with ``totp``), and so are
password-reset requests (per address and per client address); a TOTP code works
once even across two processes; a two-factor sign-in ends like a password-only one
(``login.succeeded``, the device cookie); a reset or a change of password is in the
audit trail; the form that turns two-factor sign-in off checks its code."""

from __future__ import annotations

import hashlib
import html
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pyotp
import pytest

from conftest import PASSWORD

ROOT = Path(__file__).resolve().parents[1]
NEW_PASSWORD = "cheval agrafe batterie 2027"


@pytest.fixture(autouse=True)
def _counts_as_security(tally):
    yield


def _enable(client, actor):
    """Two-factor sign-in on for ``actor`` (through the API); returns (TOTP, the ten
    recovery codes). The step of the confirming code is used."""
    started = client.post("/api/v1/me/totp", headers=actor.headers).get_json()
    otp = pyotp.TOTP(started["secret"])
    r = client.post("/api/v1/me/totp/confirm", headers=actor.headers, json={"code": otp.now()})
    assert r.status_code == 200, r.get_json()
    return otp, r.get_json()["recovery_codes"]


def _wrong(otp) -> str:
    """A six-digit code valid for none of the steps accepted now."""
    now = time.time()
    valid = {otp.at(now + d) for d in (-60, -30, 0, 30, 60)}
    return next(c for c in ("000000", "111111", "222222", "333333", "444444", "555555")
                if c not in valid)


def _env(ip):
    return {"environ_base": {"REMOTE_ADDR": ip}}


def _at_code_step(browser, actor, ip):
    """The password step of the web sign-in from ``ip``; the browser is then at the
    code step."""
    browser.get("/login", **_env(ip))
    r = browser.post("/login", {"email": actor.user.email, "password": actor.password},
                     **_env(ip))
    assert r.status_code == 302 and r.headers["Location"].endswith("/connexion/code"), \
        r.get_data(as_text=True)[:300]
    browser.get("/connexion/code", **_env(ip))  # the new session's CSRF token
    return browser


def _code(browser, code, ip):
    return browser.post("/connexion/code", {"code": code}, **_env(ip))


def _text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def _device_cookie(response) -> str | None:
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith("ged_device="):
            return header
    return None


def _events(action, user_id):
    from ged.models import AuditEvent

    return [e for e in AuditEvent.select().where((AuditEvent.action == action)
                                                 & (AuditEvent.object_id == user_id))
            .order_by(AuditEvent.seq)]


# --- the second factor, limited like passwords ----------------------------------------------


def test_the_web_code_step_is_limited_like_passwords(app, web, client, world, monkeypatch,
                                                     tally):
    """Each guess from a fresh session (the per-session count of tries does not
    help an attacker who starts again): past the allowance the right code is refused
    from that address; elsewhere the account's codes are checked once per gate."""
    from ged import totp

    monkeypatch.setattr(totp, "GATE_SECONDS", 3600)  # one turn for the whole test
    otp, codes = _enable(client, world.staff)
    limit = app.config["GED"].login_max_attempts
    attacker = "203.0.113.5"
    for _ in range(limit):
        browser = _at_code_step(web(), world.staff, attacker)
        r = _code(browser, _wrong(otp), attacker)
        assert r.status_code == 400 and "Ce code n'est pas valide" in _text(r)
    browser = _at_code_step(web(), world.staff, attacker)
    r = _code(browser, codes[0], attacker)
    assert r.status_code == 429 and "Trop de" in r.get_data(as_text=True)
    assert int(r.headers["Retry-After"]) > 0
    assert browser.get("/mon-compte").status_code == 302  # not signed in
    failed = _events("login.failed", world.staff.user.id)
    assert [e.details["reason"] for e in failed] == ["bad_totp"] * limit
    assert {e.details["ip"] for e in failed} == {attacker}
    # Elsewhere: the account's allowance is spent, so one code per gate. The right
    # recovery code (not used up by the refusal above) gets through when its turn
    # comes; the next attempt, from yet another address, waits.
    elsewhere = _at_code_step(web(), world.staff, "198.51.100.7")
    r = _code(elsewhere, codes[0], "198.51.100.7")
    assert r.status_code == 302 and elsewhere.get("/mon-compte").status_code == 200
    third = _at_code_step(web(), world.staff, "198.51.100.8")
    r = _code(third, codes[1], "198.51.100.8")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) <= 3600
    tally.add("security", limit + 3)


def test_post_tokens_with_totp_is_limited_like_passwords(app, client, world, tally):
    otp, codes = _enable(client, world.staff)
    limit = app.config["GED"].login_max_attempts
    body = {"email": world.staff.user.email, "password": PASSWORD, "name": "script"}
    for _ in range(limit):
        r = client.post("/api/v1/tokens", json={**body, "totp": _wrong(otp)}, **_env("203.0.113.9"))
        assert r.status_code == 400 and r.get_json()["error"]["code"] == "bad_totp"
    r = client.post("/api/v1/tokens", json={**body, "totp": codes[0]}, **_env("203.0.113.9"))
    assert r.status_code == 429 and r.get_json()["error"]["code"] == "too_many_attempts"
    assert int(r.headers["Retry-After"]) > 0
    # The refused recovery code was not used up: it works (once) when its turn comes.
    r = client.post("/api/v1/tokens", json={**body, "totp": codes[0]}, **_env("198.51.100.1"))
    assert r.status_code == 201
    tally.add("security", limit + 2)


def test_the_owners_browser_passes_the_code_step_whatever_others_try(app, web, client, world,
                                                                     tally):
    """As with passwords: a browser that signed in before counts only against itself."""
    otp, codes = _enable(client, world.staff)
    shared = "192.0.2.50"  # the office's address, shared with the attacker
    owner = _at_code_step(web(), world.staff, shared)
    first = _code(owner, codes[0], shared)
    assert first.status_code == 302 and _device_cookie(first)
    owner.get("/mon-compte")
    assert owner.post("/logout").status_code == 302
    limit = app.config["GED"].login_max_attempts
    for _ in range(limit * 2):
        intruder = _at_code_step(web(), world.staff, shared)
        assert _code(intruder, _wrong(otp), shared).status_code in (400, 429)
    intruder = _at_code_step(web(), world.staff, shared)
    assert _code(intruder, codes[1], shared).status_code == 429
    _at_code_step(owner, world.staff, shared)
    again = _code(owner, codes[1], shared)
    assert again.status_code == 302, again.get_data(as_text=True)[:300]
    assert _device_cookie(again) is None  # its device is already this user's: kept
    assert owner.get("/mon-compte").status_code == 200
    tally.add("security", 2)


# --- a two-factor sign-in ends like a password-only one --------------------------------------


def test_a_two_factor_sign_in_is_audited_and_gets_the_device_cookie(app, web, client, world,
                                                                    tally):
    from ged import firm_settings, throttle

    # A password-only sign-in, for comparison.
    plain = web()
    plain.get("/login")
    r = plain.post("/login", {"email": world.admin.user.email, "password": PASSWORD})
    assert r.status_code == 302
    reference = _device_cookie(r)
    assert reference is not None

    otp, codes = _enable(client, world.staff)
    browser = _at_code_step(web(), world.staff, "127.0.0.1")
    assert not _events("login.succeeded", world.staff.user.id)  # not after the password
    r = _code(browser, otp.at(time.time() + 30), "127.0.0.1")
    assert r.status_code == 302
    cookie = _device_cookie(r)
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    assert throttle.device_owner(value) == world.staff.user.id
    attributes = lambda c: sorted(p.strip().lower() for p in c.split(";")[1:]  # noqa: E731
                                  if not p.strip().lower().startswith("expires"))
    assert attributes(cookie) == attributes(reference)  # path=/login, httponly, max-age...
    succeeded = _events("login.succeeded", world.staff.user.id)
    assert len(succeeded) == 1 and succeeded[0].details["second_factor"] == "totp"
    assert succeeded[0].details["ip"] == "127.0.0.1"
    from ged import journal

    assert journal.sentences(succeeded)[0][1] == \
        f"Connexion de {world.staff.user.name} avec la double authentification"

    # The forced set-up at the next sign-in ends the same way.
    firm_settings.update(world.admin.user, require_totp="all")
    forced = web()
    forced.get("/login")
    r = forced.post("/login", {"email": world.client_a.user.email, "password": PASSWORD})
    assert r.headers["Location"].endswith("/connexion/double-authentification")
    page = forced.get("/connexion/double-authentification").get_data(as_text=True)
    secret = re.search(r"\b([A-Z2-7]{32})\b", page).group(1)
    r = forced.post("/connexion/double-authentification", {"code": pyotp.TOTP(secret).now()})
    assert r.status_code == 200 and "codes de secours" in r.get_data(as_text=True).lower()
    assert _device_cookie(r) is not None
    done = _events("login.succeeded", world.client_a.user.id)
    assert [e.details["second_factor"] for e in done] == ["setup"]
    assert forced.get("/mon-compte").status_code == 200
    tally.add("security", 3)


def test_turning_two_factor_off_from_the_form(web, client, world, tally):
    from ged import totp

    otp, codes = _enable(client, world.staff)
    browser = _at_code_step(web(), world.staff, "127.0.0.1")
    assert _code(browser, codes[0], "127.0.0.1").status_code == 302
    page = browser.get("/mon-compte").get_data(as_text=True)
    assert "Désactiver la double authentification" in page
    r = browser.post("/mon-compte/double-authentification/desactiver", {"code": _wrong(otp)},
                     follow_redirects=True)
    assert "Ce code n'est pas valide" in _text(r)
    assert totp.is_enabled(world.staff.user)
    assert not _events("user.totp_disabled", world.staff.user.id)
    refused = _events("login.failed", world.staff.user.id)[-1:]
    assert refused[0].details["reason"] == "bad_totp"
    from ged import journal

    assert journal.sentences(refused)[0][1] == \
        f"Connexion refusée pour {world.staff.user.name} : code de double authentification erroné"
    r = browser.post("/mon-compte/double-authentification/desactiver",
                     {"code": otp.at(time.time() + 30)}, follow_redirects=True)
    text = r.get_data(as_text=True)
    assert "Double authentification désactivée." in text
    assert "Activer la double authentification" in text
    assert not totp.is_enabled(world.staff.user)
    assert len(_events("user.totp_disabled", world.staff.user.id)) == 1
    # Signing in again asks for the password alone.
    fresh = web()
    fresh.get("/login")
    r = fresh.post("/login", {"email": world.staff.user.email, "password": PASSWORD})
    assert r.status_code == 302 and "/connexion/code" not in r.headers["Location"]
    tally.add("security", 2)


# --- one code, once, whichever process checks it ---------------------------------------------

_CHECK = """
import sys
from ged import runtime, totp
from ged.models import User
runtime.setup()
try:
    print(totp.check_sign_in(User.get_by_id(sys.argv[1]), sys.argv[2], ip="192.0.2.200"))
except Exception as exc:
    print(getattr(exc, "code", repr(exc)))
"""


def _check_elsewhere(cfg, user_id: str, code: str) -> str:
    env = {**os.environ, "DATABASE_URL": cfg.database_url, "REDIS_URL": cfg.redis_url,
           "GED_DATA_DIR": str(cfg.data_dir)}
    done = subprocess.run([sys.executable, "-c", _CHECK, user_id, code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_a_totp_code_works_once_across_two_processes(client, world, cfg, tally):
    from ged import totp
    from ged.errors import Invalid

    otp, codes = _enable(client, world.staff)
    user = world.staff.user
    code = otp.at(time.time() + 30)
    assert _check_elsewhere(cfg, user.id, code) == "totp"
    with pytest.raises(Invalid) as refused:
        totp.check_sign_in(user, code, ip="192.0.2.201")
    assert refused.value.code == "bad_totp"
    # And the other way round, with a recovery code.
    assert totp.check_sign_in(user, codes[3], ip="192.0.2.201") == "recovery"
    assert _check_elsewhere(cfg, user.id, codes[3]) == "bad_totp"
    tally.add("security", 2)


# --- password-reset requests ------------------------------------------------------------------


def test_reset_requests_are_limited_per_address_and_per_client_address(client, web, world,
                                                                       run_jobs, smtp_sink,
                                                                       monkeypatch, tally):
    from ged import passwords

    monkeypatch.setattr(passwords, "GATE_SECONDS", 3600)  # one turn for the whole test
    per = passwords.PER_ADDRESS
    known, unknown = world.client_a.user.email, "personne@nulle.part"

    def ask(email, ip):
        return client.post("/api/v1/password-reset", json={"email": email}, **_env(ip))

    # Per address from one client address: the same for an account's address or not.
    for email in (known, unknown):
        replies = [ask(email, "203.0.113.20") for _ in range(per + 1)]
        assert [r.status_code for r in replies] == [202] * per + [429]
        assert replies[-1].get_json()["error"]["code"] == "too_many_attempts"
        assert int(replies[-1].headers["Retry-After"]) > 0
    # Per client address, whatever the addresses asked for.
    statuses = [ask(f"x{i}@nulle.part", "203.0.113.20").status_code for i in range(per * 4)]
    assert statuses.count(202) == per * 4 - 2 * per and statuses[-1] == 429
    # One address asked for from many places: past the allowance, one per gate.
    assert ask(known, "198.51.100.30").status_code == 202
    assert ask(known, "198.51.100.31").status_code == 429
    # The form says it in French, with the same refusal.
    browser = web()
    browser.get("/mot-de-passe-oublie", **_env("203.0.113.20"))
    r = browser.post("/mot-de-passe-oublie", {"email": "y@nulle.part"}, **_env("203.0.113.20"))
    assert r.status_code == 429 and "Trop de" in r.get_data(as_text=True)
    # The mailbox got one link all along.
    run_jobs()
    assert len(smtp_sink.to(known)) == 1
    tally.add("security", 4)


def test_a_reset_and_a_change_are_audited_and_the_link_is_stored_hashed(client, web, world,
                                                                        run_jobs, smtp_sink):
    from ged.models import ActionToken

    user = world.client_a.user
    assert client.post("/api/v1/password-reset", json={"email": user.email}).status_code == 202
    run_jobs()
    url = re.search(r"(http\S+/mot-de-passe/\S+)",
                    smtp_sink.messages[0].message.get_content()).group(1)
    token = url.rsplit("/", 1)[1]
    row = ActionToken.get(ActionToken.user == user.id)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() != token
    near = token[:-1] + ("A" if token[-1] != "A" else "B")
    r = client.post("/api/v1/password-reset/confirm", json={"token": near,
                                                            "password": NEW_PASSWORD})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "invalid_reset_token"
    assert client.post("/api/v1/password-reset/confirm",
                       json={"token": token, "password": NEW_PASSWORD}).status_code == 200
    assert len(_events("user.password_reset", user.id)) == 1
    browser = web()
    browser.login(user.email, NEW_PASSWORD)
    browser.get("/mon-compte")
    r = browser.post("/mon-compte/mot-de-passe", {"current_password": NEW_PASSWORD,
                                                   "new_password": PASSWORD + " bis",
                                                   "confirm": PASSWORD + " bis"})
    assert r.status_code == 302
    changed = _events("user.password_changed", user.id)
    assert len(changed) == 1 and changed[0].actor_id == user.id


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_a_reset_link_used_twice_at_once_works_once(client, world, run_jobs, smtp_sink):
    import threading

    from ged import passwords
    from ged.db import db
    from ged.errors import Invalid

    user = world.client_a.user
    passwords.mail_link_to(user.email)
    token = re.search(r"/mot-de-passe/(\S+)",
                      smtp_sink.messages[0].message.get_content()).group(1)
    barrier = threading.Barrier(2)
    outcomes = []

    def use(password):
        try:
            barrier.wait()
            passwords.confirm(token, password)
            outcomes.append(("ok", password))
        except Invalid as exc:
            outcomes.append((exc.code, password))
        finally:
            db.close()

    threads = [threading.Thread(target=use, args=(NEW_PASSWORD + s,)) for s in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(o[0] for o in outcomes) == ["invalid_reset_token", "ok"]
    winner = next(p for o, p in outcomes if o == "ok")
    body = {"email": user.email, "name": "t"}
    assert client.post("/api/v1/tokens", json={**body, "password": winner}).status_code == 201
    loser = NEW_PASSWORD + ("b" if winner.endswith("a") else "a")
    assert client.post("/api/v1/tokens", json={**body, "password": loser}).status_code == 401
    assert len(_events("user.password_reset", user.id)) == 1
