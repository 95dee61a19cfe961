"""API routes for integrations, connections, folder switches and deliveries.

All of them are firm-only: a client user gets a plain 404 that names nothing. The
two public routes are for the linked tool: ``POST /deliveries/{id}/status``,
authenticated by the connection's Standard Webhooks signature instead of a token,
and ``GET /deliveries/{id}/file``, by the server's signature in the link.
"""

from __future__ import annotations

from flask import jsonify, request

from .. import deliveries, downloads, integrations, permissions, switches
from ..errors import Invalid, NotFound, TooLarge, Unauthorized
from ..models import Company, Connection, Delivery, Document
from .routing import PAGE_QUERY, page_params, paginate, reply, route

S = {"type": "string"}
NULLS = {"type": ["string", "null"]}
ID = {"type": "string", "minLength": 1, "maxLength": 64}
FIRM = ("admin", "staff")
MAX_STATUS_BODY = 64 * 1024

CONNECTION_SCHEMA = {
    "type": "object", "required": ["id", "integration_id", "company_id", "name", "kind", "paused"],
    "properties": {"id": S, "integration_id": S, "company_id": S, "name": S,
                   "kind": {"enum": ["email", "http"]}, "address": S, "url": S,
                   "options": {"type": "object"}, "paused": {"type": "boolean"},
                   "paused_reason": NULLS, "last_success_at": NULLS, "secret": S}}
DELIVERY_SCHEMA = {
    "type": "object",
    "required": ["id", "connection_id", "status", "attempts", "last_error", "created_at",
                 "updated_at", "trigger"],
    "properties": {"id": S, "document_id": S, "connection_id": S,
                   "status": {"enum": ["queued", "sending", "sent", "accepted", "validated",
                                       "rejected", "failed"]},
                   "attempts": {"type": "integer"}, "last_error": NULLS, "message": NULLS,
                   "created_at": S, "updated_at": S, "next_attempt_at": NULLS,
                   "trigger": {"enum": ["switch", "manual"]}}}
SWITCH_SCHEMA = {
    "type": "object", "required": ["connection_id", "state", "effective", "source_folder_id", "since"],
    "properties": {"connection_id": S, "state": {"enum": ["on", "off", "inherit"]},
                   "effective": {"type": "boolean"}, "source_folder_id": NULLS, "since": NULLS}}
ITEMS = {"type": "object", "required": ["items"], "properties": {"items": {"type": "array"}}}
PAGE = {"type": "object", "required": ["items", "next_cursor"],
        "properties": {"items": {"type": "array"}, "next_cursor": NULLS}}


# --- catalog and integrations -------------------------------------------------------------


@route("GET", "/integrations/catalog", summary="The presets a firm can install", roles=FIRM,
       tag="integrations", responses={200: ITEMS})
def catalog(user):
    permissions.require_firm_user(user, hidden=True)
    return jsonify({"items": integrations.catalog()})


@route("GET", "/integrations", summary="The firm's installed integrations", roles=FIRM,
       tag="integrations", responses={200: ITEMS})
def list_integrations(user):
    permissions.require_firm_user(user, hidden=True)
    return jsonify({"items": [integrations.integration_dict(i)
                              for i in integrations.installed(user.firm_id)]})


@route("POST", "/integrations", summary="Install an integration for the firm (admins)",
       roles=("admin",), tag="integrations",
       body={"type": "object", "additionalProperties": False, "required": ["name"],
             "properties": {"preset": {"type": "string", "maxLength": 40},
                            "kind": {"enum": ["email", "http"]},
                            "name": {"type": "string", "minLength": 1, "maxLength": 200}}},
       responses={201: {"type": "object", "required": ["id", "name", "kind"],
                        "properties": {"id": S, "name": S, "kind": S}}})
def install(user, data):
    permissions.require_firm_user(user, hidden=True)
    integration = integrations.install(user, user.firm, preset=data.get("preset"),
                                       kind=data.get("kind"), name=data["name"])
    return reply(integrations.integration_dict(integration), 201)


@route("DELETE", "/integrations/{id}", summary="Remove an integration no company uses (admins)",
       roles=("admin",), tag="integrations", responses={204: None})
def uninstall(user, id):
    integration = permissions.integration_for(user, id)
    integrations.uninstall(user, integration)
    return "", 204


# --- connections ---------------------------------------------------------------------------


@route("POST", "/companies/{id}/connections", summary="Activate an integration for a company",
       roles=FIRM, tag="connections",
       body={"type": "object", "additionalProperties": False, "required": ["integration_id"],
             "properties": {"integration_id": ID,
                            "name": {"type": "string", "minLength": 1, "maxLength": 200},
                            "address": {"type": "string", "maxLength": 254},
                            "url": {"type": "string", "maxLength": 2000},
                            "options": {"type": "object"}}},
       responses={201: CONNECTION_SCHEMA})
def create_connection(user, id, data):
    permissions.require_firm_user(user, hidden=True)
    company = permissions.company_for(user, id)
    integration = permissions.integration_for(user, data["integration_id"])
    conn, secret = integrations.connect(user, company, integration, name=data.get("name"),
                                        address=data.get("address"), url=data.get("url"),
                                        options=data.get("options"))
    payload = integrations.connection_dict(conn)
    if secret:
        payload["secret"] = secret  # shown this once
    return reply(payload, 201)


@route("GET", "/companies/{id}/connections", summary="A company's connections", roles=FIRM,
       tag="connections", responses={200: ITEMS})
def list_connections(user, id):
    permissions.require_firm_user(user, hidden=True)
    company = permissions.company_for(user, id)
    return jsonify({"items": [integrations.connection_dict(c)
                              for c in switches.company_connections(company.id)]})


@route("GET", "/connections/{id}", summary="A connection", roles=FIRM, tag="connections",
       responses={200: CONNECTION_SCHEMA})
def get_connection(user, id):
    permissions.require_firm_user(user, hidden=True)
    return jsonify(integrations.connection_dict(permissions.connection_for(user, id)))


@route("PATCH", "/connections/{id}", summary="Rename, retarget, pause or resume a connection",
       roles=FIRM, tag="connections",
       body={"type": "object", "additionalProperties": False,
             "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 200},
                            "address": {"type": "string", "maxLength": 254},
                            "url": {"type": "string", "maxLength": 2000},
                            "options": {"type": "object"},
                            "paused": {"type": "boolean"}}},
       responses={200: CONNECTION_SCHEMA})
def update_connection(user, id, data):
    permissions.require_firm_user(user, hidden=True)
    conn = permissions.connection_for(user, id)
    return jsonify(integrations.connection_dict(integrations.update_connection(user, conn, **data)))


@route("DELETE", "/connections/{id}", summary="Delete a connection (its deliveries are kept)",
       roles=FIRM, tag="connections", responses={204: None})
def delete_connection(user, id):
    permissions.require_firm_user(user, hidden=True)
    integrations.delete_connection(user, permissions.connection_for(user, id))
    return "", 204


@route("POST", "/connections/{id}/rotate-secret",
       summary="A new signing secret, shown once; the old one signs alongside for a grace period",
       roles=FIRM, tag="connections",
       responses={200: {"type": "object", "required": ["secret"], "properties": {"secret": S}}})
def rotate_secret(user, id):
    permissions.require_firm_user(user, hidden=True)
    conn = permissions.connection_for(user, id)
    return jsonify({"secret": integrations.rotate_secret(user, conn)})


@route("POST", "/connections/{id}/test",
       summary="Try the connection now (signed test request or test message); records no delivery",
       roles=FIRM, tag="connections",
       responses={200: {"type": "object", "required": ["ok", "elapsed_ms"],
                        "properties": {"ok": {"type": "boolean"},
                                       "status_code": {"type": "integer"}, "error": S,
                                       "elapsed_ms": {"type": "integer"}}}})
def test_connection(user, id):
    permissions.require_firm_user(user, hidden=True)
    conn = permissions.connection_for(user, id)
    return jsonify(deliveries.test_connection(user, conn))


@route("POST", "/connections/{id}/send",
       summary="Send documents by hand: a selection (document_ids) or a folder and below "
               "(folder_id); documents the tool already has are skipped unless resend is true",
       roles=FIRM, tag="deliveries",
       body={"type": "object", "additionalProperties": False,
             "properties": {"document_ids": {"type": "array", "minItems": 1, "maxItems": 5000,
                                             "items": ID},
                            "folder_id": ID,
                            "resend": {"type": "boolean"}}},
       responses={202: {"type": "object", "required": ["items", "skipped"],
                        "properties": {"items": {"type": "array"},
                                       "skipped": {"type": "integer"},
                                       "skipped_document_ids": {"type": "array",
                                                                "items": S}}}})
def send_many(user, id, data):
    permissions.require_firm_user(user, hidden=True)
    conn = permissions.connection_for(user, id)
    if bool(data.get("document_ids")) == bool(data.get("folder_id")):
        raise Invalid("Give either document_ids or folder_id.", "invalid_selection")
    resend = bool(data.get("resend"))
    if data.get("folder_id"):
        folder = permissions.folder_for(user, data["folder_id"])
        sent = deliveries.send_manual(user, conn, folder=folder, resend=resend)
    else:
        docs = [permissions.document_for(user, d) for d in dict.fromkeys(data["document_ids"])]
        sent = deliveries.send_manual(user, conn, documents=docs, resend=resend)
    return reply({"items": [deliveries.delivery_dict(d) for d in sent.deliveries],
                    "skipped": len(sent.skipped), "skipped_document_ids": sent.skipped}, 202)


# --- switches -----------------------------------------------------------------------------


@route("PUT", "/folders/{id}/switches/{connection_id}",
       summary="Turn a folder's switch on, off, or back to inherit; sends nothing already there",
       roles=FIRM, tag="switches",
       body={"type": "object", "additionalProperties": False, "required": ["state"],
             "properties": {"state": {"enum": ["on", "off", "inherit"]}}},
       responses={200: SWITCH_SCHEMA})
def set_switch(user, id, connection_id, data):
    permissions.require_firm_user(user, hidden=True)
    folder = permissions.folder_for(user, id)
    conn = permissions.connection_for(user, connection_id)
    if conn.company_id != folder.company_id:
        raise NotFound("Connection not found.")
    return jsonify(switches.set_switch(user, folder, conn, data["state"]))


@route("GET", "/folders/{id}/switches", summary="The folder's switch for each connection",
       roles=FIRM, tag="switches", responses={200: ITEMS})
def list_switches(user, id):
    permissions.require_firm_user(user, hidden=True)
    folder = permissions.folder_for(user, id)
    conns = switches.company_connections(folder.company_id)
    states = switches.effective_switches(folder, conns)
    return jsonify({"items": [states[c.id].as_dict() for c in conns]})


# --- deliveries ---------------------------------------------------------------------------


def _dashboard_item(delivery: Delivery) -> dict:
    data = deliveries.delivery_dict(delivery)
    data["document_name"] = delivery.document.name
    data["connection_name"] = delivery.connection.name
    data["company_id"] = delivery.company_id
    return data


def _delivery_query():
    return (Delivery.select(Delivery, Document, Connection)
            .join(Document, on=(Delivery.document == Document.id))
            .switch(Delivery).join(Connection, on=(Delivery.connection == Connection.id)))


@route("GET", "/documents/{id}/deliveries", summary="A document's deliveries", roles=FIRM,
       tag="deliveries", responses={200: ITEMS})
def document_deliveries(user, id):
    permissions.require_firm_user(user, hidden=True)
    doc = permissions.document_for(user, id, include_trashed=True)
    rows = _delivery_query().where(Delivery.document == doc.id).order_by(Delivery.id)
    return jsonify({"items": [_dashboard_item(d) for d in rows]})


@route("POST", "/documents/{id}/deliveries", summary="Send a document by hand, or send it again",
       roles=FIRM, tag="deliveries",
       body={"type": "object", "additionalProperties": False, "required": ["connection_id"],
             "properties": {"connection_id": ID}},
       responses={202: DELIVERY_SCHEMA})
def send_document(user, id, data):
    permissions.require_firm_user(user, hidden=True)
    doc = permissions.document_for(user, id)
    conn = permissions.connection_for(user, data["connection_id"])
    if conn.company_id != doc.company_id:
        raise NotFound("Connection not found.")
    # One document named by hand: sending it again is what was asked.
    (delivery,) = deliveries.send_manual(user, conn, documents=[doc], resend=True).deliveries
    return reply(deliveries.delivery_dict(delivery), 202)


@route("GET", "/deliveries/{id}", summary="A delivery", roles=FIRM, tag="deliveries",
       responses={200: DELIVERY_SCHEMA})
def get_delivery(user, id):
    permissions.require_firm_user(user, hidden=True)
    delivery = permissions.delivery_for(user, id)
    return jsonify(_dashboard_item(_delivery_query().where(Delivery.id == delivery.id).get()))


@route("GET", "/deliveries/{id}/file",
       summary="The delivery's document, for the linked tool: the signed link of the "
               "envelope's data.file_url (no token); 404 once expired or if altered",
       public=True, tag="deliveries",
       query={"expires": {"type": "string", "description": "Unix seconds, as in file_url"},
              "signature": {"type": "string", "description": "as in file_url"}},
       responses={200: None})
def delivery_file(id):
    doc = deliveries.open_file_link(id, request.args.get("expires", ""),
                                    request.args.get("signature", ""))
    return downloads.file_response(doc)


STATUS_FILTER = {"status": {"type": "string", "enum": ["queued", "sending", "sent", "accepted",
                                                       "validated", "rejected", "failed"]}}


def _status_filter(query):
    status = request.args.get("status")
    if status:
        if status not in STATUS_FILTER["status"]["enum"]:
            raise Invalid("Unknown delivery status.", "invalid_status")
        query = query.where(Delivery.status == status)
    return query


@route("GET", "/companies/{id}/deliveries",
       summary="A company's deliveries, newest first (?status=failed for the ones to look at)",
       roles=FIRM, tag="deliveries", query={**STATUS_FILTER, **PAGE_QUERY},
       responses={200: PAGE})
def company_deliveries(user, id):
    permissions.require_firm_user(user, hidden=True)
    company = permissions.company_for(user, id)
    limit, cursor = page_params()
    query = _status_filter(_delivery_query().where(Delivery.company == company.id))
    return jsonify(paginate(query, Delivery.id, limit, cursor, _dashboard_item, descending=True))


@route("GET", "/deliveries",
       summary="Deliveries of every company the caller sees, newest first (staff dashboard)",
       roles=FIRM, tag="deliveries",
       query={**STATUS_FILTER, **PAGE_QUERY, "company_id": S}, responses={200: PAGE})
def all_deliveries(user):
    permissions.require_firm_user(user, hidden=True)
    limit, cursor = page_params()
    if request.args.get("company_id"):
        company_ids = [permissions.company_for(user, request.args["company_id"]).id]
    else:
        company_ids = permissions.visible_companies(user).select(Company.id)
    query = _status_filter(_delivery_query().where(Delivery.company.in_(company_ids)))
    return jsonify(paginate(query, Delivery.id, limit, cursor, _dashboard_item, descending=True))


@route("POST", "/deliveries/{id}/status",
       summary="The linked tool's verdict, signed like a delivery (Standard Webhooks)",
       public=True, tag="deliveries",
       body={"type": "object", "additionalProperties": False, "required": ["status"],
             "properties": {"status": {"enum": ["validated", "rejected"]},
                            "message": {"type": ["string", "null"], "maxLength": 2000}}},
       responses={200: {"type": "object", "required": ["id", "status"],
                        "properties": {"id": S, "status": S}}})
def delivery_status(id, data):
    if (request.content_length or 0) > MAX_STATUS_BODY:
        raise TooLarge("The status message is too large.", "body_too_large")
    raw = request.get_data(cache=True)  # the JSON parser cached it: the signed bytes
    delivery, conn, msg_id = deliveries.authenticate_status(id, request.headers, raw)
    if not deliveries.remember_message(conn, msg_id):
        raise Unauthorized("This webhook-id was already received: a replay is refused.",
                           "replayed_message")
    delivery = deliveries.record_verdict(delivery, conn, data["status"], data.get("message"))
    return jsonify({"id": delivery.id, "status": delivery.status})
