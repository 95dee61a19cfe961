"""French on every page: Babel's formats as Jinja filters (ged/formats.py), and the
French sentence for any error a page shows (the API keeps its English messages and
codes; a page never shows them)."""

from __future__ import annotations

from .. import formats
from . import ERROR_FR, bp

for _name, _fn in formats.FILTERS.items():
    bp.add_app_template_filter(_fn, _name)

_DEFAULTS = {
    "forbidden": "Votre rôle ne permet pas de faire cela.",
    "root_folder": "Le dossier racine ne peut être ni renommé, ni déplacé, ni supprimé.",
    "move_into_itself": "Un dossier ne peut pas être déplacé dans lui-même ou dans l'un de "
                        "ses sous-dossiers.",
    "invalid_siren": "Ce SIREN n'est pas valide (9 chiffres, clé de contrôle exacte).",
    "under_retention": "Ce document est sous conservation obligatoire ou sous conservation "
                       "légale : il ne peut pas être supprimé définitivement.",
    "weak_password": "Le mot de passe doit comporter au moins 10 caractères.",
    "invalid_email": "Cette adresse e-mail n'est pas valide.",
    "email_taken": "Un utilisateur a déjà cette adresse e-mail.",
    "invalid_body": "La requête n'est pas valide.",
    "conflict": "Cette opération entre en conflit avec l'état actuel.",
    "preset_installed": "Cet outil est déjà installé : reliez-le à d'autres entreprises "
                        "plutôt que de l'installer une seconde fois.",
    "integration_name_taken": "Une intégration porte déjà ce nom.",
    "connection_name_taken": "Cette entreprise a déjà une connexion de ce nom : choisissez-en "
                             "un autre.",
}
for _code, _text in _DEFAULTS.items():  # a page module's own wording wins
    ERROR_FR.setdefault(_code, _text)

# Messages the domain raises with a generic code, by their exact English sentence.
MESSAGE_FR = {
    "Folder not found.": "Dossier introuvable, ou vous n'y avez pas accès.",
    "Document not found.": "Document introuvable, ou vous n'y avez pas accès.",
    "Company not found.": "Entreprise introuvable, ou vous n'y avez pas accès.",
    "Connection not found.": "Connexion introuvable, ou vous n'y avez pas accès.",
    "User not found.": "Utilisateur introuvable.",
    "Your role may not do this.": "Votre rôle ne permet pas de faire cela.",
    "Not found.": "Introuvable, ou vous n'y avez pas accès.",
}

# What a page says when neither the code nor the sentence has a French version.
BY_STATUS = {
    400: "La demande n'est pas valide.",
    401: "Connectez-vous pour continuer.",
    403: "Votre rôle ne permet pas de faire cela.",
    404: "Introuvable, ou vous n'y avez pas accès.",
    409: "Cette opération entre en conflit avec l'état actuel.",
    413: "Le fichier est trop volumineux.",
    415: "Ce type de fichier n'est pas accepté.",
    429: "Trop de tentatives. Réessayez dans quelques minutes.",
}


def page_message(exc) -> str:
    """The French sentence a page shows for a domain error (never the API's English)."""
    if exc.message in MESSAGE_FR:
        return MESSAGE_FR[exc.message]
    if exc.code in ERROR_FR:
        return ERROR_FR[exc.code]
    text = exc.message or ""
    # A sentence already in French (the domain raises a few) is kept.
    if any(ch in text for ch in "éèêàçôù«"):
        return text
    return BY_STATUS.get(exc.status, "La demande n'a pas pu aboutir.")
