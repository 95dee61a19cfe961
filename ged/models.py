"""The tables of ged: one home for the schema.

Behaviour lives in the module of each noun (accounts, folders, documents,
integrations, deliveries, audit...); this module only says what is stored.
Ids are opaque time-ordered strings (``db.new_id``); times are stored in UTC.
"""

from __future__ import annotations

import datetime as dt
import json

import peewee as pw

from .db import db, new_id


def utcnow() -> dt.datetime:
    """Now, in UTC, timezone-aware."""
    return dt.datetime.now(dt.timezone.utc)


class UTCDateTimeField(pw.DateTimeField):
    """A datetime stored as naive UTC and read back as timezone-aware UTC."""

    def db_value(self, value):
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return super().db_value(value)

    def python_value(self, value):
        value = super().python_value(value)
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value


class JSONField(pw.TextField):
    """JSON stored as text, so SQLite and PostgreSQL behave the same."""

    def db_value(self, value):
        return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)

    def python_value(self, value):
        return None if value is None else json.loads(value)


class IdField(pw.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 26)
        kwargs.setdefault("primary_key", True)
        kwargs.setdefault("default", new_id)
        super().__init__(**kwargs)


class BaseModel(pw.Model):
    class Meta:
        database = db
        legacy_table_names = False


class SchemaVersion(BaseModel):
    """The schema version this database is at (one row); see ged.schema."""

    version = pw.IntegerField()
    migrated_at = UTCDateTimeField(default=utcnow)


class Firm(BaseModel):
    """An accounting firm (cabinet): the tenant. Nothing crosses firms."""

    id = IdField()
    name = pw.CharField(max_length=200)
    primary_color = pw.CharField(max_length=7, default="#1f4e79")
    logo_sha256 = pw.CharField(max_length=64, null=True)
    logo_content_type = pw.CharField(max_length=100, null=True)
    default_retention_years = pw.IntegerField(default=10)
    folder_template = JSONField(null=True)  # None = the built-in annual template
    created_at = UTCDateTimeField(default=utcnow)


class Company(BaseModel):
    """A client (or prospect) company of a firm, owning one folder tree."""

    id = IdField()
    firm = pw.ForeignKeyField(Firm, backref="companies", on_delete="CASCADE")
    name = pw.CharField(max_length=200)
    siren = pw.CharField(max_length=9, null=True)
    status = pw.CharField(max_length=10, default="client")  # client | prospect
    legal_hold = pw.BooleanField(default=False)
    legal_hold_reason = pw.TextField(null=True)
    created_at = UTCDateTimeField(default=utcnow)

    class Meta:
        indexes = ((("firm", "name"), False),)


class User(BaseModel):
    """A person who logs in: firm admin, firm staff, or a client company's user."""

    id = IdField()
    firm = pw.ForeignKeyField(Firm, backref="users", on_delete="CASCADE")
    email = pw.CharField(max_length=254, unique=True)
    name = pw.CharField(max_length=200)
    password_hash = pw.CharField(max_length=255, null=True)
    role = pw.CharField(max_length=10)  # admin | staff | client
    company = pw.ForeignKeyField(Company, null=True, backref="client_users", on_delete="CASCADE")
    active = pw.BooleanField(default=True)
    # Bumped when a user is disabled or their password changes: older sessions stop working.
    session_version = pw.IntegerField(default=0)
    created_at = UTCDateTimeField(default=utcnow)
    last_login_at = UTCDateTimeField(null=True)
    erased_at = UTCDateTimeField(null=True)

    # flask-login's user protocol. The session id carries the session version, so
    # disabling a user or changing their password ends every open session at once.
    is_authenticated = True
    is_anonymous = False

    @property
    def is_active(self) -> bool:
        return self.active

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"


class StaffAssignment(BaseModel):
    """A staff member assigned to a company: staff see only these companies."""

    user = pw.ForeignKeyField(User, backref="assignments", on_delete="CASCADE")
    company = pw.ForeignKeyField(Company, backref="assignments", on_delete="CASCADE")

    class Meta:
        primary_key = pw.CompositeKey("user", "company")


class ApiToken(BaseModel):
    """A bearer token for the API; only its SHA-256 is stored, the token is shown once."""

    id = IdField()
    user = pw.ForeignKeyField(User, backref="tokens", on_delete="CASCADE")
    name = pw.CharField(max_length=200)
    token_hash = pw.CharField(max_length=64, unique=True)
    created_at = UTCDateTimeField(default=utcnow)
    expires_at = UTCDateTimeField(null=True)
    last_used_at = UTCDateTimeField(null=True)
    revoked_at = UTCDateTimeField(null=True)


class UserSession(BaseModel):
    """A signed-in browser session. The cookie holds a random id whose SHA-256 is the
    key here, so a cookie signed with the secret key alone names no session, and
    logging out, a new password or a disabled account end it in the database."""

    id = IdField()
    user = pw.ForeignKeyField(User, backref="sessions", on_delete="CASCADE")
    token_hash = pw.CharField(max_length=64, unique=True)
    created_at = UTCDateTimeField(default=utcnow)
    last_seen_at = UTCDateTimeField(default=utcnow)
    revoked_at = UTCDateTimeField(null=True)

    class Meta:
        indexes = ((("user", "revoked_at"), False),)


class ActionToken(BaseModel):
    """A one-time link (invitation, password reset); only its SHA-256 is stored."""

    id = IdField()
    user = pw.ForeignKeyField(User, on_delete="CASCADE")
    purpose = pw.CharField(max_length=20)  # invite | reset
    token_hash = pw.CharField(max_length=64, unique=True)
    expires_at = UTCDateTimeField()
    used_at = UTCDateTimeField(null=True)


class AuditEvent(BaseModel):
    """One entry of the append-only audit trail; each carries the hash of the previous one."""

    seq = pw.AutoField()
    id = pw.CharField(max_length=26, unique=True, default=new_id)
    firm = pw.ForeignKeyField(Firm, null=True, on_delete="CASCADE")
    company_id = pw.CharField(max_length=26, null=True, index=True)
    actor_id = pw.CharField(max_length=26, null=True)
    actor_label = pw.CharField(max_length=300)
    action = pw.CharField(max_length=60)
    object_type = pw.CharField(max_length=30, null=True)
    object_id = pw.CharField(max_length=64, null=True)
    details = JSONField(null=True)
    firm_only = pw.BooleanField(default=False)
    created_at = UTCDateTimeField(default=utcnow)
    prev_hash = pw.CharField(max_length=64)
    hash = pw.CharField(max_length=64)

    class Meta:
        indexes = ((("firm", "seq"), False), (("company_id", "seq"), False))


class Folder(BaseModel):
    """A folder of a company's tree. ``path`` is the materialised path of ids from the
    root to this folder ("/root/child/this/"), so a subtree is one indexed prefix query."""

    id = IdField()
    company = pw.ForeignKeyField(Company, backref="folders", on_delete="CASCADE")
    parent = pw.ForeignKeyField("self", null=True, backref="children", on_delete="CASCADE")
    name = pw.CharField(max_length=255)
    path = pw.CharField(max_length=4000, index=True)
    depth = pw.IntegerField(default=0)
    firm_only = pw.BooleanField(default=False)
    clients_can_create = pw.BooleanField(default=True)
    retention_years = pw.IntegerField(null=True)  # None = inherited
    trashed_at = UTCDateTimeField(null=True)
    created_at = UTCDateTimeField(default=utcnow)

    class Meta:
        indexes = ((("company", "parent", "name"), False),)


class DropAddress(BaseModel):
    """A secret e-mail drop address ``<token>@GED_MAIL_DOMAIN`` for a company (or one folder)."""

    id = IdField()
    company = pw.ForeignKeyField(Company, backref="drop_addresses", on_delete="CASCADE")
    folder = pw.ForeignKeyField(Folder, null=True, on_delete="CASCADE")
    token = pw.CharField(max_length=64, unique=True)
    created_at = UTCDateTimeField(default=utcnow)
    revoked_at = UTCDateTimeField(null=True)


class Blob(BaseModel):
    """Stored bytes, content-addressed by SHA-256 and stored once; text extracted once."""

    sha256 = pw.CharField(max_length=64, primary_key=True)
    size = pw.BigIntegerField()
    content_type = pw.CharField(max_length=100)
    created_at = UTCDateTimeField(default=utcnow)
    text = pw.TextField(null=True)
    text_status = pw.CharField(max_length=12, default="pending")  # pending|done|failed|unsupported
    text_error = pw.TextField(null=True)
    pages = pw.IntegerField(null=True)
    facturx = JSONField(null=True)
    # Extraction attempts begun and not finished (a crash, a killed worker): past the
    # limit the blob is marked failed instead of being tried forever.
    # A database default too: a process of the previous version inserts blobs without it.
    extract_attempts = pw.IntegerField(default=0, constraints=[pw.SQL("DEFAULT 0")])
    # While scanned pages wait for the ``ocr`` queue: what the cheap extraction found
    # and the pages read so far (see extraction.ocr_slice); None otherwise.
    ocr_state = JSONField(null=True)


class Document(BaseModel):
    """A deposited file in a company folder; its bytes are a Blob."""

    id = IdField()
    firm = pw.ForeignKeyField(Firm, on_delete="CASCADE")
    company = pw.ForeignKeyField(Company, backref="documents", on_delete="CASCADE")
    folder = pw.ForeignKeyField(Folder, backref="documents", on_delete="CASCADE")
    name = pw.CharField(max_length=255)
    blob = pw.ForeignKeyField(Blob, field="sha256", column_name="sha256", object_id_name="blob_id",
                              on_delete="RESTRICT")
    size = pw.BigIntegerField()
    content_type = pw.CharField(max_length=100)
    channel = pw.CharField(max_length=10)  # web | api | email | import
    deposited_at = UTCDateTimeField(default=utcnow)
    deposited_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
    deposited_by_label = pw.CharField(max_length=300, null=True)
    # deposited | sending | validated | rejected | replaced: derived from the deliveries
    # by deliveries.refresh_document_status, never written anywhere else.
    status = pw.CharField(max_length=10, default="deposited")
    status_reason = pw.TextField(null=True)  # the tool's message when rejected
    replaces_id = pw.CharField(max_length=26, null=True)
    replaced_by_id = pw.CharField(max_length=26, null=True)
    text_status = pw.CharField(max_length=12, default="pending")
    duplicate_of = pw.CharField(max_length=26, null=True)
    invoice_key = pw.CharField(max_length=200, null=True)  # seller id + invoice number
    retain_until = pw.DateField(null=True)
    legal_hold = pw.BooleanField(default=False)
    legal_hold_reason = pw.TextField(null=True)
    trashed_at = UTCDateTimeField(null=True)
    trashed_by = pw.CharField(max_length=300, null=True)
    index_dirty = pw.BooleanField(default=True)

    class Meta:
        indexes = (
            (("folder", "trashed_at", "deposited_at"), False),
            (("company", "blob"), False),
            (("company", "invoice_key"), False),
            (("firm", "index_dirty"), False),
            (("company", "status"), False),  # the dashboard's documents to replace
        )


class Integration(BaseModel):
    """A tool installed by a firm from the catalog (a preset of the e-mail or http connector)."""

    id = IdField()
    firm = pw.ForeignKeyField(Firm, backref="integrations", on_delete="CASCADE")
    preset = pw.CharField(max_length=40, null=True)
    name = pw.CharField(max_length=200)
    kind = pw.CharField(max_length=10)  # email | http
    created_at = UTCDateTimeField(default=utcnow)
    deleted_at = UTCDateTimeField(null=True)


class Connection(BaseModel):
    """An integration activated for one company, with its target address or URL."""

    id = IdField()
    firm = pw.ForeignKeyField(Firm, on_delete="CASCADE")
    company = pw.ForeignKeyField(Company, backref="connections", on_delete="CASCADE")
    integration = pw.ForeignKeyField(Integration, backref="connections", on_delete="CASCADE")
    name = pw.CharField(max_length=200)
    kind = pw.CharField(max_length=10)
    address = pw.CharField(max_length=254, null=True)
    url = pw.CharField(max_length=2000, null=True)
    options = JSONField(null=True)
    # The signing secret must be usable for HMAC, so it is kept (not hashed); it is
    # never shown again after creation or rotation.
    secret = pw.CharField(max_length=100, null=True)
    previous_secret = pw.CharField(max_length=100, null=True)
    previous_secret_until = UTCDateTimeField(null=True)
    paused = pw.BooleanField(default=False)
    paused_reason = pw.TextField(null=True)
    last_success_at = UTCDateTimeField(null=True)
    created_at = UTCDateTimeField(default=utcnow)
    deleted_at = UTCDateTimeField(null=True)


class Switch(BaseModel):
    """A folder switch for one connection: ``on`` or ``off``; no row means ``inherit``."""

    id = IdField()
    folder = pw.ForeignKeyField(Folder, backref="switches", on_delete="CASCADE")
    connection = pw.ForeignKeyField(Connection, backref="switches", on_delete="CASCADE")
    state = pw.CharField(max_length=3)  # on | off
    since = UTCDateTimeField(default=utcnow)
    set_by = pw.CharField(max_length=26, null=True)

    class Meta:
        indexes = ((("folder", "connection"), True),)


class Delivery(BaseModel):
    """One forwarding of a document to a connection, with its status and attempts."""

    id = IdField()
    firm = pw.ForeignKeyField(Firm, on_delete="CASCADE")
    company = pw.ForeignKeyField(Company, on_delete="CASCADE")
    document = pw.ForeignKeyField(Document, backref="deliveries", on_delete="CASCADE")
    connection = pw.ForeignKeyField(Connection, backref="deliveries", on_delete="CASCADE")
    trigger = pw.CharField(max_length=10)  # switch | manual
    status = pw.CharField(max_length=10, default="queued")
    attempts = pw.IntegerField(default=0)
    last_error = pw.TextField(null=True)
    message = pw.TextField(null=True)  # the tool's verdict message
    next_attempt_at = UTCDateTimeField(null=True)
    created_by = pw.CharField(max_length=26, null=True)
    created_at = UTCDateTimeField(default=utcnow)
    updated_at = UTCDateTimeField(default=utcnow)

    class Meta:
        indexes = (
            (("status", "next_attempt_at"), False),
            (("status", "updated_at"), False),  # the reconciler: oldest queued/sending first
            (("document", "connection"), False),
            (("company", "status"), False),
        )


class Task(BaseModel):
    """A long piece of work (re-index, import, export) whose progress the user can follow."""

    id = IdField()
    firm = pw.ForeignKeyField(Firm, null=True, on_delete="CASCADE")
    kind = pw.CharField(max_length=30)
    status = pw.CharField(max_length=10, default="running")  # running | done | failed
    done = pw.IntegerField(default=0)
    total = pw.IntegerField(null=True)
    message = pw.TextField(null=True)
    created_at = UTCDateTimeField(default=utcnow)
    updated_at = UTCDateTimeField(default=utcnow)


class DocumentRequest(BaseModel):
    """A « demande de pièces »: the firm asks a company for documents, optionally into
    a folder and by a due date; open until a document answers it or it is cancelled."""

    id = IdField()
    firm = pw.ForeignKeyField(Firm, on_delete="CASCADE")
    company = pw.ForeignKeyField(Company, backref="document_requests", on_delete="CASCADE")
    folder = pw.ForeignKeyField(Folder, null=True, on_delete="SET NULL")
    title = pw.CharField(max_length=200)
    description = pw.TextField(null=True)
    due_date = pw.DateField(null=True)
    status = pw.CharField(max_length=10, default="open")  # open | fulfilled | cancelled
    created_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
    created_at = UTCDateTimeField(default=utcnow)
    updated_at = UTCDateTimeField(default=utcnow)
    closed_at = UTCDateTimeField(null=True)
    reminders_sent = pw.IntegerField(default=0)
    last_reminder_at = UTCDateTimeField(null=True)
    batch_id = pw.CharField(max_length=26, null=True)  # the bulk request it belongs to

    class Meta:
        indexes = ((("company", "status"), False), (("status", "due_date"), False),
                   (("firm", "status"), False))


class RequestDocument(BaseModel):
    """A document deposited against a request (the documents that answered it)."""

    request = pw.ForeignKeyField(DocumentRequest, backref="links", on_delete="CASCADE")
    document = pw.ForeignKeyField(Document, on_delete="CASCADE")
    created_at = UTCDateTimeField(default=utcnow)

    class Meta:
        primary_key = pw.CompositeKey("request", "document")


class RequestReminder(BaseModel):
    """One reminder of a request, recorded once: ``key`` names its step of the schedule
    ("day-3", "day0", "day7"...) or a manual « Relancer » ("manual-<id>"); the unique
    (request, key) index makes it sent once across every worker and host."""

    id = IdField()
    request = pw.ForeignKeyField(DocumentRequest, backref="reminders", on_delete="CASCADE")
    key = pw.CharField(max_length=40)
    sent_by = pw.CharField(max_length=26, null=True)
    created_at = UTCDateTimeField(default=utcnow)

    class Meta:
        indexes = ((("request", "key"), True),)


class Comment(BaseModel):
    """A message in a document's thread between the firm and the client; ``internal``
    notes are the firm's own and never reach a client."""

    id = IdField()
    firm = pw.ForeignKeyField(Firm, on_delete="CASCADE")
    company = pw.ForeignKeyField(Company, on_delete="CASCADE")
    document = pw.ForeignKeyField(Document, backref="comments", on_delete="CASCADE")
    author = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
    author_name = pw.CharField(max_length=200)
    body = pw.TextField()
    internal = pw.BooleanField(default=False)
    created_at = UTCDateTimeField(default=utcnow)

    class Meta:
        indexes = ((("document", "created_at"), False),)


class NotificationSetting(BaseModel):
    """What one user is told by e-mail; no row means the defaults of their role."""

    user = pw.ForeignKeyField(User, primary_key=True, on_delete="CASCADE")
    new_documents = pw.CharField(max_length=10)  # off | immediate | daily
    requests = pw.BooleanField()
    comments = pw.BooleanField()
    rejections = pw.BooleanField()
    delivery_failures = pw.CharField(max_length=10)  # off | immediate | daily
    updated_at = UTCDateTimeField(default=utcnow)


class Notification(BaseModel):
    """One e-mail to one user about one event, or a daily digest: the outbox row.
    ``event_key`` is unique, so one event never makes two messages; rows waiting for
    the digest are ``daily`` until the digest that carries them (``digest_id``)."""

    id = IdField()
    firm = pw.ForeignKeyField(Firm, on_delete="CASCADE")
    user = pw.ForeignKeyField(User, on_delete="CASCADE")
    event_key = pw.CharField(max_length=200, unique=True)
    topic = pw.CharField(max_length=20)  # new_documents | requests | comments | ...
    subject = pw.CharField(max_length=300)
    body = pw.TextField()
    link = pw.CharField(max_length=2000, null=True)
    status = pw.CharField(max_length=10, default="pending")  # pending|daily|sent|failed|grouped
    digest_id = pw.CharField(max_length=26, null=True)
    attempts = pw.IntegerField(default=0)
    last_error = pw.TextField(null=True)
    created_at = UTCDateTimeField(default=utcnow)
    sent_at = UTCDateTimeField(null=True)

    class Meta:
        indexes = ((("status", "created_at"), False), (("user", "status"), False))


class UserTotp(BaseModel):
    """A user's two-factor secret (RFC 6238). ``confirmed_at`` is set once a first code
    proved the authenticator app holds it; ``last_step`` is the newest 30-second step
    used, so each code works once."""

    user = pw.ForeignKeyField(User, primary_key=True, on_delete="CASCADE")
    secret = pw.CharField(max_length=64)
    confirmed_at = UTCDateTimeField(null=True)
    last_step = pw.BigIntegerField(default=0)
    created_at = UTCDateTimeField(default=utcnow)


class RecoveryCode(BaseModel):
    """One of the ten recovery codes shown once when two-factor sign-in is turned on;
    only its SHA-256 is stored, and it works once."""

    id = IdField()
    user = pw.ForeignKeyField(User, backref="recovery_codes", on_delete="CASCADE")
    code_hash = pw.CharField(max_length=64)
    used_at = UTCDateTimeField(null=True)

    class Meta:
        indexes = ((("user", "code_hash"), False),)


class FirmSettings(BaseModel):
    """A firm's settings: the default profile of new users and the two-factor policy."""

    firm = pw.ForeignKeyField(Firm, primary_key=True, on_delete="CASCADE")
    default_role = pw.CharField(max_length=10, default="client")
    default_company_ids = JSONField(null=True)  # staff created get these companies
    require_totp = pw.CharField(max_length=5, default="none")  # none | staff | all
    locale = pw.CharField(max_length=10, default="fr_FR")
    updated_at = UTCDateTimeField(default=utcnow)


ALL_MODELS = [
    SchemaVersion,
    Firm,
    Company,
    User,
    StaffAssignment,
    ApiToken,
    UserSession,
    ActionToken,
    AuditEvent,
    Folder,
    DropAddress,
    Blob,
    Document,
    Integration,
    Connection,
    Switch,
    Delivery,
    Task,
    DocumentRequest,
    RequestDocument,
    RequestReminder,
    Comment,
    NotificationSetting,
    Notification,
    UserTotp,
    RecoveryCode,
    FirmSettings,
]
