"""Demo data: the firm "Cabinet Démo" to log in with on a fresh install."""

from __future__ import annotations

from . import accounts, companies, integrations, switches
from .models import Company, Firm, Folder, User

FIRM_NAME = "Cabinet Démo"
ADMIN = "admin@cabinet-demo.fr"
STAFF = "collaborateur@cabinet-demo.fr"
CLIENT = "client@boulangerie-martin.fr"
TOOL_ADDRESS = "boulangerie-martin@collecte.jefacture.example"


def ensure(password: str) -> list[tuple[str, str]]:
    """Create the demo firm once; returns (role, e-mail) of its logins."""
    logins = [("admin", ADMIN), ("staff", STAFF), ("client", CLIENT)]
    if User.select().where(User.email == ADMIN).exists():
        return logins
    firm, admin = accounts.create_firm(FIRM_NAME, ADMIN, password, "Alice Expert")
    Firm.update(primary_color="#0b6e4f").where(Firm.id == firm.id).execute()
    staff = accounts.create_user(admin, firm, email=STAFF, name="Bruno Collaborateur",
                                 role="staff", password=password)
    bakery = companies.create_company(admin, firm, name="Boulangerie Martin SARL",
                                      siren="732829320", status="client", template="annual")
    garage = companies.create_company(admin, firm, name="Garage du Centre",
                                      status="client", template="annual")
    companies.create_company(admin, firm, name="Fleurs & Co", status="prospect")
    companies.assign_staff(admin, bakery, [staff.id])
    companies.assign_staff(admin, garage, [staff.id])
    accounts.create_user(admin, firm, email=CLIENT, name="Claire Martin", role="client",
                         company=Company.get_by_id(bakery.id), password=password)
    # The firm's pre-accounting tool, linked to the bakery, with its switch on Achats:
    # what the client deposits there from now on is forwarded (in the embedded mode,
    # to the outbox in the data dir, see ged/outbox.py).
    tool = integrations.install(admin, firm, preset="jefacture", name="JeFacture.com")
    link, _secret = integrations.connect(admin, bakery, tool, name="JeFacture.com",
                                         address=TOOL_ADDRESS)
    achats = (Folder.select().where((Folder.company == bakery.id) & (Folder.name == "Achats"))
              .order_by(Folder.path).first())
    switches.set_switch(admin, achats, link, "on")
    return logins
