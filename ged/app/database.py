"""One database connection per request: opened before it, closed after it."""

from __future__ import annotations

from flask import Flask

from ..db import db


def _open() -> None:
    db.connect(reuse_if_open=True)


def _close(_exc) -> None:
    if not db.is_closed():
        db.close()


def init_app(app: Flask) -> None:
    """Open the connection before each request and close it in the teardown."""
    app.before_request(_open)
    app.teardown_request(_close)
