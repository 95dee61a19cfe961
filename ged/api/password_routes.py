"""API routes for passwords: a forgotten one (a single-use link by e-mail) and a
change by the signed-in user."""

from __future__ import annotations

from flask import jsonify, request

from .. import passwords
from .routing import route

OK = {"type": "object", "properties": {"message": {"type": "string"}}}


@route("POST", "/password-reset", public=True, tag="auth",
       summary="Mail a single-use link valid 30 minutes to reset a password; the same "
               "202 whether or not the address exists (429 past the limits per address and "
               "per client address, counted alike for any address)",
       body={"type": "object", "additionalProperties": False, "required": ["email"],
             "properties": {"email": {"type": "string", "maxLength": 254}}},
       responses={202: OK})
def password_reset(data):
    passwords.request_link(data["email"], request.remote_addr)
    response = jsonify({"message": "If this address belongs to an account, a link to choose "
                                   "a new password was sent to it."})
    response.status_code = 202
    return response


@route("POST", "/password-reset/confirm", public=True, tag="auth",
       summary="Set a new password with a reset link's token (once); every web session "
               "of the user ends",
       body={"type": "object", "additionalProperties": False, "required": ["token", "password"],
             "properties": {"token": {"type": "string", "maxLength": 100},
                            "password": {"type": "string", "maxLength": 1000}}},
       responses={200: OK})
def password_reset_confirm(data):
    passwords.confirm(data["token"], data["password"])
    return jsonify({"message": "The password was changed; sign in with it."})


@route("PUT", "/me/password", tag="auth",
       summary="Change your password (the current one is checked); your web sessions end",
       body={"type": "object", "additionalProperties": False,
             "required": ["current_password", "new_password"],
             "properties": {"current_password": {"type": "string", "maxLength": 1000},
                            "new_password": {"type": "string", "maxLength": 1000}}},
       responses={200: OK})
def change_password(user, data):
    passwords.change(user, data["current_password"], data["new_password"])
    return jsonify({"message": "The password was changed."})
