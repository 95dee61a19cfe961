"""Company folder trees: creation, rename, move, trash and subtree queries (the
trees new companies get are in ged/folder_templates.py).

Each folder stores its materialised path of ids ("/root/…/self/"); "this folder
and everything below it" is one indexed prefix query, and a move rewrites the
paths of the whole subtree in one UPDATE.
"""

from __future__ import annotations

import datetime as dt
import re

import peewee as pw

from . import audit, filetypes, permissions, queue
from .accounts import clean_name
from .db import is_sqlite, transaction
from .errors import Conflict, Invalid, NotFound
from .models import Company, Document, Firm, Folder, utcnow

ROOT_NAME = "Documents"
# A materialised path ("/" then ids, each followed by "/") holds no wildcard of GLOB
# or LIKE, so a prefix of it needs no escaping.
_PATH = re.compile(r"/[^*?\[\]%_\\]*")

def clean_folder_name(name: str | None) -> str:
    name = clean_name(name, "folder name", 255)
    try:
        return filetypes.clean_filename(name)
    except Invalid as exc:
        raise Invalid(exc.message.replace("file name", "folder name"), "invalid_name") from None


def under(field, prefix: str) -> pw.Expression:
    """``field`` starts with ``prefix`` (a materialised path), as a predicate the
    engine answers from its index: GLOB on SQLite, case-sensitive LIKE on PostgreSQL
    (served by the pattern-ops index). peewee's ``startswith`` would give ILIKE on
    PostgreSQL, which no index serves: a scan of every folder of every firm."""
    if not _PATH.fullmatch(prefix):
        raise ValueError(f"not a folder path: {prefix!r}")
    if is_sqlite():
        return pw.Expression(field, "GLOB", prefix + "*")
    return pw.Expression(field, pw.OP.LIKE, prefix + "%")


def subtree(folder: Folder) -> pw.ModelSelect:
    """The folder and every folder below it, in one indexed query."""
    return Folder.select().where(under(Folder.path, folder.path))


def subtree_ids(folder: Folder) -> pw.ModelSelect:
    return Folder.select(Folder.id).where(under(Folder.path, folder.path))


def ancestor_ids(folder: Folder) -> list[str]:
    """Ids from the root down to the folder itself."""
    return [part for part in folder.path.split("/") if part]


def ancestors(folder: Folder) -> list[Folder]:
    """Folders from the root down to the folder itself (one query)."""
    ids = ancestor_ids(folder)
    by_id = {f.id: f for f in Folder.select().where(Folder.id.in_(ids))}
    return [by_id[i] for i in ids if i in by_id]


def display_path(folder: Folder, chain: list[Folder] | None = None) -> str:
    """The folder's path of names, e.g. "/Dossier comptable annuel 2026/Achats"
    (the root folder is "/")."""
    chain = chain if chain is not None else ancestors(folder)
    return "/" + "/".join(f.name for f in chain[1:])


def display_paths(folders: list[Folder]) -> dict[str, str]:
    """Name paths for many folders with one query."""
    ids = {i for f in folders for i in ancestor_ids(f)}
    names = {f.id: f.name for f in Folder.select(Folder.id, Folder.name).where(Folder.id.in_(list(ids)))}
    return {f.id: "/" + "/".join(names.get(i, "?") for i in ancestor_ids(f)[1:]) for f in folders}


def root_of(company: Company | str) -> Folder:
    company_id = getattr(company, "id", company)
    return Folder.get((Folder.company == company_id) & Folder.parent.is_null())


def new_folder(company_id: str, parent: Folder | None, name: str, **fields) -> Folder:
    """Insert a folder row with its materialised path (no checks, no audit: the
    caller's transaction does those)."""
    folder = Folder(company=company_id, parent=parent, name=name, **fields)
    folder.path = (parent.path if parent else "/") + folder.id + "/"
    folder.depth = parent.depth + 1 if parent else 0
    folder.save(force_insert=True)
    return folder


def create_root(company: Company) -> Folder:
    return new_folder(company.id, None, ROOT_NAME)


def create_folder(actor, parent: Folder, name: str, *, firm_only: bool = False) -> Folder:
    """A new folder under ``parent``; names are unique among siblings."""
    name = clean_folder_name(name)
    with transaction():
        _check_sibling_name(parent, name, actor=actor)
        folder = new_folder(parent.company_id, parent, name, firm_only=firm_only)
        # The actor may be a command given as a string (`ged import`): the firm is the company's.
        firm_id = Company.select(Company.firm).where(Company.id == parent.company_id).scalar()
        audit.record(actor, "folder.created", folder, firm=firm_id, company=parent.company_id,
                     details={"name": name, "parent_id": parent.id})
    return folder


def _check_sibling_name(parent: Folder, name: str, exclude: str | None = None,
                        actor=None) -> None:
    """Conflict when a sibling the actor can see already has this name. A client
    never sees firm-only folders, so those do not count for them: refusing would
    reveal a hidden folder's name (the client's folder is created beside it, and
    the firm sees both, the hidden one tagged « cabinet »)."""
    query = Folder.select().where((Folder.parent == parent.id) & (Folder.name == name)
                                  & Folder.trashed_at.is_null())
    if getattr(actor, "role", None) == "client":
        query = query.where(Folder.firm_only == False)  # noqa: E712
    if exclude:
        query = query.where(Folder.id != exclude)
    if query.exists():
        raise Conflict("A folder with this name already exists here.", "name_taken")


def rename(actor, folder: Folder, name: str) -> Folder:
    name = clean_folder_name(name)
    if folder.parent_id is None:
        raise Invalid("The root folder cannot be renamed.", "root_folder")
    with transaction():
        _check_sibling_name(folder.parent, name, exclude=folder.id, actor=actor)
        old = folder.name
        Folder.update(name=name).where(Folder.id == folder.id).execute()
        audit.record(actor, "folder.renamed", folder, firm=actor.firm_id,
                     details={"from": old, "to": name})
    _mark_subtree_dirty(folder)
    return Folder.get_by_id(folder.id)


def move(actor, folder: Folder, new_parent: Folder) -> Folder:
    """Move a folder (and its subtree) under another folder of the same company."""
    if folder.parent_id is None:
        raise Invalid("The root folder cannot be moved.", "root_folder")
    if new_parent.company_id != folder.company_id:
        raise NotFound("Folder not found.")
    if new_parent.path.startswith(folder.path):
        raise Invalid("A folder cannot be moved under itself or one of its subfolders.",
                      "move_into_itself")
    with transaction():
        folder = Folder.get_by_id(folder.id)  # fresh path inside the lock
        new_parent = Folder.get_by_id(new_parent.id)
        _check_sibling_name(new_parent, folder.name, exclude=folder.id, actor=actor)
        old_prefix = folder.path
        new_prefix = new_parent.path + folder.id + "/"
        shift = new_parent.depth + 1 - folder.depth
        # One statement rewrites the whole subtree's paths and depths.
        Folder.update(
            path=pw.Value(new_prefix).concat(pw.fn.SUBSTR(Folder.path, len(old_prefix) + 1)),
            depth=Folder.depth + shift,
        ).where(under(Folder.path, old_prefix)).execute()
        Folder.update(parent=new_parent.id).where(Folder.id == folder.id).execute()
        audit.record(actor, "folder.moved", folder, firm=actor.firm_id,
                     details={"from_parent": folder.parent_id, "to_parent": new_parent.id})
    _mark_subtree_dirty(folder)
    return Folder.get_by_id(folder.id)


def _mark_subtree_dirty(folder: Folder) -> None:
    """Documents below a renamed or moved folder have a new path to index."""
    Document.update(index_dirty=True).where(
        Document.folder.in_(subtree_ids(Folder.get_by_id(folder.id)))).execute()
    queue.schedule_index(Company.get_by_id(folder.company_id).firm_id)


def set_firm_only(actor, folder: Folder, firm_only: bool) -> Folder:
    with transaction():
        Folder.update(firm_only=firm_only).where(Folder.id == folder.id).execute()
        audit.record(actor, "folder.firm_only", folder, firm=actor.firm_id,
                     details={"firm_only": firm_only})
    _mark_subtree_dirty(folder)
    return Folder.get_by_id(folder.id)


def set_retention(actor, folder: Folder, years: int | None) -> Folder:
    """Set (or, with None, inherit) the folder's retention period for new deposits."""
    if years is not None and not 0 <= years <= 100:
        raise Invalid("retention_years must be between 0 and 100.", "invalid_retention")
    with transaction():
        Folder.update(retention_years=years).where(Folder.id == folder.id).execute()
        audit.record(actor, "folder.retention_set", folder, firm=actor.firm_id,
                     details={"retention_years": years})
    return Folder.get_by_id(folder.id)


def trash(actor, folder: Folder) -> Folder:
    """Send a folder to the trash: it and its subtree disappear, documents stay recoverable."""
    if folder.parent_id is None:
        raise Invalid("The root folder cannot be deleted.", "root_folder")
    with transaction():
        Folder.update(trashed_at=utcnow()).where(Folder.id == folder.id).execute()
        audit.record(actor, "folder.trashed", folder, firm=actor.firm_id)
    _mark_subtree_dirty(folder)
    return Folder.get_by_id(folder.id)


def restore(actor, folder: Folder) -> Folder:
    with transaction():
        _check_sibling_name(folder.parent, folder.name, exclude=folder.id, actor=actor)
        Folder.update(trashed_at=None).where(Folder.id == folder.id).execute()
        audit.record(actor, "folder.restored", folder, firm=actor.firm_id)
    _mark_subtree_dirty(folder)
    return Folder.get_by_id(folder.id)


def retention_years(folder: Folder, chain: list[Folder] | None = None) -> int:
    """The folder's retention period: the nearest folder with a value wins, else the firm's."""
    chain = chain if chain is not None else ancestors(folder)
    for f in reversed(chain):
        if f.retention_years is not None:
            return f.retention_years
    return Firm.select(Firm.default_retention_years).join(Company).where(
        Company.id == folder.company_id).scalar() or 10


def retain_until(deposited: dt.datetime, years: int) -> dt.date:
    """End of the deposit's calendar year plus the retention period."""
    return dt.date(deposited.year + years, 12, 31)


def children_of(user, folder: Folder) -> list[Folder]:
    """Visible direct children, by name."""
    query = Folder.select().where((Folder.parent == folder.id) & Folder.trashed_at.is_null())
    if not permissions.is_firm_user(user):
        query = query.where(Folder.firm_only == False)  # noqa: E712
    return list(query.order_by(Folder.name))


def tree(user, company: Company) -> list[dict]:
    """The company's visible folders as a nested list (one query), for the side panel."""
    hidden = permissions.hidden_prefixes(user, company.id)
    rows = [f for f in Folder.select().where(Folder.company == company.id).order_by(Folder.depth, Folder.name)
            if not any(f.path.startswith(p) for p in hidden)]
    nodes = {f.id: {"folder": f, "children": []} for f in rows}
    roots = []
    for f in rows:
        node = nodes[f.id]
        if f.parent_id and f.parent_id in nodes:
            nodes[f.parent_id]["children"].append(node)
        elif f.parent_id is None:
            roots.append(node)
    return roots


def folder_dict(folder: Folder, path: str | None = None) -> dict:
    return {
        "id": folder.id,
        "name": folder.name,
        "parent_id": folder.parent_id,
        "company_id": folder.company_id,
        "path": path if path is not None else display_path(folder),
        "firm_only": folder.firm_only,
    }

