"""The events of the rest of ged that people are told about: new documents in their
companies, a document the client must replace, a delivery that failed. Each is
called after its transaction committed, never raises (a notification lost is
logged; the deposit or the verdict stands), and keys its rows so that one event
makes at most one message per recipient."""

from __future__ import annotations

import logging

from . import notifications, permissions
from .models import Company, Connection, Delivery, Document, Folder

log = logging.getLogger(__name__)


def _safely(fn):
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception:  # noqa: BLE001 - telling people never undoes what happened
            log.exception("notification %s failed", fn.__name__)
            return []

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


@_safely
def documents_deposited(docs: list[Document]) -> list[str]:
    """New documents: the company's firm users, and its clients who asked for them,
    except the depositor; a client never hears of a document in a firm-only folder."""
    if not docs:
        return []
    by_company: dict[str, list[Document]] = {}
    for d in docs:
        by_company.setdefault(d.company_id, []).append(d)
    messages = []
    for company_id, items in by_company.items():
        company = Company.get_by_id(company_id)
        firm_side = notifications.firm_users(company)
        clients = notifications.client_users(company_id)
        hidden = permissions.hidden_prefixes(clients[0], company_id) if clients else []
        paths = {f.id: f.path for f in Folder.select(Folder.id, Folder.path).where(
            Folder.id.in_({d.folder_id for d in items}))}
        for doc in items:
            seen_by_clients = not any(paths.get(doc.folder_id, "").startswith(p) for p in hidden)
            subject = f"{company.name} : {doc.name}"
            body = (f"Nouveau document déposé pour {company.name} : « {doc.name} » "
                    f"(par {doc.deposited_by_label or 'le système'}).")
            url = notifications.link(f"/documents/{doc.id}")
            for user in firm_side + (clients if seen_by_clients else []):
                if user.id == doc.deposited_by_id:
                    continue
                messages.append(notifications.Message(
                    user, "new_documents", f"document:{doc.id}:{user.id}", subject, body, url))
    return notifications.notify(messages)


@_safely
def document_rejected(document_id: str, delivery_id: str) -> list[str]:
    """A tool rejected the document: its company's clients are told at once (their
    preference permitting) with the reason and a link to replace it; the tool is
    never named."""
    doc = Document.get_or_none(Document.id == document_id)
    if doc is None or doc.status != "rejected" or doc.trashed_at is not None:
        return []
    company = Company.get_by_id(doc.company_id)
    clients = notifications.client_users(company.id)
    folder = Folder.get_by_id(doc.folder_id)
    if clients and not permissions.folder_visible(clients[0], folder):
        return []
    reason = doc.status_reason or "le document n'a pas pu être traité"
    body = (f"Le document « {doc.name} » ({company.name}) est à remplacer.\n\n"
            f"Motif : {reason}\n\nDéposez une version corrigée depuis la page du document : "
            f"elle remplace celui-ci, qui reste conservé.")
    url = notifications.link(f"/documents/{doc.id}")
    return notifications.notify([
        notifications.Message(u, "rejections", f"rejected:{delivery_id}:{u.id}",
                              f"À remplacer : {doc.name}", body, url) for u in clients])


@_safely
def delivery_failed(delivery_id: str) -> list[str]:
    """A delivery failed for good: the company's firm users (per their preference)."""
    delivery = Delivery.get_or_none(Delivery.id == delivery_id)
    if delivery is None or delivery.status != "failed":
        return []
    doc = Document.get_by_id(delivery.document_id)
    company = Company.get_by_id(delivery.company_id)
    conn = Connection.get_or_none(Connection.id == delivery.connection_id)
    name = conn.name if conn else "connexion supprimée"
    body = (f"L'envoi de « {doc.name} » ({company.name}) vers « {name} » a échoué.\n\n"
            f"Erreur : {delivery.last_error or 'inconnue'}")
    url = notifications.link(f"/documents/{doc.id}")
    return notifications.notify([
        notifications.Message(u, "delivery_failures", f"delivery-failed:{delivery.id}:{u.id}",
                              f"Échec d'envoi : {doc.name} vers {name}", body, url)
        for u in notifications.firm_users(company)])
