"""API routes for folders and documents."""

from __future__ import annotations

from flask import jsonify, request

from .. import documents, downloads, folders, permissions, switches
from ..errors import Invalid
from .routing import reply, route

S = {"type": "string"}
NULLS = {"type": ["string", "null"]}
FOLDER_SCHEMA = {"type": "object", "required": ["id", "name", "parent_id", "path"],
                 "properties": {"id": S, "name": S, "parent_id": NULLS, "path": S,
                                "company_id": S}}
DOCUMENT_SCHEMA = {
    "type": "object",
    "required": ["id", "name", "folder_id", "company_id", "size", "sha256", "content_type",
                 "channel", "deposited_at", "status", "text_status"],
    "properties": {"id": S, "name": S, "folder_id": S, "company_id": S, "size": {"type": "integer"},
                   "sha256": S, "content_type": S,
                   "channel": {"enum": ["web", "api", "email", "import"]},
                   "deposited_at": S, "deposited_by": NULLS,
                   "status": {"enum": ["deposited", "sending", "validated", "rejected",
                                       "replaced"]},
                   "status_reason": NULLS, "replaces_id": NULLS, "replaced_by_id": NULLS,
                   "text_status": {"enum": ["pending", "done", "partial", "failed", "encrypted",
                                            "unsupported"]},
                   "retain_until": NULLS, "legal_hold": {"type": "boolean"},
                   "trashed_at": NULLS, "facturx": {"type": ["object", "null"]}},
}

# Something the depositor should know about a file that was kept (e.g. "encrypted_pdf":
# a PDF that needs a password, which the firm may not be able to read).
WARNING_SCHEMA = {"type": "object", "required": ["document_id", "name", "code", "message"],
                  "properties": {"document_id": S, "name": S, "code": S, "message": S}}


@route("POST", "/folders", summary="Create a folder", tag="folders",
       body={"type": "object", "additionalProperties": False, "required": ["parent_id", "name"],
             "properties": {"parent_id": {"type": "string", "maxLength": 64},
                            "name": {"type": "string", "maxLength": 300},
                            "firm_only": {"type": "boolean"}}},
       responses={201: FOLDER_SCHEMA})
def create_folder(user, data):
    parent = permissions.folder_for(user, data["parent_id"])
    if not permissions.is_firm_user(user):
        if not parent.clients_can_create:
            permissions.require_role(user, "admin", "staff",
                                     message="You may not create folders here.")
        if data.get("firm_only"):
            permissions.require_role(user, "admin", "staff")
    folder = folders.create_folder(user, parent, data["name"],
                                   firm_only=bool(data.get("firm_only")))
    return reply(folders.folder_dict(folder), 201)


@route("GET", "/folders/{id}", summary="A folder with its children and documents", tag="folders",
       responses={200: FOLDER_SCHEMA})
def get_folder(user, id):
    folder = permissions.folder_for(user, id)
    chain = folders.ancestors(folder)
    data = folders.folder_dict(folder, folders.display_path(folder, chain))
    data["children"] = [folders.folder_dict(c, data["path"].rstrip("/") + "/" + c.name)
                        for c in folders.children_of(user, folder)]
    data["documents"] = [documents.document_dict(d, user) for d in documents.listing(user, folder)]
    if permissions.is_firm_user(user):
        conns = switches.company_connections(folder.company_id)
        states = switches.effective_switches(folder, conns, [f.id for f in chain])
        data["switches"] = [states[c.id].as_dict() for c in conns]
    return jsonify(data)


@route("PATCH", "/folders/{id}", summary="Rename or move a folder (firm users)",
       roles=("admin", "staff"), tag="folders",
       body={"type": "object", "additionalProperties": False,
             "properties": {"name": {"type": "string", "maxLength": 300},
                            "parent_id": {"type": "string", "maxLength": 64},
                            "firm_only": {"type": "boolean"},
                            "retention_years": {"type": ["integer", "null"], "minimum": 0,
                                                "maximum": 100}}},
       responses={200: FOLDER_SCHEMA})
def update_folder(user, id, data):
    folder = permissions.folder_for(user, id)
    permissions.may_change_tree(user)
    if "parent_id" in data:
        target = permissions.folder_for(user, data["parent_id"])
        folder = folders.move(user, folder, target)
    if "name" in data:
        folder = folders.rename(user, folder, data["name"])
    if "firm_only" in data:
        folder = folders.set_firm_only(user, folder, data["firm_only"])
    if "retention_years" in data:
        folder = folders.set_retention(user, folder, data["retention_years"])
    return jsonify(folders.folder_dict(folder))


@route("DELETE", "/folders/{id}", summary="Send a folder and its contents to the trash",
       roles=("admin", "staff"), tag="folders", responses={200: FOLDER_SCHEMA})
def trash_folder(user, id):
    folder = permissions.folder_for(user, id)
    permissions.may_change_tree(user)
    return jsonify(folders.folder_dict(folders.trash(user, folder)))


@route("POST", "/folders/{id}/documents", summary="Deposit one or more files (field file)",
       tag="documents", multipart=True,
       responses={201: {"type": "object", "required": ["items", "warnings"],
                        "properties": {"items": {"type": "array", "items": DOCUMENT_SCHEMA},
                                       "warnings": {"type": "array", "items": WARNING_SCHEMA}}}})
def deposit(user, id):
    folder = permissions.folder_for(user, id)
    files = request.files.getlist("file")
    if not files:
        raise Invalid('Send the file(s) in a multipart field named "file".', "no_file")
    uploads = documents.stage_uploads((f.filename or "", f.stream) for f in files)
    docs = documents.deposit(user, folder, uploads, "api")
    return reply({"items": [documents.document_dict(d, user) for d in docs],
                  "warnings": documents.warnings_of(docs)}, 201)


@route("POST", "/documents/{id}/replace",
       summary="Replace a document by a new file (field file) in the same folder; the old "
               "one becomes replaced and stays",
       tag="documents", multipart=True, responses={201: DOCUMENT_SCHEMA})
def replace_document(user, id):
    doc = permissions.document_for(user, id)
    files = request.files.getlist("file")
    if len(files) != 1:
        raise Invalid('Send exactly one file in a multipart field named "file".', "one_file")
    (upload,) = documents.stage_uploads([(files[0].filename or "", files[0].stream)])
    return reply(documents.document_dict(documents.replace(user, doc, upload, "api"), user), 201)


@route("GET", "/documents/{id}", summary="A document", tag="documents",
       responses={200: DOCUMENT_SCHEMA})
def get_document(user, id):
    doc = permissions.document_for(user, id, include_trashed=True)
    return jsonify(documents.document_dict(doc, user))


@route("GET", "/documents/{id}/file", summary="The document's bytes, as an attachment",
       tag="documents", responses={200: None})
def download(user, id):
    doc = permissions.document_for(user, id, include_trashed=True)
    return downloads.file_response(doc)


@route("PATCH", "/documents/{id}", summary="Move or rename a document (firm users)",
       roles=("admin", "staff"), tag="documents",
       body={"type": "object", "additionalProperties": False,
             "properties": {"folder_id": {"type": "string", "maxLength": 64},
                            "name": {"type": "string", "maxLength": 300}}},
       responses={200: DOCUMENT_SCHEMA})
def update_document(user, id, data):
    doc = permissions.document_for(user, id)
    permissions.require_role(user, "admin", "staff")
    if "folder_id" in data:
        target = permissions.folder_for(user, data["folder_id"])
        doc = documents.move(user, doc, target)
    if "name" in data:
        doc = documents.rename(user, doc, data["name"])
    return jsonify(documents.document_dict(doc, user))


@route("DELETE", "/documents/{id}", summary="To the trash; ?permanent=true deletes for good (admins)",
       tag="documents", query={"permanent": {"type": "string", "enum": ["true", "false"]}},
       responses={200: DOCUMENT_SCHEMA, 204: None})
def delete_document(user, id):
    permanent = request.args.get("permanent", "false").lower() == "true"
    doc = permissions.document_for(user, id, include_trashed=permanent)
    if permanent:
        documents.delete_permanently(user, doc)
        return "", 204
    return jsonify(documents.document_dict(documents.trash(user, doc), user))


@route("POST", "/documents/{id}/restore", summary="Back out of the trash (firm users)",
       roles=("admin", "staff"), tag="documents", responses={200: DOCUMENT_SCHEMA})
def restore_document(user, id):
    doc = permissions.document_for(user, id, include_trashed=True)
    permissions.require_role(user, "admin", "staff")
    return jsonify(documents.document_dict(documents.restore(user, doc), user))


@route("PUT", "/documents/{id}/hold", summary="Set or release a legal hold (admins)",
       roles=("admin",), tag="documents",
       body={"type": "object", "additionalProperties": False, "required": ["legal_hold"],
             "properties": {"legal_hold": {"type": "boolean"},
                            "reason": {"type": ["string", "null"], "maxLength": 2000}}},
       responses={200: DOCUMENT_SCHEMA})
def hold(user, id, data):
    doc = permissions.document_for(user, id, include_trashed=True)
    return jsonify(documents.document_dict(
        documents.set_hold(user, doc, data["legal_hold"], data.get("reason")), user))
