"""Tenant isolation, generated from the route table.

Every API route declared with ``@route`` and every web page that takes an id (in
its path, its query string, its JSON body or its form) is tried by every role of
another tenant (another firm's admin, staff and client; a client of another company
of the same firm; staff not assigned to the company) with the victim's ids of every
kind: company, folder, document (and its file), connection, switch, delivery,
token, user, drop address, integration, audit trail. Each answer must be 404 (or
403 where the caller's role may not use the route at all), must not carry a byte of
the victim's data, and must change nothing of the victim's. A new route is covered
without writing a new test.
"""

from __future__ import annotations

import io
import json
import re

import pytest

from conftest import text_pdf, web_login
from fixtures.estates import estate

# The first path segment names the kind of object an {id} is.
KIND_BY_SEGMENT = {
    "companies": "company", "folders": "folder", "documents": "document",
    "connections": "connection", "deliveries": "delivery", "tokens": "token", "users": "user",
    "integrations": "integration", "requests": "request",
}
KIND_BY_PARAM = {
    "company_id": "company", "folder_id": "folder", "document_id": "document",
    "connection_id": "connection", "delivery_id": "delivery", "user_id": "user",
    "integration_id": "integration", "token_id": "token", "drop_id": "drop",
    "parent_id": "folder", "request_id": "request",
}
LIST_KIND_BY_PARAM = {"user_ids": "user", "document_ids": "document", "folder_ids": "folder",
                      "connection_ids": "connection", "company_ids": "company"}
SECRET_MARK = "Confidentiel-Victime-7Q"
# The victim firm's integration: the whole firm's, so its own staff may see it.
FIRM_TOOL = "Outil-Cabinet-Un-4K"


def _sample(schema: dict, ids: dict, name: str = "", *, also: str | None = None):
    """A minimal valid value for a JSON schema, using ``ids`` for id fields (the
    required ones, and the optional field named ``also``)."""
    if name in KIND_BY_PARAM:
        return ids[KIND_BY_PARAM[name]]
    if name in LIST_KIND_BY_PARAM:
        return [ids[LIST_KIND_BY_PARAM[name]]]
    if "enum" in schema:
        return next((v for v in schema["enum"] if v is not None), None)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    if kind == "object" or "properties" in schema:
        required = schema.get("required", [])
        props = schema.get("properties", {})
        keys = [k for k in props if k in required or k == also]
        # "one of these fields" (minProperties): the first ones complete a valid body.
        missing = max(schema.get("minProperties", 0) - len(keys), 0)
        keys += [k for k in props if k not in keys][:missing]
        return {key: _sample(props[key], ids, key) for key in keys}
    if kind == "array":
        return []
    if kind == "integer":
        return max(schema.get("minimum", 1), 1)
    if kind == "boolean":
        return True
    if name == "email":
        return "someone@example.org"
    if name in ("url",):
        return "https://example.org/hook"
    return "x" if not schema.get("minLength") else "x" * schema["minLength"]


def _id_fields(r) -> list[tuple[str, str, str]]:
    """(where, field, kind) for each query parameter and body field of a route that
    names an object by its id."""
    fields = [("query", p, KIND_BY_PARAM[p]) for p in r.query if p in KIND_BY_PARAM]
    for key in (r.body or {}).get("properties", {}):
        kind = KIND_BY_PARAM.get(key) or LIST_KIND_BY_PARAM.get(key)
        if kind:
            fields.append(("body", key, kind))
    return fields


# Query parameters a route needs besides ids, so that the ids are what gets judged.
QUERY_NEEDS = {"q": "facture"}


@pytest.fixture
def victim(app, world, other_world):
    """Objects of company A of the first firm: what the attackers try to reach."""
    return estate(world, world.company_a, world.client_a, SECRET_MARK, tool_name=FIRM_TOOL)


@pytest.fixture
def attackers(app, world, other_world, victim):
    """(label, actor, own ids) for every role that must not reach company A of the
    first firm. The first firm's staff member is moved to company B only."""
    from ged.models import StaffAssignment

    StaffAssignment.delete().where(StaffAssignment.user == world.staff.user.id).execute()
    StaffAssignment.create(user=world.staff.user.id, company=world.company_b.id)
    theirs = estate(other_world, other_world.company_a, other_world.client_a, "autre")
    same_firm = estate(world, world.company_b, world.client_b, "voisin")
    return [
        ("other firm admin", other_world.admin, theirs),
        ("other firm staff", other_world.staff, theirs),
        ("other firm client", other_world.client_a, theirs),
        ("client of another company", world.client_b, same_firm),
        ("staff not assigned", world.staff, same_firm),
    ]


def _fill(path: str, ids: dict) -> str:
    segments = path.strip("/").split("/")

    def sub(match):
        name = match.group(1)
        if name != "id":
            return ids[KIND_BY_PARAM[name]]
        return ids[KIND_BY_SEGMENT[segments[0]]]

    return re.sub(r"\{(\w+)\}", sub, path)


def _victim_traces(victim: dict, actor=None):
    """What must never appear in an attacker's reply: the victim's marker and ids (and
    its firm's integration, unless the attacker is staff of that same firm)."""
    traces = [SECRET_MARK] + [victim[k] for k in ("document", "folder", "connection",
                                                  "delivery", "drop", "audit", "token", "user")]
    from ged.models import Company

    same_firm = actor is not None and actor.user.firm_id == Company.get_by_id(
        victim["company"]).firm_id
    if not (same_firm and actor.user.role in ("admin", "staff")):
        traces += [FIRM_TOOL, victim["integration"]]
    return traces


def _victim_changes(victim: dict, since_seq: int) -> list[str]:
    """Audit events recorded since ``since_seq`` about the victim's company or objects."""
    from ged.models import AuditEvent

    ids = set(victim.values())
    return [f"{e.action} {e.object_type} {e.object_id}" for e in
            AuditEvent.select().where(AuditEvent.seq > since_seq)
            if e.company_id == victim["company"] or e.object_id in ids
            or any(i in json.dumps(e.details or {}) for i in ids)]


def _last_seq() -> int:
    from ged.models import AuditEvent

    last = AuditEvent.select().order_by(AuditEvent.seq.desc()).first()
    return last.seq if last else 0


def _api_request(client, r, url, actor, body=None, query=None):
    kwargs = {"headers": actor.headers, "query_string": query or None}
    if body is not None:
        kwargs["json"] = body
    if r.multipart:
        kwargs["data"] = {"file": [(io.BytesIO(text_pdf()), "x.pdf")]}
        kwargs["content_type"] = "multipart/form-data"
    return client.open(url, method=r.method, **kwargs)


def test_api_routes_never_reach_another_tenant(app, client, world, victim, attackers, tally):
    """Every route x every attacker x the victim's ids, in the path, then in the query
    string and the body while the path names the attacker's own objects."""
    from ged.api import ROUTES
    from ged.models import Delivery, Document

    seq = _last_seq()
    deliveries_before = Delivery.select().count()
    tried = 0
    leaks = []
    kinds_tried = set()

    def check(resp, allowed, what):
        body = resp.get_data(as_text=True)
        if resp.status_code not in allowed or any(t in body for t in traces):
            leaks.append(f"{what}: {resp.status_code} {body[:200]}")

    for r in ROUTES:
        if r.public:
            continue
        id_query = [p for p in r.query if p in KIND_BY_PARAM]
        needs = {p: v for p, v in QUERY_NEEDS.items() if p in r.query}
        for label, actor, own in attackers:
            traces = _victim_traces(victim, actor)
            denied = {404} if actor.user.role in r.roles else {403, 404}
            # 1. The victim's ids in the path (and in the body and query string).
            if "{" in r.path:
                url = "/api/v1" + _fill(r.path, victim)
                body = _sample(r.body, victim) if r.body is not None else None
                query = {**needs, **{p: victim[KIND_BY_PARAM[p]] for p in id_query}}
                check(_api_request(client, r, url, actor, body, query), denied,
                      f"{r.method} {r.path} as {label}")
                tried += 1
                kinds_tried.update(KIND_BY_PARAM.get(n, KIND_BY_SEGMENT.get(
                    r.path.strip("/").split("/")[0])) for n in re.findall(r"\{(\w+)\}", r.path))
                if "/switches" in r.path:
                    kinds_tried.add("switch")
            # 2. The attacker's own objects in the path and everywhere else, but one
            # query parameter or body field naming the victim's object.
            for where, field, kind in _id_fields(r):
                ids = {**own, kind: victim[kind]}
                url = "/api/v1" + _fill(r.path, own)
                body = None
                if r.body is not None:
                    body = _sample(r.body, ids if where == "body" else own,
                                   also=field if where == "body" else None)
                query = dict(needs)
                if where == "query":
                    query[field] = victim[kind]
                resp = _api_request(client, r, url, actor, body, query)
                # Refused: 404 for an id it may not see, 403 for a role that may not
                # act, 400 when the victim's object is rejected as not its own.
                check(resp, denied | {400, 403}, f"{r.method} {r.path} as {label} "
                      f"with the victim's {field} in the {where}")
                tried += 1
                kinds_tried.add("audit" if r.path == "/audit" else kind)
    tally.add("isolation", tried)
    assert {"company", "folder", "document", "connection", "switch", "delivery", "token",
            "user", "integration", "audit"} <= kinds_tried
    assert tried >= 200
    assert not leaks, "\n".join(leaks)
    # Nothing of the victim's was changed by the attempts.
    assert _victim_changes(victim, seq) == []
    assert Document.select().where(Document.trashed_at.is_null(False)).count() == 0
    assert Delivery.select().count() == deliveries_before


def _web_rules(app, method: str):
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("web.") and rule.arguments and method in rule.methods:
            yield rule


# Path parameters that are not ids: a fixed value, so the route is tried anyway.
PLAIN_PARAMS = {"page": 1}


def _web_url(app, rule, ids: dict) -> str | None:
    from flask import url_for
    from werkzeug.routing import BuildError

    values = {}
    for arg in rule.arguments:
        if arg in PLAIN_PARAMS:
            values[arg] = PLAIN_PARAMS[arg]
            continue
        kind = KIND_BY_PARAM.get(arg)
        if kind is None:
            return None  # e.g. an invitation token: knowing it is the authorisation
        values[arg] = ids[kind]
    try:
        with app.test_request_context():
            return url_for(rule.endpoint, **values)
    except BuildError:
        return None


def test_web_pages_never_reach_another_tenant(app, web, world, victim, attackers, tally):
    """Every web page and form (GET and POST, with a valid CSRF token) that takes an
    id, tried by every attacker with the victim's ids: 403 or 404, no trace, no change."""
    seq = _last_seq()
    tried = 0
    leaks = []
    for label, actor, _own in attackers:
        traces = _victim_traces(victim, actor)
        browser = web(actor)
        for method in ("GET", "POST"):
            for rule in _web_rules(app, method):
                url = _web_url(app, rule, victim)
                if url is None:
                    continue
                if method == "GET":
                    resp = browser.get(url)
                else:
                    # A fresh CSRF token from a page the attacker may see.
                    browser.get("/", follow_redirects=True)
                    resp = browser.post(url, {"name": "x", "state": "on", "active": "0",
                                              "document_ids": victim["document"]})
                tried += 1
                body = resp.get_data(as_text=True)
                if resp.status_code not in (403, 404) or any(t in body for t in traces):
                    leaks.append(f"{method} {url} ({rule.endpoint}) as {label}: "
                                 f"{resp.status_code} {body[:150]}")
    tally.add("isolation", tried)
    assert tried >= 5 * 20
    assert not leaks, "\n".join(leaks)
    assert _victim_changes(victim, seq) == []


# Query-string (GET) and form (POST) fields of the web pages that name an object by its id.
WEB_ID_FIELDS = {
    "GET": {"entreprise": "company", "dossier": "folder", "folder_id": "folder"},
    "POST": {"folder_id": "folder", "connection_id": "connection", "document_id": "document",
             "user_id": "user"},
}


def test_web_filters_and_forms_never_take_another_tenants_ids(app, web, world, victim,
                                                              attackers, run_jobs, tally):
    """Every page and form, on the attacker's own objects, with one query-string or
    form field naming the victim's object: no trace of the victim in the reply, no
    change to the victim's objects, never a 5xx."""
    run_jobs()  # indexed: the search page answers from a real index
    seq = _last_seq()
    tried = 0
    leaks = []
    for label, actor, own in attackers:
        traces = _victim_traces(victim, actor)
        browser = web(actor)
        browser.get("/", follow_redirects=True)  # this session's CSRF token
        for method in ("GET", "POST"):
            for rule in app.url_map.iter_rules():
                if (not rule.endpoint.startswith("web.") or method not in rule.methods
                        or rule.endpoint in ("web.auth.logout", "web.auth.login", "web.static")):
                    continue
                url = _web_url(app, rule, own) if rule.arguments else rule.rule
                if url is None or "<" in url:
                    continue
                for field, kind in WEB_ID_FIELDS[method].items():
                    if method == "GET":
                        resp = browser.client.get(url, query_string={field: victim[kind],
                                                                     "q": "facture"})
                    else:
                        resp = browser.post(url, {field: victim[kind], "name": "Essai",
                                                  "state": "on", "confirm": "1",
                                                  "scope": "selection"})
                    tried += 1
                    body = resp.get_data().decode("utf-8", "replace")
                    if resp.status_code >= 500 or any(t in body for t in traces):
                        leaks.append(f"{method} {url} ?{field}=<victim {kind}> as {label}: "
                                     f"{resp.status_code} {body[:150]}")
        # Still logged in: every request above was judged as this attacker.
        assert "/login" not in browser.client.get("/").headers.get("Location", ""), label
    tally.add("isolation", tried)
    assert tried >= 5 * 100
    assert not leaks, "\n".join(leaks)
    assert _victim_changes(victim, seq) == []


FIRM_ONLY_WORDS = re.compile(r"switch|connection|connexions|deliver|livraison|integration|"
                             r"intégration|webhook|Outil|interrupteur|envois|whsec_",
                             re.IGNORECASE)


def test_client_sees_no_trace_of_the_firms_tools(app, client, world, victim, run_jobs, tally):
    """A client's replies, on every API route and every page it can name with its own
    company's ids (firm-only objects included), say nothing of integrations,
    connections, switches or deliveries: not their data, not a count, not an error
    message naming them, not a search snippet."""
    from ged.api import ROUTES

    run_jobs()  # text extracted and indexed: search answers from a real index
    h = world.client_a.headers
    replies = []
    for r in ROUTES:
        if r.public or r.method != "GET":
            continue
        url = "/api/v1" + _fill(r.path, victim)
        query = {p: victim[KIND_BY_PARAM[p]] for p in r.query if p in KIND_BY_PARAM}
        replies.append((f"GET {r.path}", client.get(url, headers=h, query_string=query)))
    # Writes on firm-only routes are refused without naming what they refused.
    for r in ROUTES:
        if r.public or r.method == "GET" or "client" in r.roles:
            continue
        url = "/api/v1" + _fill(r.path, victim)
        body = _sample(r.body, victim) if r.body is not None else None
        replies.append((f"{r.method} {r.path}", _api_request(client, r, url, world.client_a, body)))
    # Search: the tool's name is in the firm's records, never in a client's results.
    for q in ("Outil", "Connexion", SECRET_MARK, "webhook"):
        replies.append((f"search {q}", client.get("/api/v1/search", query_string={"q": q},
                                                  headers=h)))
    c = web_login(app.test_client(), world.client_a.user.email)
    for rule in _web_rules(app, "GET"):
        url = _web_url(app, rule, victim)
        if url is not None:
            replies.append((f"page {url}", c.get(url)))
    for url in ("/", f"/dossiers/{victim['folder']}", f"/recherche?q={SECRET_MARK}", "/envois",
                "/entreprises"):
        replies.append((f"page {url}", c.get(url, follow_redirects=True)))
    seen = []
    for what, resp in replies:
        body = resp.get_data().decode("utf-8", "replace")
        assert resp.status_code < 500, (what, body[:300])
        # The client's own document name carries the marker; only firm-only words matter.
        found = FIRM_ONLY_WORDS.search(body.replace(SECRET_MARK, ""))
        if found:
            seen.append(f"{what}: {resp.status_code} {found.group(0)!r} in {body[:200]}")
    tally.add("isolation", len(replies))
    assert len(replies) >= 40
    assert not seen, "\n".join(seen)
