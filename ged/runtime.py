"""The configuration of this process and the services bound from it.

The web app, the worker and every CLI command call ``setup()`` once with a
Config; domain code then reads ``config()`` and ``store()`` without needing a
Flask app context (workers have none).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from config import Config

from . import fleet
from .blobs import BlobStore, store_for
from .db import init_db

_state: dict = {"config": None}


def setup(cfg: Config | None = None) -> Config:
    """Bind the database, Redis and the blob store for this process. With no
    REDIS_URL, Redis is the embedded one of the `ged serve` running on this data dir."""
    cfg = cfg or Config.from_env()
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    if not cfg.redis_url:
        found = running_server(cfg.data_dir)
        if found:
            cfg.redis_url = found["redis_url"]
    init_db(cfg.database_url)
    fleet.configure(cfg.redis_url)
    _state["config"] = cfg
    return cfg


def config() -> Config:
    if _state["config"] is None:
        setup()
    return _state["config"]


def store() -> BlobStore:
    """The blob store named by GED_STORAGE_URL (and GED_S3_ENDPOINT_URL)."""
    cfg = config()
    return store_for(cfg.storage_url, cfg.s3_endpoint_url)


# --- the running embedded server -----------------------------------------------------

RUNTIME_FILE = Path("run") / "embedded.json"


def runtime_file(data_dir: Path) -> Path:
    """Where `ged serve` records its embedded Redis (URL with password), web address
    and pid while it runs: 0600, removed when it stops."""
    return Path(data_dir) / RUNTIME_FILE


def run_dir(data_dir: Path) -> Path:
    """The data dir's directory of a running server's files (0700)."""
    path = runtime_file(data_dir).parent
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_runtime_file(data_dir: Path, info: dict) -> Path:
    """Record the running server (atomically, readable by this user only)."""
    path = run_dir(data_dir) / RUNTIME_FILE.name
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(info, fh, indent=2)
    os.replace(tmp, path)
    return path


def remove_runtime_file(data_dir: Path, pid: int) -> None:
    """Remove the record, if it is still the one of process ``pid``."""
    path = runtime_file(data_dir)
    try:
        if json.loads(path.read_text()).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError):
        pass


def running_server(data_dir: Path) -> dict | None:
    """The record of the `ged serve` running on this data dir, or None. A record left
    by a killed server is not believed: its Redis must answer to its password."""
    import redis

    try:
        info = json.loads(runtime_file(data_dir).read_text())
        url = info["redis_url"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError:
        return None
    return info
