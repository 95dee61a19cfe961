"""API routes for the firm's settings."""

from __future__ import annotations

from flask import jsonify

from .. import firm_settings, permissions
from .routing import route

SETTINGS = {"type": "object",
            "required": ["id", "name", "default_role", "default_company_ids", "require_totp"],
            "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                           "default_role": {"enum": list(firm_settings.ROLES)},
                           "default_company_ids": {"type": "array"},
                           "require_totp": {"enum": list(firm_settings.TOTP_POLICIES)},
                           "locale": {"type": "string"}}}


@route("GET", "/firm", summary="The firm's settings (firm users)", roles=("admin", "staff"),
       tag="accounts", responses={200: SETTINGS})
def get_firm(user):
    permissions.require_role(user, "admin", "staff")
    return jsonify(firm_settings.as_dict(firm_settings.get(user.firm_id), user.firm))


@route("PATCH", "/firm", summary="Change the firm's settings (admins)", roles=("admin",),
       tag="accounts",
       body={"type": "object", "additionalProperties": False,
             "properties": {"default_role": {"enum": list(firm_settings.ROLES)},
                            "default_company_ids": {"type": "array", "maxItems": 500,
                                                    "items": {"type": "string",
                                                              "maxLength": 64}},
                            "require_totp": {"enum": list(firm_settings.TOTP_POLICIES)},
                            "locale": {"enum": list(firm_settings.LOCALES)}}},
       responses={200: SETTINGS})
def update_firm(user, data):
    permissions.require_role(user, "admin")
    return jsonify(firm_settings.as_dict(firm_settings.update(user, **data), user.firm))
