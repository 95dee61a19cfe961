"""ged configuration: every setting is read from the environment.

The defaults make the embedded mode work with nothing set: SQLite and blobs in
``GED_DATA_DIR`` (``./var``), a private Redis started by ``ged serve``, and a
secret key generated once and kept in the data dir. README.md documents every
variable.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _seconds_list(value: str | None, default: list[float]) -> list[float]:
    if not value:
        return list(default)
    return [float(part) for part in value.split(",") if part.strip()]


def _secret_key(data_dir: Path) -> str:
    """The SECRET_KEY from the environment, else one generated once in the data dir."""
    key = os.environ.get("SECRET_KEY")
    if key:
        return key
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    try:
        os.link(tmp, path)  # first writer wins when two processes start at once
    except FileExistsError:
        pass
    os.unlink(tmp)
    return path.read_text().strip()


def _trusted_proxies(value: str) -> list[str]:
    """GED_TRUSTED_PROXIES: comma-separated addresses or CIDR ranges, checked at start."""
    from ged.proxies import parse_networks

    entries = [part.strip() for part in value.split(",") if part.strip()]
    parse_networks(tuple(entries))  # a typo fails at start, not silently at each request
    return entries


def _firm_hosts(value: str) -> dict[str, str]:
    """GED_FIRM_HOSTS: ``host=firm_id`` pairs, comma-separated."""
    hosts = {}
    for part in value.split(","):
        if part.strip():
            host, sep, firm_id = part.partition("=")
            if not sep or not host.strip() or not firm_id.strip():
                raise ValueError(f"GED_FIRM_HOSTS: {part.strip()!r} is not host=firm_id")
            hosts[host.strip().lower()] = firm_id.strip()
    return hosts


@dataclass
class Config:
    """Settings of one ged process, built from the environment by ``from_env``."""

    data_dir: Path
    database_url: str
    redis_url: str | None
    secret_key: str
    storage_url: str
    search_backend: str = "whoosh"
    s3_endpoint_url: str | None = None
    max_upload_bytes: int = 50 * 1024 * 1024
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_tls: str = "none"  # none | starttls | ssl
    mail_from: str = "ged@localhost"
    smtpd_listen: str = "127.0.0.1:2525"
    mail_domain: str = "depot.localhost"
    # authserv-ids of the MTA in front of `ged smtpd` whose Authentication-Results
    # header (DKIM/DMARC/SPF) ged believes; empty = no e-mail sender is ever verified.
    smtpd_trusted_authserv: list[str] = field(default_factory=list)
    smtpd_max_sessions: int = 20  # simultaneous SMTP sessions of `ged smtpd`; more get 421
    delivery_retry_schedule: list[float] = field(
        default_factory=lambda: [10, 60, 300, 1800, 7200, 21600]
    )
    delivery_connect_timeout: float = 5.0
    delivery_timeout: float = 30.0
    secret_grace_hours: float = 24.0
    file_url_days: float = 7.0  # how long the signed file link of an http delivery works
    allow_private_targets: bool = False
    public_url: str = "http://127.0.0.1:5000"
    login_max_attempts: int = 5
    login_window_seconds: int = 900
    # Addresses/CIDR ranges of the reverse proxies whose X-Forwarded-For is believed.
    trusted_proxies: list[str] = field(default_factory=list)
    # Host name -> firm id: the firm whose brand an anonymous page (login) wears there.
    firm_hosts: dict[str, str] = field(default_factory=dict)
    ocr_languages: str = "fra+eng"
    ocr_processes: int = 0  # 0 = one per core
    # OCR budgets: past them a page is skipped, and the rest of a document is not read
    # (it ends "partial" with the text read so far).
    ocr_page_seconds: float = 60.0
    ocr_document_seconds: float = 600.0
    ocr_slice_seconds: float = 20.0  # an OCR job's turn before another document's
    extract_max_attempts: int = 3  # extraction attempts that crashed before "failed"
    reconcile_interval: float = 30.0
    # Days from a request's due date on which its reminders are mailed (issue 21).
    request_reminder_days: list[int] = field(default_factory=lambda: [-3, 0, 7, 14, 21])
    digest_hour: int = 7  # local hour (Europe/Paris) after which the daily digest goes out
    # Seconds a stopping worker lets its current job finish before abandoning it
    # (the job is put back on its queue and runs again).
    worker_stop_grace: float = 8.0
    session_cookie_secure: bool | None = None  # None = decided per request (HTTPS or not)
    testing: bool = False

    @classmethod
    def from_env(cls, **overrides) -> "Config":
        env = os.environ
        data_dir = Path(env.get("GED_DATA_DIR", "./var")).resolve()
        cfg = cls(
            data_dir=data_dir,
            database_url=env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'ged.sqlite3'}",
            redis_url=env.get("REDIS_URL") or None,
            secret_key=_secret_key(data_dir),
            storage_url=env.get("GED_STORAGE_URL") or f"file://{data_dir / 'blobs'}",
            search_backend=env.get("GED_SEARCH_BACKEND", "whoosh"),
            s3_endpoint_url=env.get("GED_S3_ENDPOINT_URL") or None,
            max_upload_bytes=int(env.get("GED_MAX_UPLOAD_MB", "50")) * 1024 * 1024,
            smtp_host=env.get("GED_SMTP_HOST") or None,
            smtp_port=int(env.get("GED_SMTP_PORT", "25")),
            smtp_user=env.get("GED_SMTP_USER") or None,
            smtp_password=env.get("GED_SMTP_PASSWORD") or None,
            smtp_tls=(env.get("GED_SMTP_TLS") or "none").lower(),
            mail_from=env.get("GED_MAIL_FROM", "ged@localhost"),
            smtpd_listen=env.get("GED_SMTPD_LISTEN", "127.0.0.1:2525"),
            mail_domain=env.get("GED_MAIL_DOMAIN", "depot.localhost"),
            smtpd_trusted_authserv=[part.strip().lower() for part in
                                    env.get("GED_SMTPD_TRUSTED_AUTHSERV", "").split(",")
                                    if part.strip()],
            smtpd_max_sessions=int(env.get("GED_SMTPD_MAX_SESSIONS", "20")),
            delivery_retry_schedule=_seconds_list(
                env.get("GED_DELIVERY_RETRY_SCHEDULE"), [10, 60, 300, 1800, 7200, 21600]
            ),
            delivery_connect_timeout=float(env.get("GED_DELIVERY_CONNECT_TIMEOUT", "5")),
            delivery_timeout=float(env.get("GED_DELIVERY_TIMEOUT", "30")),
            secret_grace_hours=float(env.get("GED_SECRET_GRACE_HOURS", "24")),
            file_url_days=float(env.get("GED_FILE_URL_DAYS", "7")),
            allow_private_targets=_bool(env.get("GED_ALLOW_PRIVATE_TARGETS")),
            public_url=env.get("GED_PUBLIC_URL", "http://127.0.0.1:5000").rstrip("/"),
            login_max_attempts=int(env.get("GED_LOGIN_MAX_ATTEMPTS", "5")),
            login_window_seconds=int(env.get("GED_LOGIN_WINDOW_SECONDS", "900")),
            trusted_proxies=_trusted_proxies(env.get("GED_TRUSTED_PROXIES", "")),
            firm_hosts=_firm_hosts(env.get("GED_FIRM_HOSTS", "")),
            ocr_languages=env.get("GED_OCR_LANGUAGES", "fra+eng"),
            ocr_processes=int(env.get("GED_OCR_PROCESSES", "0")),
            ocr_page_seconds=float(env.get("GED_OCR_PAGE_SECONDS", "60")),
            ocr_document_seconds=float(env.get("GED_OCR_DOCUMENT_SECONDS", "600")),
            ocr_slice_seconds=float(env.get("GED_OCR_SLICE_SECONDS", "20")),
            extract_max_attempts=max(1, int(env.get("GED_EXTRACT_MAX_ATTEMPTS", "3"))),
            reconcile_interval=float(env.get("GED_RECONCILE_INTERVAL", "30")),
            request_reminder_days=sorted({int(float(d)) for d in _seconds_list(
                env.get("GED_REQUEST_REMINDER_DAYS"), [-3, 0, 7, 14, 21])}),
            digest_hour=int(env.get("GED_DIGEST_HOUR", "7")),
            worker_stop_grace=float(env.get("GED_WORKER_STOP_GRACE", "8")),
            session_cookie_secure=(
                _bool(env["GED_SECURE_COOKIES"]) if env.get("GED_SECURE_COOKIES") else None
            ),
        )
        for key, value in overrides.items():
            setattr(cfg, key, value)
        return cfg
