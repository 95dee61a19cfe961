"""What a user is told in French about an error they caused (the pages, the
uploader's replies, the e-mail drop's answers): one table, keyed by the error's
code (ged/errors.py); a code without an entry shows the domain's English message."""

from __future__ import annotations

from .errors import GedError

ERRORS = {
    # signing in, accounts and invitations
    "bad_credentials": "Adresse e-mail ou mot de passe incorrect.",
    "account_disabled": "Ce compte est désactivé. Contactez votre cabinet.",
    "too_many_attempts": "Trop de tentatives échouées. Réessayez dans quelques minutes.",
    "common_password": "Ce mot de passe est trop courant ou trop facile à deviner : "
                       "choisissez-en un plus long, par exemple quelques mots sans rapport.",
    "email_taken": "Un utilisateur possède déjà cette adresse e-mail.",
    "invalid_email": "L'adresse e-mail n'est pas valide.",
    "weak_password": "Le mot de passe doit comporter au moins 10 caractères.",
    "invalid_password": "Le mot de passe est trop long.",
    "invalid_role": "Le rôle doit être administrateur, collaborateur ou client.",
    "company_required": "Un utilisateur client doit être rattaché à une entreprise.",
    "invalid_user": "Utilisateur inconnu.",
    "not_staff": "Seuls les collaborateurs peuvent être affectés à une entreprise.",
    "cannot_disable_self": "Vous ne pouvez pas désactiver votre propre compte.",
    "invalid_invitation": "Ce lien d'invitation n'est pas valide ou a déjà été utilisé.",
    "invitation_expired": "Ce lien d'invitation a expiré ; demandez-en un nouveau à votre cabinet.",
    "mail_failed": "L'e-mail d'invitation n'a pas pu être envoyé (serveur de messagerie "
                   "injoignable ou non configuré). Réessayez plus tard.",
    "forbidden": "Vous n'avez pas le droit de faire cela.",
    # files, deposits and documents
    "file_too_large": "Le fichier dépasse la taille maximale autorisée.",
    "empty_file": "Le fichier est vide.",
    "unsupported_type": "Ce type de fichier n'est pas accepté (PDF, images, documents "
                        "bureautiques, XML, JSON, CSV ou texte).",
    "content_mismatch": "Le contenu du fichier ne correspond pas à son extension.",
    "invalid_name": "Ce nom n'est pas valide (caractères interdits ou trop long).",
    "image_too_large": "L'image est trop grande (nombre de pixels excessif).",
    "corrupt_file": "Le fichier est endommagé et ne peut pas être lu.",
    "too_many_parts": "Ce document bureautique contient trop d'éléments pour être accepté.",
    "too_many_pages": "Ce document a trop de pages.",
    "no_file": "Aucun fichier n'a été envoyé.",
    "one_file": "Choisissez un seul fichier pour remplacer ce document.",
    "already_replaced": "Ce document a déjà été remplacé ; remplacez plutôt sa version la "
                        "plus récente.",
    "name_taken": "Un dossier porte déjà ce nom ici.",
    "not_found": "Introuvable, ou vous n'y avez pas accès.",
    "invalid_input": "La requête contient un caractère nul, interdit dans tous les champs.",
    # companies, the firm's brand and its folder template
    "invalid_company": "Entreprise inconnue.",
    "invalid_siren": "Le SIREN doit comporter 9 chiffres valides.",
    "invalid_status": "Le statut doit être client ou prospect.",
    "invalid_color": "La couleur doit être au format #rrggbb.",
    "unsupported_logo": "Le logo doit être une image PNG ou JPEG.",
    "invalid_template": "Le modèle n'est pas valide (dossier sans nom, trop profond ou trop "
                        "grand, ou durée de conservation incorrecte).",
    # switches and sending by hand
    "invalid_state": "État d'interrupteur inconnu.",
    "invalid_connection": "Cette connexion n'appartient pas à l'entreprise du document.",
    "document_trashed": "Un document à la corbeille ne peut pas être envoyé.",
    "no_document": "Sélectionnez au moins un document.",
    "connection_paused": "Cette connexion est suspendue ; reprenez-la avant d'envoyer.",
    # integrations and connections
    "invalid_url": "Cette adresse web n'est pas acceptée : elle doit commencer par https:// et "
                   "ne pas contenir d'identifiants ni d'espaces.",
    "target_not_allowed": "Cette adresse web désigne un serveur privé ou réservé ; ged n'envoie "
                          "qu'à des adresses publiques.",
    "unresolvable_host": "Le nom de serveur de cette adresse web est introuvable.",
    "invalid_address": "Indiquez l'adresse e-mail de collecte de l'outil (nom@domaine).",
    "invalid_options": "Une option de la connexion n'est pas valide (en-tête interdit ou mal "
                       "formé, format, nom de champ ou taille maximale incorrects).",
    "nothing_to_send": "Choisissez ce que la connexion envoie : le fichier déposé, le XML de "
                       "la facture, ou les deux.",
    "unknown_preset": "Cet outil n'existe pas dans le catalogue.",
    "kind_mismatch": "Le type de connecteur ne correspond pas à cet outil.",
    "invalid_kind": "Le type de connecteur doit être e-mail ou http.",
    "invalid_integration": "Choisissez un outil installé.",
    "not_http": "Seules les connexions http ont un secret de signature.",
    "integration_in_use": "Des connexions utilisent encore cet outil ; supprimez-les d'abord.",
    "invalid_headers": "Chaque en-tête s'écrit sur une ligne : Nom: valeur.",
    # the archive
    "reason_required": "Indiquez le motif de la conservation légale.",
    "under_retention": "Ce document est encore sous durée de conservation ou sous "
                       "conservation légale : il ne peut pas être supprimé définitivement.",
    # search
    "empty_query": "Saisissez au moins un mot à rechercher.",
    "query_too_long": "La recherche est trop longue.",
    "prefix_too_short": "Une recherche par début de mot (mot*) demande au moins deux lettres.",
    "invalid_dates": "La date de début doit précéder la date de fin.",
    "invalid_date": "Date invalide (format attendu : AAAA-MM-JJ).",
    "invalid_type": "Type de document inconnu.",
    "invalid_cursor": "Page de résultats invalide.",
    "search_unavailable": "La recherche est momentanément indisponible : l'index est en cours "
                          "de reconstruction. Réessayez dans un instant.",
    # requests
    "title_required": "Donnez un intitulé à la demande.",
    "title_too_long": "L'intitulé dépasse 200 caractères.",
    "invalid_due_date": "La date d'échéance n'est pas valide (JJ/MM/AAAA).",
    "request_cancelled": "Cette demande a été annulée.",
    "request_closed": "Seule une demande ouverte peut être relancée.",
    "no_company": "Choisissez au moins une entreprise.",
    "folder_not_shared": "Ce dossier est réservé au cabinet : le client ne le voit pas.",
    # comments
    "body_required": "Écrivez un message avant de l'envoyer.",
    "body_too_long": "Ce message est trop long (10 000 caractères au plus).",
    # notifications
    "invalid_unsubscribe": "Ce lien de désabonnement n'est pas valide.",
    "invalid_preference": "Ce choix n'est pas possible.",
    # wording of pages for errors that had none (issue 20)
    "root_folder": "Le dossier racine ne peut être ni renommé, ni déplacé, ni supprimé.",
    "move_into_itself": "Un dossier ne peut pas être déplacé dans lui-même ou dans l'un de "
                        "ses sous-dossiers.",
    "invalid_body": "La requête n'est pas valide.",
    "conflict": "Cette opération entre en conflit avec l'état actuel.",
    "preset_installed": "Cet outil est déjà installé : reliez-le à d'autres entreprises "
                        "plutôt que de l'installer une seconde fois.",
    "integration_name_taken": "Une intégration porte déjà ce nom.",
    "connection_name_taken": "Cette entreprise a déjà une connexion de ce nom : choisissez-en "
                             "un autre.",
    # account pages
    "invalid_reset_token": "Ce lien n'est pas valide ou a déjà servi : demandez-en un nouveau.",
    "reset_token_expired": "Ce lien a expiré (il est valable 30 minutes) : demandez-en un "
                           "nouveau.",
    "bad_password": "Le mot de passe actuel n'est pas le bon.",
    "same_password": "Le nouveau mot de passe doit être différent de l'actuel.",
    "bad_totp": "Ce code n'est pas valide (ou a déjà servi). Saisissez le code affiché "
                "maintenant par votre application, ou un code de secours.",
    "totp_required": "Saisissez le code de votre application d'authentification.",
    "totp_already_on": "La double authentification est déjà activée.",
    "totp_not_on": "La double authentification n'est pas activée.",
    "totp_not_started": "Commencez par afficher le QR code.",
    "totp_policy": "Votre cabinet exige la double authentification : elle ne peut pas être "
                   "désactivée.",
    # filing pages
    "folder_required": "Choisissez le dossier de destination.",
    "other_company": "Un document ne peut être déplacé que dans son entreprise.",
    "too_many_documents": "Trop de documents à la fois (1 000 au plus).",
    "invalid_year": "L'année doit être comprise entre 1990 et 2100.",
}

# What a depositor is told about a file that was kept (filetypes.WARNINGS), by code.
WARNINGS = {
    "encrypted_pdf": "« {name} » est protégé par un mot de passe : il a été déposé, mais le "
                     "cabinet pourrait ne pas pouvoir le lire. Déposez si possible une version "
                     "sans mot de passe.",
}


# Messages the domain raises with a generic code, by their exact English sentence.
MESSAGE_FR = {
    "Say in description why the request is reopened.":
        "Indiquez au client pourquoi la demande est rouverte.",
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


def error(exc: GedError) -> str:
    """The French sentence a person reads for a domain error (pages, the uploader's
    replies, the e-mail drop): by the exact English sentence, then by code; a sentence
    already French is kept; else a French sentence for its HTTP status (the API keeps
    its English messages and codes)."""
    if exc.in_french:
        return exc.message
    if exc.message in MESSAGE_FR:
        return MESSAGE_FR[exc.message]
    if exc.code in ERRORS:
        return ERRORS[exc.code]
    text = exc.message or ""
    if any(ch in text for ch in "éèêàçôù«"):
        return text
    return BY_STATUS.get(exc.status, "La demande n'a pas pu aboutir.")


def warning(item: dict) -> str:
    """The French sentence for one of ``documents.warnings_of``'s entries."""
    return WARNINGS[item["code"]].format(name=item["name"])
