"""Comments: a thread on each document between the firm and the client.

Firm users may write internal notes: they never reach a client — not in the
thread a client reads (pages or API), not in a client's e-mail, not in search
(comments are not indexed) and not in the audit trail a client could be shown
(the events of internal notes are firm-only and carry no text).
"""

from __future__ import annotations

from . import audit, notifications, permissions
from .db import transaction
from .errors import Forbidden, Invalid
from .models import Comment, Company, Document, User

MAX_BODY = 10_000


def visible(user: User, doc: Document):
    """The thread of ``doc`` as ``user`` may read it, oldest first (a client: no
    internal notes). The caller has checked that ``user`` sees ``doc``."""
    query = Comment.select().where(Comment.document == doc.id)
    if not permissions.is_firm_user(user):
        query = query.where(Comment.internal == False)  # noqa: E712
    return query.order_by(Comment.created_at, Comment.id)


def add(author: User, doc: Document, body, internal: bool = False) -> Comment:
    """Add a message to the thread; both sides are told (per their preferences), a client
    never of an internal note."""
    body = (body or "").strip() if isinstance(body, str) else ""
    if not body:
        raise Invalid("A comment needs some text.", "body_required")
    if len(body) > MAX_BODY:
        raise Invalid(f"A comment is at most {MAX_BODY} characters.", "body_too_long")
    if internal and not permissions.is_firm_user(author):
        raise Forbidden("Only the firm writes internal notes.", "internal_firm_only")
    with transaction():
        comment = Comment.create(firm=doc.firm_id, company=doc.company_id, document=doc.id,
                                 author=author.id, author_name=author.name, body=body,
                                 internal=bool(internal))
        audit.record(author, "comment.internal" if internal else "comment.added", doc,
                     firm_only=bool(internal), details={"comment_id": comment.id})
        ids = notifications.record(_messages(comment, doc, author))
    notifications.dispatch(ids)
    return comment


def _messages(comment: Comment, doc: Document, author: User) -> list:
    company = Company.get_by_id(doc.company_id)
    readers = notifications.firm_users(company)
    if not comment.internal:
        readers += notifications.client_users(company.id)
    kind = "Note interne" if comment.internal else "Nouveau commentaire"
    subject = f"{kind} sur « {doc.name} »"
    body = (f"{author.name} a écrit sur le document « {doc.name} » ({company.name}) :"
            f"\n\n{comment.body}")
    url = notifications.link(f"/documents/{doc.id}#commentaires")
    return [notifications.Message(u, "comments", f"comment:{comment.id}:{u.id}", subject, body, url)
            for u in readers if u.id != author.id
            and (permissions.is_firm_user(u) or not comment.internal)]


def comment_dict(comment: Comment) -> dict:
    return {"id": comment.id, "document_id": comment.document_id,
            "author": {"id": comment.author_id, "name": comment.author_name},
            "body": comment.body, "internal": comment.internal,
            "created_at": comment.created_at.isoformat()}
