"""Folder switches: per folder and connection, ``on``, ``off`` or ``inherit``.

The effective state of a folder is that of the nearest folder, itself included,
whose state is not ``inherit``. Only explicit states are stored (one row per
folder and connection), so turning a switch on for a folder with 10,000
descendants writes one row, and reading a folder's effective state is one query
over its ancestors.
"""

from __future__ import annotations

from dataclasses import dataclass

from peewee import JOIN, fn

from . import audit, folders
from .db import transaction
from .errors import Invalid, NotFound
from .models import Connection, Document, Folder, Switch, utcnow

STATES = ("on", "off", "inherit")


@dataclass
class Effective:
    """A connection's state on a folder: explicit ``state`` here, and what applies."""

    connection_id: str
    state: str  # on | off | inherit (explicit state on this very folder)
    effective: bool
    source_folder_id: str | None
    since: object

    def as_dict(self) -> dict:
        return {
            "connection_id": self.connection_id,
            "state": self.state,
            "effective": self.effective,
            "source_folder_id": self.source_folder_id,
            "since": self.since.isoformat() if self.since else None,
        }


def company_connections(company_id: str, *, include_paused: bool = True) -> list[Connection]:
    query = Connection.select().where((Connection.company == company_id)
                                      & Connection.deleted_at.is_null())
    if not include_paused:
        query = query.where(Connection.paused == False)  # noqa: E712
    return list(query.order_by(Connection.created_at))


def effective_switches(folder: Folder, connections: list[Connection],
                       chain_ids: list[str] | None = None) -> dict[str, Effective]:
    """The state of each connection on ``folder``, from one query over its ancestors."""
    chain_ids = chain_ids or folders.ancestor_ids(folder)
    depth_of = {fid: i for i, fid in enumerate(chain_ids)}
    conn_ids = [c.id for c in connections]
    nearest: dict[str, Switch] = {}
    if conn_ids:
        for sw in Switch.select().where(Switch.folder.in_(chain_ids)
                                        & Switch.connection.in_(conn_ids)):
            best = nearest.get(sw.connection_id)
            if best is None or depth_of[sw.folder_id] > depth_of[best.folder_id]:
                nearest[sw.connection_id] = sw
    result = {}
    for conn in connections:
        sw = nearest.get(conn.id)
        result[conn.id] = Effective(
            connection_id=conn.id,
            state=sw.state if sw is not None and sw.folder_id == folder.id else "inherit",
            effective=bool(sw is not None and sw.state == "on"),
            source_folder_id=sw.folder_id if sw is not None else None,
            since=sw.since if sw is not None else None,
        )
    return result


def _affected(folder: Folder, connection: Connection) -> tuple[int, int]:
    """(subfolders that follow this folder's state, documents already in them): the
    subtree minus the subtrees below it with a state of their own, counted in one
    indexed pass. It does not depend on the folder's own state, so a toggle counts
    before it takes the write lock."""
    below = list(Switch.select(Switch, Folder).join(Folder).where(
        (Switch.connection == connection.id) & folders.under(Folder.path, folder.path)
        & (Folder.id != folder.id)))
    tops = []
    for sw in sorted(below, key=lambda s: len(s.folder.path)):
        if not any(sw.folder.path.startswith(t) for t in tops):
            tops.append(sw.folder.path)
    cond = folders.under(Folder.path, folder.path) & Folder.trashed_at.is_null()
    for prefix in tops:
        cond &= ~folders.under(Folder.path, prefix)
    followers, documents = (
        Folder.select(fn.COUNT(Folder.id.distinct()), fn.COUNT(Document.id))
        .join(Document, JOIN.LEFT_OUTER,
              on=(Document.folder == Folder.id) & Document.trashed_at.is_null())
        .where(cond).tuples().first())
    return max(followers - 1, 0), documents


def set_switch(actor, folder: Folder, connection: Connection, state: str) -> dict:
    """Set a folder's explicit state for a connection; sends nothing already there."""
    if state not in STATES:
        raise Invalid('state must be "on", "off" or "inherit".', "invalid_state")
    if connection.company_id != folder.company_id or connection.deleted_at is not None:
        raise NotFound("Connection not found.")
    subfolders, documents = _affected(folder, connection)
    with transaction():
        Switch.delete().where((Switch.folder == folder.id)
                              & (Switch.connection == connection.id)).execute()
        if state != "inherit":
            Switch.create(folder=folder.id, connection=connection.id, state=state,
                          since=utcnow(), set_by=actor.id)
        effective = effective_switches(folder, [connection])[connection.id]
        audit.record(actor, "switch.set", folder, details={
            "connection_id": connection.id, "connection": connection.name, "state": state,
            "effective": effective.effective, "subfolders_affected": subfolders,
        }, firm_only=True)
    data = effective.as_dict()
    data["subfolders_affected"] = subfolders
    data["existing_documents_not_sent"] = documents if effective.effective else 0
    return data


def preview(folder: Folder, connection: Connection) -> dict:
    """What turning the switch on here would affect, for the confirmation dialog."""
    subfolders, documents = _affected(folder, connection)
    return {"subfolders_affected": subfolders, "existing_documents_not_sent": documents}
