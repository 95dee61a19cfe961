"""The French words the pages show for the domain's codes (roles, statuses, channels,
audit actions) and for times, as template filters: the templates never spell them."""

from __future__ import annotations

from flask import Flask

from .. import formats

ROLE_LABELS = {"admin": "Administrateur", "staff": "Collaborateur", "client": "Client"}

DELIVERY_LABELS = {
    "queued": "En attente",
    "sending": "Envoi en cours",
    "sent": "Envoyé",
    "accepted": "Accepté",
    "validated": "Validé par l'outil",
    "rejected": "Rejeté par l'outil",
    "failed": "Échec",
}
# What a document's status says, to the client and the firm alike (never a tool's name).
DOCUMENT_LABELS = {
    "deposited": "Déposé",
    "sending": "En cours de traitement",
    "validated": "Validé",
    "rejected": "À remplacer",
    "replaced": "Remplacé",
}
TEXT_LABELS = {"pending": "Lecture en cours", "done": "Texte lu", "failed": "Illisible",
               "unsupported": "Sans texte", "partial": "Texte lu en partie (des pages illisibles)",
               "encrypted": "Protégé par mot de passe : texte illisible"}
CHANNEL_LABELS = {"web": "Site web", "api": "API", "email": "E-mail", "import": "Import"}

AUDIT_LABELS = {
    "company.created": "Entreprise créée",
    "company.updated": "Entreprise modifiée",
    "company.staff_assigned": "Collaborateurs affectés",
    "company.drop_address_regenerated": "Adresse de dépôt renouvelée",
    "email.received": "E-mail reçu",
    "email.refused": "E-mail refusé",
    "user.created": "Utilisateur créé",
    "user.invited": "Invitation envoyée",
    "user.invitation_accepted": "Invitation acceptée",
    "user.enabled": "Utilisateur réactivé",
    "user.disabled": "Utilisateur désactivé",
    "user.password_set": "Mot de passe défini",
    "folder.created": "Dossier créé",
    "folder.renamed": "Dossier renommé",
    "folder.moved": "Dossier déplacé",
    "folder.trashed": "Dossier mis à la corbeille",
    "folder.restored": "Dossier restauré",
    "folder.firm_only": "Visibilité du dossier modifiée",
    "folder.retention_set": "Durée de conservation modifiée",
    "document.deposited": "Document déposé",
    "document.moved": "Document déplacé",
    "document.renamed": "Document renommé",
    "document.trashed": "Document mis à la corbeille",
    "document.restored": "Document restauré",
    "document.hold_set": "Conservation légale posée",
    "document.hold_released": "Conservation légale levée",
    "document.purged": "Document supprimé définitivement",
    "document.replaced": "Document remplacé",
    "switch.set": "Interrupteur modifié",
    "delivery.queued": "Envoi programmé",
    "delivery.sent": "Envoyé",
    "delivery.accepted": "Accepté par l'outil",
    "delivery.validated": "Validé par l'outil",
    "delivery.rejected": "Rejeté par l'outil",
    "delivery.failed": "Échec d'envoi",
    "connection.created": "Connexion ajoutée",
    "connection.updated": "Connexion modifiée",
    "connection.deleted": "Connexion supprimée",
    "connection.secret_rotated": "Secret renouvelé",
    "connection.tested": "Connexion testée",
    "connection.paused": "Connexion suspendue",
    "connection.resumed": "Connexion reprise",
}


def who(label: str | None) -> str:
    """A depositor's name without the e-mail address the audit label carries."""
    if not label:
        return "—"
    name = label.split(" <", 1)[0].strip()
    return name or label


def _labels() -> dict:
    return {"TEXT_LABELS": TEXT_LABELS, "CHANNEL_LABELS": CHANNEL_LABELS}


def init_app(app: Flask) -> None:
    """The filters and the label tables every template may use."""
    filters = {
        "role_label": lambda role: ROLE_LABELS.get(role, role),
        "delivery_label": lambda status: DELIVERY_LABELS.get(status, status),
        "document_status": lambda status: DOCUMENT_LABELS.get(status, status),
        "audit_label": lambda action: AUDIT_LABELS.get(action, action),
        "who": who,
        **formats.FILTERS,  # numbers, amounts, dates and sizes the French way (Babel)
    }
    for name, fn in filters.items():
        app.add_template_filter(fn, name)
    app.context_processor(_labels)
