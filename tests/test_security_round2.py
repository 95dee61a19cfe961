"""Security, round two (issue 17): each test performs an attack that worked before
and shows it now does no harm.

- ``ged import`` and a file or folder swapped for a link after the scan;
- sessions forged from the secret key, and logging out without Redis;
- sign-in throttling behind a reverse proxy, under concurrent guesses, and never
  keeping the rightful user out;
- open redirects after sign-in;
- NUL bytes and line separators in every input;
- hidden folder names, CSV formula injection, re-enabled tokens, login branding
  across firms, trivial passwords.
"""

from __future__ import annotations

import io
import os
import threading
from urllib.parse import urlsplit

import pytest

from conftest import PASSWORD, csrf_token_of, make_firm, text_pdf, web_login

ANNUAL = "Dossier comptable annuel 2026"


@pytest.fixture(autouse=True)
def _counts_as_security(tally):
    # A test of this file that fails before counting still shows as a security failure.
    tally.add("security", 0)


def _form_login(client, email, password, ip="127.0.0.1", headers=None, next_=None):
    """Sign in through the real form from ``ip``; returns the reply to the POST."""
    env = {"REMOTE_ADDR": ip}
    page = client.get("/login", environ_base=env, headers=headers).get_data(as_text=True)
    url = "/login" if next_ is None else "/login?next=" + next_
    return client.post(url, data={"email": email, "password": password,
                                  "csrf_token": csrf_token_of(page)},
                       environ_base=env, headers=headers)


def _token(client, email, password, ip, forwarded_for=None):
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return client.post("/api/v1/tokens", json={"email": email, "password": password,
                                               "name": "x"},
                       environ_base={"REMOTE_ADDR": ip}, headers=headers)


# --- ged import: a file or a folder swapped for a link after the scan -------------------------


def test_import_refuses_files_and_folders_swapped_after_the_scan(app, world, tmp_path, tally):
    """The attack: start an import, and once the scan is done replace a file by a link
    to the server's secret key (and a folder by a link to a directory holding it, and a
    file by another file). Before, the key became a document the client could read."""
    from ged import bulk_import, runtime
    from ged.models import Blob, Document

    secret = b"SECRET_KEY=" + os.urandom(24).hex().encode() + b"\n"
    vault = tmp_path / "var"
    vault.mkdir()
    (vault / "secret_key").write_bytes(secret)
    (vault / "c.txt").write_bytes(secret)
    src = tmp_path / "export"
    (src / "sub").mkdir(parents=True)
    (src / "a.pdf").write_bytes(text_pdf("Première pièce"))
    (src / "b.txt").write_text("Relevé de caisse\n")
    (src / "d.txt").write_text("Autre relevé\n")
    (src / "sub" / "c.txt").write_text("Note\n")
    swapped = []

    def swap_after_first_file(_n):
        if swapped:
            return
        swapped.append(True)
        os.remove(src / "b.txt")
        os.symlink(vault / "secret_key", src / "b.txt")  # a file becomes a link
        os.rename(src / "sub", tmp_path / "sub-moved")
        os.symlink(vault, src / "sub")  # a folder becomes a link
        os.link(vault / "secret_key", tmp_path / "hard")  # a file becomes another file
        os.replace(tmp_path / "hard", src / "d.txt")

    target = world.folder(world.company_a, ANNUAL, "Divers")
    report = bulk_import.import_tree(src, world.company_a, target,
                                     progress=swap_after_first_file)
    assert swapped and report.deposited == 1  # a.pdf, read before the swap
    refused = dict(report.refused)
    assert set(refused) == {"b.txt", "d.txt", "sub/c.txt"}, refused
    assert all("changed since the scan" in reason for reason in refused.values())
    # The secret is nowhere: no document, no blob, no stored bytes hold it.
    import hashlib

    sha = hashlib.sha256(secret).hexdigest()
    assert not Blob.select().where(Blob.sha256 == sha).exists()
    assert not runtime.store().exists(sha)
    assert [d.name for d in Document.select().where(Document.company == world.company_a.id)
            if d.channel == "import"] == ["a.pdf"]
    tally.add("security", 3)


def test_import_refuses_a_fifo_and_a_link_at_scan_time(app, world, tmp_path, tally):
    """A named pipe never blocks the import; a link at scan time is refused as before."""
    from ged import bulk_import

    src = tmp_path / "export"
    src.mkdir()
    (src / "ok.txt").write_text("bonjour\n")
    os.mkfifo(src / "tube.pdf")
    os.symlink("/etc/hostname", src / "lien.txt")
    report = bulk_import.import_tree(src, world.company_a)
    assert report.deposited == 1
    assert dict(report.refused) == {"lien.txt": "symbolic link (not followed)"}
    tally.add("security", 2)


# --- sessions: not forgeable from the secret key, revoked in the database ---------------------


def _forged_cookie(app, payload: dict) -> str:
    return app.session_interface.get_signing_serializer(app).dumps(payload)


def test_a_session_forged_with_the_secret_key_opens_nothing(app, world, tally):
    """The attack: with the server's secret key and the admin's id (visible to clients
    as deposited_by), sign a session cookie. Before, it opened the admin's session."""
    from flask_login.utils import encode_cookie

    admin = world.admin.user
    real = web_login(app.test_client(), "client-a@un.example")
    real_sid = None
    with real.session_transaction() as sess:
        real_sid = sess["sid"]
    forged = [
        {"_user_id": f"{admin.id}:{admin.session_version}", "_fresh": True},
        {"_user_id": f"{admin.id}:{admin.session_version}", "_fresh": True,
         "sid": "0" * 43},
        # A real session's id (the client's) under the admin's user id.
        {"_user_id": f"{admin.id}:{admin.session_version}", "_fresh": True, "sid": real_sid},
    ]
    for payload in forged:
        thief = app.test_client()
        thief.set_cookie("ged_session", _forged_cookie(app, payload))
        r = thief.get("/admin/utilisateurs")
        assert r.status_code == 302 and "/login" in r.headers["Location"], payload
    # flask-login's remember-me cookie, forged the same way, opens nothing either.
    with app.test_request_context():
        remember = encode_cookie(f"{admin.id}:{admin.session_version}")
    thief = app.test_client()
    thief.set_cookie("remember_token", remember)
    r = thief.get("/admin/utilisateurs")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    # The client's real session still works (the check is not a blanket refusal).
    assert real.get("/").status_code == 302 and "/dossiers/" in real.get("/").headers["Location"]
    tally.add("security", len(forged) + 1)


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_logout_holds_when_redis_is_emptied_and_password_change_ends_sessions(
        app, world, redis_conn, tally):
    """Logging out is recorded in the database: emptying Redis (a restart without
    persistence) does not bring a copied cookie back. A new password ends every
    open session of the user."""
    from ged import accounts
    from ged.models import UserSession

    browser = web_login(app.test_client(), "staff@un.example")
    stolen = browser.get_cookie("ged_session").value
    page = browser.get("/entreprises").get_data(as_text=True)
    browser.post("/logout", data={"csrf_token": csrf_token_of(page)})
    redis_conn.flushdb()
    thief = app.test_client()
    thief.set_cookie("ged_session", stolen)
    r = thief.get("/entreprises")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    assert UserSession.select().where(UserSession.revoked_at.is_null(False)).count() == 1

    one, two = (web_login(app.test_client(), "staff@un.example") for _ in range(2))
    assert one.get("/entreprises").status_code == 200
    accounts.set_password(world.admin.user, world.staff.user, "une toute autre phrase")
    for browser in (one, two):
        assert browser.get("/entreprises").status_code == 302
    assert not UserSession.select().where(
        (UserSession.user == world.staff.user.id) & UserSession.revoked_at.is_null()).exists()
    tally.add("security", 2)


def test_re_enabling_a_user_does_not_bring_back_their_tokens(client, world, tally):
    h = world.admin.headers
    target = world.client_a
    assert client.get("/api/v1/me", headers=target.headers).status_code == 200
    assert client.patch(f"/api/v1/users/{target.user.id}", json={"active": False},
                        headers=h).status_code == 200
    assert client.patch(f"/api/v1/users/{target.user.id}", json={"active": True},
                        headers=h).status_code == 200
    r = client.get("/api/v1/me", headers=target.headers)
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "token_revoked"
    # A fresh token works: the account itself is back.
    r = _token(client, "client-a@un.example", PASSWORD, "192.0.2.10")
    assert r.status_code == 201
    tally.add("security")


# --- sign-in throttling ------------------------------------------------------------------------


def test_guesses_behind_the_proxy_do_not_lock_anyone_else_out(app, client, world, tally):
    """The attack: behind the reverse proxy every user shares the proxy's address;
    20 failed sign-ins with random e-mails locked the admin out, and 5 bad attempts
    locked an account even against the right password. With GED_TRUSTED_PROXIES
    naming the proxy, each client counts under its own address."""
    cfg = app.config["GED"]
    proxy, attacker, admin_home = "10.0.0.2", "203.0.113.9", "198.51.100.20"
    cfg.trusted_proxies = [proxy]
    for i in range(20):
        r = _token(client, f"inconnu{i}@un.example", "mauvais", proxy, attacker)
        assert r.status_code == 401, i
    for _ in range(5):
        assert _token(client, "admin@un.example", "mauvais", proxy,
                      f"{admin_home}, {attacker}").status_code in (401, 429)
    # The attacker is held back, however it disguises itself...
    for ip, forwarded in ((proxy, attacker), (proxy, f"{admin_home}, {attacker}"),
                          (attacker, admin_home)):  # direct, with a header of its own
        r = _token(client, "admin@un.example", PASSWORD, ip, forwarded)
        assert r.status_code == 429, (ip, forwarded)
    # ...while the admin, through the same proxy, signs in at once.
    assert _token(client, "admin@un.example", PASSWORD, proxy, admin_home).status_code == 201
    # Without the setting, X-Forwarded-For is nobody's word.
    cfg.trusted_proxies = []
    assert _token(client, "staff@un.example", PASSWORD, attacker,
                  "192.0.2.200").status_code == 429
    tally.add("security", 5)


def test_a_known_browser_signs_in_whatever_others_try_from_its_address(app, world, tally,
                                                                       monkeypatch):
    """Without proxies (a shared office address), an attacker at the same address as
    the admin fails on the admin's account and sprays others: the admin's browser,
    which signed in before, still gets in with the right password; a browser that
    never did is held back. Guesses spread over many addresses only slow the account
    down (a delay), never lock it."""
    from ged import throttle

    shared = "192.0.2.50"
    admin_browser = app.test_client()
    r = _form_login(admin_browser, "admin@un.example", PASSWORD, shared)
    assert r.status_code == 302 and admin_browser.get_cookie(throttle.DEVICE_COOKIE, path="/login")
    admin_browser.post("/logout", data={"csrf_token": csrf_token_of(
        admin_browser.get("/entreprises").get_data(as_text=True))})
    attacker = app.test_client()
    for i in range(25):
        _form_login(attacker, "admin@un.example" if i < 6 else f"x{i}@un.example", "mauvais",
                    shared)
    assert _form_login(attacker, "admin@un.example", PASSWORD, shared).status_code == 429
    fresh = _form_login(app.test_client(), "admin@un.example", PASSWORD, shared)
    assert fresh.status_code == 429 and "Trop de tentatives" in fresh.get_data(as_text=True)
    r = _form_login(admin_browser, "admin@un.example", PASSWORD, shared)
    assert r.status_code == 302, r.get_data(as_text=True)[:300]

    # Spread over many addresses: past the account's threshold the password is checked
    # at most once per gate; the right password still gets through when its turn comes.
    monkeypatch.setattr(throttle, "GATE_SECONDS", 3600)  # one turn for the whole test
    client = app.test_client()
    cfg = app.config["GED"]
    for i in range(cfg.login_max_attempts * throttle.ACCOUNT_FACTOR):
        assert _token(client, "staff@un.example", "mauvais",
                      f"198.18.{i // 200}.{i % 200}").status_code == 401
    assert _token(client, "staff@un.example", PASSWORD, "198.19.0.1").status_code == 201
    r = _token(client, "staff@un.example", PASSWORD, "198.19.0.2")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) <= 3600
    tally.add("security", 4)


def test_forty_concurrent_guesses_are_held_to_the_limit(app, world, live_server, tally):
    """The attack: 40 wrong guesses at once. Before, 11 of them were checked against a
    limit of 5. Now exactly the allowance is checked, the rest refused, nothing
    answers 5xx; then the right password from the owner's address works, and ten
    concurrent right sign-ins (SQLite) all succeed."""
    import httpx

    from ged.models import AuditEvent

    cfg = app.config["GED"]
    cfg.trusted_proxies = ["127.0.0.1"]
    limit = cfg.login_max_attempts
    statuses: list[int] = []
    barrier = threading.Barrier(40)

    def guess(i):
        with httpx.Client(base_url=live_server.url, timeout=60) as http:
            barrier.wait()
            r = http.post("/api/v1/tokens", json={"email": "admin@un.example",
                                                  "password": f"faux-{i}", "name": "x"},
                          headers={"X-Forwarded-For": "203.0.113.77"})
            statuses.append(r.status_code)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [401] * limit + [429] * (40 - limit), statuses
    checked = AuditEvent.select().where((AuditEvent.action == "login.failed")
                                        & (AuditEvent.actor_label == "admin@un.example"))
    assert checked.count() == limit

    ok: list[int] = []

    def sign_in(i):
        with httpx.Client(base_url=live_server.url, timeout=60) as http:
            r = http.post("/api/v1/tokens", json={"email": "admin@un.example",
                                                  "password": PASSWORD, "name": f"t{i}"},
                          headers={"X-Forwarded-For": f"198.51.100.{i + 1}"})
            ok.append(r.status_code)

    threads = [threading.Thread(target=sign_in, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ok == [201] * 10, ok
    tally.add("security", 50)


# --- open redirect after sign-in ---------------------------------------------------------------

EVIL_TARGETS = ["/\t/evil.example/phish", "/%09/evil.example/phish", "//evil.example",
                "///evil.example", "/\\evil.example", "\\\\evil.example", "https://evil.example",
                "https:evil.example", "/\n/evil.example", "/ /evil.example",
                "javascript:alert(1)", "/%2F%2Fevil.example", "/\u3000/evil.example",
                "evil.example", "/logout", "/\x0b/evil.example"]


def test_sign_in_never_redirects_off_the_site(app, world, tally):
    """The attack: POST /login?next=/%09/evil.example/phish redirected to
    //evil.example/phish (browsers drop the tab). Every such target now lands on the
    home page; a real page of the site is kept."""
    from urllib.parse import quote

    for target in EVIL_TARGETS:
        client = app.test_client()
        r = _form_login(client, "staff@un.example", PASSWORD, next_=quote(target, safe="%"))
        assert r.status_code == 302, target
        location = r.headers["Location"]
        # What a browser would follow: tabs and newlines dropped, backslashes as slashes.
        browser_view = "".join(ch for ch in location if ch not in "\t\n\r").replace("\\", "/")
        parts = urlsplit(browser_view)
        assert not parts.netloc and not parts.scheme and not browser_view.startswith("//"), \
            (target, location)
        assert location == "/", (target, location)
        tally.add("security")
    r = _form_login(app.test_client(), "staff@un.example", PASSWORD,
                    next_="/entreprises%3Fstatut%3Dclient")
    assert r.headers["Location"] == "/entreprises?statut=client"


def test_form_next_fields_are_checked_the_same_way(app, world, tally):
    from ged.web.links import safe_target

    with app.test_request_context():
        for target in EVIL_TARGETS:
            assert safe_target(target, "/home") == "/home", target
        assert safe_target("/envois?statut=failed", "/home") == "/envois?statut=failed"
    tally.add("security", len(EVIL_TARGETS))


# --- NUL bytes and separators ------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_nul_bytes_anywhere_get_a_clear_400(app, client, world, web, tally):
    """The attack (PostgreSQL): a NUL byte in an e-mail, an id in a path or a search
    query answered 500. Every entry point now refuses it with a 400."""
    h = world.staff.headers
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    api_cases = [
        client.get("/api/v1/folders/abc%00def", headers=h),
        client.get("/api/v1/search?q=facture%00", headers=h),
        client.get(f"/api/v1/folders/{achats.id}?limit=1%00", headers=h),
        client.post("/api/v1/folders", json={"parent_id": achats.id, "name": "a\u0000b"},
                    headers=h),
        client.post("/api/v1/tokens", json={"email": "admin\u0000@un.example",
                                            "password": PASSWORD, "name": "x"}),
        client.post("/api/v1/folders", json={"parent_id": achats.id, "name": "ok",
                                             "x\u0000": 1}, headers=h),
        client.post(f"/api/v1/folders/{achats.id}/documents", headers=h,
                    data={"file": [(io.BytesIO(text_pdf("x")), "a.pdf")], "note": "a\x00"},
                    content_type="multipart/form-data"),
    ]
    for r in api_cases:
        assert r.status_code == 400, (r.status_code, r.get_data(as_text=True)[:200])
        assert r.get_json()["error"]["code"] == "invalid_input"
        tally.add("security")
    staff = web(world.staff)
    pages = [staff.get("/dossiers/abc%00def"), staff.get("/recherche?q=%00"),
             staff.post(f"/dossiers/{achats.id}/sous-dossier", {"name": "a\x00b"})]
    anonymous = app.test_client()
    page = anonymous.get("/login").get_data(as_text=True)
    pages.append(anonymous.post("/login", data={"email": "admin\x00@un.example",
                                                "password": PASSWORD,
                                                "csrf_token": csrf_token_of(page)}))
    for r in pages:
        assert r.status_code == 400, r.status_code
        assert "caractère nul" in r.get_data(as_text=True)
        tally.add("security")


SEPARATORS = ["\u2028", "\u2029", "\u0085", "\x1b", "\x9b", "\t"]


def test_names_with_line_separators_or_controls_are_refused(client, world, tally):
    """Names holding U+2028 or U+0085 were accepted, and then made every e-mail
    delivery of the document fail. Every name check now refuses them."""
    h = world.admin.headers
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    for sep in SEPARATORS:
        cases = [
            client.post("/api/v1/users", json={"email": f"u{ord(sep)}@un.example",
                                               "name": f"Jean{sep}Dupont", "role": "staff"},
                        headers=h),
            client.patch(f"/api/v1/companies/{world.company_a.id}",
                         json={"name": f"Boulangerie{sep}Martin"}, headers=h),
            client.post("/api/v1/folders", json={"parent_id": achats.id,
                                                 "name": f"Lot{sep}1"}, headers=h),
            client.post(f"/api/v1/folders/{achats.id}/documents", headers=h,
                        data={"file": [(io.BytesIO(text_pdf("x")), f"facture{sep}1.pdf")]},
                        content_type="multipart/form-data"),
        ]
        for r in cases:
            assert r.status_code == 400, (repr(sep), r.status_code, r.get_json())
            assert r.get_json()["error"]["code"] in ("invalid_name", "invalid_body"), \
                r.get_json()
            tally.add("security")


# --- hidden folder names, CSV formulas, branding, passwords ------------------------------------


def test_a_client_cannot_detect_a_firm_only_folder_name(client, world, tally):
    """The attack: a client creates a folder named like the firm's hidden one; a 409
    name_taken revealed it. Now the answer is the same as for any free name."""
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    r = client.post("/api/v1/folders", json={"parent_id": achats.id, "name": "Contrôle fiscal",
                                             "firm_only": True}, headers=world.staff.headers)
    assert r.status_code == 201
    hidden = client.post("/api/v1/folders", json={"parent_id": achats.id,
                                                  "name": "Contrôle fiscal"},
                         headers=world.client_a.headers)
    free = client.post("/api/v1/folders", json={"parent_id": achats.id, "name": "Nom libre"},
                       headers=world.client_a.headers)
    assert hidden.status_code == free.status_code == 201
    assert set(hidden.get_json()) == set(free.get_json())
    # A name the client can see still conflicts, as before.
    again = client.post("/api/v1/folders", json={"parent_id": achats.id, "name": "Nom libre"},
                        headers=world.client_a.headers)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "name_taken"
    tally.add("security", 2)


def test_manifest_csv_cells_never_start_a_formula(app, world, tally):
    import csv as csv_module
    import zipfile

    from ged import documents, export
    from ged.blobs import stage_bytes

    cfg = app.config["GED"]
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    names = ["=HYPERLINK(1).pdf", "+33 1 23.pdf", "-2+3.pdf", "@SUM(A1).pdf", "normal.pdf"]
    for i, name in enumerate(names):
        documents.deposit(world.client_a.user, achats,
                          [documents.Upload(name, stage_bytes(text_pdf(f"{i}"), cfg.data_dir,
                                                              cfg.max_upload_bytes))], "web")
    built = export.build(world.staff.user, world.company_a)
    out = app.config["GED"].data_dir / "export.zip"
    export.write(built, out)
    with zipfile.ZipFile(out) as z:
        text = z.read("manifest.csv").decode("utf-8-sig")
        manifest = z.read("manifest.json").decode()
    rows = list(csv_module.DictReader(io.StringIO(text), delimiter=";"))
    cells = [v for row in rows for v in row.values() if v]
    assert not [c for c in cells if c[0] in "=+-@"], cells
    assert {row["name"] for row in rows} >= {"'=HYPERLINK(1).pdf", "'+33 1 23.pdf",
                                             "'-2+3.pdf", "'@SUM(A1).pdf", "normal.pdf"}
    assert "=HYPERLINK(1).pdf" in manifest  # the JSON manifest keeps the exact name
    tally.add("security", 4)


def test_the_login_page_wears_no_other_firms_brand(app, world, cfg, tally):
    """The attack: a second firm's users saw the first firm's name and logo on the
    login page and at /marque/logo. One firm: its brand; several: a neutral page,
    unless GED_FIRM_HOSTS names the firm of this host."""
    from ged import firms
    from ged.blobs import stage_bytes

    from conftest import png_bytes

    logo = stage_bytes(png_bytes(), cfg.data_dir, cfg.max_upload_bytes)
    firms.set_logo(world.admin.user, world.firm, logo, "logo.png")
    single = app.test_client()
    assert "Cabinet Un" in single.get("/login").get_data(as_text=True)
    assert single.get("/marque/logo").status_code == 200

    other = make_firm("Cabinet Deux", "deux.example")
    page = app.test_client().get("/login").get_data(as_text=True)
    assert "Cabinet Un" not in page and "Cabinet Deux" not in page
    r = app.test_client().get("/marque/logo")
    assert r.status_code == 404
    cfg.firm_hosts = {"ged.cabinet-deux.example": other.firm.id,
                      "ged.cabinet-un.example": world.firm.id}
    two = app.test_client().get("/login", base_url="http://ged.cabinet-deux.example")
    assert "Cabinet Deux" in two.get_data(as_text=True)
    assert "Cabinet Un" not in two.get_data(as_text=True)
    un = app.test_client().get("/marque/logo", base_url="https://ged.cabinet-un.example:8443")
    assert un.status_code == 200 and un.headers["Cache-Control"].startswith("private")
    # Signed in, each user sees their own firm's brand whatever the host.
    deux = web_login(app.test_client(), "admin@deux.example")
    assert "Cabinet Deux" in deux.get("/entreprises").get_data(as_text=True)
    assert deux.get("/marque/logo").status_code == 404  # Cabinet Deux has no logo
    tally.add("security", 4)


TRIVIAL = ["aaaaaaaaaa", "azertyuiop", "1234567890", "password123", "motdepasse",
           "qwerty123456", "abcabcabcabc", "neuf@un.example"]


def test_common_and_trivial_passwords_are_refused(client, web, world, tally):
    h = world.admin.headers
    for i, password in enumerate(TRIVIAL):
        r = client.post("/api/v1/users", json={"email": "neuf@un.example", "name": "Neuf",
                                               "role": "staff", "password": password},
                        headers=h)
        assert r.status_code == 400, password
        assert r.get_json()["error"]["code"] == "common_password", password
        tally.add("security")
    admin = web(world.admin)
    admin.get("/admin/utilisateurs")
    r = admin.post("/admin/utilisateurs", {"email": "neuf@un.example", "name": "Neuf",
                                           "role": "staff", "password": "aaaaaaaaaa"})
    assert r.status_code == 400 and "trop courant" in r.get_data(as_text=True)
    r = client.post("/api/v1/users", json={"email": "neuf@un.example", "name": "Neuf",
                                           "role": "staff", "password": "trois mots choisis"},
                    headers=h)
    assert r.status_code == 201
