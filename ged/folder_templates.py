"""Folder templates: the tree a new company gets with ``template="annual"`` (the
firm's own, else ged's built-in one), checked when an admin sets it, and written
as the editor's text (one folder a line, two spaces per level) and read back.

A template is a nested dict: ``{"name", "retention_years"?, "firm_only"?,
"children"?}``; ``{year}`` in a name becomes the year the tree is created for.
"""

from __future__ import annotations

import re

from . import folders
from .errors import GedError, Invalid
from .models import Company, Firm, Folder

# The built-in annual template.
DEFAULT_TEMPLATE = {
    "name": "Dossier comptable annuel {year}",
    "retention_years": 10,
    "children": [
        {"name": "Achats"},
        {"name": "Ventes"},
        {"name": "Banque", "children": [{"name": "Relevés bancaires"}]},
        {"name": "Notes de frais"},
        {"name": "Social"},
        {"name": "Fiscal"},
        {"name": "Juridique"},
        {"name": "Divers"},
    ],
}

MAX_DEPTH = 12
MAX_FOLDERS = 500


def of_firm(firm: Firm) -> dict:
    """The template the firm's new companies get."""
    return firm.folder_template or DEFAULT_TEMPLATE


def apply(company: Company, parent: Folder, template: dict, year: int) -> Folder:
    """Create a template's folders under ``parent`` (inside the caller's transaction)."""

    def build(node: dict, under: Folder) -> Folder:
        name = folders.clean_folder_name(str(node["name"]).replace("{year}", str(year)))
        folder = folders.new_folder(company.id, under, name,
                                    retention_years=node.get("retention_years"),
                                    firm_only=bool(node.get("firm_only", False)))
        for child in node.get("children", []):
            build(child, folder)
        return folder

    return build(template, parent)


def validate(template) -> dict:
    """Check a folder template given by an admin (nested {name, children, ...})."""
    count = 0

    def walk(node, depth):
        nonlocal count
        if not isinstance(node, dict) or not isinstance(node.get("name"), str):
            raise Invalid("Each template folder needs a name.", "invalid_template")
        count += 1
        if depth > MAX_DEPTH or count > MAX_FOLDERS:
            raise Invalid("The template is too deep or too large.", "invalid_template")
        folders.clean_folder_name(node["name"].replace("{year}", "2000"))
        years = node.get("retention_years")
        if years is not None and (not isinstance(years, int) or not 0 <= years <= 100):
            raise Invalid("retention_years must be a whole number of years.", "invalid_template")
        children = node.get("children", [])
        if not isinstance(children, list):
            raise Invalid("children must be a list.", "invalid_template")
        for child in children:
            walk(child, depth + 1)

    walk(template, 0)
    return template


# --- the editor's text ------------------------------------------------------------------


class TemplateSyntax(Invalid):
    """A line of the editor's text that cannot be read (the message, in French, is
    shown as is)."""

    code = "template_syntax"
    in_french = True


_MARK = re.compile(r"\s*\[(cabinet|(\d{1,3}) ans?)\]\s*$", re.IGNORECASE)


def to_text(template: dict) -> str:
    """The template as the editor shows it: one folder a line, two spaces per level,
    ``[cabinet]`` for a firm-only folder, ``[10 ans]`` for a retention period."""
    lines = []

    def walk(node, depth):
        marks = ""
        if node.get("retention_years") is not None:
            marks += f" [{node['retention_years']} ans]"
        if node.get("firm_only"):
            marks += " [cabinet]"
        lines.append("  " * depth + node["name"] + marks)
        for child in node.get("children", []):
            walk(child, depth + 1)

    walk(template, 0)
    return "\n".join(lines) + "\n"


def from_text(text: str) -> dict:
    """Read the editor's text back into a template (the inverse of ``to_text``);
    TemplateSyntax names the first line that cannot be read."""
    stack: list[tuple[int, dict]] = []
    root = None
    for number, raw in enumerate(text.replace("\t", "  ").splitlines(), 1):
        if not raw.strip():
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        name = raw.strip()
        node: dict = {}
        while True:
            m = _MARK.search(name)
            if not m:
                break
            if m.group(2):
                node["retention_years"] = int(m.group(2))
            else:
                node["firm_only"] = True
            name = name[:m.start()].rstrip()
        if not name:
            raise TemplateSyntax(f"Ligne {number} : le nom du dossier est vide.")
        try:
            folders.clean_folder_name(name.replace("{year}", "2000"))
        except GedError:
            raise TemplateSyntax(f"Ligne {number} : « {name} » n'est pas un nom de dossier "
                                 "valide.") from None
        node = {"name": name, **node}
        if root is None:
            if indent:
                raise TemplateSyntax(f"Ligne {number} : le premier dossier ne doit pas être "
                                     "indenté.")
            root = node
            stack = [(0, node)]
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if not stack:
            raise TemplateSyntax(f"Ligne {number} : un seul dossier de premier niveau est "
                                 "permis ; indentez les sous-dossiers.")
        stack[-1][1].setdefault("children", []).append(node)
        stack.append((indent, node))
    if root is None:
        raise TemplateSyntax("Le modèle est vide.")
    return root
