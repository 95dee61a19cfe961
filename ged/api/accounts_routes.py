"""API routes for tokens, the caller, users and companies."""

from __future__ import annotations

from flask import current_app, jsonify, request

from .. import accounts, audit, companies, permissions
from ..errors import Invalid, NotFound
from ..models import ApiToken, AuditEvent, Company, User
from .routing import PAGE_QUERY, page_params, paginate, reply, route

S = {"type": "string"}
NAME = {"type": "string", "minLength": 1, "maxLength": 200}
ID = {"type": "string", "minLength": 1, "maxLength": 64}


@route("POST", "/tokens", summary="Create an API token with an e-mail and password",
       public=True, tag="auth",
       body={"type": "object", "additionalProperties": False,
             "required": ["email", "password", "name"],
             "properties": {"email": {"type": "string", "maxLength": 254},
                            "password": {"type": "string", "maxLength": 1000},
                            "name": NAME,
                            "totp": {"type": "string", "maxLength": 32},
                            "expires_in_days": {"type": "integer", "minimum": 1, "maximum": 3650}}},
       responses={201: {"type": "object", "required": ["token", "id"],
                        "properties": {"token": S, "id": S}}})
def create_token(data):
    cfg = current_app.config["GED"]
    user = accounts.authenticate(data["email"], data["password"], request.remote_addr,
                                 max_attempts=cfg.login_max_attempts,
                                 window=cfg.login_window_seconds)
    from .. import totp

    totp.check_for_token(user, data.get("totp"), ip=request.remote_addr)  # the code too
    token, plain = accounts.create_token(user, user, data["name"], data.get("expires_in_days"))
    return reply({"token": plain, "id": token.id}, 201)


@route("DELETE", "/tokens/{id}", summary="Revoke one of your tokens (admins: any token of the firm)",
       tag="auth", responses={204: None})
def revoke_token(user, id):
    token = ApiToken.select(ApiToken, User).join(User).where(ApiToken.id == id).first()
    if token is None or token.user.firm_id != user.firm_id or (
            token.user_id != user.id and user.role != "admin"):
        raise NotFound("Token not found.")
    accounts.revoke_token(user, token)
    return "", 204


@route("GET", "/me", summary="The caller", tag="auth",
       responses={200: {"type": "object", "required": ["id", "email", "name", "role", "firm"],
                        "properties": {"id": S, "email": S, "name": S, "role": S,
                                       "firm": {"type": "object"},
                                       "company_id": {"type": ["string", "null"]}}}})
def me(user):
    return jsonify(accounts.user_dict(user))


USER_SCHEMA = {"type": "object", "properties": {"id": S, "email": S, "name": S, "role": S,
                                                 "company_id": {"type": ["string", "null"]}}}


@route("POST", "/users", summary="Create a user (admins)", roles=("admin",), tag="accounts",
       body={"type": "object", "additionalProperties": False,
             "required": ["email", "name", "role"],
             "properties": {"email": {"type": "string", "maxLength": 254}, "name": NAME,
                            "role": {"enum": list(accounts.ROLES)},
                            "company_id": {"type": ["string", "null"], "maxLength": 64},
                            "password": {"type": ["string", "null"], "maxLength": 1000}}},
       responses={201: USER_SCHEMA})
def create_user(user, data):
    permissions.require_role(user, "admin")
    company = None
    if data.get("company_id"):
        company = permissions.company_for(user, data["company_id"])
    created = accounts.create_user(user, user.firm, email=data["email"], name=data["name"],
                                   role=data["role"], company=company,
                                   password=data.get("password"))
    return reply(accounts.user_dict(created), 201)


@route("GET", "/users", summary="The firm's users (admins)", roles=("admin",), tag="accounts",
       query=PAGE_QUERY,
       responses={200: {"type": "object", "properties": {"items": {"type": "array"}}}})
def list_users(user):
    permissions.require_role(user, "admin")
    limit, cursor = page_params()
    return jsonify(paginate(User.select().where(User.firm == user.firm_id), User.id, limit,
                            cursor, accounts.user_dict))


@route("PATCH", "/users/{id}", summary="Enable or disable a user, or rename them (admins)",
       roles=("admin",), tag="accounts",
       body={"type": "object", "additionalProperties": False,
             "properties": {"active": {"type": "boolean"}, "name": NAME}},
       responses={200: USER_SCHEMA})
def update_user(user, id, data):
    permissions.require_role(user, "admin")
    target = User.get_or_none((User.id == id) & (User.firm == user.firm_id))
    if target is None:
        raise NotFound("User not found.")
    if "active" in data and data["active"] != target.active:
        if target.id == user.id:
            raise Invalid("You cannot disable yourself.", "cannot_disable_self")
        target = accounts.set_active(user, target, data["active"])
    if data.get("name"):
        target = accounts.rename(user, target, data["name"])
    return jsonify(accounts.user_dict(target))


COMPANY_SCHEMA = {"type": "object", "required": ["id", "name", "status", "root_folder_id"],
                  "properties": {"id": S, "name": S, "status": S, "root_folder_id": S,
                                 "siren": {"type": ["string", "null"]}}}


@route("POST", "/companies", summary="Create a company (admins)", roles=("admin",),
       tag="companies",
       body={"type": "object", "additionalProperties": False, "required": ["name"],
             "properties": {"name": NAME, "siren": {"type": ["string", "null"], "maxLength": 20},
                            "status": {"enum": ["client", "prospect"]},
                            "template": {"enum": ["annual", None]},
                            "year": {"type": "integer", "minimum": 1990, "maximum": 2100}}},
       responses={201: COMPANY_SCHEMA})
def create_company(user, data):
    permissions.require_role(user, "admin")
    company = companies.create_company(user, user.firm, name=data["name"],
                                       siren=data.get("siren"),
                                       status=data.get("status", "client"),
                                       template=data.get("template"), year=data.get("year"))
    return reply(companies.company_dict(company), 201)


@route("GET", "/companies", summary="The companies the caller may see", roles=("admin", "staff"),
       tag="companies", query={**PAGE_QUERY, "status": {"enum": ["client", "prospect"]}},
       responses={200: {"type": "object", "required": ["items", "next_cursor"],
                        "properties": {"items": {"type": "array", "items": COMPANY_SCHEMA},
                                       "next_cursor": {"type": ["string", "null"]}}}})
def list_companies(user):
    permissions.require_role(user, "admin", "staff",
                             message="Client users see only their own company.")
    limit, cursor = page_params()
    query = permissions.visible_companies(user)
    if request.args.get("status") in companies.STATUSES:
        query = query.where(Company.status == request.args["status"])
    return jsonify(paginate(query, Company.id, limit, cursor, companies.company_dict))


@route("GET", "/companies/{id}", summary="One company", tag="companies",
       responses={200: COMPANY_SCHEMA})
def get_company(user, id):
    return jsonify(companies.company_dict(permissions.company_for(user, id)))


@route("PATCH", "/companies/{id}", summary="Rename a company or convert a prospect (admins)",
       roles=("admin",), tag="companies",
       body={"type": "object", "additionalProperties": False,
             "properties": {"name": NAME, "siren": {"type": ["string", "null"], "maxLength": 20},
                            "status": {"enum": ["client", "prospect"]}}},
       responses={200: COMPANY_SCHEMA})
def update_company(user, id, data):
    company = permissions.company_for(user, id)
    permissions.require_role(user, "admin")
    return jsonify(companies.company_dict(companies.update_company(user, company, **data)))


@route("PUT", "/companies/{id}/staff", summary="Assign staff to a company (admins)",
       roles=("admin",), tag="companies",
       body={"type": "object", "additionalProperties": False, "required": ["user_ids"],
             "properties": {"user_ids": {"type": "array", "maxItems": 500,
                                         "items": {"type": "string", "maxLength": 64}}}},
       responses={200: {"type": "object", "properties": {"user_ids": {"type": "array"}}}})
def assign_staff(user, id, data):
    company = permissions.company_for(user, id)
    permissions.require_role(user, "admin")
    users = companies.assign_staff(user, company, data["user_ids"])
    return jsonify({"company_id": company.id, "user_ids": [u.id for u in users]})


@route("GET", "/audit", summary="The audit trail, newest first (firm users)",
       roles=("admin", "staff"), tag="audit",
       query={"company_id": S, **PAGE_QUERY},
       responses={200: {"type": "object", "properties": {"items": {"type": "array"}}}})
def audit_trail(user):
    permissions.require_role(user, "admin", "staff")
    limit, cursor = page_params()
    query = AuditEvent.select().where(AuditEvent.firm == user.firm_id)
    company_id = request.args.get("company_id")
    if company_id:
        permissions.company_for(user, company_id)
        query = query.where(AuditEvent.company_id == company_id)
    elif user.role != "admin":
        query = query.where(AuditEvent.company_id.in_(permissions.visible_company_ids(user)))
    if cursor:
        try:
            query = query.where(AuditEvent.seq < int(cursor, 36))
        except ValueError:
            raise Invalid("cursor is not valid.", "invalid_cursor") from None
    rows = list(query.order_by(AuditEvent.seq.desc()).limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    return jsonify({"items": [audit.to_dict(e) for e in rows],
                    "next_cursor": _base36(rows[-1].seq) if more and rows else None})


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out
