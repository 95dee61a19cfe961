"""The blob store seam: bytes addressed by their SHA-256, written once, complete
before any row names them.

``stage()`` streams an upload to a temporary file in the data dir while hashing
and counting it (refusing past the size limit); ``runtime.store().put()`` then moves
the staged file into the store. Two stores keep the same layout
(``ab/cd/<sha256>``, see ``blob_path``): ``local.LocalBlobStore`` under a directory
(GED_STORAGE_URL=file://PATH) and ``s3.S3BlobStore`` in a bucket
(GED_STORAGE_URL=s3://BUCKET/PREFIX).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import BinaryIO, Iterator, Protocol
from urllib.parse import urlparse

from ..errors import Invalid, TooLarge

CHUNK = 1024 * 1024
HEAD = 8192  # the first bytes kept of a staged file, to tell its type


class BlobStore(Protocol):
    """What every blob store does. Keys are SHA-256 hex digests of the bytes."""

    def put(self, sha256: str, src: Path) -> None:
        """Store a staged file (complete before it is visible); a blob already there
        is kept, and marked in use again (see ``recently_written``)."""

    def open(self, sha256: str) -> BinaryIO:
        """The blob as a read-only binary stream; FileNotFoundError when missing."""

    def exists(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int | None:
        """The blob's size in bytes, None when it is missing."""

    def modified(self, sha256: str) -> float | None:
        """When the blob was written (Unix time), None when it is missing."""

    def recently_written(self, sha256: str, grace: float = 600) -> bool:
        """True when the blob was stored (or found in place by a deposit) within
        ``grace`` seconds: a purge then leaves it for a later `ged fsck --repair`."""

    def delete(self, sha256: str) -> None: ...

    def keys(self) -> Iterator[str]:
        """Every blob key in the store (for fsck)."""

    def local_path(self, sha256: str) -> Path | None:
        """A filesystem path to the blob when the store has one (lets OCR read in
        place), else None."""

    def check(self) -> None:
        """Raise if the store cannot be used (for /readyz and `ged check`)."""

    def ensure(self) -> None:
        """Create what the store needs to exist (`ged init`)."""


# --- the two helpers every copy of a blob goes through -----------------------------------


def check_key(sha256: str) -> str:
    """``sha256`` if it is a blob key (64 lowercase hex digits), else Invalid."""
    if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
        raise Invalid("bad blob key")
    return sha256


def blob_path(root: PurePath, sha256: str) -> PurePath:
    """Where a blob lives under ``root``: ``root/ab/cd/<sha256>``, the fan-out that keeps
    directories small. The same layout on disk, in a bucket and in a backup."""
    check_key(sha256)
    return root / sha256[:2] / sha256[2:4] / sha256


@dataclass
class Digest:
    """What ``sha256_of`` read: the SHA-256 (hex), the size and the first bytes."""

    sha256: str
    size: int
    head: bytes


def sha256_of(source: BinaryIO | str | os.PathLike, *, copy_to: BinaryIO | None = None,
              max_bytes: int | None = None) -> Digest:
    """Hash a binary stream (read to its end) or the file at a path, a chunk at a time;
    each chunk is also written to ``copy_to`` when given. TooLarge past ``max_bytes``."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as fh:
            return sha256_of(fh, copy_to=copy_to, max_bytes=max_bytes)
    digest, size, head = hashlib.sha256(), 0, b""
    for chunk in iter(lambda: source.read(CHUNK), b""):
        size += len(chunk)
        if max_bytes is not None and size > max_bytes:
            raise TooLarge(
                f"The file is larger than the limit of {max_bytes // (1024 * 1024)} MB.",
                "file_too_large",
            )
        if len(head) < HEAD:
            head += chunk[: HEAD - len(head)]
        digest.update(chunk)
        if copy_to is not None:
            copy_to.write(chunk)
    return Digest(digest.hexdigest(), size, head)


# --- staging ------------------------------------------------------------------------------


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
    try:
        with os.fdopen(fd, "wb") as out:
            found = sha256_of(stream, copy_to=out, max_bytes=max_bytes)
    except BaseException:
        os.unlink(name)
        raise
    return Staged(Path(name), found.sha256, found.size, found.head)


def stage_bytes(data: bytes, data_dir: Path, max_bytes: int) -> Staged:
    return stage(io.BytesIO(data), data_dir, max_bytes)


# --- reading ------------------------------------------------------------------------------


def copy_to(store: BlobStore, sha256: str, out: BinaryIO) -> None:
    with store.open(sha256) as fh:
        shutil.copyfileobj(fh, out, CHUNK)


def iter_blob(store: BlobStore, sha256: str, chunk: int = 256 * 1024) -> Iterator[bytes]:
    """The blob's bytes in chunks, so downloads and deliveries never hold a whole file."""
    with store.open(sha256) as fh:
        while True:
            data = fh.read(chunk)
            if not data:
                return
            yield data


# --- the store of a URL -------------------------------------------------------------------

_stores: dict[tuple, BlobStore] = {}


def store_for(url: str, s3_endpoint_url: str | None = None) -> BlobStore:
    """The blob store for a GED_STORAGE_URL (file://PATH or s3://BUCKET/PREFIX), one per
    process and settings. ``s3_endpoint_url``: GED_S3_ENDPOINT_URL (S3 only)."""
    key = (url, s3_endpoint_url)
    if key not in _stores:
        parsed = urlparse(url)
        if parsed.scheme == "file":
            from .local import LocalBlobStore

            _stores[key] = LocalBlobStore(Path(parsed.path))
        elif parsed.scheme == "s3":
            from .s3 import S3BlobStore  # boto3 is loaded only by those who use S3

            _stores[key] = S3BlobStore(parsed.netloc, parsed.path.strip("/"),
                                       endpoint_url=s3_endpoint_url)
        else:
            raise ValueError(f"unsupported GED_STORAGE_URL: {url}")
    return _stores[key]
