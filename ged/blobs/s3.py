"""Blobs in an S3-compatible object store (GED_STORAGE_URL=s3://BUCKET/PREFIX).

The same seam and the same guarantees as ``local.LocalBlobStore``: objects are
keyed by their SHA-256 (``PREFIX/ab/cd/<sha256>``), written once, complete before
any row names them (an S3 PUT, single or multipart, only becomes visible when it
is whole), and read back as a stream. The endpoint is given by the caller (from
GED_S3_ENDPOINT_URL: any S3-compatible store, MinIO, SeaweedFS, Ceph, AWS...);
credentials and region come from the standard AWS_* variables, read by boto3.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterator

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from . import blob_path

# Files above this size go up in 8 MB parts, read from the staged file as they are
# sent: the whole file is never held in memory.
_TRANSFER = TransferConfig(multipart_threshold=8 * 1024 * 1024,
                           multipart_chunksize=8 * 1024 * 1024, max_concurrency=4)

_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}


def _missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in _MISSING


class S3BlobStore:
    """Blobs in one bucket, under an optional key prefix."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None):
        if not bucket:
            raise ValueError("GED_STORAGE_URL=s3://BUCKET/PREFIX needs a bucket name")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url or None
        self._lock = threading.Lock()
        self._client = None
        self._pid = None

    # --- the client ----------------------------------------------------------------

    @property
    def client(self):
        """A boto3 client of this process (clients are thread-safe, not fork-safe)."""
        if self._client is None or self._pid != os.getpid():
            with self._lock:
                if self._client is None or self._pid != os.getpid():
                    self._client = self._make_client()
                    self._pid = os.getpid()
        return self._client

    def _make_client(self):
        options = {
            "retries": {"max_attempts": 5, "mode": "standard"},
            "connect_timeout": 5,
            "read_timeout": 60,
            "max_pool_connections": 20,
        }
        if self.endpoint_url:
            # Other S3-compatible stores want path-style URLs, and not all of them
            # know the checksums recent boto3 versions add to every request.
            options.update(s3={"addressing_style": "path"},
                           request_checksum_calculation="when_required",
                           response_checksum_validation="when_required")
        session = boto3.session.Session()
        return session.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=session.region_name or "us-east-1",
            config=BotoConfig(**options),
        )

    # --- keys ----------------------------------------------------------------------

    def key(self, sha256: str) -> str:
        """The object key of a blob: the local store's layout under the prefix."""
        return str(blob_path(PurePosixPath(self.prefix), sha256))

    # --- the seam ------------------------------------------------------------------

    def put(self, sha256: str, src: Path) -> None:
        """Upload a staged file (streamed, multipart when large); an object already
        there is kept, since the same key means the same bytes. The staged file is
        left to its owner, who discards it."""
        if self.exists(sha256):
            self._touch(sha256)  # marks it in use again: see recently_written()
            return
        # upload_file returns only once the store has acknowledged the whole object
        # (a multipart upload only becomes visible when completed), and raises otherwise.
        self.client.upload_file(str(src), self.bucket, self.key(sha256), Config=_TRANSFER,
                                ExtraArgs={"ContentType": "application/octet-stream"})

    def open(self, sha256: str) -> BinaryIO:
        """The blob as a streaming, read-only file object (close it when done)."""
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key(sha256))["Body"]
        except ClientError as exc:
            if _missing(exc):
                raise FileNotFoundError(sha256) from None
            raise

    def exists(self, sha256: str) -> bool:
        return self.size(sha256) is not None

    def _touch(self, sha256: str) -> None:
        """Refresh the object's LastModified (a copy onto itself), so that a purge racing
        with a deposit of the same bytes leaves it alone."""
        key = self.key(sha256)
        try:
            self.client.copy_object(Bucket=self.bucket, Key=key,
                                    CopySource={"Bucket": self.bucket, "Key": key},
                                    MetadataDirective="REPLACE",
                                    ContentType="application/octet-stream")
        except ClientError as exc:
            if not _missing(exc):
                raise
            raise FileNotFoundError(sha256) from None

    def recently_written(self, sha256: str, grace: float = 600) -> bool:
        """True when the object was stored (or found in place by a deposit) within
        ``grace`` seconds: a purge then leaves it for a later `ged fsck --repair`."""
        written = self.modified(sha256)
        return written is not None and time.time() - written < grace

    def _head(self, sha256: str) -> dict | None:
        """The object's metadata, None when it is missing."""
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as exc:
            if _missing(exc):
                return None
            raise

    def size(self, sha256: str) -> int | None:
        head = self._head(sha256)
        return None if head is None else int(head["ContentLength"])

    def modified(self, sha256: str) -> float | None:
        """When the object was written (Unix time), None if it is missing (fsck's grace)."""
        head = self._head(sha256)
        return None if head is None else head["LastModified"].timestamp()

    def delete(self, sha256: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(sha256))

    def keys(self) -> Iterator[str]:
        """Every blob key in the store (for fsck), page by page."""
        prefix = f"{self.prefix}/" if self.prefix else ""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                name = item["Key"].rsplit("/", 1)[-1]
                if len(name) == 64 and item["Key"] == self.key(name):
                    yield name

    def local_path(self, sha256: str) -> Path | None:
        """None: objects have no local path; readers use ``open()``."""
        return None

    def check(self) -> None:
        """Raise if the bucket cannot be reached with these credentials."""
        self.client.head_bucket(Bucket=self.bucket)

    def ensure(self) -> None:
        """Create the bucket when it is missing (``ged init``)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if not _missing(exc):
                raise
        region = self.client.meta.region_name
        kwargs = {}
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(Bucket=self.bucket, **kwargs)
        except ClientError as exc:  # another host's `ged init` won the race
            if exc.response.get("Error", {}).get("Code") not in {
                    "BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise

    def __repr__(self) -> str:
        return f"S3BlobStore(s3://{self.bucket}/{self.prefix}, endpoint={self.endpoint_url})"
