"""API routes for a document's comment thread and the caller's notification settings."""

from __future__ import annotations

from flask import jsonify

from .. import comments, notifications, permissions
from .routing import reply, route

S = {"type": "string"}
COMMENT_SCHEMA = {"type": "object", "required": ["id", "author", "body", "internal", "created_at"],
                  "properties": {"id": S, "document_id": S, "body": S,
                                 "internal": {"type": "boolean"}, "created_at": S,
                                 "author": {"type": "object",
                                            "properties": {"id": {"type": ["string", "null"]},
                                                           "name": S}}}}
MODE = {"enum": list(notifications.MODES)}
PREFS_SCHEMA = {"type": "object", "additionalProperties": False, "minProperties": 1,
                "properties": {"new_documents": MODE, "requests": {"type": "boolean"},
                               "comments": {"type": "boolean"},
                               "rejections": {"type": "boolean"}, "delivery_failures": MODE}}


@route("GET", "/documents/{id}/comments", summary="The document's comment thread, oldest first "
       "(a client never sees the firm's internal notes)", tag="comments",
       responses={200: {"type": "object", "required": ["items"],
                        "properties": {"items": {"type": "array", "items": COMMENT_SCHEMA}}}})
def list_comments(user, id):
    doc = permissions.document_for(user, id)
    return jsonify({"items": [comments.comment_dict(c) for c in comments.visible(user, doc)]})


@route("POST", "/documents/{id}/comments", summary="Add a comment; internal: true (firm users) "
       "makes a note the client never sees", tag="comments",
       body={"type": "object", "additionalProperties": False, "required": ["body"],
             "properties": {"body": {"type": "string", "minLength": 1,
                                     "maxLength": comments.MAX_BODY},
                            "internal": {"type": "boolean"}}},
       responses={201: COMMENT_SCHEMA})
def add_comment(user, id, data):
    doc = permissions.document_for(user, id)
    comment = comments.add(user, doc, data["body"], data.get("internal", False))
    return reply(comments.comment_dict(comment), 201)


@route("GET", "/me/notifications", summary="What the caller is told by e-mail", tag="accounts",
       responses={200: {"type": "object"}})
def get_notifications(user):
    return jsonify(notifications.preferences(user))


@route("PUT", "/me/notifications", summary="Choose what the caller is told by e-mail "
       "(delivery_failures: firm users)", tag="accounts", body=PREFS_SCHEMA,
       responses={200: {"type": "object"}})
def put_notifications(user, data):
    return jsonify(notifications.set_preferences(user, data))
