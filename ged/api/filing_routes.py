"""API routes for filing: bulk actions on documents, ZIP downloads, folders back
out of the trash."""

from __future__ import annotations

from flask import jsonify

from .. import downloads, filing, folders, permissions
from .routing import route
from .folders_routes import FOLDER_SCHEMA

IDS = {"type": "array", "minItems": 1, "maxItems": filing.MAX_IDS,
       "items": {"type": "string", "maxLength": 64}}




@route("POST", "/documents/bulk", roles=("admin", "staff"), tag="documents",
       summary="Move, trash or restore several documents, each as if done alone (a move into "
               "a switched-on folder is a deposit there for the switches)",
       body={"type": "object", "additionalProperties": False, "required": ["action", "ids"],
             "properties": {"action": {"enum": list(filing.ACTIONS)}, "ids": IDS,
                            "folder_id": {"type": "string", "maxLength": 64}}},
       responses={200: {"type": "object", "required": ["done", "refused"],
                        "properties": {"done": {"type": "integer"},
                                       "refused": {"type": "array"}}}})
def bulk_documents(user, data):
    return jsonify(filing.bulk(user, data["action"], data["ids"], data.get("folder_id")))


@route("POST", "/documents/zip", tag="documents",
       summary="The documents named, as a ZIP streamed (only what the caller may see)",
       body={"type": "object", "additionalProperties": False, "required": ["ids"],
             "properties": {"ids": IDS}},
       responses={200: None})
def zip_documents(user, data):
    return downloads.zip_response(filing.zip_documents(user, data["ids"]))


@route("GET", "/folders/{id}/zip", tag="folders",
       summary="The folder and everything below it the caller may see, as a ZIP streamed",
       responses={200: None})
def zip_folder(user, id):
    return downloads.zip_response(filing.zip_folder(user, permissions.folder_for(user, id)))


@route("POST", "/folders/{id}/restore", roles=("admin", "staff"), tag="folders",
       summary="A folder and everything below it back out of the trash",
       responses={200: FOLDER_SCHEMA})
def restore_folder(user, id):
    folder = filing.trashed_folder_for(user, id)
    return jsonify(folders.folder_dict(folders.restore(user, folder)))
