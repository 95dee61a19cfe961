"""Health probes for a load balancer or an orchestrator: /healthz (the process
answers) and /readyz (the database, Redis and the storage answer)."""

from __future__ import annotations

from flask import Flask, jsonify

from .. import health


def healthz():
    return jsonify({"status": "ok"})


def readyz():
    checks = health.checks()
    ok = all(v == "ok" for v in checks.values())
    return jsonify(checks), (200 if ok else 503)


def init_app(app: Flask) -> None:
    """The two probe routes (no login, no database session needed)."""
    app.add_url_rule("/healthz", "healthz", healthz, methods=["GET"])
    app.add_url_rule("/readyz", "readyz", readyz, methods=["GET"])
