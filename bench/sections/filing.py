"""11. Fiscal year and bulk filing: « Ouvrir l'exercice 2027 » for a firm of 200
client companies (the preview, the job as the worker runs it, and a second run that
creates nothing), and bulk actions on 1,000 documents (a move, a move into a
switched-on folder, trash, restore), each beside the writes it cannot avoid."""

from __future__ import annotations

import time

from .. import world
from ..profiling import hotspots
from ..report import Section
from . import missing_module

NUMBER, KEY, TITLE = 11, "filing", "Fiscal year and bulk filing"
ANNUAL = "Dossier comptable annuel 2026"


def unavailable() -> str | None:
    return missing_module("ged.fiscal_years", "open_year", "run_task") or \
        missing_module("ged.filing", "bulk")


def _firm_of(companies: int):
    """A firm with ``companies`` client companies, each with the 2026 tree, linked to a
    webhook tool whose switch is on for its 2026 Achats folder."""
    from ged import companies as companies_mod
    from ged import integrations, switches
    from ged.db import db

    firm = world.make_firm()
    with db.connection_context():
        tool = integrations.install(firm.admin, firm.firm, preset="webhook", name="Pré-compta")
        rows = [firm.company] + [
            companies_mod.create_company(firm.admin, firm.firm, name=f"Entreprise {i:03d}",
                                         template="annual", year=2026)
            for i in range(1, companies)]
        for company in rows:
            conn, _secret = integrations.connect(firm.admin, company, tool, name="Pré-compta",
                                                 url="http://127.0.0.1:9/never")
            switches.set_switch(firm.admin, world.folder(company, ANNUAL, "Achats"), conn, "on")
    return firm, rows


def _fiscal_year(h, firm, companies: list) -> dict:
    """The preview, the job (``run_task``, progress writes included), the second run;
    and the raw limit: the same folder and switch rows inserted company by company, one
    transaction each."""
    from ged import fiscal_years, folders
    from ged.db import db, new_id, transaction
    from ged.models import Folder, Switch

    with db.connection_context():
        t0 = time.perf_counter()
        preview = fiscal_years.open_year(firm.admin, 2027, dry_run=True)
        preview_s = time.perf_counter() - t0
        task = fiscal_years.start_task(firm.admin, 2027)
        h.empty_queues()  # the job is run here, as the worker would
        t0 = time.perf_counter()
        result = fiscal_years.run_task(task.id)
        run_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = fiscal_years.open_year(firm.admin, 2027)
        again_s = time.perf_counter() - t0
        # Raw: per company, one transaction inserting as many folder rows as the run
        # created for it (a flat list under the root) and one switch row.
        per_company = result["folders_created"] // max(len(companies), 1)
        switch_rows = list(Switch.select().where(Switch.state == "on").limit(len(companies)))
        t0 = time.perf_counter()
        for index, company in enumerate(companies):
            root = folders.root_of(company)
            rows = []
            for n in range(per_company):
                fid = new_id()
                rows.append({"id": fid, "company": company.id, "parent": root.id,
                             "name": f"Brut {n}", "path": f"{root.path}{fid}/",
                             "depth": root.depth + 1})
            with transaction():
                Folder.insert_many(rows).execute()
                sw = switch_rows[index % len(switch_rows)]
                Switch.insert(id=new_id(), folder=rows[-1]["id"], connection=sw.connection_id,
                              state="on", set_by=firm.admin.id).execute()
        raw_s = time.perf_counter() - t0
    return {"preview": preview, "preview_s": preview_s, "result": result, "run_s": run_s,
            "again": again, "again_s": again_s, "raw_s": raw_s}


def _bulk(h, firm, count: int) -> dict:
    """1,000 documents at the company's root: bulk move (no switch), bulk move into the
    switched-on Achats, trash, restore; raw: one single-row UPDATE transaction per
    document, and the whole as one statement (notes)."""
    from ged import filing, folders
    from ged.db import db, transaction
    from ged.models import Delivery, Document

    company = firm.company
    with db.connection_context():
        root = folders.root_of(company)
        world.bulk_documents(firm.firm.id, ((company.id, root.id, f"piece-{i:05d}.pdf",
                                             f"Facture {i} fournisseur")
                                            for i in range(count)))
        ids = [d.id for d in Document.select(Document.id).where(
            (Document.company == company.id) & (Document.folder == root.id))]
        ventes = world.folder(company, ANNUAL, "Ventes")
        achats = world.folder(company, ANNUAL, "Achats")
        figures = {}
        for label, action, target in (("move", "move", ventes),
                                      ("move_switched", "move", achats),
                                      ("trash", "trash", None), ("restore", "restore", None)):
            t0 = time.perf_counter()
            reply = filing.bulk(firm.admin, action, ids, target.id if target else None)
            figures[label] = time.perf_counter() - t0
            if reply["done"] != len(ids):
                raise RuntimeError(f"bulk {label}: {reply['done']} of {len(ids)} done, "
                                   f"refused {reply['refused'][:2]}")
            h.empty_queues()  # the deliveries and index jobs it queued are not measured
        deliveries = Delivery.select().where(Delivery.document.in_(ids)).count()
        t0 = time.perf_counter()
        for doc_id in ids:
            with transaction():
                Document.update(folder=root.id, index_dirty=True).where(
                    Document.id == doc_id).execute()
        figures["raw"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with transaction():
            Document.update(folder=ventes.id).where(Document.id.in_(ids)).execute()
        figures["one_statement"] = time.perf_counter() - t0
        figures["profile"] = hotspots(lambda: filing.bulk(firm.admin, "move", ids[:200],
                                                          root.id))
        h.empty_queues()
    figures["deliveries"] = deliveries
    return figures


def run(h) -> Section:
    companies = 10 if h.quick else 200
    documents = 50 if h.quick else 1000
    section = Section(NUMBER, KEY, TITLE,
                      raw_label="for the fiscal year, the same folder rows and one switch row "
                                "inserted by `insert_many`, one transaction per company; for "
                                "bulk actions, one single-row UPDATE transaction per document.")
    engines = ["sqlite"] + (["postgres"] if h.postgres_available() else [])
    notes = {}
    for kind in engines:
        name = f"filing-{kind}"
        h.bind(name, h.database(name, kind))
        firm, rows = _firm_of(companies)
        fy = _fiscal_year(h, firm, rows)
        bulk = _bulk(h, firm, documents)
        h.empty_queues()
        label = "SQLite" if kind == "sqlite" else "PostgreSQL"
        n = f"{companies:,}".replace(",", " ")
        d = f"{documents:,}".replace(",", " ")
        section.add(f"{label}: open 2027 for {n} companies (the job)", fy["run_s"], "s",
                    fy["raw_s"], "< 60 s", fy["run_s"] < 60)
        section.add(f"{label}: its preview (dry run)", fy["preview_s"], "s", fy["raw_s"])
        section.add(f"{label}: a second run (creates nothing)", fy["again_s"], "s", fy["raw_s"])
        section.add(f"{label}: bulk move of {d} documents", bulk["move"], "s", bulk["raw"],
                    "< 30 s", bulk["move"] < 30)
        section.add(f"{label}: bulk move into a switched-on folder", bulk["move_switched"], "s",
                    bulk["raw"], "< 30 s", bulk["move_switched"] < 30)
        section.add(f"{label}: bulk trash", bulk["trash"], "s", bulk["raw"])
        section.add(f"{label}: bulk restore", bulk["restore"], "s", bulk["raw"])
        r = fy["result"]
        notes[kind] = (
            f"{label}: the run created {r['folders_created']} folders and carried "
            f"{r['switches_carried']} switches for {r['companies']} companies "
            f"({fy['run_s'] / max(companies, 1) * 1000:.0f} ms a company); the preview "
            f"announced {fy['preview']['folders_created']} and "
            f"{fy['preview']['switches_carried']}; the second run created "
            f"{fy['again']['folders_created']}. The move into Achats decided "
            f"{bulk['deliveries']} deliveries; the same {d} documents moved by one UPDATE "
            f"statement took {bulk['one_statement'] * 1000:.0f} ms.")
        notes[kind] += f" Where a bulk move's time goes (200 documents profiled): " \
                       f"{bulk['profile']}."
    section.notes.extend(notes.values())
    section.notes.append(
        f"{companies} client companies each with the 2026 annual tree and one webhook "
        "connection whose switch is on for its 2026 Achats; the job is "
        "`fiscal_years.run_task` run in this process as the worker would (a progress write "
        "per company). Bulk actions call `filing.bulk` (what `POST /documents/bulk` runs) on "
        f"{documents} documents bulk-inserted at the company's root.")
    section.notes.append(
        "Each document of a bulk action is handled as if alone (its own permission check, "
        "transaction, audit event and switch decision), so a refusal never stops the others "
        "and a move into a switched-on folder is a deposit there: that is the gap to one "
        "transaction per row, and far more to one statement for all.")
    return section
