"""Blobs on a local (or shared) filesystem: ``<root>/ab/cd/<sha256>``, fsynced and
renamed into place, so a blob is whole or absent."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import BinaryIO, Iterator

from . import blob_path


class LocalBlobStore:
    """Blobs under one directory (GED_STORAGE_URL=file://PATH)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.ensure()

    def path(self, sha256: str) -> Path:
        return blob_path(self.root, sha256)

    def put(self, sha256: str, src: Path) -> None:
        """Move a staged file into place (fsynced); a blob already there is kept."""
        target = self.path(sha256)
        if target.exists():
            os.unlink(src)
            os.utime(target)  # marks it in use again: see recently_written()
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(src, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(src, target)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def open(self, sha256: str) -> BinaryIO:
        return open(self.path(sha256), "rb")

    def recently_written(self, sha256: str, grace: float = 600) -> bool:
        """True when the blob was stored (or found in place by a deposit) within ``grace``
        seconds: a purge then leaves it for a later `ged fsck --repair`."""
        written = self.modified(sha256)
        return written is not None and time.time() - written < grace

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def size(self, sha256: str) -> int | None:
        try:
            return self.path(sha256).stat().st_size
        except FileNotFoundError:
            return None

    def modified(self, sha256: str) -> float | None:
        """When the blob was written (Unix time), None if it is missing (fsck's grace)."""
        try:
            return self.path(sha256).stat().st_mtime
        except FileNotFoundError:
            return None

    def delete(self, sha256: str) -> None:
        try:
            os.unlink(self.path(sha256))
        except FileNotFoundError:
            pass

    def keys(self) -> Iterator[str]:
        for path in self.root.glob("??/??/*"):
            if len(path.name) == 64:
                yield path.name

    def local_path(self, sha256: str) -> Path | None:
        """A filesystem path to the blob (lets OCR read in place)."""
        return self.path(sha256)

    def check(self) -> None:
        """Raise if the store cannot be written."""
        probe = self.root / ".ready"
        probe.write_bytes(b"ok")
        probe.unlink()

    def ensure(self) -> None:
        """Create the root directory when it is missing."""
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalBlobStore({self.root})"
