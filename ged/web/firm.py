"""The firm's face: the brand every page wears (name, colour as CSS, logo) and the
admin pages that set it and the folder template new companies get (ged/firms.py)."""

from __future__ import annotations

import re

from flask import (Blueprint, abort, current_app, flash, g, redirect, render_template, request,
                   url_for)
from flask_login import current_user, login_required

from .. import downloads, firms, folder_templates, french, permissions
from ..blobs import stage
from ..errors import GedError
from ..models import Firm

bp = Blueprint("firm", __name__)

DEFAULT_COLOR = "#1f4e79"


def brand_firm() -> Firm | None:
    """The firm whose brand the page wears: the signed-in user's; before sign-in,
    the firm GED_FIRM_HOSTS names for this host name, else the only firm of the
    install; None (a neutral page) when several firms share the server."""
    if current_user and current_user.is_authenticated:
        return current_user.firm
    if "brand_firm" not in g:
        hosts = current_app.config["GED"].firm_hosts or {}
        firm_id = hosts.get(re.sub(r":\d+$", "", request.host.lower()))
        if firm_id:
            g.brand_firm = Firm.get_or_none(Firm.id == firm_id)
        else:
            found = list(Firm.select(Firm).limit(2))
            g.brand_firm = found[0] if len(found) == 1 else None
    return g.brand_firm


@bp.app_context_processor
def _brand():
    return {"brand": brand_firm(), "is_firm": (current_user.is_authenticated
                                               and permissions.is_firm_user(current_user))}


@bp.route("/marque/theme.css")
def theme():
    """The firm's colours as CSS variables (the CSP forbids inline styles)."""
    firm = brand_firm()
    color = (firm.primary_color if firm and re.fullmatch(r"#[0-9a-fA-F]{6}",
                                                         firm.primary_color or "")
             else DEFAULT_COLOR)
    # --brand-ink: the text colour that stays readable on the brand colour.
    css = f":root {{ --brand: {color}; --brand-ink: {firms.ink_for(color)}; }}\n"
    return current_app.response_class(css, mimetype="text/css",
                                      headers={"Cache-Control": "no-cache"})


@bp.route("/marque/logo")
def logo():
    firm = brand_firm()
    if firm is None or not firm.logo_sha256:
        abort(404)
    return downloads.logo_response(firm)


@bp.route("/admin/marque", methods=["GET", "POST"])
@login_required
def admin_branding():
    """The firm's name, primary colour and logo: every page and the login page wear them."""
    permissions.require_role(current_user, "admin")
    firm = current_user.firm
    status = 200
    if request.method == "POST":
        cfg = current_app.config["GED"]
        try:
            firm = firms.update_branding(current_user, firm, name=request.form.get("name"),
                                         primary_color=request.form.get("primary_color"))
            logo_file = request.files.get("logo")
            if request.form.get("remove_logo"):
                firm = firms.remove_logo(current_user, firm)
            elif logo_file is not None and logo_file.filename:
                staged = stage(logo_file.stream, cfg.data_dir, firms.MAX_LOGO_BYTES + 1)
                firm = firms.set_logo(current_user, firm, staged, logo_file.filename)
        except GedError as exc:
            flash(french.error(exc), "error")
            status = exc.status
        else:
            flash("Identité visuelle enregistrée.", "success")
            return redirect(url_for("web.firm.admin_branding"))
    return render_template("admin/branding.html", firm=firm), status


@bp.route("/admin/modele", methods=["GET", "POST"])
@login_required
def admin_template():
    """The folder tree new companies get, edited as text (ged/folder_templates.py)."""
    permissions.require_role(current_user, "admin")
    firm = current_user.firm
    text = folder_templates.to_text(folder_templates.of_firm(firm))
    status = 200
    if request.method == "POST":
        if request.form.get("reset"):
            firms.set_folder_template(current_user, firm, None)
            flash("Le modèle par défaut de ged est rétabli.", "success")
            return redirect(url_for("web.firm.admin_template"))
        text = request.form.get("template", "")
        try:
            firms.set_folder_template(current_user, firm, folder_templates.from_text(text))
        except GedError as exc:  # a line of the text (TemplateSyntax) or the template
            flash(french.error(exc), "error")
            status = exc.status
        else:
            flash("Modèle enregistré : il s'appliquera aux prochaines entreprises créées "
                  "avec l'arborescence annuelle.", "success")
            return redirect(url_for("web.firm.admin_template"))
    return render_template("admin/template.html", text=text,
                           custom=firm.folder_template is not None), status
