"""Readiness of the backing services, for /readyz and `ged check`."""

from __future__ import annotations

from . import fleet, runtime
from .db import db


def checks() -> dict:
    """{"database": ..., "redis": ..., "storage": ...}: "ok" or what failed."""
    result = {}
    try:
        db.execute_sql("SELECT 1").fetchone()
        result["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        result["database"] = f"error: {type(exc).__name__}"
    if not fleet.redis_url():
        result["redis"] = f"error: {fleet.NO_REDIS}"
    else:
        result["redis"] = "ok" if fleet.ping() else "error: unreachable"
    try:
        runtime.store().check()
        result["storage"] = "ok"
    except Exception as exc:  # noqa: BLE001
        result["storage"] = f"error: {type(exc).__name__}"
    return result
