"""The audit trail as a person reads it: one French sentence per event, with the
names of people, documents, folders and tools (« Bruno a activé l'envoi vers agiris
sur Achats »), and the filters of the « Journal » page (person, kind, dates)."""

from __future__ import annotations

import datetime as dt

import peewee as pw

from .models import AuditEvent, Connection, Document, Folder

# The kinds a person filters by: a label and the action prefixes it covers.
KINDS = {
    "documents": ("Documents", ("document.",)),
    "dossiers": ("Dossiers", ("folder.", "fiscal_year.")),
    "envois": ("Envois", ("delivery.", "switch.", "connection.")),
    "emails": ("E-mails reçus", ("email.",)),
    "comptes": ("Comptes et connexions", ("user.", "login.", "token.")),
    "entreprise": ("Entreprise", ("company.",)),
}

SYSTEM = "Le système"


def person(label: str | None) -> str:
    """The display name of an actor label ("Name <email>"); a command or the switch
    machinery reads as « Le système »."""
    if not label:
        return SYSTEM
    if "<" in label:
        return label.split(" <", 1)[0].strip() or label
    return SYSTEM if label in ("switch", "système", "system") or label.startswith("ged ") \
        else label


def filtered(query, args: dict, company_id: str):
    """Apply the page's filters: ``qui`` (actor id), ``type`` (a KINDS key), ``du`` and
    ``au`` (ISO dates, Paris days are close enough to UTC days for a filter)."""
    who = args.get("qui")
    if who:
        query = query.where(AuditEvent.actor_id == who)
    kind = KINDS.get(args.get("type") or "")
    if kind:
        cond = None
        for prefix in kind[1]:
            part = AuditEvent.action.startswith(prefix)
            cond = part if cond is None else cond | part
        query = query.where(cond)
    for key, op in (("du", "ge"), ("au", "lt")):
        raw = args.get(key) or ""
        try:
            day = dt.date.fromisoformat(raw)
        except ValueError:
            continue
        if op == "lt":
            day += dt.timedelta(days=1)
        moment = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)
        query = query.where(AuditEvent.created_at >= moment if op == "ge"
                            else AuditEvent.created_at < moment)
    return query


def people(company_id: str) -> list[tuple[str, str]]:
    """(actor id, name) of everyone who appears in the company's trail."""
    rows = (AuditEvent.select(AuditEvent.actor_id, pw.fn.MAX(AuditEvent.actor_label))
            .where((AuditEvent.company_id == company_id) & AuditEvent.actor_id.is_null(False))
            .group_by(AuditEvent.actor_id).tuples())
    return sorted(((i, person(label)) for i, label in rows), key=lambda r: r[1].lower())


def sentences(events: list[AuditEvent]) -> list[tuple[AuditEvent, str | None]]:
    """Each event with its sentence; names are looked up in three queries."""
    folder_ids, doc_ids, conn_ids = set(), set(), set()
    for e in events:
        d = e.details or {}
        if e.object_type == "folder":
            folder_ids.add(e.object_id)
        if e.object_type == "document":
            doc_ids.add(e.object_id)
        for key in ("folder_id", "to_folder", "from_folder", "parent_id", "to_parent",
                    "from_parent"):
            if d.get(key):
                folder_ids.add(d[key])
        if d.get("document_id"):
            doc_ids.add(d["document_id"])
        if d.get("connection_id"):
            conn_ids.add(d["connection_id"])
        if e.object_type == "connection":
            conn_ids.add(e.object_id)
    names = {"folder": dict(Folder.select(Folder.id, Folder.name).where(
                 Folder.id.in_(list(folder_ids) or [""])).tuples()),
             "document": dict(Document.select(Document.id, Document.name).where(
                 Document.id.in_(list(doc_ids) or [""])).tuples()),
             "connection": dict(Connection.select(Connection.id, Connection.name).where(
                 Connection.id.in_(list(conn_ids) or [""])).tuples())}
    return [(e, sentence(e, names)) for e in events]


def _q(text) -> str:
    return f"« {text} »"


def sentence(e: AuditEvent, names: dict) -> str | None:
    d = e.details or {}
    who = person(e.actor_label)
    folder = lambda i: names["folder"].get(i) or "un dossier supprimé"  # noqa: E731
    doc = names["document"].get(e.object_id if e.object_type == "document"
                                else d.get("document_id")) or d.get("name") or "un document"
    conn = (d.get("connection") or names["connection"].get(d.get("connection_id"))
            or names["connection"].get(e.object_id) or "un outil")
    this_folder = folder(e.object_id) if e.object_type == "folder" else None
    a = e.action
    if a == "document.deposited":
        return f"{who} a déposé {_q(d.get('name') or doc)} dans {folder(d.get('folder_id'))}" \
               + (" (par e-mail)" if d.get("channel") == "email" else "")
    if a == "document.moved":
        return f"{who} a déplacé {_q(doc)} de {folder(d.get('from_folder'))} vers " \
               f"{folder(d.get('to_folder'))}"
    if a == "document.renamed":
        return f"{who} a renommé {_q(d.get('from'))} en {_q(d.get('to'))}"
    simple = {"document.trashed": "a mis {doc} à la corbeille",
              "document.restored": "a restauré {doc}",
              "document.purged": "a supprimé définitivement {doc}",
              "document.replaced": "a remplacé {doc}",
              "document.hold_set": "a posé une conservation légale sur {doc}",
              "document.hold_released": "a levé la conservation légale de {doc}"}
    if a in simple:
        return f"{who} " + simple[a].format(doc=_q(doc))
    if a == "switch.set":
        state = d.get("state")
        verb = {"on": "a activé l'envoi vers", "off": "a désactivé l'envoi vers"}.get(
            state, "a remis à l'état hérité l'envoi vers")
        return f"{who} {verb} {conn} sur {this_folder}"
    if a == "folder.created":
        return f"{who} a créé le dossier {d.get('name') or this_folder}"
    if a == "folder.renamed":
        return f"{who} a renommé le dossier {_q(d.get('from'))} en {_q(d.get('to'))}"
    if a == "folder.moved":
        return f"{who} a déplacé le dossier {this_folder} dans {folder(d.get('to_parent'))}"
    if a == "folder.trashed":
        return f"{who} a mis le dossier {this_folder} à la corbeille"
    if a == "folder.restored":
        return f"{who} a restauré le dossier {this_folder}"
    if a == "fiscal_year.opened":
        return f"{who} a ouvert l'exercice {d.get('year')}"
    if a.startswith("delivery."):
        verdict = {"delivery.queued": "à envoyer à", "delivery.failed": "non envoyé à",
                   "delivery.retry_scheduled": "sera renvoyé à",
                   "delivery.file_downloaded": "téléchargé par"}.get(a, "envoyé à")
        return f"{_q(doc)} {verdict} {conn}"
    if a == "connection.created":
        return f"{who} a relié l'outil {conn}"
    if a == "email.received":
        return f"E-mail reçu de {d.get('from') or d.get('sender') or 'un expéditeur'}"
    if a == "email.refused":
        return f"E-mail refusé de {d.get('from') or d.get('sender') or 'un expéditeur'}"
    if a == "company.updated":
        return f"{who} a modifié l'entreprise"
    account = _account_sentence(a, who, d)
    if account:
        return account
    return None  # the page shows the kind's label alone


_ACCOUNT = {
    "user.password_reset": "Mot de passe de {who} changé avec un lien de réinitialisation",
    "user.password_changed": "{who} a changé son mot de passe",
    "user.password_reset_sent": "Lien de réinitialisation du mot de passe envoyé par {who}",
    "user.totp_enabled": "Double authentification activée par {who}",
    "user.totp_disabled": "Double authentification désactivée par {who}",
    "user.recovery_code_used": "{who} s'est servi d'un code de secours",
}


def _account_sentence(action: str, who: str, d: dict) -> str | None:
    """Sign-ins and changes to one's account."""
    if action == "login.succeeded":
        return f"Connexion de {who}" + (" avec la double authentification"
                                        if d.get("second_factor") else "")
    if action == "login.failed":
        why = {"bad_totp": "code de double authentification erroné",
               "disabled": "compte désactivé"}.get(d.get("reason"), "mot de passe erroné")
        return f"Connexion refusée pour {who} : {why}"
    if action in _ACCOUNT:
        return _ACCOUNT[action].format(who=who)
    return None
