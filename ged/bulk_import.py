"""Bulk import: `ged import DIR --company ID [--folder ID]` mirrors a directory tree
into a company's folders and deposits every file through ``documents.deposit``
with channel ``import``.

Each file is its own deposit, so one bad file is refused alone (the report says
why) and everything deposited before an interruption stays. Running the command
again resumes: a file whose SHA-256 is already a document of its target folder
is skipped. Hidden files and folders (names starting with a dot), the usual
system litter (Thumbs.db, desktop.ini, __MACOSX) and symbolic links are left
out; links are never followed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import click

from . import documents, folders, runtime
from .errors import GedError, NotFound
from .models import Company, Document, Folder
from .storage import CHUNK, stage

LABEL = "Import en masse"
SYSTEM_FILES = {"thumbs.db", "desktop.ini", "__macosx", ".ds_store"}


@dataclass
class ImportReport:
    """What an import did: counts, and each refused file with the reason."""

    deposited: int = 0
    skipped: int = 0
    ignored: int = 0
    folders_created: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)


def _ignored(entry: os.DirEntry) -> bool:
    return entry.name.startswith(".") or entry.name.lower() in SYSTEM_FILES


def plan(src: Path) -> tuple[list[Path], list[Path], list[tuple[str, str]], int]:
    """Walk ``src`` (links not followed): its directories and files, in name order,
    the links refused, and how many system files were left out."""
    dirs, files, refused, ignored = [], [], [], 0
    stack = [Path(src)]
    while stack:
        current = stack.pop()
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError as exc:
            refused.append((str(current.relative_to(src)), f"cannot read: {exc.strerror}"))
            continue
        subdirs = []
        for entry in entries:
            if _ignored(entry):
                ignored += 1
            elif entry.is_symlink():
                refused.append((str(Path(entry.path).relative_to(src)),
                                "symbolic link (not followed)"))
            elif entry.is_dir(follow_symlinks=False):
                subdirs.append(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                files.append(Path(entry.path))
        dirs.extend(subdirs)
        stack.extend(reversed(subdirs))
    return dirs, files, refused, ignored


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _child(parent: Folder, name: str, report: ImportReport) -> Folder:
    """The folder named ``name`` under ``parent``, created when missing."""
    name = folders.clean_folder_name(name)
    existing = Folder.get_or_none((Folder.parent == parent.id) & (Folder.name == name)
                                  & Folder.trashed_at.is_null())
    if existing is not None:
        return existing
    report.folders_created += 1
    return folders.create_folder("ged import", parent, name)


def import_tree(src: Path, company: Company, target: Folder | None = None,
                progress=None) -> ImportReport:
    """Mirror ``src`` below ``target`` (default: the company's root folder) and
    deposit every file; returns the report. ``progress`` is called once per file."""
    cfg = runtime.config()
    src = Path(src).resolve()
    target = target or folders.root_of(company)
    if target.company_id != company.id or target.trashed_at is not None:
        raise NotFound("Folder not found.")
    report = ImportReport()
    dirs, files, refused, report.ignored = plan(src)
    report.refused.extend(refused)
    mapped: dict[Path, Folder | None] = {src: target}
    for directory in dirs:
        parent = mapped.get(directory.parent)
        if parent is None:  # its parent was refused: so is everything below
            mapped[directory] = None
            continue
        try:
            mapped[directory] = _child(parent, directory.name, report)
        except GedError as exc:
            mapped[directory] = None
            report.refused.append((str(directory.relative_to(src)) + "/",
                                   f"folder refused: {exc.message}"))
    for path in files:
        relative = str(path.relative_to(src))
        folder = mapped.get(path.parent)
        try:
            if folder is None:
                continue
            _deposit_one(cfg, path, folder, report)
        except GedError as exc:
            report.refused.append((relative, exc.message))
        except OSError as exc:
            report.refused.append((relative, f"cannot read: {exc.strerror}"))
        finally:
            if progress:
                progress(1)
    return report


def _deposit_one(cfg, path: Path, folder: Folder, report: ImportReport) -> None:
    sha = _sha256(path)
    if Document.select().where((Document.folder == folder.id) & (Document.blob == sha)).exists():
        report.skipped += 1
        return
    with open(path, "rb") as fh:
        staged = stage(fh, cfg.data_dir, cfg.max_upload_bytes)
    documents.deposit(None, folder, [documents.Upload(path.name, staged)], "import", label=LABEL)
    report.deposited += 1


@click.command("import")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--company", "company_id", required=True, help="company id")
@click.option("--folder", "folder_id", default=None, help="target folder id (default: root)")
def import_command(src, company_id, folder_id):
    """Import a directory tree into a company's folders (resumable)."""
    from tqdm import tqdm

    from .cli import _setup, company_and_folder

    _setup()
    company, target = company_and_folder(company_id, folder_id)
    total = len(plan(src)[1])
    with tqdm(total=total, unit="file", desc="import", disable=None) as bar:
        report = import_tree(src, company, target, progress=bar.update)
    click.echo(f"{report.deposited} deposited, {report.skipped} already there (skipped), "
               f"{len(report.refused)} refused, {report.folders_created} folder(s) created"
               + (f", {report.ignored} system file(s) left out" if report.ignored else ""))
    for relative, reason in report.refused:
        click.echo(f"refused: {relative}: {reason}")
    if report.refused:
        raise SystemExit(1)


COMMANDS = [import_command]
