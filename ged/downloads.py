"""Stored bytes handed to a browser or a tool: streamed from the blob store, with
headers that keep a browser from running them (the web pages, the API and the
signed delivery links all answer through here)."""

from __future__ import annotations

from urllib.parse import quote

from flask import Response

from . import runtime
from .blobs import iter_blob
from .models import Document, Firm


def file_response(doc: Document, inline: bool = False) -> Response:
    """Stream a document's bytes, as an attachment (or ``inline`` for a preview)."""
    response = Response(iter_blob(runtime.store(), doc.blob_id), mimetype=doc.content_type,
                        direct_passthrough=True)
    response.headers["Content-Length"] = str(doc.size)
    ascii_name = doc.name.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    disposition = "inline" if inline else "attachment"
    response.headers["Content-Disposition"] = (
        f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(doc.name)}")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["ETag"] = f'"{doc.blob_id}"'
    return response


def logo_response(firm: Firm) -> Response:
    """The firm's logo (the caller checked it has one)."""
    response = Response(iter_blob(runtime.store(), firm.logo_sha256),
                        mimetype=firm.logo_content_type)
    # private: which firm's logo a URL answers depends on who asks (and the host).
    response.headers["Cache-Control"] = "private, max-age=300"
    response.headers["Content-Security-Policy"] = "default-src 'none'"
    return response


def zip_response(archive) -> Response:
    """A ZIP (an ``export.Export``) streamed as an attachment, at constant memory (the API
    and the web pages alike)."""
    response = Response(archive.chunks(), mimetype="application/zip", direct_passthrough=True)
    response.headers["Content-Length"] = str(archive.size)
    response.headers.set("Content-Disposition", "attachment", filename=archive.filename)
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
