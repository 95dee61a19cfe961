"""API routes for keeping and handing back the archive (export, trash, company legal
hold) and for the e-mail drop addresses."""

from __future__ import annotations

from flask import jsonify, request

from .. import archive, documents, downloads, drops, export, folders, permissions
from ..errors import NotFound
from ..models import Document
from .routing import PAGE_QUERY, page_params, paginate, route
from .folders_routes import DOCUMENT_SCHEMA

S = {"type": "string"}
NULLS = {"type": ["string", "null"]}
DROP_SCHEMA = {"type": "object", "required": ["id", "address", "company_id", "folder_id"],
               "properties": {"id": S, "address": S, "company_id": S, "folder_id": NULLS,
                              "folder_path": S, "created_at": S}}
HOLD_SCHEMA = {"type": "object", "required": ["id", "legal_hold"],
               "properties": {"id": S, "name": S, "legal_hold": {"type": "boolean"},
                              "legal_hold_reason": NULLS}}


@route("GET", "/companies/{id}/export", summary="The company's documents as a streamed ZIP "
       "with manifest.json, manifest.csv and audit.jsonl (firm users); for_client=true: the "
       "copy for the client, without firm-only folders and firm-only events",
       roles=("admin", "staff"), tag="archive",
       query={"folder_id": {"type": "string", "description": "only this folder and below"},
              "for_client": {"type": "string", "enum": ["true", "false"]}},
       responses={200: None})
def export_company(user, id):
    return downloads.zip_response(export.prepare(
        user, id, request.args.get("folder_id"),
        for_client=request.args.get("for_client") == "true"))


@route("GET", "/companies/{id}/trash", summary="The company's trashed documents (firm users)",
       roles=("admin", "staff"), tag="archive",
       query=PAGE_QUERY,
       responses={200: {"type": "object", "required": ["items", "next_cursor"],
                        "properties": {"items": {"type": "array", "items": DOCUMENT_SCHEMA},
                                       "next_cursor": NULLS}}})
def company_trash(user, id):
    company = permissions.company_for(user, id)
    limit, cursor = page_params()
    query = archive.trash_listing(user, company)
    return jsonify(paginate(query, Document.id, limit, cursor,
                            lambda d: documents.document_dict(d, user), descending=True))


@route("PUT", "/companies/{id}/hold", summary="Set or release a legal hold on a whole company "
       "(admins)", roles=("admin",), tag="archive",
       body={"type": "object", "additionalProperties": False, "required": ["legal_hold"],
             "properties": {"legal_hold": {"type": "boolean"},
                            "reason": {"type": ["string", "null"], "maxLength": 2000}}},
       responses={200: HOLD_SCHEMA})
def company_hold(user, id, data):
    company = permissions.company_for(user, id)
    company = archive.set_company_hold(user, company, data["legal_hold"], data.get("reason"))
    return jsonify(archive.company_hold_dict(company))


@route("GET", "/companies/{id}/drop-addresses", summary="The company's e-mail drop addresses "
       "the caller may see", tag="drop",
       responses={200: {"type": "object", "required": ["items"],
                        "properties": {"items": {"type": "array", "items": DROP_SCHEMA}}}})
def list_drop_addresses(user, id):
    company = permissions.company_for(user, id)
    return jsonify({"items": [drops.as_dict(d) for d in drops.visible(user, company)]})


@route("POST", "/companies/{id}/drop-address/regenerate", summary="Replace the company's drop "
       "address by a new one; the old one stops working (firm users)",
       roles=("admin", "staff"), tag="drop", responses={200: DROP_SCHEMA})
def regenerate_company_drop(user, id):
    company = permissions.company_for(user, id)
    permissions.require_role(user, "admin", "staff")
    return jsonify(drops.as_dict(drops.rotate(user, company)))


@route("GET", "/folders/{id}/drop-address", summary="The folder's own drop address", tag="drop",
       responses={200: DROP_SCHEMA})
def get_folder_drop(user, id):
    folder = permissions.folder_for(user, id)
    # The root folder's address is the company's own.
    drop = drops.active(folder.company, folder if folder.parent_id else None)
    if drop is None:
        raise NotFound("This folder has no drop address of its own.", "no_drop_address")
    return jsonify(drops.as_dict(drop, folders.display_path(folder)))


@route("POST", "/folders/{id}/drop-address", summary="Create (or replace) the folder's own "
       "drop address (firm users)", roles=("admin", "staff"), tag="drop",
       responses={200: DROP_SCHEMA})
def regenerate_folder_drop(user, id):
    folder = permissions.folder_for(user, id)
    permissions.require_role(user, "admin", "staff")
    if folder.parent_id is None:
        drop = drops.rotate(user, folder.company)
    else:
        drop = drops.rotate(user, folder.company, folder)
    return jsonify(drops.as_dict(drop, folders.display_path(folder)))


@route("DELETE", "/folders/{id}/drop-address", summary="Stop the folder's own drop address "
       "(firm users)", roles=("admin", "staff"), tag="drop", responses={204: None})
def revoke_folder_drop(user, id):
    folder = permissions.folder_for(user, id)
    permissions.require_role(user, "admin", "staff")
    drop = drops.active(folder.company, folder) if folder.parent_id else None
    if drop is None:
        raise NotFound("This folder has no drop address of its own.", "no_drop_address")
    drops.revoke(user, drop)
    return "", 204

