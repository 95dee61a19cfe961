"""Bulk import: `ged import DIR --company ID [--folder ID]` mirrors a directory tree
into a company's folders and deposits every file through ``documents.deposit``
with channel ``import``.

Each file is its own deposit, so one bad file is refused alone (the report says
why) and everything deposited before an interruption stays. Running the command
again resumes: a file whose SHA-256 is already a document of its target folder
is skipped. Hidden files and folders (names starting with a dot), the usual
system litter (Thumbs.db, desktop.ini, __MACOSX) and symbolic links are left
out; links are never followed. Each file is opened once, from the root one name at
a time without following links, checked against what the scan saw, and hashed and
stored from that one descriptor: a file or folder swapped after the scan is refused.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from . import documents, folders, runtime
from .blobs import sha256_of, stage
from .errors import Conflict, GedError, NotFound
from .models import Company, Document, Folder

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


def _ignored(name: str) -> bool:
    return name.startswith(".") or name.lower() in SYSTEM_FILES


# Every open below goes from the import's root one name at a time, never through a
# symbolic link, and checks that each directory and file is the very one the scan
# saw (device and inode): a file or a folder swapped for a link (to the server's
# secret key, say) after the scan is refused, not read.
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO never blocks
SWAPPED = "changed since the scan (replaced, perhaps by a symbolic link): not read"


class _Swapped(Exception):
    """A path no longer leads to what the scan saw."""


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


@dataclass
class Scan:
    """What ``plan`` found: directories and files in name order, refusals, how many
    system files were left out, and the identity (device, inode) of each path."""

    dirs: list[Path]
    files: list[Path]
    refused: list[tuple[str, str]]
    ignored: int
    ids: dict[Path, tuple[int, int]]


def _open_dir(root_fd: int, src: Path, directory: Path, ids: dict) -> int:
    """A descriptor of ``directory`` (below ``src``), reached from ``root_fd`` without
    following links; _Swapped unless every step is the directory scanned."""
    fd = os.dup(root_fd)
    current = src
    try:
        for part in directory.relative_to(src).parts:
            current = current / part
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                    raise _Swapped(SWAPPED) from None
                raise
            os.close(fd)
            fd = child
            if _identity(os.fstat(fd)) != ids.get(current):
                raise _Swapped(SWAPPED)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_file(root_fd: int, src: Path, path: Path, ids: dict) -> int:
    """A descriptor of the regular file the scan saw at ``path``, or _Swapped."""
    dir_fd = _open_dir(root_fd, src, path.parent, ids)
    try:
        fd = os.open(path.name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOENT):
            raise _Swapped(SWAPPED) from None
        raise
    finally:
        os.close(dir_fd)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or _identity(st) != ids.get(path):
        os.close(fd)
        raise _Swapped(SWAPPED)
    os.set_blocking(fd, True)
    return fd


def plan(src: Path) -> Scan:
    """Walk ``src`` (links never followed, each directory opened from the root
    without following links): its directories and files, in name order, the links
    refused, and how many system files were left out."""
    src = Path(src)
    dirs, files, refused, ignored = [], [], [], 0
    root_fd = os.open(src, _DIR_FLAGS)
    ids = {src: _identity(os.fstat(root_fd))}
    stack = [src]
    try:
        while stack:
            current = stack.pop()
            try:
                fd = _open_dir(root_fd, src, current, ids)
                try:
                    entries = [(name, os.stat(name, dir_fd=fd, follow_symlinks=False))
                               for name in sorted(os.listdir(fd))]
                finally:
                    os.close(fd)
            except _Swapped as exc:
                refused.append((str(current.relative_to(src)) + "/", str(exc)))
                continue
            except OSError as exc:
                refused.append((str(current.relative_to(src)), f"cannot read: {exc.strerror}"))
                continue
            subdirs = []
            for name, st in entries:
                path = current / name
                if _ignored(name):
                    ignored += 1
                elif stat.S_ISLNK(st.st_mode):
                    refused.append((str(path.relative_to(src)), "symbolic link (not followed)"))
                elif stat.S_ISDIR(st.st_mode):
                    ids[path] = _identity(st)
                    subdirs.append(path)
                elif stat.S_ISREG(st.st_mode):
                    ids[path] = _identity(st)
                    files.append(path)
            dirs.extend(subdirs)
            stack.extend(reversed(subdirs))
    finally:
        os.close(root_fd)
    return Scan(dirs, files, refused, ignored, ids)


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
    scan = plan(src)
    report.ignored = scan.ignored
    report.refused.extend(scan.refused)
    mapped: dict[Path, Folder | None] = {src: target}
    for directory in scan.dirs:
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
    root_fd = os.open(src, _DIR_FLAGS)
    try:
        if _identity(os.fstat(root_fd)) != scan.ids[src]:
            raise Conflict(f"{src} changed during the import: nothing read", "changed")
        for path in scan.files:
            relative = str(path.relative_to(src))
            folder = mapped.get(path.parent)
            try:
                if folder is None:
                    continue
                _deposit_one(cfg, _open_file(root_fd, src, path, scan.ids), path.name, folder,
                             report)
            except _Swapped as exc:
                report.refused.append((relative, str(exc)))
            except GedError as exc:
                report.refused.append((relative, exc.message))
            except OSError as exc:
                report.refused.append((relative, f"cannot read: {exc.strerror}"))
            finally:
                if progress:
                    progress(1)
    finally:
        os.close(root_fd)
    return report


def _deposit_one(cfg, fd: int, name: str, folder: Folder, report: ImportReport) -> None:
    """Hash, then stage and deposit, the bytes of one open file: the same descriptor
    throughout, so what is deposited is what was checked."""
    with os.fdopen(fd, "rb") as fh:
        sha256 = sha256_of(fh).sha256
        if Document.select().where((Document.folder == folder.id)
                                   & (Document.blob == sha256)).exists():
            report.skipped += 1
            return
        fh.seek(0)
        staged = stage(fh, cfg.data_dir, cfg.max_upload_bytes)
    documents.deposit(None, folder, [documents.Upload(name, staged)], "import", label=LABEL)
    report.deposited += 1
