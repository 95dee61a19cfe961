"""The content of an opaque S/MIME signed message (smime.p7m, DER or BER), read
as a stream: the signed bytes are copied to a staged file, never held in memory.
The signature is not verified (the drop address is the authorisation)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from ..blobs import Staged
from .reader import Sink

SIGNED_DATA = bytes.fromhex("2a864886f70d010702")  # 1.2.840.113549.1.7.2
ENVELOPED_DATA = bytes.fromhex("2a864886f70d010703")  # 1.2.840.113549.1.7.3
AUTH_ENVELOPED_DATA = bytes.fromhex("2a864886f70d0109100117")  # 1.2.840.113549.1.9.16.1.23
_MAX_BER_DEPTH = 40


class Encrypted(Exception):
    """The CMS structure is an encrypted message, which ged cannot read."""


def _tlv(fh: BinaryIO) -> tuple[int, bool, int, int | None]:
    """(class, constructed, tag number, length or None when indefinite) of the next
    BER element; the file is left at its content."""
    first = fh.read(1)
    if not first:
        raise ValueError("truncated")
    tag = first[0]
    number = tag & 0x1F
    if number == 0x1F:
        number = 0
        for _ in range(6):
            byte = fh.read(1)
            if not byte:
                raise ValueError("truncated")
            number = (number << 7) | (byte[0] & 0x7F)
            if not byte[0] & 0x80:
                break
    byte = fh.read(1)
    if not byte:
        raise ValueError("truncated")
    if byte[0] == 0x80:
        return tag >> 6, bool(tag & 0x20), number, None
    if byte[0] < 0x80:
        return tag >> 6, bool(tag & 0x20), number, byte[0]
    count = byte[0] & 0x7F
    if count > 8:
        raise ValueError("length too long")
    raw = fh.read(count)
    if len(raw) != count:
        raise ValueError("truncated")
    return tag >> 6, bool(tag & 0x20), number, int.from_bytes(raw, "big")


def _skip_ber(fh: BinaryIO, constructed: bool, length: int | None, depth: int = 0) -> None:
    if depth > _MAX_BER_DEPTH:
        raise ValueError("nested too deeply")
    if length is not None:
        fh.seek(length, os.SEEK_CUR)
        return
    if not constructed:
        raise ValueError("indefinite primitive")
    while True:
        cls, cons, number, size = _tlv(fh)
        if cls == 0 and number == 0 and not cons and size == 0:
            return  # end-of-contents
        _skip_ber(fh, cons, size, depth + 1)


def _copy_octets(fh: BinaryIO, constructed: bool, length: int | None, sink: Sink,
                 depth: int = 0) -> None:
    """Copy an OCTET STRING's bytes (primitive, or BER-chunked as Outlook writes it)."""
    if depth > _MAX_BER_DEPTH:
        raise ValueError("nested too deeply")
    if not constructed:
        if length is None:
            raise ValueError("indefinite primitive")
        while length > 0:
            chunk = fh.read(min(length, 1024 * 1024))
            if not chunk:
                raise ValueError("truncated")
            sink.write(chunk)
            length -= len(chunk)
        return
    end = fh.tell() + length if length is not None else None
    while end is None or fh.tell() < end:
        cls, cons, number, size = _tlv(fh)
        if end is None and cls == 0 and number == 0 and not cons and size == 0:
            return
        _copy_octets(fh, cons, size, sink, depth + 1)


def unwrap_signed(path: Path, data_dir: Path, max_bytes: int) -> Staged | None:
    """The content an opaque S/MIME signed-data file (smime.p7m, DER or BER) carries,
    staged; None when it carries none (detached) or cannot be read; Encrypted for an
    enveloped (encrypted) message. The signature is not verified: the drop address is
    the authorisation, as for any message."""
    sink = Sink(data_dir, max_bytes)
    try:
        with open(path, "rb") as fh:
            cls, cons, number, _length = _tlv(fh)  # ContentInfo
            if (cls, cons, number) != (0, True, 16):
                raise ValueError("not a ContentInfo")
            cls, cons, number, length = _tlv(fh)
            if (cls, number) != (0, 6) or length is None or length > 64:
                raise ValueError("no content type")
            oid = fh.read(length)
            if oid in (ENVELOPED_DATA, AUTH_ENVELOPED_DATA):
                raise Encrypted()
            if oid != SIGNED_DATA:
                raise ValueError("not signed-data")
            _tlv(fh)  # [0] EXPLICIT
            cls, cons, number, _length = _tlv(fh)  # SignedData
            if (cls, cons, number) != (0, True, 16):
                raise ValueError("not a SignedData")
            for _ in range(2):  # version, digestAlgorithms
                _c, cons, _n, length = _tlv(fh)
                _skip_ber(fh, cons, length)
            cls, cons, number, length = _tlv(fh)  # EncapsulatedContentInfo
            if (cls, cons, number) != (0, True, 16):
                raise ValueError("no encapsulated content")
            end = fh.tell() + length if length is not None else None
            _c, cons, number, size = _tlv(fh)  # eContentType
            _skip_ber(fh, cons, size)
            if end is not None and fh.tell() >= end:
                raise ValueError("detached signature: no content")
            cls, cons, number, _size = _tlv(fh)  # [0] EXPLICIT eContent, or the end
            if (cls, number) != (2, 0):
                raise ValueError("detached signature: no content")
            _c, cons, number, size = _tlv(fh)  # OCTET STRING
            if number != 4:
                raise ValueError("content is not an OCTET STRING")
            _copy_octets(fh, cons, size, sink)
    except Encrypted:
        sink.abort()
        raise
    except (ValueError, OSError):
        sink.abort()
        return None
    staged = sink.close()
    if staged is not None and staged.size == 0:
        staged.discard()
        return None
    return staged
