"""WSGI entry point for gunicorn: `gunicorn ged.wsgi:app`."""

from . import create_app

app = create_app()
