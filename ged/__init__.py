"""ged: a document-management server for accounting firms and their client companies."""

from __future__ import annotations

import os
import sys

# config.py lives at the project's top level; make it importable from anywhere.
_TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _TOP not in sys.path:
    sys.path.insert(0, _TOP)


def create_app(cfg=None):
    """The Flask application (built by ``ged.app.create_app``; imported only when asked,
    so that a worker or a command never loads Flask)."""
    from .app import create_app as build

    return build(cfg)
