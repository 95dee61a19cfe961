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

# Step N brings the schema from version N-1 to N. Version 1 is the initial schema.
MIGRATIONS: list = []
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
        for number in range(version + 1, LATEST + 1):
            step = MIGRATIONS[number - 2]
            with db.atomic():
                step(migrator())
                SchemaVersion.create(version=number)
        return max(version, LATEST)


def _after_create() -> None:
    """Engine-specific extras that peewee's create_tables does not express."""
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
