"""Where a page sends the user next: a ``next`` target is followed only when it is a
page of this application."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from flask import current_app, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from ..names import control_character


def safe_target(target: str | None, default: str) -> str:
    """``target`` when it is a page of this application, else ``default``: parsed
    (no scheme, no host, one leading slash) and matched against the app's routes, so
    no crafted ``next`` (``//evil``, ``/\\t/evil``, ``https:evil``) sends the user away."""
    if not target or len(target) > 2000:
        return default
    # Browsers drop tabs and newlines from URLs and read a backslash as "/": such a
    # target is refused rather than guessed at.
    if "\\" in target or control_character(target) or any(ch.isspace() for ch in target):
        return default
    parts = urlsplit(target)
    if (parts.scheme or parts.netloc or not parts.path.startswith("/")
            or parts.path.startswith("//")):
        return default
    try:
        current_app.url_map.bind("ged.invalid").match(parts.path, method="GET")
    except (HTTPException, RequestRedirect):
        return default
    return urlunsplit(("", "", parts.path, parts.query, ""))


def return_to(default: str) -> str:
    """The form's ``next`` field when it is a page of this site, else ``default``."""
    return safe_target(request.form.get("next"), default)
