"""The blob store seam: bytes addressed by their SHA-256, written once, complete
before any row names them.

``stage()`` streams an upload to a temporary file in the data dir while hashing
and counting it (refusing past the size limit); ``store().put()`` then moves the
staged file into the store. ``LocalBlobStore`` keeps blobs under
``<data dir>/blobs/ab/cd/<sha256>`` (fsynced, renamed into place); the S3 store
(GED_STORAGE_URL=s3://...) keeps the same keys in a bucket.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator
from urllib.parse import urlparse

from .errors import Invalid, TooLarge

CHUNK = 1024 * 1024


@dataclass
class Staged:
    """An upload written to a temporary file, with its hash, size and first bytes."""

    path: Path
    sha256: str
    size: int
    head: bytes

    def discard(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def staging_dir(data_dir: Path) -> Path:
    path = Path(data_dir) / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def stage(stream: BinaryIO, data_dir: Path, max_bytes: int) -> Staged:
    """Copy ``stream`` to a temporary file, hashing it; TooLarge past ``max_bytes``."""
    fd, name = tempfile.mkstemp(prefix="upload-", dir=staging_dir(data_dir))
    digest = hashlib.sha256()
    size = 0
    head = b""
    try:
        with os.fdopen(fd, "wb") as out:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(
                        f"The file is larger than the limit of {max_bytes // (1024 * 1024)} MB.",
                        "file_too_large",
                    )
                if len(head) < 8192:
                    head += chunk[: 8192 - len(head)]
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        os.unlink(name)
        raise
    return Staged(Path(name), digest.hexdigest(), size, head)


def stage_bytes(data: bytes, data_dir: Path, max_bytes: int) -> Staged:
    import io

    return stage(io.BytesIO(data), data_dir, max_bytes)


class LocalBlobStore:
    """Blobs on a local (or shared) filesystem."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise Invalid("bad blob key")
        return self.root / sha256[:2] / sha256[2:4] / sha256

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
        import time

        try:
            return time.time() - self.path(sha256).stat().st_mtime < grace
        except FileNotFoundError:
            return False

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def size(self, sha256: str) -> int | None:
        try:
            return self.path(sha256).stat().st_size
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
        """A filesystem path to the blob when the store has one (lets OCR read in place)."""
        return self.path(sha256)

    def modified(self, sha256: str) -> float | None:
        """When the blob was written (Unix time), None if it is missing (fsck's grace)."""
        try:
            return self.path(sha256).stat().st_mtime
        except FileNotFoundError:
            return None

    def check(self) -> None:
        """Raise if the store cannot be written."""
        probe = self.root / ".ready"
        probe.write_bytes(b"ok")
        probe.unlink()


_stores: dict[str, object] = {}


def store_for(url: str):
    """The blob store for a GED_STORAGE_URL (file://PATH or s3://BUCKET/PREFIX)."""
    if url not in _stores:
        parsed = urlparse(url)
        if parsed.scheme == "file":
            _stores[url] = LocalBlobStore(Path(parsed.path))
        elif parsed.scheme == "s3":
            from .storage_s3 import S3BlobStore

            _stores[url] = S3BlobStore(parsed.netloc, parsed.path.strip("/"))
        else:
            raise ValueError(f"unsupported GED_STORAGE_URL: {url}")
    return _stores[url]


def copy_to(store, sha256: str, out: BinaryIO) -> None:
    with store.open(sha256) as fh:
        shutil.copyfileobj(fh, out, CHUNK)


def iter_blob(store, sha256: str, chunk: int = 256 * 1024) -> Iterator[bytes]:
    """The blob's bytes in chunks, so downloads and deliveries never hold a whole file."""
    with store.open(sha256) as fh:
        while True:
            data = fh.read(chunk)
            if not data:
                return
            yield data
