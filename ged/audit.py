"""The audit trail: append-only, one hash chain per firm.

Every change calls ``record`` inside the transaction that makes it. Each event
stores the hash of the firm's previous event, so ``verify`` detects an edited,
inserted or deleted event. The actor's display label is not hashed (it is what
``erase-user`` replaces by a pseudonym); the actor's id is.
"""

from __future__ import annotations

import hashlib
import json

from .db import db, is_postgres
from .models import AuditEvent, utcnow

GENESIS = "0" * 64


def _digest(event: AuditEvent) -> str:
    payload = json.dumps(
        [
            event.id,
            event.firm_id,
            event.company_id,
            event.actor_id,
            event.action,
            event.object_type,
            event.object_id,
            event.details,
            event.firm_only,
            event.created_at.isoformat(),
            event.prev_hash,
        ],
        ensure_ascii=False,
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def actor_fields(actor) -> tuple[str | None, str]:
    """(id, label) for a user, or for a system actor given as a string."""
    if actor is None:
        return None, "système"
    if isinstance(actor, str):
        return None, actor
    return actor.id, f"{actor.name} <{actor.email}>"


def record(actor, action: str, obj=None, *, firm=None, company=None, details=None,
           firm_only: bool = False) -> AuditEvent:
    """Append one event. ``obj`` is a model instance (its type and id are kept)."""
    actor_id, label = actor_fields(actor)
    firm_id = getattr(firm, "id", firm)
    if firm_id is None:
        firm_id = getattr(actor, "firm_id", None) or getattr(obj, "firm_id", None)
    company_id = getattr(company, "id", company)
    if company_id is None and obj is not None:
        company_id = getattr(obj, "company_id", None)
        if company_id is None and type(obj).__name__ == "Company":
            company_id = obj.id
    object_type = type(obj).__name__.lower() if obj is not None else None
    object_id = None
    if obj is not None:
        object_id = str(getattr(obj, "id", None) or getattr(obj, "sha256", ""))
    with db.atomic():
        if is_postgres():
            # Serialise appends per firm so two writers never chain onto the same event.
            key = int(hashlib.sha256((firm_id or "system").encode()).hexdigest()[:15], 16)
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (key,))
        last = (
            AuditEvent.select(AuditEvent.hash)
            .where(AuditEvent.firm == firm_id if firm_id else AuditEvent.firm.is_null())
            .order_by(AuditEvent.seq.desc())
            .first()
        )
        event = AuditEvent(
            firm=firm_id,
            company_id=company_id,
            actor_id=actor_id,
            actor_label=label,
            action=action,
            object_type=object_type,
            object_id=object_id,
            details=details,
            firm_only=firm_only,
            created_at=utcnow(),
            prev_hash=last.hash if last else GENESIS,
            hash="",
        )
        event.hash = _digest(event)
        event.save(force_insert=True)
    return event


def record_many(actor, action: str, items: list[tuple[object, dict | None]]) -> int:
    """Append one event per (obj, details), same actor and action, chained exactly as
    ``record`` chains them but written a few hundred per statement (a pass that
    reminds 10,000 requests); each obj carries ``firm_id`` and ``company_id``."""
    actor_id, label = actor_fields(actor)
    by_firm: dict = {}
    for obj, details in items:
        by_firm.setdefault(obj.firm_id, []).append((obj, details))
    with db.atomic():
        for firm_id, entries in by_firm.items():
            if is_postgres():
                key = int(hashlib.sha256((firm_id or "system").encode()).hexdigest()[:15], 16)
                db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (key,))
            last = (AuditEvent.select(AuditEvent.hash)
                    .where(AuditEvent.firm == firm_id if firm_id else AuditEvent.firm.is_null())
                    .order_by(AuditEvent.seq.desc()).first())
            prev, rows, now = last.hash if last else GENESIS, [], utcnow()
            for obj, details in entries:
                event = AuditEvent(firm=firm_id, company_id=obj.company_id, actor_id=actor_id,
                                   actor_label=label, action=action,
                                   object_type=type(obj).__name__.lower(), object_id=str(obj.id),
                                   details=details, firm_only=False, created_at=now,
                                   prev_hash=prev, hash="")
                event.hash = prev = _digest(event)
                rows.append(dict(event.__data__))
            for start in range(0, len(rows), 200):  # in order: seq follows the chain
                AuditEvent.insert_many(rows[start:start + 200]).execute()
    return len(items)


def heads(firm_id: str | None = None) -> list[tuple[str, int, str]]:
    """(firm id, number of events, hash of the last one) of every firm's chain, or one
    firm's: the anchor to keep outside the database (`ged audit head`), since deleting
    the newest events leaves a chain that is intact but shorter."""
    query = AuditEvent.select(AuditEvent.firm).where(AuditEvent.firm.is_null(False)).distinct()
    firms = [firm_id] if firm_id else sorted(row.firm_id for row in query)
    found = []
    for fid in firms:
        chain = AuditEvent.select().where(AuditEvent.firm == fid)
        last = chain.order_by(AuditEvent.seq.desc()).first()
        if last is not None:
            found.append((fid, chain.count(), last.hash))
    return found


def verify(firm_id: str | None = None,
           anchors: dict[str, tuple[int, str]] | None = None) -> list[str]:
    """Check every chain (or one firm's); returns a list of problems, empty when intact.
    ``anchors`` (firm id -> (events, hash), from an earlier ``heads()``) also proves that
    no event up to each anchor was removed from the end of the chain."""
    anchors = anchors or {}
    problems = []
    firms = (
        [firm_id]
        if firm_id
        else [row.firm_id for row in AuditEvent.select(AuditEvent.firm).distinct()]
    )
    for fid in firms:
        prev = GENESIS
        query = (
            AuditEvent.select()
            .where(AuditEvent.firm == fid if fid else AuditEvent.firm.is_null())
            .order_by(AuditEvent.seq)
        )
        position, anchor = 0, anchors.get(fid)
        for event in query.iterator():
            position += 1
            if event.prev_hash != prev:
                problems.append(f"event {event.seq} ({event.action}): chain broken before it")
            if _digest(event) != event.hash:
                problems.append(f"event {event.seq} ({event.action}): content was altered")
            if anchor and position == anchor[0] and event.hash != anchor[1]:
                problems.append(f"firm {fid}: event number {position} is not the anchored one")
            prev = event.hash
        if anchor and position < anchor[0]:
            problems.append(f"firm {fid}: the chain has {position} events but {anchor[0]} were "
                            "anchored: its newest events were removed")
    for fid in set(anchors) - set(firms):
        problems.append(f"firm {fid}: anchored, but its chain is gone")
    return problems


def to_dict(event: AuditEvent) -> dict:
    return {
        "id": event.id,
        "seq": event.seq,
        "created_at": event.created_at.isoformat(),
        "actor_id": event.actor_id,
        "actor": event.actor_label,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "company_id": event.company_id,
        "details": event.details,
    }
