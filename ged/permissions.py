"""Who may see and change what: the one home of the access rules.

Admins see their whole firm, staff the companies assigned to them, client users
their own company's folders that are neither firm-only nor trashed. Nobody ever
sees another firm. Every view, API route and search query asks here. An object
the caller may not see raises NotFound (ids leak nothing); an action their role
may not do on an object they see raises Forbidden.
"""

from __future__ import annotations

import peewee as pw

from .errors import Forbidden, NotFound
from .models import (Company, Connection, Delivery, Document, Folder, Integration,
                     StaffAssignment, User)


def is_firm_user(user: User) -> bool:
    """Firm staff or admin: may see switches, connections and deliveries."""
    return user.role in ("admin", "staff")


def require_role(user: User, *roles: str, message: str | None = None) -> None:
    if user.role not in roles:
        raise Forbidden(message or "Your role may not do this.")


def require_firm_user(user: User, *, hidden: bool = False) -> None:
    """Firm staff or admin only. A client user gets Forbidden (a firm page), or with
    ``hidden`` a NotFound that names nothing: what clients never learn exists
    (integrations, connections, switches, deliveries in the API)."""
    if is_firm_user(user):
        return
    if hidden:
        raise NotFound()
    raise Forbidden()


def visible_companies(user: User) -> pw.ModelSelect:
    """The companies ``user`` may see, as a query."""
    query = Company.select().where(Company.firm == user.firm_id)
    if user.role == "admin":
        return query
    if user.role == "staff":
        return query.where(
            Company.id.in_(StaffAssignment.select(StaffAssignment.company).where(
                StaffAssignment.user == user.id))
        )
    return query.where(Company.id == user.company_id)


def visible_company_ids(user: User) -> list[str]:
    return [c.id for c in visible_companies(user).select(Company.id)]


def company_for(user: User, company_id: str) -> Company:
    """The company if ``user`` may see it, else NotFound."""
    company = visible_companies(user).where(Company.id == str(company_id)).first()
    if company is None:
        raise NotFound("Company not found.")
    return company


def hidden_prefixes(user: User, company_id: str) -> list[str]:
    """Materialised paths under which ``user`` sees nothing in this company
    (trashed folders for everyone; firm-only folders for client users)."""
    return hidden_prefixes_in(user, [company_id])


def hidden_prefixes_in(user: User, company_ids: list[str] | None) -> list[str]:
    """``hidden_prefixes`` over several companies in one query (None: every company
    of the user's firm), for search filters."""
    cond = Folder.trashed_at.is_null(False)
    if not is_firm_user(user):
        cond = cond | (Folder.firm_only == True)  # noqa: E712
    if company_ids is None:
        where = Folder.company.in_(Company.select(Company.id).where(Company.firm == user.firm_id))
    else:
        where = Folder.company.in_(list(company_ids))
    return [f.path for f in Folder.select(Folder.path).where(where & cond)]


def folder_visible(user: User, folder: Folder) -> bool:
    if folder.company.firm_id != user.firm_id:
        return False
    if user.role == "client" and folder.company_id != user.company_id:
        return False
    if user.role == "staff" and not StaffAssignment.select().where(
            (StaffAssignment.user == user.id) & (StaffAssignment.company == folder.company_id)).exists():
        return False
    return not any(folder.path.startswith(p) for p in hidden_prefixes(user, folder.company_id))


def folder_for(user: User, folder_id: str) -> Folder:
    """The folder if ``user`` may see it, else NotFound."""
    folder = (Folder.select(Folder, Company).join(Company)
              .where(Folder.id == str(folder_id)).first())
    if folder is None or not folder_visible(user, folder):
        raise NotFound("Folder not found.")
    return folder


def document_for(user: User, document_id: str, *, include_trashed: bool = False) -> Document:
    """The document if ``user`` may see it, else NotFound. Trashed documents are seen
    only by firm users, and only when asked for."""
    doc = (Document.select(Document, Folder).join(Folder)
           .where(Document.id == str(document_id)).first())
    if doc is None or doc.firm_id != user.firm_id:
        raise NotFound("Document not found.")
    if doc.trashed_at is not None and not (include_trashed and is_firm_user(user)):
        raise NotFound("Document not found.")
    folder = doc.folder
    if not folder_visible(user, folder):
        if not (include_trashed and is_firm_user(user) and doc.trashed_at is not None):
            raise NotFound("Document not found.")
        company_for(user, doc.company_id)
    return doc


def firm_object(user: User, obj) -> None:
    """Raise NotFound unless ``user`` is firm staff who may see the object's company.
    Used for connections, switches and deliveries, which clients never see."""
    if obj is None or not is_firm_user(user) or obj.firm_id != user.firm_id:
        raise NotFound()
    company_for(user, obj.company_id)


def connection_for(user: User, connection_id: str) -> Connection:
    conn = Connection.get_or_none((Connection.id == str(connection_id)) & Connection.deleted_at.is_null())
    try:
        firm_object(user, conn)
    except NotFound:
        raise NotFound("Connection not found.") from None
    return conn


def integration_for(user: User, integration_id: str) -> Integration:
    """An integration of the caller's firm, for firm users only, else NotFound."""
    integration = Integration.get_or_none((Integration.id == str(integration_id))
                                          & Integration.deleted_at.is_null())
    if integration is None or not is_firm_user(user) or integration.firm_id != user.firm_id:
        raise NotFound("Integration not found." if is_firm_user(user) else "Not found.")
    return integration


def delivery_for(user: User, delivery_id: str) -> Delivery:
    delivery = Delivery.get_or_none(Delivery.id == str(delivery_id))
    try:
        firm_object(user, delivery)
    except NotFound:
        raise NotFound("Delivery not found.") from None
    return delivery


def may_change_tree(user: User) -> None:
    require_role(user, "admin", "staff", message="Only the firm may change folders.")


def may_trash(user: User, doc: Document) -> None:
    """Staff may trash any document they see; a client only their own deposit not yet validated."""
    if is_firm_user(user):
        return
    if doc.deposited_by_id != user.id or doc.status == "validated":
        raise Forbidden("You may only delete your own deposits that are not yet validated.")
