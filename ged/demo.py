"""Demo data: the firm "Cabinet Démo" to log in with on a fresh install."""

from __future__ import annotations

from . import accounts, companies
from .models import Company, Firm, User

FIRM_NAME = "Cabinet Démo"
ADMIN = "admin@cabinet-demo.fr"
STAFF = "collaborateur@cabinet-demo.fr"
CLIENT = "client@boulangerie-martin.fr"


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
    return logins
