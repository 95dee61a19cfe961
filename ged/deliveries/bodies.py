"""Request bodies streamed from the blob store: made of pieces (bytes, a blob, a
piece's base64), iterated twice (once to sign, once to send), their length known
without reading a blob, so a large document is never held whole in memory."""

from __future__ import annotations

import base64
import json
import math
import secrets
from typing import Iterator

from .. import runtime
from ..blobs import iter_blob


class BlobPiece:
    """The bytes of a blob of the store, read only while the body is iterated."""

    def __init__(self, sha256: str, size: int):
        self.sha256, self.size = sha256, size

    def __len__(self) -> int:
        return self.size

    def chunks(self) -> Iterator[bytes]:
        yield from iter_blob(runtime.store(), self.sha256)


class Base64:
    """A piece (bytes or a blob) as base64 text, encoded as it is read: a multiple of
    3 bytes at a time, so the encoded chunks join into one valid base64 string."""

    def __init__(self, inner):
        self.inner = inner

    def __len__(self) -> int:
        return 4 * math.ceil(len(self.inner) / 3)

    def chunks(self) -> Iterator[bytes]:
        carry = b""
        for chunk in piece_chunks(self.inner):
            data = carry + chunk
            cut = len(data) - len(data) % 3
            if cut:
                yield base64.b64encode(data[:cut])
            carry = data[cut:]
        if carry:
            yield base64.b64encode(carry)


def piece_chunks(piece) -> Iterator[bytes]:
    """The bytes of a piece (bytes, or anything with ``chunks()``)."""
    if isinstance(piece, bytes):
        if piece:
            yield piece
    else:
        yield from piece.chunks()


class Body:
    """A request body made of pieces (bytes, a blob, a blob's base64): it can be
    iterated more than once (sign, then send) and knows its length without reading a
    blob, so a large document is never held in memory."""

    def __init__(self, content_type: str):
        self.content_type = content_type
        self.pieces: list = []

    def __len__(self) -> int:
        return sum(len(p) for p in self.pieces)

    def chunks(self) -> Iterator[bytes]:
        for piece in self.pieces:
            yield from piece_chunks(piece)


def json_body(envelope: dict, streamed: dict[str, object]) -> Body:
    """The envelope as JSON, each placeholder string of ``streamed`` (found as a value)
    replaced by its piece's base64. The JSON is pure ASCII (``\\u`` escapes), so a
    verifier that reads the body as text, in any language, gets it unchanged."""
    text = json.dumps(envelope, ensure_ascii=True).encode()
    body = Body("application/json")
    at = 0
    found = sorted((text.index(f'"{marker}"'.encode()), marker) for marker in streamed)
    for position, marker in found:
        body.pieces += [text[at:position + 1], Base64(streamed[marker])]
        at = position + 1 + len(marker)
    body.pieces.append(text[at:])
    return body


class Multipart(Body):
    """A multipart/form-data body whose parts are bytes or blobs of the store."""

    def __init__(self):
        self.boundary = "ged-" + secrets.token_hex(16)
        super().__init__(f"multipart/form-data; boundary={self.boundary}")

    @staticmethod
    def _quote(value: str) -> str:
        # As browsers encode form-data names (WHATWG): UTF-8, with " CR LF escaped.
        return value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")

    def add(self, name: str, content, size: int | None = None,
            content_type: str = "application/octet-stream", filename: str | None = None) -> None:
        """A part: ``content`` is bytes, a piece, or the sha256 of a blob of ``size`` bytes."""
        if isinstance(content, str):
            content = BlobPiece(content, size)
        disposition = f'form-data; name="{self._quote(name)}"'
        if filename is not None:
            # Raw UTF-8 as RFC 7578 and browsers send it (it forbids filename*).
            disposition += f'; filename="{self._quote(filename)}"'
        self.pieces += [(f"--{self.boundary}\r\nContent-Disposition: {disposition}\r\n"
                         f"Content-Type: {content_type}\r\n\r\n").encode(), content, b"\r\n"]

    def _tail(self) -> bytes:
        return f"--{self.boundary}--\r\n".encode()

    def __len__(self) -> int:
        return super().__len__() + len(self._tail())

    def chunks(self) -> Iterator[bytes]:
        yield from super().chunks()
        yield self._tail()
