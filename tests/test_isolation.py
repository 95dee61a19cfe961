"""Tenant isolation, generated from the route table.

Every API route declared with ``@route`` and every web page that takes an id is
tried by every role of another tenant (another firm; a client of another company
of the same firm; staff not assigned to the company) with the victim's ids. Each
answer must be 404 (or 403 where the caller's role may not use the route at all),
and must not carry a byte of the victim's data. A new route is covered without
writing a new test.
"""

from __future__ import annotations

import io
import re

import pytest

from conftest import text_pdf, web_login

# The first path segment names the kind of object an {id} is.
KIND_BY_SEGMENT = {
    "companies": "company", "folders": "folder", "documents": "document",
    "connections": "connection", "deliveries": "delivery", "tokens": "token", "users": "user",
    "integrations": "integration",
}
KIND_BY_PARAM = {
    "company_id": "company", "folder_id": "folder", "document_id": "document",
    "connection_id": "connection", "delivery_id": "delivery", "user_id": "user",
    "integration_id": "integration", "token_id": "token",
}
SECRET_MARK = "Confidentiel-Victime-7Q"


def _sample(schema: dict, ids: dict, name: str = ""):
    """A minimal valid value for a JSON schema, using the victim's ids for id fields."""
    if name in KIND_BY_PARAM:
        return ids[KIND_BY_PARAM[name]]
    if name == "user_ids":
        return [ids["user"]]
    if "enum" in schema:
        return next((v for v in schema["enum"] if v is not None), None)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    if kind == "object" or "properties" in schema:
        return {key: _sample(sub, ids, key)
                for key, sub in schema.get("properties", {}).items()
                if key in schema.get("required", [])}
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


@pytest.fixture
def victim(app, world, other_world, client):
    """Objects of company A of the first firm: what the attackers try to reach."""
    from ged.models import ApiToken, Connection, Delivery, Document, Integration

    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    r = client.post(f"/api/v1/folders/{achats.id}/documents",
                    data={"file": [(io.BytesIO(text_pdf(SECRET_MARK)), f"{SECRET_MARK}.pdf")]},
                    headers=world.client_a.headers, content_type="multipart/form-data")
    doc = Document.get_by_id(r.get_json()["items"][0]["id"])
    integration = Integration.create(firm=world.firm.id, name=f"Outil {SECRET_MARK}", kind="http")
    connection = Connection.create(firm=world.firm.id, company=world.company_a.id,
                                   integration=integration, name=f"Connexion {SECRET_MARK}",
                                   kind="http", url="https://example.org/hook",
                                   secret="whsec_" + "A" * 44)
    delivery = Delivery.create(firm=world.firm.id, company=world.company_a.id, document=doc.id,
                               connection=connection.id, trigger="manual")
    token = ApiToken.get(ApiToken.user == world.client_a.user.id)
    return {
        "company": world.company_a.id, "folder": achats.id, "document": doc.id,
        "connection": connection.id, "delivery": delivery.id, "token": token.id,
        "user": world.client_a.user.id, "integration": integration.id,
    }


def _attackers(world, other_world):
    """(label, actor) pairs that must not reach company A of the first firm."""
    from ged.models import StaffAssignment

    # The first firm's staff member is moved off company A: assigned to B only.
    StaffAssignment.delete().where(StaffAssignment.user == world.staff.user.id).execute()
    StaffAssignment.create(user=world.staff.user.id, company=world.company_b.id)
    return [
        ("other firm admin", other_world.admin),
        ("other firm staff", other_world.staff),
        ("other firm client", other_world.client_a),
        ("client of another company", world.client_b),
        ("staff not assigned", world.staff),
    ]


def _api_cases():
    from ged.api import ROUTES

    for r in ROUTES:
        if r.public or "{" not in r.path:
            continue
        yield r


def _fill(path: str, ids: dict) -> str:
    segments = path.strip("/").split("/")

    def sub(match):
        name = match.group(1)
        if name != "id":
            return ids[KIND_BY_PARAM[name]]
        return ids[KIND_BY_SEGMENT[segments[0]]]

    return re.sub(r"\{(\w+)\}", sub, path)


def test_api_routes_never_reach_another_tenant(app, client, world, other_world, victim):
    from ged.models import Delivery, Document

    tried = 0
    leaks = []
    for r in _api_cases():
        url = "/api/v1" + _fill(r.path, victim)
        for label, actor in _attackers(world, other_world):
            kwargs = {"headers": actor.headers}
            if r.body is not None:
                kwargs["json"] = _sample(r.body, victim)
            if r.multipart:
                kwargs["data"] = {"file": [(io.BytesIO(text_pdf()), "x.pdf")]}
                kwargs["content_type"] = "multipart/form-data"
            resp = client.open(url, method=r.method, **kwargs)
            tried += 1
            allowed = {404} if actor.user.role in r.roles else {403, 404}
            body = resp.get_data(as_text=True)
            if resp.status_code not in allowed or SECRET_MARK in body or any(
                    victim[k] in body for k in ("document", "folder", "connection", "delivery")):
                leaks.append(f"{r.method} {r.path} as {label}: {resp.status_code} {body[:200]}")
    assert tried >= 20
    assert not leaks, "\n".join(leaks)
    # Nothing was changed by the attempts.
    assert Document.select().where(Document.trashed_at.is_null(False)).count() == 0
    assert Delivery.select().count() == 1


def _web_rules(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("web.") and rule.arguments and "GET" in rule.methods:
            yield rule


def test_web_pages_never_reach_another_tenant(app, world, other_world, victim):
    from werkzeug.routing import BuildError

    tried = 0
    leaks = []
    for label, actor in _attackers(world, other_world):
        c = web_login(app.test_client(), actor.user.email)
        for rule in _web_rules(app):
            values = {}
            for arg in rule.arguments:
                kind = KIND_BY_PARAM.get(arg)
                if kind is None:
                    break
                values[arg] = victim[kind]
            else:
                try:
                    from flask import url_for

                    with app.test_request_context():
                        url = url_for(rule.endpoint, **values)
                except BuildError:
                    continue
                resp = c.get(url)
                tried += 1
                body = resp.get_data(as_text=True)
                if resp.status_code not in (403, 404) or SECRET_MARK in body:
                    leaks.append(f"GET {url} ({rule.endpoint}) as {label}: {resp.status_code}")
    assert tried >= 5 * 3
    assert not leaks, "\n".join(leaks)


FIRM_ONLY_WORDS = re.compile(r"switch|connection|connexion|deliver|livraison|integration|"
                             r"intégration|webhook|Outil|interrupteur", re.IGNORECASE)


def test_client_sees_no_trace_of_the_firms_tools(app, client, world, victim):
    """A client's own pages and API replies say nothing of integrations, even counts."""
    h = world.client_a.headers
    replies = [
        client.get(f"/api/v1/folders/{victim['folder']}", headers=h),
        client.get(f"/api/v1/documents/{victim['document']}", headers=h),
        client.get(f"/api/v1/documents/{victim['document']}/deliveries", headers=h),
        client.get(f"/api/v1/folders/{victim['folder']}/switches", headers=h),
        client.get(f"/api/v1/companies/{victim['company']}/connections", headers=h),
    ]
    c = web_login(app.test_client(), world.client_a.user.email)
    replies.append(c.get(f"/dossiers/{victim['folder']}"))
    for resp in replies:
        body = resp.get_data(as_text=True)
        # The client's own document name carries the marker; only firm-only words matter.
        assert not FIRM_ONLY_WORDS.search(body.replace(SECRET_MARK, "")), (resp.request.path, body[:300])
