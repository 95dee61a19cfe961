"""`ged create-firm`, `ged create-user` and `ged token`: firms, users and API tokens."""

from __future__ import annotations

import click

from ..errors import GedError
from ..models import ApiToken, Company, User
from .common import firm, setup


@click.command("create-firm")
@click.argument("name")
@click.option("--admin-email", required=True)
@click.option("--admin-password", required=True)
@click.option("--admin-name", default=None)
def create_firm(name, admin_email, admin_password, admin_name):
    """Create a firm and its first admin."""
    from .. import accounts

    setup()
    try:
        created, admin = accounts.create_firm(name, admin_email, admin_password, admin_name)
    except GedError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"firm {created.id} created; admin {admin.email} ({admin.id})")


@click.command("create-user")
@click.option("--firm", "firm_id", default=None, help="firm id (default: the only firm)")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", type=click.Choice(["admin", "staff", "client"]), required=True)
@click.option("--company", "company_id", default=None, help="company id, for a client user")
@click.option("--password", default=None)
def create_user(firm_id, email, name, role, company_id, password):
    """Create a user."""
    from .. import accounts

    setup()
    of_firm = firm(firm_id)
    company = Company.get_or_none((Company.id == company_id)
                                  & (Company.firm == of_firm.id)) if company_id else None
    if company_id and company is None:
        raise click.ClickException("unknown company")
    try:
        user = accounts.create_user("ged create-user", of_firm, email=email, name=name,
                                    role=role, company=company, password=password)
    except GedError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"user {user.email} created ({user.id})")


@click.group("token")
def token():
    """API tokens."""


@token.command("create")
@click.option("--email", required=True, help="the user the token acts as")
@click.option("--name", default="cli")
@click.option("--expires-in-days", type=int, default=None)
def token_create(email, name, expires_in_days):
    """Create an API token and print it (shown once)."""
    from .. import accounts

    setup()
    user = User.get_or_none(User.email == email.strip().lower())
    if user is None:
        raise click.ClickException("no such user")
    _tok, plain = accounts.create_token("ged token create", user, name, expires_in_days)
    click.echo(plain)


@token.command("revoke")
@click.argument("token_id")
def token_revoke(token_id):
    """Revoke an API token by its id."""
    from .. import accounts

    setup()
    tok = ApiToken.get_or_none(ApiToken.id == token_id)
    if tok is None:
        raise click.ClickException("no such token")
    accounts.revoke_token("ged token revoke", tok)
    click.echo("revoked")
