"""API routes for two-factor sign-in (RFC 6238)."""

from __future__ import annotations

from flask import jsonify, request

from .. import totp
from .routing import route

CODE = {"type": "object", "additionalProperties": False, "required": ["code"],
        "properties": {"code": {"type": "string", "maxLength": 32}}}


@route("POST", "/me/totp", tag="auth",
       summary="Start two-factor sign-in: a new secret and its otpauth:// URI (not on until "
               "confirmed)",
       responses={200: {"type": "object", "required": ["secret", "otpauth_uri"],
                        "properties": {"secret": {"type": "string"},
                                       "otpauth_uri": {"type": "string"}}}})
def totp_start(user):
    secret, uri = totp.start(user)
    return jsonify({"secret": secret, "otpauth_uri": uri})


@route("POST", "/me/totp/confirm", tag="auth", body=CODE,
       summary="Turn two-factor sign-in on with a first code; the ten recovery codes are "
               "shown once",
       responses={200: {"type": "object", "required": ["recovery_codes"],
                        "properties": {"recovery_codes": {"type": "array",
                                                          "items": {"type": "string"}}}}})
def totp_confirm(user, data):
    return jsonify({"recovery_codes": totp.confirm(user, data["code"])})


@route("DELETE", "/me/totp", tag="auth", body=CODE,
       summary="Turn two-factor sign-in off with a current code (refused when the firm "
               "requires it)", responses={204: None})
def totp_disable(user, data):
    totp.disable(user, data["code"], ip=request.remote_addr)
    return "", 204
