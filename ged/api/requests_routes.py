"""API routes for document requests (« demandes de pièces », API.md)."""

from __future__ import annotations

from flask import jsonify, request

from .. import document_requests as requests_
from .. import documents, permissions
from ..errors import Invalid
from ..models import DocumentRequest
from .routing import PAGE_QUERY, page_params, paginate, reply, route
from .folders_routes import DOCUMENT_SCHEMA, WARNING_SCHEMA

S = {"type": "string"}
NULLS = {"type": ["string", "null"]}
DATE = {"type": ["string", "null"], "format": "date", "maxLength": 10,
        "pattern": r"^\d{4}-\d{2}-\d{2}$"}
REQUEST_SCHEMA = {
    "type": "object",
    "required": ["id", "company_id", "title", "status", "due_date", "documents"],
    "properties": {"id": S, "company_id": S, "title": S, "description": NULLS,
                   "folder_id": NULLS, "due_date": NULLS,
                   "status": {"enum": list(requests_.STATUSES)}, "late": {"type": "boolean"},
                   "created_by": NULLS, "created_at": S,
                   "reminders_sent": {"type": "integer"}, "last_reminder_at": NULLS,
                   "documents": {"type": "array", "items": S}},
}
LIST_SCHEMA = {"type": "object", "required": ["items", "next_cursor"],
               "properties": {"items": {"type": "array", "items": REQUEST_SCHEMA},
                              "next_cursor": NULLS}}
TITLE = {"type": "string", "minLength": 1, "maxLength": 200}
DESCRIPTION = {"type": ["string", "null"], "maxLength": 5000}


@route("GET", "/requests", summary="Document requests the caller may see (a client: its "
       "company's), newest first", tag="requests",
       query={**PAGE_QUERY, "company_id": S,
              "status": {"type": "string", "enum": [*requests_.STATUSES, "late"]}},
       responses={200: LIST_SCHEMA})
def list_requests(user):
    limit, cursor = page_params()
    query = requests_.visible(user)
    if request.args.get("company_id"):
        company = permissions.company_for(user, request.args["company_id"])
        query = query.where(DocumentRequest.company == company.id)
    status = request.args.get("status")
    if status:
        if status not in (*requests_.STATUSES, "late"):
            raise Invalid("status must be open, fulfilled, cancelled or late.", "invalid_status")
        if status == "late":
            query = query.where((DocumentRequest.status == "open")
                                & (DocumentRequest.due_date < requests_.today()))
        else:
            query = query.where(DocumentRequest.status == status)
    page = paginate(query, DocumentRequest.id, limit, cursor, lambda r: r, descending=True)
    docs = requests_.documents_of([r.id for r in page["items"]])
    page["items"] = [requests_.request_dict(r, user, docs.get(r.id, [])) for r in page["items"]]
    return jsonify(page)


@route("GET", "/requests/{id}", summary="One document request", tag="requests",
       responses={200: REQUEST_SCHEMA})
def get_request(user, id):
    return jsonify(requests_.request_dict(requests_.request_for(user, id), user))


@route("POST", "/companies/{id}/requests", summary="Ask a company for documents; its client "
       "users are told by e-mail (firm users)", roles=("admin", "staff"), tag="requests",
       body={"type": "object", "additionalProperties": False, "required": ["title"],
             "properties": {"title": TITLE, "description": DESCRIPTION,
                            "folder_id": NULLS, "due_date": DATE}},
       responses={201: REQUEST_SCHEMA})
def create_request(user, id, data):
    company = permissions.company_for(user, id)
    req = requests_.create(user, company, **data)
    return reply(requests_.request_dict(req, user, []), 201)


@route("POST", "/requests/bulk", summary="One request per company, the folder found by its "
       "path in each company's tree (firm users)", roles=("admin", "staff"), tag="requests",
       body={"type": "object", "additionalProperties": False, "required": ["company_ids", "title"],
             "properties": {"company_ids": {"type": "array", "minItems": 1,
                                            "maxItems": requests_.MAX_BULK, "items": S},
                            "title": TITLE, "description": DESCRIPTION,
                            "folder_path": {"type": ["string", "null"], "maxLength": 4000},
                            "due_date": DATE}},
       responses={201: {"type": "object", "required": ["items"],
                        "properties": {"items": {"type": "array", "items": REQUEST_SCHEMA}}}})
def bulk_requests(user, data):
    made = requests_.create_bulk(user, data["company_ids"], title=data["title"],
                                 description=data.get("description"),
                                 folder_path=data.get("folder_path"),
                                 due_date=data.get("due_date"))
    return reply({"items": [requests_.request_dict(r, user, []) for r in made]}, 201)


@route("POST", "/requests/{id}/documents", summary="Deposit files (field file) against a "
       "request, into its folder; the request becomes fulfilled", tag="requests",
       multipart=True,
       responses={201: {"type": "object", "required": ["items", "warnings"],
                        "properties": {"items": {"type": "array", "items": DOCUMENT_SCHEMA},
                                       "warnings": {"type": "array", "items": WARNING_SCHEMA}}}})
def request_documents(user, id):
    req = requests_.request_for(user, id)
    files = request.files.getlist("file")
    if not files:
        raise Invalid('Send the file(s) in a multipart field named "file".', "no_file")
    uploads = documents.stage_uploads((f.filename or "", f.stream) for f in files)
    docs = requests_.deposit(user, req, uploads, "api")
    return reply({"items": [documents.document_dict(d, user) for d in docs],
                  "warnings": documents.warnings_of(docs)}, 201)


@route("PATCH", "/requests/{id}", summary="Reopen (the reason in description), cancel, mark "
       "fulfilled, move the date, retitle (firm users)", roles=("admin", "staff"),
       tag="requests",
       body={"type": "object", "additionalProperties": False, "minProperties": 1,
             "properties": {"status": {"enum": list(requests_.STATUSES)}, "due_date": DATE,
                            "title": TITLE, "description": DESCRIPTION}},
       responses={200: REQUEST_SCHEMA})
def update_request(user, id, data):
    req = requests_.request_for(user, id)
    permissions.require_role(user, "admin", "staff")
    return jsonify(requests_.request_dict(requests_.update(user, req, data), user))


@route("POST", "/requests/{id}/remind", summary="« Relancer »: a reminder e-mail now (firm "
       "users; open requests)", roles=("admin", "staff"), tag="requests",
       responses={202: REQUEST_SCHEMA})
def remind_request(user, id):
    req = requests_.request_for(user, id)
    permissions.require_role(user, "admin", "staff")
    requests_.remind(user, req)
    return reply(requests_.request_dict(requests_.request_for(user, id), user), 202)
