"""flask-login: who the request is from. A session is a row of the database
(ged/sessions.py), not just a signed cookie."""

from __future__ import annotations

from flask import Flask
from flask_login import LoginManager

from ..web import signing


def init_app(app: Flask) -> None:
    """Pages that need a login send to the login page; the session's user is loaded
    from the database."""
    login = LoginManager(app)
    login.login_view = "web.auth.login"
    login.login_message = "Connectez-vous pour accéder à cette page."
    login.user_loader(signing.session_user)
