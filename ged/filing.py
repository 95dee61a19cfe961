"""Filing several documents at once, folders to the trash and back, and ZIP
downloads of what a person may see.

Each document of a bulk action goes through the same domain function as when done
alone (``documents.move``: a move into a switched-on folder is a deposit there for
the switches; ``documents.trash``/``restore``), so a refusal for one never stops
the others and is reported by id. ZIP archives are built while they stream, as
the company export is (``zipstream``, no compression, constant memory).
"""

from __future__ import annotations


from zipstream import ZipStream

from . import audit, documents, folders, permissions, runtime, switches
from .db import transaction
from .errors import GedError, Invalid, NotFound
from .export import Export, Names
from .models import Company, Document, Folder, Switch, User
from .blobs import iter_blob

ACTIONS = ("move", "trash", "restore")
MAX_IDS = 1000


def bulk(actor: User, action: str, ids: list[str], folder_id: str | None = None) -> dict:
    """``{done, refused: [{id, error: {code, message}}]}``: each id as if done alone."""
    permissions.require_role(actor, "admin", "staff")
    if action not in ACTIONS:
        raise Invalid("action must be move, trash or restore.", "invalid_action")
    ids = list(dict.fromkeys(str(i) for i in ids))[:MAX_IDS]
    target = None
    if action == "move":
        if not folder_id:
            raise Invalid("A move needs folder_id.", "folder_required")
        target = permissions.folder_for(actor, folder_id)
    done, refused = 0, []
    for doc_id in ids:
        try:
            doc = permissions.document_for(actor, doc_id, include_trashed=action == "restore")
            if action == "move":
                if doc.company_id != target.company_id:
                    raise Invalid("A document moves only within its company.",
                                  "other_company")
                documents.move(actor, doc, target)
            elif action == "trash":
                documents.trash(actor, doc)
            else:
                documents.restore(actor, doc)
            done += 1
        except GedError as exc:
            refused.append({"id": doc_id, "error": {"code": exc.code, "message": exc.message}})
    return {"done": done, "refused": refused}


# --- folders to the trash and back ---------------------------------------------------------


def trashed_folder_for(user: User, folder_id: str) -> Folder:
    """A trashed folder a firm user may restore (its company visible to them, no
    trashed folder above it), else NotFound."""
    permissions.require_role(user, "admin", "staff")
    folder = Folder.get_or_none(Folder.id == str(folder_id))
    if folder is None or folder.trashed_at is None:
        raise NotFound("Folder not found.")
    permissions.company_for(user, folder.company_id)
    above = [i for i in folders.ancestor_ids(folder) if i != folder.id]
    if Folder.select().where(Folder.id.in_(above) & Folder.trashed_at.is_null(False)).exists():
        raise NotFound("Folder not found.")
    return folder


def trashed_folders(user: User, company: Company) -> list[dict]:
    """The company's trashed folders (the topmost of each trashed subtree), each with
    its path and the number of documents it takes with it."""
    if not permissions.is_firm_user(user):
        return []
    rows = list(Folder.select().where((Folder.company == company.id)
                                      & Folder.trashed_at.is_null(False))
                .order_by(Folder.trashed_at.desc()))
    trashed = {f.id for f in rows}
    tops = [f for f in rows if not (set(folders.ancestor_ids(f)[:-1]) & trashed)]
    paths = folders.display_paths(tops)
    result = []
    for f in tops:
        count = Document.select().where(Document.folder.in_(folders.subtree_ids(f))
                                        & Document.trashed_at.is_null()).count()
        result.append({"folder": f, "path": paths.get(f.id, f.name), "documents": count})
    return result


# --- where a move sends a document ----------------------------------------------------------


def switched_on_by_folder(company_id: str) -> dict[str, list[str]]:
    """For each folder of the company, the names of the connections a document moved
    there is sent to (switches on, connections not paused), from two queries."""
    conns = {c.id: c for c in switches.company_connections(company_id, include_paused=False)}
    rows = list(Folder.select(Folder.id, Folder.path).where(Folder.company == company_id))
    explicit: dict[str, dict[str, str]] = {}
    if conns:
        for sw in Switch.select().where(Switch.connection.in_(list(conns))):
            explicit.setdefault(sw.folder_id, {})[sw.connection_id] = sw.state
    result = {}
    for f in rows:
        state: dict[str, str] = {}
        for fid in folders.ancestor_ids(f):  # root first: the nearest state wins
            state.update(explicit.get(fid, {}))
        result[f.id] = [conns[c].name for c, s in state.items() if s == "on" and c in conns]
    return result


# --- ZIP downloads ---------------------------------------------------------------------------


def zip_documents(user: User, ids: list[str]) -> Export:
    """The documents among ``ids`` the user may see, each under its own name (a clash
    gets " (2)"); an id the user may not see is refused as not found."""
    ids = list(dict.fromkeys(str(i) for i in ids))
    if not ids:
        raise Invalid("Choose at least one document.", "no_document")
    if len(ids) > MAX_IDS:
        raise Invalid(f"At most {MAX_IDS} documents at once.", "too_many_documents")
    docs = [permissions.document_for(user, i) for i in ids]
    names = Names()
    stream = ZipStream(sized=True)
    store = runtime.store()
    for doc in docs:
        stream.add(iter_blob(store, doc.blob_id), names.claim("", doc.name), size=doc.size)
    _record(user, "documents.zipped", docs[0].company_id, {"documents": len(docs)})
    return Export(stream, "documents.zip", len(docs), sum(d.size for d in docs), [])


def zip_folder(user: User, folder: Folder) -> Export:
    """The folder and everything below it that the user may see (a client: no folder
    reserved to the firm, nothing trashed), in directories named after the folders."""
    hidden = permissions.hidden_prefixes(user, folder.company_id)
    tree = [f for f in folders.subtree(folder).order_by(Folder.depth, Folder.name, Folder.id)
            if not any(f.path.startswith(p) for p in hidden)]
    names = Names()
    directory: dict[str, str] = {}
    for f in tree:
        if f.id == folder.id:
            directory[f.id] = ""
        elif f.parent_id in directory:
            parent = directory[f.parent_id]
            directory[f.id] = parent + names.claim(parent, f.name) + "/"
    docs = list(Document.select().where(Document.folder.in_(list(directory))
                                        & Document.trashed_at.is_null())
                .order_by(Document.deposited_at, Document.id))
    stream = ZipStream(sized=True)
    for f in tree:
        if directory.get(f.id):
            stream.mkdir(directory[f.id])
    store = runtime.store()
    for doc in docs:
        where = directory[doc.folder_id]
        stream.add(iter_blob(store, doc.blob_id), where + names.claim(where, doc.name),
                   size=doc.size)
    _record(user, "folder.zipped", folder.company_id,
            {"folder_id": folder.id, "documents": len(docs)})
    safe = "".join(ch if ch.isalnum() or ch in " -_" else "_" for ch in folder.name).strip()
    return Export(stream, f"{safe or 'dossier'}.zip", len(docs), sum(d.size for d in docs), [])


def _record(user: User, action: str, company_id: str, details: dict) -> None:
    with transaction():
        audit.record(user, action, None, firm=user.firm_id, company=company_id,
                     details=details)
