"""API route for the new fiscal year."""

from __future__ import annotations

from flask import jsonify

from .. import fiscal_years
from .routing import route


@route("POST", "/fiscal-years", roles=("admin",), tag="companies",
       summary="Open a fiscal year for every client company (or those named): the annual "
               "tree from the firm's template, last year's switches carried; dry_run "
               "changes nothing; a second run creates nothing twice",
       body={"type": "object", "additionalProperties": False, "required": ["year"],
             "properties": {"year": {"type": "integer", "minimum": 1990, "maximum": 2100},
                            "company_ids": {"type": "array", "maxItems": 5000,
                                            "items": {"type": "string", "maxLength": 64}},
                            "carry_switches": {"type": "boolean"},
                            "dry_run": {"type": "boolean"}}},
       responses={200: {"type": "object",
                        "required": ["companies", "folders_created", "switches_carried",
                                     "skipped"],
                        "properties": {"companies": {"type": "integer"},
                                       "folders_created": {"type": "integer"},
                                       "switches_carried": {"type": "integer"},
                                       "skipped": {"type": "array"}}}})
def open_fiscal_year(user, data):
    return jsonify(fiscal_years.open_year(user, data["year"],
                                          company_ids=data.get("company_ids"),
                                          carry_switches=data.get("carry_switches", True),
                                          dry_run=data.get("dry_run", False)))
