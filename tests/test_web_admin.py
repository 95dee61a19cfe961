"""The firm's administration pages, through the real forms (CSRF tokens included):
users and invitations, companies, the folder template and the brand."""

from __future__ import annotations

import io
import re

from conftest import png_bytes, text_pdf


def test_admin_invites_a_client_who_sets_a_password_and_lands_in_their_folders(
        web, world, smtp_sink):
    admin = web(world.admin)
    page = admin.get("/admin/utilisateurs").get_data(as_text=True)
    assert "Nouvel utilisateur" in page and "client-a@un.example" in page
    r = admin.post("/admin/utilisateurs", {"name": "Chloé Martin", "email": "chloe@client.example",
                                          "role": "client", "company_id": world.company_a.id,
                                          "mode": "invite"})
    assert r.status_code == 302
    page = admin.get("/admin/utilisateurs").get_data(as_text=True)
    assert "Invitation envoyée à chloe@client.example" in page
    assert "Invitation en attente" in page
    [mail] = smtp_sink.to("chloe@client.example")
    msg = mail.message
    assert "Cabinet Un" in msg["Subject"]
    link = re.search(r"(http\S+/invitation/(\S+))", msg.get_content()).group(2)

    newcomer = web()
    form = newcomer.get(f"/invitation/{link}")
    assert form.status_code == 200 and "Bienvenue, Chloé Martin" in form.get_data(as_text=True)
    r = newcomer.post(f"/invitation/{link}", {"password": "short", "confirm": "short"})
    assert r.status_code == 400 and "10 caractères" in r.get_data(as_text=True)
    r = newcomer.post(f"/invitation/{link}", {"password": "un mot de passe sûr",
                                              "confirm": "un mot de passe sûr"})
    assert r.status_code == 302
    home = newcomer.get("/", follow_redirects=True).get_data(as_text=True)
    assert "Dossier comptable annuel 2026" in home and "A of Cabinet Un" in home
    # The link works once; the password works for logging in.
    assert web().get(f"/invitation/{link}").status_code == 400
    web().login("chloe@client.example", "un mot de passe sûr")


def test_admin_creates_staff_with_password_disables_a_client_and_reinvites(web, world):
    admin = web(world.admin)
    r = admin.post("/admin/utilisateurs", {"name": "Paul Collab", "email": "paul@un.example",
                                           "role": "staff", "mode": "password",
                                           "password": "mot de passe long"})
    assert r.status_code == 302
    web().login("paul@un.example", "mot de passe long")
    # Bad input: a clear French message and nothing created.
    r = admin.post("/admin/utilisateurs", {"name": "X", "email": "paul@un.example",
                                           "role": "staff", "mode": "password",
                                           "password": "mot de passe long"})
    assert r.status_code == 409 and "possède déjà cette adresse" in r.get_data(as_text=True)
    r = admin.post("/admin/utilisateurs", {"name": "Y", "email": "y@un.example", "role": "client",
                                           "mode": "password", "password": "mot de passe long"})
    assert r.status_code == 400 and "rattaché à une entreprise" in r.get_data(as_text=True)

    client = web(world.client_a)
    assert client.get("/", follow_redirects=True).status_code == 200
    admin.post(f"/admin/utilisateurs/{world.client_a.user.id}/actif", {"active": "0"})
    assert "Désactivé" in admin.get("/admin/utilisateurs").get_data(as_text=True)
    # The disabled client's open session ends at once.
    assert client.get("/").status_code == 302
    # An admin cannot disable themself.
    admin.post(f"/admin/utilisateurs/{world.admin.user.id}/actif", {"active": "0"})
    assert "propre compte" in admin.get("/admin/utilisateurs").get_data(as_text=True)

    # No mail relay configured: the invitation says it could not be sent; the user
    # exists without a password and can be invited again.
    from ged.models import User

    admin.post("/admin/utilisateurs", {"name": "Sans Relais", "email": "nomail@client.example",
                                       "role": "client", "company_id": world.company_b.id,
                                       "mode": "invite"})
    page = admin.get("/admin/utilisateurs").get_data(as_text=True)
    assert "nomail@client.example : L&#39;e-mail d&#39;invitation n&#39;a pas pu être envoyé" in page
    assert User.get(User.email == "nomail@client.example").password_hash is None
    assert "Renvoyer l&#39;invitation" in page


def test_admin_creates_a_prospect_converts_it_and_assigns_staff(web, world):
    from ged.models import Company, Folder, StaffAssignment

    admin = web(world.admin)
    r = admin.post("/admin/entreprises", {"name": "Fleurs & Co", "siren": "732 829 320",
                                          "status": "prospect", "template": "annual",
                                          "year": "2027"})
    assert r.status_code == 302
    company = Company.get(Company.name == "Fleurs & Co")
    assert company.status == "prospect" and company.siren == "732829320"
    assert Folder.select().where((Folder.company == company.id)
                                 & (Folder.name == "Dossier comptable annuel 2027")).exists()
    page = admin.get(r.headers["Location"]).get_data(as_text=True)
    assert "Convertir en client" in page
    admin.post(f"/admin/entreprises/{company.id}/statut", {"status": "client"})
    assert Company.get_by_id(company.id).status == "client"
    admin.post(f"/admin/entreprises/{company.id}/collaborateurs",
               {"user_id": [world.staff.user.id]})
    assert StaffAssignment.select().where(StaffAssignment.company == company.id).count() == 1
    staff_companies = web(world.staff).get("/entreprises").get_data(as_text=True)
    assert "Fleurs &amp; Co" in staff_companies
    # A bad SIREN is refused with the reason, and nothing is created.
    r = admin.post("/admin/entreprises", {"name": "Mauvais", "siren": "123456789",
                                          "status": "client"})
    assert r.status_code == 400 and "SIREN" in r.get_data(as_text=True)
    assert not Company.select().where(Company.name == "Mauvais").exists()


def test_folder_template_editor_round_trips_and_applies_to_new_companies(web, world):
    from ged.models import Company, Firm, Folder
    from ged.folder_templates import from_text as template_from_text, to_text as template_to_text

    admin = web(world.admin)
    page = admin.get("/admin/modele").get_data(as_text=True)
    assert "Dossier comptable annuel {year} [10 ans]" in page
    text = ("Exercice {year} [10 ans]\n  Achats\n    Frais généraux\n  Ventes\n"
            "  Révision [cabinet]\n")
    assert template_to_text(template_from_text(text)) == text
    r = admin.post("/admin/modele", {"template": text})
    assert r.status_code == 302
    firm = Firm.get_by_id(world.firm.id)
    assert firm.folder_template["children"][2] == {"name": "Révision", "firm_only": True}
    admin.post("/admin/entreprises", {"name": "Nouvelle", "status": "client",
                                      "template": "annual", "year": "2026"})
    company = Company.get(Company.name == "Nouvelle")
    names = {f.name: f for f in Folder.select().where(Folder.company == company.id)}
    assert {"Exercice 2026", "Achats", "Frais généraux", "Ventes", "Révision"} <= set(names)
    assert names["Révision"].firm_only and names["Exercice 2026"].retention_years == 10
    # A line that cannot be read is refused with its number; the saved template stays.
    r = admin.post("/admin/modele", {"template": "Racine\n  Bad/name\n"})
    assert r.status_code == 400 and "Ligne 2" in r.get_data(as_text=True)
    r = admin.post("/admin/modele", {"template": "Un\nDeux\n"})
    assert r.status_code == 400 and "un seul dossier de premier niveau" in r.get_data(as_text=True)
    assert Firm.get_by_id(world.firm.id).folder_template["name"] == "Exercice {year}"
    admin.post("/admin/modele", {"reset": "1"})
    assert Firm.get_by_id(world.firm.id).folder_template is None


def test_branding_colour_and_logo_show_on_every_page_and_bad_logos_are_refused(web, world, client):
    admin = web(world.admin)
    logo = png_bytes(120, 40, (10, 120, 60))
    r = admin.post("/admin/marque", {"name": "Cabinet Un & Associés", "primary_color": "#0B6E4F",
                                     "logo": (io.BytesIO(logo), "logo.png")},
                   content_type="multipart/form-data")
    assert r.status_code == 302
    login = client.get("/login").get_data(as_text=True)
    assert "Cabinet Un &amp; Associés" in login and "/marque/logo" in login
    css = client.get("/marque/theme.css").get_data(as_text=True)
    assert "--brand: #0b6e4f" in css and "--brand-ink: #ffffff" in css
    served = client.get("/marque/logo")
    assert served.data == logo and served.mimetype == "image/png"
    # A light colour gets dark text, so the top bar stays readable.
    admin.post("/admin/marque", {"name": "Cabinet Un", "primary_color": "#ffe08a"},
               content_type="multipart/form-data")
    assert "--brand-ink: #1d2430" in client.get("/marque/theme.css").get_data(as_text=True)
    # A PDF, or an HTML page named .png, is not a logo; nothing changes.
    for name, data in (("logo.pdf", text_pdf()), ("logo.png", b"<html><script>x</script></html>")):
        r = admin.post("/admin/marque", {"name": "Cabinet Un", "primary_color": "#ffe08a",
                                         "logo": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")
        assert r.status_code == 415, name
        assert "PNG ou JPEG" in r.get_data(as_text=True) or "type de fichier" in r.get_data(as_text=True)
    assert client.get("/marque/logo").data == logo
    r = admin.post("/admin/marque", {"name": "Cabinet Un", "primary_color": "red"},
                   content_type="multipart/form-data")
    assert r.status_code == 400 and "#rrggbb" in r.get_data(as_text=True)


def test_only_admins_reach_the_admin_pages_and_forms_need_csrf(web, world, app):
    staff, client = web(world.staff), web(world.client_a)
    for url in ("/admin/utilisateurs", "/admin/entreprises", "/admin/integrations",
                "/admin/modele", "/admin/marque", f"/admin/entreprises/{world.company_a.id}"):
        assert staff.get(url).status_code == 403, url
        assert client.get(url).status_code == 403, url
    assert web().get("/admin/utilisateurs").status_code == 302  # to the login page
    admin = web(world.admin)
    r = admin.client.post("/admin/marque", data={"name": "Pirate", "primary_color": "#000000"})
    assert r.status_code == 400
    from ged.models import Firm

    assert Firm.get_by_id(world.firm.id).name == "Cabinet Un"
