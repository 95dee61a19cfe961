"""The configuration of this process and the services bound from it.

The web app, the worker and every CLI command call ``setup()`` once with a
Config; domain code then reads ``config()`` and ``store()`` without needing a
Flask app context (workers have none).
"""

from __future__ import annotations

from config import Config

from . import queue
from .db import init_db

_state: dict = {"config": None}


def setup(cfg: Config | None = None) -> Config:
    """Bind the database, Redis and the blob store for this process."""
    cfg = cfg or Config.from_env()
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    init_db(cfg.database_url)
    queue.configure(cfg.redis_url)
    _state["config"] = cfg
    return cfg


def config() -> Config:
    if _state["config"] is None:
        setup()
    return _state["config"]


def store():
    """The blob store named by GED_STORAGE_URL."""
    from .storage import store_for

    return store_for(config().storage_url)
