"""2. Switch cost: turning a switch on for a folder with 10,000 descendants
(`switches.set_switch`), and deciding deliveries in a folder 12 levels deep with
5 connections (`deliveries.decide`, and the whole `deposit()`)."""

from __future__ import annotations

import time

from .. import corpus, world
from ..harness import percentile
from ..profiling import hotspots
from ..report import Section

NUMBER, KEY, TITLE = 2, "switch", "Switch cost"


def _ms(values: list[float], q: float) -> float:
    return percentile(values, q) * 1000


def _toggle_figures(h, firm, size: tuple[int, int], repeats: int) -> dict:
    """Time set_switch on a folder with size[0] × size[1] descendants (one document each)."""
    from ged import folders, switches
    from ged.db import db, transaction
    from ged.models import Connection, Switch

    with db.connection_context():
        root = folders.root_of(firm.company)
        top = folders.create_folder(firm.admin, root, "Grand dossier")
        leaves = world.bulk_subtree(firm.company, top, size)
        world.bulk_documents(firm.firm.id, ((firm.company.id, fid, f"piece-{i}.pdf",
                                             f"piece {i}") for i, (fid, _p, _d) in enumerate(leaves)))
        conn = world.http_connection(firm, firm.company, "http://127.0.0.1:9/never")
        other = world.http_connection(firm, firm.company, "http://127.0.0.1:9/other", "Autre")
        # A few explicit states deeper down, as a firm would have.
        for fid, _p, _d in leaves[:: max(len(leaves) // 10, 1)][:10]:
            switches.set_switch(firm.admin, folders.Folder.get_by_id(fid), conn, "off")
        profile = hotspots(lambda: [switches.set_switch(firm.admin, top, conn, state)
                                    for state in ("on", "off", "on", "off")])
        toggles, rows_after_on = [], None
        for i in range(repeats):
            for state in ("on", "off"):
                t0 = time.perf_counter()
                reply = switches.set_switch(firm.admin, top, conn, state)
                toggles.append(time.perf_counter() - t0)
                if state == "on" and rows_after_on is None:
                    rows_after_on = Switch.select().where(Switch.folder == top.id).count()
                    affected = reply["subfolders_affected"]
        # Raw: the one-row write transaction a toggle cannot avoid.
        raw = []
        for i in range(repeats * 2):
            t0 = time.perf_counter()
            with transaction():
                Switch.delete().where((Switch.folder == top.id)
                                      & (Switch.connection == other.id)).execute()
                Switch.create(folder=top.id, connection=other.id, state="on", set_by=firm.admin.id)
            raw.append(time.perf_counter() - t0)
        Connection.update(deleted_at=folders.utcnow()).where(
            Connection.id.in_([conn.id, other.id])).execute()
    return {"p50": _ms(toggles, 50), "p95": _ms(toggles, 95), "raw_p50": _ms(raw, 50),
            "raw_p95": _ms(raw, 95), "rows": rows_after_on, "affected": affected,
            "descendants": len(leaves) + size[0], "profile": profile}


def _decide_figures(h, firm, repeats: int) -> dict:
    """deliveries.decide and deposit() in a folder 12 levels deep with 5 connections."""
    from ged import deliveries, folders, switches
    from ged.db import db
    from ged.models import Switch

    with db.connection_context():
        chain = [folders.root_of(firm.company)]
        for level in range(1, 13):
            chain.append(folders.create_folder(firm.admin, chain[-1], f"Niveau {level}"))
        deep = chain[-1]
        conns = [world.http_connection(firm, firm.company, f"http://127.0.0.1:9/c{n}", f"Outil {n}")
                 for n in range(5)]
        # Explicit states along the chain: four connections end up on, one off.
        plan = [(0, 1, "on"), (1, 4, "on"), (2, 8, "on"), (2, 10, "off"), (3, 12, "on"),
                (4, 3, "off"), (4, 6, "on")]
        for conn_index, level, state in plan:
            switches.set_switch(firm.admin, chain[level], conns[conn_index], state)
        shallow = folders.create_folder(firm.admin, chain[0], "Sans connexion")
        for conn in conns:  # the shallow folder's switches are all off: nothing to decide
            switches.set_switch(firm.admin, shallow, conn, "off")
        doc = world.deposit_bytes(firm, deep, [("seed.pdf", corpus.text_pdf("seed"))])[0]
        decide, raw_select, made = [], [], 0
        chain_ids = folders.ancestor_ids(deep)
        for _ in range(repeats):
            with db.atomic() as txn:
                t0 = time.perf_counter()
                made = len(deliveries.decide(doc, deep))
                decide.append(time.perf_counter() - t0)
                txn.rollback()
            t0 = time.perf_counter()
            list(Switch.select().where(Switch.folder.in_(chain_ids)))
            raw_select.append(time.perf_counter() - t0)
        pdf = corpus.text_pdf("Facture fournisseur")
        deep_times, shallow_times = [], []
        for i in range(repeats):
            for target, bucket in ((deep, deep_times), (shallow, shallow_times)):
                t0 = time.perf_counter()
                world.deposit_bytes(firm, target, [("f.pdf", corpus.variant(pdf, i * 2 + len(bucket)))])
                bucket.append(time.perf_counter() - t0)
    return {"decide_p50": _ms(decide, 50), "decide_p95": _ms(decide, 95),
            "select_p50": _ms(raw_select, 50), "select_p95": _ms(raw_select, 95),
            "deposit_p50": _ms(deep_times, 50), "deposit_p95": _ms(deep_times, 95),
            "plain_p50": _ms(shallow_times, 50), "plain_p95": _ms(shallow_times, 95),
            "deliveries": made}


def _prefix_is_ilike() -> bool:
    """Whether subtree queries reach the database as ILIKE (no index on PostgreSQL)."""
    from ged import folders
    from ged.models import Folder

    sql, _params = Folder.select(Folder.id).where(folders.under(Folder.path, "/x/")).sql()
    return "ILIKE" in sql.upper()


def run(h) -> Section:
    size = (10, 49) if h.quick else (100, 99)
    repeats = 5 if h.quick else 25
    section = Section(NUMBER, KEY, TITLE,
                      raw_label="for a toggle, the one-row write transaction it cannot avoid "
                                "(delete + insert of a switch row); for `decide`, one indexed "
                                "SELECT of the switches on the folder's ancestors; for "
                                "`deposit()`, the same deposit into a shallow folder whose "
                                "switches are all off.")
    engines = ["sqlite"] + (["postgres"] if h.postgres_available() else [])
    for kind in engines:
        name = f"switch-{kind}"
        h.bind(name, h.database(name, kind))
        firm = world.make_firm()
        toggle = _toggle_figures(h, firm, size, repeats)
        decide = _decide_figures(h, firm, repeats * 2)
        label = "SQLite" if kind == "sqlite" else "PostgreSQL"
        if toggle["p95"] >= 20:
            section.limits.append(f"{label} toggle, {toggle['profile']}.")
            if kind == "postgres" and _prefix_is_ilike():
                section.limits.append(
                    "On PostgreSQL, peewee compiles `Folder.path.startswith()` to `ILIKE`, which "
                    "the `varchar_pattern_ops` index on `folder.path` cannot serve: every "
                    "subtree query scans the folder table (a case-sensitive `LIKE`, or a range "
                    "`path >= p AND path < p || '\uffff'`, would use the index).")
        n = f"{toggle['descendants']:,}".replace(",", " ")
        section.add(f"{label}: switch toggle, folder with {n} descendants, p50", toggle["p50"],
                    "ms", toggle["raw_p50"], "< 20 ms", toggle["p50"] < 20)
        section.add(f"{label}: switch toggle, p95", toggle["p95"], "ms", toggle["raw_p95"],
                    "< 20 ms", toggle["p95"] < 20)
        section.add(f"{label}: decide(), 12 levels, 5 connections, p50", decide["decide_p50"],
                    "ms", decide["select_p50"])
        section.add(f"{label}: decide(), p95", decide["decide_p95"], "ms", decide["select_p95"])
        section.add(f"{label}: deposit() of a small PDF there, p50", decide["deposit_p50"], "ms",
                    decide["plain_p50"])
        section.add(f"{label}: deposit() there, p95", decide["deposit_p95"], "ms",
                    decide["plain_p95"])
        if kind == "sqlite":
            section.notes.append(
                f"Each toggle wrote {toggle['rows']} switch row for the folder (not one per "
                f"descendant) and its reply counted {toggle['affected']} subfolders affected; "
                f"`decide()` created {decide['deliveries']} deliveries (4 connections on, one "
                "turned off deeper down), rolled back after each timing.")
        h.empty_queues()
    section.notes.append(
        f"The tree: a folder with {size[0]} subfolders of {size[1]} subfolders each, one "
        "document per leaf, and explicit `off` states on 10 leaves; toggles "
        f"alternate on/off, {repeats * 2} of them. The toggle's time includes counting the "
        "subfolders and documents affected for its reply (the confirmation dialog's figures).")
    section.limits.insert(0,
        "A toggle writes one row (its write transaction holds the lock for that row and its "
        "audit event only), but its reply counts the subfolders and existing documents "
        "that follow the folder's state (API.md's `subfolders_affected`, "
        "`existing_documents_not_sent`): one indexed pass over the subtree (folders joined to "
        "their documents), made before the write, so that part grows with the subtree. Keeping "
        "per-folder counters up to date on every deposit, move and trash would make it constant; "
        "we have not judged that worth its cost yet.")
    return section
