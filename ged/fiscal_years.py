"""The new fiscal year: « Ouvrir l'exercice 2027 » for the whole firm.

Each client company (or those named) gets its annual folder tree from the firm's
template, and each switch that was on in last year's folder of the same path
(names below the annual folder) is turned on in the new one. Only what is missing
is created, and a switch already set on a new folder is left as it is, so a second
run creates nothing twice. A dry run says the same and writes nothing. The pages
run it as a background job (``Task``) whose progress they show.
"""

from __future__ import annotations

import json

from . import audit, folder_templates, folders, permissions, queue, switches
from .db import db, is_postgres, transaction
from .errors import Invalid, NotFound
from .models import Company, Firm, Folder, Switch, Task, User, utcnow

KIND = "fiscal_year"


def _companies(firm_id: str, company_ids: list[str] | None) -> tuple[list[Company], list[dict]]:
    query = Company.select().where(Company.firm == firm_id)
    skipped = []
    if company_ids:
        ids = list(dict.fromkeys(company_ids))
        rows = list(query.where(Company.id.in_(ids)).order_by(Company.name))
        if len(rows) != len(ids):  # another firm's company, or none: as if it did not exist
            raise NotFound("Company not found.")
        skipped += [{"company_id": c.id, "name": c.name, "reason": "prospect"}
                    for c in rows if c.status != "client"]
        return [c for c in rows if c.status == "client"], skipped
    return list(query.where(Company.status == "client").order_by(Company.name)), skipped


def _child(parent_id: str, name: str) -> Folder | None:
    return Folder.get_or_none((Folder.parent == parent_id) & (Folder.name == name)
                              & Folder.trashed_at.is_null())


def _relative_folders(top: Folder) -> dict[tuple, Folder]:
    """Every folder of a subtree by its path of names below ``top`` (``()`` is top)."""
    rows = list(folders.subtree(top).where(Folder.trashed_at.is_null()).order_by(Folder.depth))
    names: dict[str, tuple] = {top.id: ()}
    result = {(): top}
    for f in rows:
        if f.id != top.id and f.parent_id in names:
            names[f.id] = names[f.parent_id] + (f.name,)
            result[names[f.id]] = f
    return result


def _lock(company_id: str) -> None:
    """Two runs at once (two admins, a form posted twice) open one company in turn, so
    the second finds the first's folders. SQLite's write transaction is already
    exclusive; on PostgreSQL a transaction-scoped advisory lock per company."""
    if is_postgres():
        db.execute_sql("SELECT pg_advisory_xact_lock(hashtext(%s))",
                       (f"ged.fiscal_year:{company_id}",))


def open_company(actor, company: Company, template: dict, year: int, *,
                 carry_switches: bool = True, dry_run: bool = False) -> dict:
    """Open ``year`` for one company; returns {folders_created, switches_carried}."""
    root = folders.root_of(company)
    created = 0
    with transaction():
        _lock(company.id)
        def build(node: dict, parent: Folder | None, exists: bool) -> None:
            nonlocal created
            name = folders.clean_folder_name(str(node["name"]).replace("{year}", str(year)))
            found = _child(parent.id, name) if exists and parent is not None else None
            folder = found
            if found is None:
                created += 1
                if not dry_run:
                    folder = folders.new_folder(company.id, parent, name,
                                                retention_years=node.get("retention_years"),
                                                firm_only=bool(node.get("firm_only", False)))
            for child in node.get("children", []):
                build(child, folder, folder is not None and (found is not None or not dry_run))

        build(template, root, True)
        carried = 0
        if carry_switches:
            carried = _carry(actor, company, root, template, year, dry_run)
        if created and not dry_run:
            audit.record(actor, "fiscal_year.opened", company, firm=company.firm_id,
                         details={"year": year, "folders_created": created,
                                  "switches_carried": carried})
    return {"folders_created": created, "switches_carried": carried}


def _carry(actor, company: Company, root: Folder, template: dict, year: int,
           dry_run: bool) -> int:
    """Turn on, in this year's tree, each switch that is on in last year's folder of the
    same path and not set on the new folder yet."""
    last = _child(root.id, str(template["name"]).replace("{year}", str(year - 1)))
    if last is None:
        return 0
    old = _relative_folders(last)
    conns = {c.id: c for c in switches.company_connections(company.id)}
    on = list(Switch.select().where(Switch.folder.in_([f.id for f in old.values()])
                                    & (Switch.state == "on")
                                    & Switch.connection.in_(list(conns) or [""])))
    if not on:
        return 0
    path_of = {f.id: p for p, f in old.items()}
    new_top = _child(root.id, str(template["name"]).replace("{year}", str(year)))
    new = _relative_folders(new_top) if new_top is not None else {}
    carried = 0
    for sw in on:
        path = path_of[sw.folder_id]
        target = new.get(path)
        if target is None:
            if dry_run and path in _template_paths(template, year):
                carried += 1  # the folder would be created by this run
            continue
        if Switch.select().where((Switch.folder == target.id)
                                 & (Switch.connection == sw.connection_id)).exists():
            continue  # set already (by a previous run, or by a person): left alone
        carried += 1
        if not dry_run:
            switches.set_switch(actor, target, conns[sw.connection_id], "on")
    return carried


def _template_paths(template: dict, year: int) -> set[tuple]:
    """The paths of names below the annual folder that the template creates."""
    paths: set[tuple] = {()}

    def walk(node: dict, prefix: tuple) -> None:
        for child in node.get("children", []):
            path = prefix + (str(child["name"]).replace("{year}", str(year)),)
            paths.add(path)
            walk(child, path)

    walk(template, ())
    return paths


def open_year(actor: User, year: int, *, company_ids: list[str] | None = None,
              carry_switches: bool = True, dry_run: bool = False, progress=None) -> dict:
    """Open ``year`` for the firm's client companies (or those named):
    ``{year, companies, folders_created, switches_carried, skipped, dry_run}``."""
    permissions.require_role(actor, "admin")
    if not 1990 <= int(year) <= 2100:
        raise Invalid("year must be between 1990 and 2100.", "invalid_year")
    firm = Firm.get_by_id(actor.firm_id)
    template = folder_templates.of_firm(firm)
    rows, skipped = _companies(firm.id, company_ids)
    result = {"year": year, "companies": 0, "folders_created": 0, "switches_carried": 0,
              "skipped": skipped, "dry_run": dry_run, "details": []}
    for index, company in enumerate(rows):
        done = open_company(actor, company, template, year, carry_switches=carry_switches,
                            dry_run=dry_run)
        if done["folders_created"] or done["switches_carried"]:
            result["companies"] += 1
            result["details"].append({"company_id": company.id, "name": company.name, **done})
        else:
            result["skipped"].append({"company_id": company.id, "name": company.name,
                                      "reason": "already_open"})
        result["folders_created"] += done["folders_created"]
        result["switches_carried"] += done["switches_carried"]
        if progress:
            progress(index + 1, len(rows))
    return result


# --- as a background job -----------------------------------------------------------------------


def start_task(actor: User, year: int, *, company_ids: list[str] | None = None,
               carry_switches: bool = True) -> Task:
    """Record the run and enqueue it; the page follows ``Task.done``/``total``."""
    permissions.require_role(actor, "admin")
    if not 1990 <= int(year) <= 2100:
        raise Invalid("year must be between 1990 and 2100.", "invalid_year")
    params = {"year": year, "company_ids": company_ids, "carry_switches": carry_switches,
              "actor_id": actor.id}
    with transaction():
        task = Task.create(firm=actor.firm_id, kind=KIND, status="queued", done=0,
                           message=json.dumps({"params": params}))
    queue.schedule_fiscal_year(task.id)
    return task


def run_task(task_id: str) -> dict:
    """The job: run the recorded opening, writing its progress and its result."""
    task = Task.get_by_id(task_id)
    state = json.loads(task.message or "{}")
    if task.status == "done":
        return state.get("result", {})
    params = state["params"]
    actor = User.get_by_id(params["actor_id"])
    Task.update(status="running", updated_at=utcnow()).where(Task.id == task_id).execute()

    def progress(done: int, total: int) -> None:
        Task.update(done=done, total=total, updated_at=utcnow()).where(
            Task.id == task_id).execute()

    try:
        result = open_year(actor, params["year"], company_ids=params["company_ids"],
                           carry_switches=params["carry_switches"], progress=progress)
    except Exception as exc:
        Task.update(status="failed", updated_at=utcnow(),
                    message=json.dumps({**state, "error": str(exc)[:500]})).where(
            Task.id == task_id).execute()
        raise
    Task.update(status="done", updated_at=utcnow(),
                message=json.dumps({**state, "result": result})).where(
        Task.id == task_id).execute()
    return result


def task_view(user: User, task_id: str) -> dict:
    """A run's progress and result, for the firm that started it."""
    task = Task.get_or_none((Task.id == task_id) & (Task.firm == user.firm_id)
                            & (Task.kind == KIND))
    if task is None:
        raise NotFound("Task not found.")
    state = json.loads(task.message or "{}")
    return {"id": task.id, "status": task.status, "done": task.done, "total": task.total,
            "year": state.get("params", {}).get("year"), "result": state.get("result"),
            "error": state.get("error")}
