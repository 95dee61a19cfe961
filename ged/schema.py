"""Schema creation and migrations.

``migrate()`` is idempotent: a new database gets every table at the latest
version; an existing one runs the numbered steps in MIGRATIONS that it has not
run yet, each in its own transaction, and records the version reached. A later
change appends a step (usually a ``playhouse.migrate`` operation) and never edits
an earlier one; steps only add (columns nullable or with defaults, indexes
created concurrently where the engine allows), so older processes keep serving
while a new one migrates.
"""

from __future__ import annotations

from playhouse.migrate import PostgresqlMigrator, SqliteMigrator

from .db import db, is_sqlite
from .models import ALL_MODELS, SchemaVersion


def _document_status_truth(m) -> None:
    """A document's status_reason and replacement links (issue 16); statuses recomputed
    for documents a tool rejected, which showed "validated"; documents waiting for
    their blob's known text found by the reconciler."""
    import peewee as pw
    from playhouse.migrate import migrate as run

    run(m.add_column("document", "status_reason", pw.TextField(null=True)),
        m.add_column("document", "replaces_id", pw.CharField(max_length=26, null=True)),
        m.add_column("document", "replaced_by_id", pw.CharField(max_length=26, null=True)),
        m.add_index("document", ("company_id", "status"), False))
    db.execute_sql(DOCUMENT_TEXT_PENDING)
    _restate_rejected_documents()


def _restate_rejected_documents() -> None:
    """The status rule of API.md ("what a document's status says") as it stood at this
    step, applied to every document a tool rejected. Written out here rather than
    calling the domain's rule: a step is frozen in time, and the seams import nothing
    of the domain. (No document is replaced yet: the column is new.)"""
    from .models import Delivery, Document

    ids = [row[0] for row in Delivery.select(Delivery.document)
           .where(Delivery.status == "rejected").distinct().tuples()]
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        latest: dict[str, dict] = {doc_id: {} for doc_id in chunk}
        for doc_id, conn_id, status, message in (
                Delivery.select(Delivery.document, Delivery.connection, Delivery.status,
                                Delivery.message)
                .where(Delivery.document.in_(chunk) & (Delivery.status != "failed"))
                .order_by(Delivery.created_at, Delivery.id).tuples()):
            latest[doc_id].pop(conn_id, None)  # re-inserted last: dict order = recency
            latest[doc_id][conn_id] = (status, message)
        for doc_id, by_connection in latest.items():
            outcomes = list(by_connection.values())
            states = [status for status, _message in outcomes]
            reason = None
            if "rejected" in states:
                status = "rejected"
                reason = next(m for s, m in reversed(outcomes) if s == "rejected")
            elif any(s in ("sent", "accepted", "validated") for s in states):
                status = "validated"
            elif any(s in ("queued", "sending") for s in states):
                status = "sending"
            else:
                status = "deposited"
            Document.update(status=status, status_reason=reason).where(
                Document.id == doc_id).execute()


# Documents whose blob's text was known from another company's deposit wait for the
# job that copies it; the reconciler finds them among millions with this index.
DOCUMENT_TEXT_PENDING = ("CREATE INDEX IF NOT EXISTS document_text_pending ON document (sha256) "
                         "WHERE text_status = 'pending'")


def _user_sessions(m) -> None:
    """Browser sessions kept in the database (issue 17): a forged cookie names none,
    and logging out holds without Redis."""
    from .models import UserSession

    db.create_tables([UserSession], safe=True)


# Step N brings the schema from version N-1 to N. Version 1 is the initial schema.
def _blob_ocr_state(m) -> None:
    """Extraction attempts bounded, OCR on a queue of its own with its progress saved
    (issue 17)."""
    import peewee as pw
    from playhouse.migrate import migrate as run

    from .models import JSONField

    run(m.add_column("blob", "extract_attempts",
                     pw.IntegerField(default=0, constraints=[pw.SQL("DEFAULT 0")])),
        m.add_column("blob", "ocr_state", JSONField(null=True)))


def _client_work(m) -> None:
    """Document requests and their reminders, comments, notifications (issue 21)."""
    from .models import (Comment, DocumentRequest, Notification, NotificationSetting,
                         RequestDocument, RequestReminder)

    db.create_tables([DocumentRequest, RequestDocument, RequestReminder, Comment,
                      NotificationSetting, Notification], safe=True)


def _accounts_and_settings(m) -> None:
    """Two-factor sign-in and the firm's settings (issue 20)."""
    from .models import FirmSettings, RecoveryCode, UserTotp

    db.create_tables([UserTotp, RecoveryCode, FirmSettings], safe=True)


MIGRATIONS: list = [
    _document_status_truth,
    _user_sessions,
    _blob_ocr_state,
    _client_work,
    _accounts_and_settings,
]
LATEST = 1 + len(MIGRATIONS)


def migrator():
    return SqliteMigrator(db) if is_sqlite() else PostgresqlMigrator(db)


def current_version() -> int | None:
    if not db.table_exists(SchemaVersion._meta.table_name):
        return None
    row = SchemaVersion.select().order_by(SchemaVersion.version.desc()).first()
    return row.version if row else None


def migrate() -> int:
    """Create or upgrade the schema; returns the version reached."""
    with db.connection_context():
        version = current_version()
        if version is None:
            with db.atomic():
                db.create_tables(ALL_MODELS, safe=True)
                SchemaVersion.create(version=LATEST)
            _after_create()
            return LATEST
        if version >= LATEST:
            return version
        # SQLite rebuilds a table to add a NOT NULL column (copy, drop, rename): with
        # foreign keys enforced, dropping a referenced table fails. The pragma is a
        # no-op inside a transaction, so it is set around the steps, and the keys are
        # checked before it is set back.
        sqlite = is_sqlite()
        if sqlite:
            db.execute_sql("PRAGMA foreign_keys = OFF")
        try:
            for number in range(version + 1, LATEST + 1):
                step = MIGRATIONS[number - 2]
                with db.atomic():
                    step(migrator())
                    SchemaVersion.create(version=number)
                    if sqlite and db.execute_sql("PRAGMA foreign_key_check").fetchone():
                        raise RuntimeError(f"migration step {number} broke a foreign key")
        finally:
            if sqlite:
                db.execute_sql("PRAGMA foreign_keys = ON")
        return LATEST


def _after_create() -> None:
    """Engine-specific extras that peewee's create_tables does not express."""
    db.execute_sql(DOCUMENT_TEXT_PENDING)  # both engines take partial indexes
    if not is_sqlite():
        # Prefix searches on the materialised path need a pattern-ops index on PostgreSQL.
        db.execute_sql(
            "CREATE INDEX IF NOT EXISTS folder_path_pattern ON folder (path varchar_pattern_ops)"
        )
        # Partial indexes for what the periodic reconciler and the trash look for:
        # a few rows among millions, found without scanning the table.
        db.execute_sql("CREATE INDEX IF NOT EXISTS blob_text_pending ON blob (sha256) "
                       "WHERE text_status = 'pending'")
        db.execute_sql("CREATE INDEX IF NOT EXISTS document_index_dirty ON document (firm_id) "
                       "WHERE index_dirty")
        db.execute_sql("CREATE INDEX IF NOT EXISTS document_trashed ON document "
                       "(company_id, trashed_at) WHERE trashed_at IS NOT NULL")
