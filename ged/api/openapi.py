"""The OpenAPI 3.1 document, built from the route table so it grows with the API."""

from __future__ import annotations

import re

from flask import jsonify

from ..documents import MAX_FILES_PER_DEPOSIT
from .routing import ERROR_SCHEMA, ROUTES, route

ERROR_STATUSES = {400: "Bad input", 401: "Missing or bad token", 403: "Role may not do this",
                  404: "Not found, or not visible to the caller", 409: "Conflict",
                  413: "Too large", 415: "Unsupported type", 429: "Too many attempts"}
# Statuses only some routes answer, declared in their own ``responses``.
ROUTE_STATUSES = {503: "A backing service is unavailable for now; try again shortly"}


def build() -> dict:
    paths: dict = {}
    for r in ROUTES:
        op: dict = {"operationId": r.endpoint, "summary": r.summary, "tags": [r.tag],
                    "x-roles": list(r.roles)}
        params = [{"name": name, "in": "path", "required": True,
                   "schema": {"type": "string", "pattern": "^[0-9a-z]{1,64}$"}}
                  for name in re.findall(r"\{(\w+)\}", r.path)]
        # A query parameter the route cannot do without says so with "x-required".
        params += [{"name": name, "in": "query", "required": bool(schema.get("x-required")),
                    "schema": {k: v for k, v in schema.items() if k != "x-required"}}
                   for name, schema in r.query.items()]
        if params:
            op["parameters"] = params
        if r.body is not None:
            op["requestBody"] = {"required": True,
                                 "content": {"application/json": {"schema": r.body}}}
        if r.multipart:
            op["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "array", "minItems": 1,
                                        "maxItems": MAX_FILES_PER_DEPOSIT,
                                        "items": {"type": "string", "format": "binary"}}}}}}}
        responses = {}
        for status, schema in (r.responses or {200: None}).items():
            entry: dict = {"description": "Success" if int(status) < 400
                           else ROUTE_STATUSES.get(int(status), "Error")}
            if schema is not None:
                entry["content"] = {"application/json": {"schema": schema}}
            responses[str(status)] = entry
        for status, text in ERROR_STATUSES.items():
            responses.setdefault(str(status), {
                "description": text,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
        op["responses"] = responses
        if not r.public:
            op["security"] = [{"bearer": []}]
        paths.setdefault("/api/v1" + r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "ged API", "version": "1",
                 "description": "Document management for accounting firms. See shared/API.md."},
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR_SCHEMA},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


@route("GET", "/openapi.json", summary="This document", public=True, tag="meta",
       responses={200: {"type": "object"}})
def openapi():
    return jsonify(build())
