"""How an API operation is declared and answered: the ``route`` decorator (bearer
token, JSON body checked against its schema, unknown fields refused), the route
table ``ROUTES`` it fills (which drives the OpenAPI document and the tenant
isolation tests), the JSON error shape, pagination, and the refusal of NUL bytes."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import wraps

import jsonschema
from flask import Blueprint, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from .. import accounts
from ..errors import GedError, Invalid, RateLimited, TooLarge, Unauthorized

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_JSON_BYTES = 1024 * 1024


@dataclass
class Route:
    """One operation of the API, as the OpenAPI document and the tests see it."""

    method: str
    path: str  # OpenAPI form: /folders/{id}
    endpoint: str
    summary: str
    roles: tuple
    body: dict | None = None
    query: dict = field(default_factory=dict)
    responses: dict = field(default_factory=dict)
    multipart: bool = False
    public: bool = False
    tag: str = "general"


ROUTES: list[Route] = []

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}


def reply(payload, status: int = 200):
    """A JSON reply with this status (201 created, 202 accepted...)."""
    response = jsonify(payload)
    response.status_code = status
    return response


def error_response(status: int, code: str, message: str):
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="ged"'
    return response


def _authenticate():
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        raise Unauthorized("Send an Authorization: Bearer <token> header.", "missing_token")
    return accounts.user_for_token(header[7:].strip())


def _bounded_body() -> bytes:
    """The raw request body, refused past MAX_JSON_BYTES before it is all in memory
    (a chunked body announces no length to check first). Kept for views that
    verify a signature over the raw bytes (``request.get_data()``)."""
    if request.content_length and request.content_length > MAX_JSON_BYTES:
        raise TooLarge("The JSON body is larger than 1 MB.", "body_too_large")
    raw = request.stream.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise TooLarge("The JSON body is larger than 1 MB.", "body_too_large")
    request._cached_data = raw  # what request.get_data() returns from now on
    return raw


NUL_MESSAGE = "The request holds a NUL character (\\0), which no field may contain."
NUL_MESSAGE_FR = "La requête contient un caractère nul (\\0), interdit dans tous les champs."


def _holds_nul(value) -> bool:
    """True when a string anywhere in parsed JSON (keys included) holds a NUL."""
    stack = [value]
    while stack:  # iterative: a deeply nested body must not exhaust the stack
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def refuse_nul_bytes():
    """Refuse a NUL character in the path, the query string or a form field, on
    every route (API and pages): no database stores it (PostgreSQL text cannot) and
    no name needs it. JSON bodies are checked where they are parsed (``_json_body``).
    Registered as a before_request hook: returns the 400 reply, or None."""
    found = "\x00" in request.path or _pairs_hold_nul(request.args)
    api = request.path.startswith("/api/")
    if not found and request.mimetype in ("application/x-www-form-urlencoded",
                                          "multipart/form-data"):
        # An API route reads a form only when it takes uploads; parsing one anywhere
        # else would consume the body that route validates as JSON.
        if not api or _route_of(request.endpoint).multipart:
            found = _pairs_hold_nul(request.form)
    if not found:
        return None
    if api:
        return error_response(400, "invalid_input", NUL_MESSAGE)
    if request.accept_mimetypes.best == "application/json":  # the uploader's XHR
        return error_response(400, "invalid_input", NUL_MESSAGE_FR)
    return render_template("error.html", code=400, message=NUL_MESSAGE_FR), 400


def _pairs_hold_nul(multidict) -> bool:
    return any("\x00" in (k or "") or "\x00" in (v if isinstance(v, str) else "")
               for k, v in multidict.items(multi=True))


def _route_of(endpoint: str | None) -> Route:
    name = (endpoint or "").rpartition(".")[2]
    return next((r for r in ROUTES if r.endpoint == name), Route("", "", "", "", ()))


def _not_json(*_args):
    raise ValueError("not JSON")


def _json_body(schema: dict) -> dict:
    raw = _bounded_body()
    if not raw.strip():
        data = {}
    else:
        bad = Invalid("The body must be JSON (Content-Type: application/json).", "invalid_json")
        if not request.is_json:
            raise bad
        try:
            # NaN and Infinity are not JSON; a deeply nested body must not exhaust the stack.
            data = json.loads(raw, parse_constant=_not_json)
            # A lone surrogate ("\ud800") parses but is not text any database can store.
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except (ValueError, RecursionError, UnicodeError):
            raise bad from None
        if _holds_nul(data):
            raise Invalid(NUL_MESSAGE, "invalid_input")
    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as exc:
        where = ".".join(str(p) for p in exc.absolute_path)
        message = exc.message if len(exc.message) < 200 else exc.message[:200] + "…"
        raise Invalid(f"{where + ': ' if where else ''}{message}", "invalid_body") from None
    return data


def _flask_path(path: str) -> str:
    return re.sub(r"\{(\w+)\}", r"<\1>", path)


def route(method: str, path: str, *, summary: str, roles=("admin", "staff", "client"),
          body: dict | None = None, query: dict | None = None, responses: dict | None = None,
          multipart: bool = False, public: bool = False, tag: str = "general"):
    """Declare an API operation. The view receives the caller as ``user`` (and the
    validated JSON as ``data`` when ``body`` is given) plus the path parameters."""

    def decorator(fn):
        endpoint = fn.__name__

        @wraps(fn)
        def view(**kwargs):
            if not public:
                kwargs["user"] = _authenticate()
            if body is not None:
                kwargs["data"] = _json_body(body)
            return fn(**kwargs)

        bp.add_url_rule(_flask_path(path), endpoint, view, methods=[method])
        ROUTES.append(Route(method, path, endpoint, summary, tuple(roles), body,
                            query or {}, responses or {}, multipart, public, tag))
        return fn

    return decorator


@bp.errorhandler(GedError)
def _ged_error(exc: GedError):
    return api_error_for_path(exc)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    codes = {404: "not_found", 405: "method_not_allowed", 413: "too_large", 400: "bad_request"}
    return error_response(exc.code or 500, codes.get(exc.code, "http_error"),
                          exc.description or exc.name)


def api_error_for_path(exc):
    """JSON errors for /api/ paths even when no API route matched (404, 405)."""
    if isinstance(exc, GedError):
        response = error_response(exc.status, exc.code, exc.message)
        if isinstance(exc, RateLimited) and exc.retry_after:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    codes = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}
    messages = {404: "No such route.", 405: "Method not allowed on this route.",
                413: "The request body is too large."}
    return error_response(exc.code, codes.get(exc.code, "http_error"),
                          messages.get(exc.code, exc.description))


# The query parameters of a paginated list, as page_params() reads them: declared
# once so the OpenAPI document says exactly what the server accepts.
LIMIT_PARAM = {"type": "integer", "minimum": 1, "maximum": 500}
CURSOR_PARAM = {"type": "string", "pattern": "^[0-9a-z]{1,64}$"}
PAGE_QUERY = {"limit": LIMIT_PARAM, "cursor": CURSOR_PARAM}


def page_params(default: int = 50):
    """``limit`` (1..500) and ``cursor`` from the query string."""
    raw = request.args.get("limit")
    try:
        limit = int(raw) if raw not in (None, "") else default
    except ValueError:
        raise Invalid("limit must be a whole number.", "invalid_limit") from None
    if not 1 <= limit <= 500:
        raise Invalid("limit must be between 1 and 500.", "invalid_limit")
    cursor = request.args.get("cursor") or None
    if cursor is not None and (len(cursor) > 64 or not re.fullmatch(r"[0-9a-z]+", cursor)):
        raise Invalid("cursor is not valid.", "invalid_cursor")
    return limit, cursor


def paginate(query, id_field, limit: int, cursor: str | None, to_dict, *, descending=False):
    """Keyset pagination over a time-ordered id: {"items": [...], "next_cursor": ...}."""
    if cursor:
        query = query.where(id_field < cursor if descending else id_field > cursor)
    rows = list(query.order_by(id_field.desc() if descending else id_field).limit(limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [to_dict(r) for r in rows],
            "next_cursor": str(getattr(rows[-1], id_field.name)) if more and rows else None}

