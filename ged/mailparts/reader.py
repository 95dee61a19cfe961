"""A streaming reader of MIME messages.

The message sits in a file (the receiver spools SMTP DATA to disk); ``Reader.walk``
reads it line by line and decodes each leaf part's body (base64, quoted-printable
or as is) straight into a staged temporary file, or keeps a bounded slice of an
HTML body, or skips it. Memory stays small whatever the message's size, and the
number of parts, their nesting and their header blocks are bounded, so a hostile
message costs at most one pass over its bytes.
"""

from __future__ import annotations

import binascii
import email.errors
import email.header
import email.utils
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from email import policy as email_policy
from email.message import Message
from email.parser import Parser
from pathlib import Path
from typing import BinaryIO, Callable

from ..blobs import Staged, staging_dir

PIECE = 64 * 1024  # the longest line piece read at once (longer lines come in pieces)
FEED = 256 * 1024  # body bytes gathered before each decode
MAX_HEADER_BYTES = 256 * 1024  # one part's header block
MAX_ALL_HEADER_BYTES = 4 * 1024 * 1024  # every header block of a message, together
MAX_NESTING = 30  # multiparts inside multiparts
HTML_KEEP = 2 * 1024 * 1024  # bytes of HTML bodies kept (in all) to find their cid: references

FILE, HTML, SKIP = "file", "html", "skip"


class TooManyParts(Exception):
    """The message has more MIME parts than the reader accepts."""


class Malformed(Exception):
    """The message's structure cannot be read (a header block too large, nesting too deep)."""


@dataclass
class Part:
    """A leaf part: its headers, what the reader did with its body, and where it sits."""

    headers: Message
    content_type: str
    disposition: str | None
    filename: str | None
    content_id: str | None
    encoding: str
    ancestors: tuple[str, ...]  # content types of the enclosing entities, outermost first
    forwarded: int  # how many message/rfc822 levels it sits inside
    staged: Staged | None = None
    too_large: bool = False
    text: str | None = None
    extra: dict = field(default_factory=dict)

    def discard(self) -> None:
        if self.staged is not None:
            self.staged.discard()
            self.staged = None


def decode_words(value: str) -> str:
    """A header value with its RFC 2047 encoded-words decoded (also where they are not
    allowed, e.g. an unquoted ``filename==?utf-8?B?...?=``, as real clients write them)."""
    if "=?" not in value:
        return value
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (LookupError, ValueError, UnicodeError, email.errors.HeaderParseError):
        return value


def parse_headers(raw: bytes) -> Message:
    """A header block as a Message (compat32: plain strings, RFC 2231 parameters).
    Raw 8-bit bytes are read as UTF-8, else as Latin-1."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    text = re.sub(r"\r?\n(?=[ \t])", "", text)  # unfold
    return Parser(policy=email_policy.compat32).parsestr(text, headersonly=True)


def filename_of(headers: Message) -> str | None:
    """The part's file name: Content-Disposition's filename, else Content-Type's name;
    RFC 2231 and RFC 2047 forms decoded."""
    for param, header in (("filename", "content-disposition"), ("name", "content-type")):
        try:
            value = headers.get_param(param, None, header)
        except (ValueError, LookupError, TypeError):
            value = None
        if value is None:
            continue
        try:
            value = email.utils.collapse_rfc2231_value(value)
        except (LookupError, ValueError, UnicodeError, TypeError):
            value = value[2] if isinstance(value, tuple) else str(value)
        value = decode_words(str(value).strip().strip('"')).strip()
        value = " ".join(value.replace("\r", " ").replace("\n", " ").split()) if value else ""
        if value:
            return value
    return None


def _content_type(headers: Message) -> str:
    try:
        return headers.get_content_type()
    except (ValueError, IndexError, AttributeError):
        return "application/octet-stream"


def _disposition(headers: Message) -> str | None:
    value = headers.get("Content-Disposition")
    if not value:
        return None
    return str(value).split(";", 1)[0].strip().lower() or None


# --- body decoders (incremental) ------------------------------------------------------


class _Identity:
    def feed(self, data: bytes) -> bytes:
        return data

    def finish(self) -> bytes:
        return b""


_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/=]")


class _Base64:
    """Lenient, like mail clients: stray characters skipped, missing padding added,
    several encodings one after another decoded in turn."""

    def __init__(self):
        self.rest = b""

    def feed(self, data: bytes) -> bytes:
        data = data.translate(None, b" \t\r\n")
        if _NOT_BASE64.search(data):
            data = _NOT_BASE64.sub(b"", data)
        data = self.rest + data
        cut = len(data) - len(data) % 4
        self.rest = data[cut:]
        return self._decode(data[:cut])

    @staticmethod
    def _decode(data: bytes) -> bytes:
        if not data:
            return b""
        if b"=" not in data[:-4]:
            return _a2b(data)
        out = []  # padding inside: each quartet alone (rare)
        for i in range(0, len(data), 4):
            out.append(_a2b(data[i:i + 4]))
        return b"".join(out)

    def finish(self) -> bytes:
        rest, self.rest = self.rest.rstrip(b"="), b""
        if len(rest) < 2:
            return b""
        return _a2b(rest + b"=" * (-len(rest) % 4))


def _a2b(data: bytes) -> bytes:
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        return b""


class _QuotedPrintable:
    def __init__(self):
        self.rest = b""

    def feed(self, data: bytes) -> bytes:
        data = self.rest + data
        cut = data.rfind(b"\n") + 1
        if cut == 0 and len(data) > PIECE:  # a very long line: decode all but a split escape
            cut = len(data) - 2
        self.rest = data[cut:]
        return binascii.a2b_qp(data[:cut])

    def finish(self) -> bytes:
        rest, self.rest = self.rest, b""
        return binascii.a2b_qp(rest)


def _decoder(encoding: str):
    if encoding == "base64":
        return _Base64()
    if encoding == "quoted-printable":
        return _QuotedPrintable()
    return _Identity()


class Sink:
    """A staged file being written: hashed, counted, its first bytes kept; past
    ``max_bytes`` it stops writing and says so."""

    def __init__(self, data_dir: Path, max_bytes: int):
        fd, name = tempfile.mkstemp(prefix="mail-", dir=staging_dir(data_dir))
        self.path = Path(name)
        self.out = os.fdopen(fd, "wb")
        self.digest = hashlib.sha256()
        self.size = 0
        self.head = b""
        self.max_bytes = max_bytes
        self.too_large = False

    def write(self, data: bytes) -> None:
        if not data or self.too_large:
            return
        self.size += len(data)
        if self.size > self.max_bytes:
            self.too_large = True
            return
        if len(self.head) < 8192:
            self.head += data[: 8192 - len(self.head)]
        self.digest.update(data)
        self.out.write(data)

    def close(self) -> Staged | None:
        self.out.close()
        staged = Staged(self.path, self.digest.hexdigest(), self.size, self.head)
        if self.too_large:
            staged.discard()
            return None
        return staged

    def abort(self) -> None:
        self.out.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class _Collect:
    """Keeps at most ``limit`` bytes."""

    def __init__(self, limit: int):
        self.limit = limit
        self.buf = bytearray()

    def write(self, data: bytes) -> None:
        room = self.limit - len(self.buf)
        if room > 0:
            self.buf += data[:room]


# --- the reader -------------------------------------------------------------------------


class _Lines:
    """The file's lines, as pieces of at most PIECE bytes that know whether they start
    a line; one piece can be pushed back."""

    def __init__(self, fh: BinaryIO):
        self.fh = fh
        self.at_start = True
        self.back = None

    def next(self):
        if self.back is not None:
            item, self.back = self.back, None
            return item
        piece = self.fh.readline(PIECE)
        if not piece:
            return None
        start = self.at_start
        self.at_start = piece.endswith(b"\n")
        return piece, start

    def push(self, item) -> None:
        self.back = item


def _delimiter(piece: bytes, boundaries: tuple[bytes, ...]):
    """(boundary, closing) when the line is a delimiter of one of the open multiparts."""
    if not piece.startswith(b"--") or len(piece) > 200 + 76:
        return None
    line = piece.rstrip(b"\r\n").rstrip(b" \t")
    for boundary in boundaries:
        if line == b"--" + boundary:
            return boundary, False
        if line == b"--" + boundary + b"--":
            return boundary, True
    return None


_HEADER_LINE = re.compile(rb"[!-9;-~]+[ \t]*:")
_EOLS = (b"\r\n", b"\n")


class Reader:
    """Walks messages, deciding each leaf's fate with ``choose(part)`` (FILE, HTML or
    SKIP; it may set ``part.extra["max_bytes"]`` above ``max_file_bytes``, e.g. for an
    attached message) once its headers are read; counts parts across every walk (forwarded and
    unwrapped messages share the budget). A message/rfc822 part is read as a message
    down to ``max_forwarded`` levels; deeper, it is a leaf like any other."""

    def __init__(self, choose: Callable[[Part], str], data_dir: Path, max_file_bytes: int,
                 max_parts: int, max_forwarded: int = 5):
        self.choose = choose
        self.max_forwarded = max_forwarded
        self.data_dir = data_dir
        self.max_file_bytes = max_file_bytes
        self.max_parts = max_parts
        self.count = 0
        self.header_budget = MAX_ALL_HEADER_BYTES
        self.html_budget = HTML_KEEP

    def walk(self, fh: BinaryIO, forwarded: int = 0, ancestors: tuple[str, ...] = ()
             ) -> tuple[Message, list[Part]]:
        """(top-level headers, leaf parts) of the message in ``fh``. On an exception the
        parts staged so far are discarded."""
        lines = _Lines(fh)
        first = lines.next()
        if first is not None and not first[0].startswith(b"From "):
            lines.push(first)  # an mbox "From " line is not a header
        parts: list[Part] = []
        try:
            top, _end = self._entity(lines, (), 0, forwarded, ancestors, "text/plain", parts)
        except BaseException:
            for part in parts:
                part.discard()
            raise
        return top, parts

    # Each method consumes one entity and returns its headers and the delimiter line
    # that ended it (None at the end of the file); the delimiter is consumed.

    def _entity(self, lines, boundaries, nesting, forwarded, ancestors, default_type, parts):
        headers, end = self._headers(lines, boundaries)
        self.count += 1
        if self.count > self.max_parts:
            raise TooManyParts(self.max_parts)
        if default_type != "text/plain" and "Content-Type" not in headers:
            headers.set_default_type(default_type)
        ctype = _content_type(headers)
        encoding = str(headers.get("Content-Transfer-Encoding", "7bit")).strip().lower()
        if end is None and ctype.startswith("multipart/") and headers.get_boundary():
            if nesting >= MAX_NESTING:
                raise Malformed("multiparts nested too deeply")
            end = self._multipart(lines, boundaries, nesting, forwarded, ancestors, headers,
                                  ctype, parts)
        elif (end is None and ctype == "message/rfc822" and forwarded < self.max_forwarded
              and encoding in {"7bit", "8bit", "binary", ""}):
            _inner, end = self._entity(lines, boundaries, nesting + 1, forwarded + 1,
                                       ancestors + (ctype,), "text/plain", parts)
        else:
            end = self._leaf(lines, boundaries, headers, ctype, encoding, ancestors, forwarded,
                             parts, end)
        return headers, end

    def _headers(self, lines, boundaries):
        buf = bytearray()
        end = None
        while True:
            item = lines.next()
            if item is None:
                break
            piece, start = item
            if start:
                end = _delimiter(piece, boundaries) if boundaries else None
                if end is not None:
                    break
                if piece in _EOLS:
                    break
                if not _HEADER_LINE.match(piece) and not (buf and piece[:1] in b" \t"):
                    lines.push(item)  # no blank line: the body starts here
                    break
            buf += piece
            if len(buf) > MAX_HEADER_BYTES:
                raise Malformed("a header block is too large")
        self.header_budget -= len(buf)
        if self.header_budget < 0:
            raise Malformed("the header blocks are too large")
        return parse_headers(bytes(buf)), end

    def _multipart(self, lines, boundaries, nesting, forwarded, ancestors, headers, ctype,
                   parts):
        boundary = headers.get_boundary().encode("utf-8", "replace")
        inner = (boundary,) + boundaries
        end = self._skip(lines, inner)  # the preamble
        default = "message/rfc822" if ctype == "multipart/digest" else "text/plain"
        here = ancestors + (ctype,)
        while end is not None and end == (boundary, False):
            _h, end = self._entity(lines, inner, nesting + 1, forwarded, here, default, parts)
        if end == (boundary, True):
            return self._skip(lines, boundaries)  # the epilogue
        return end  # an enclosing delimiter (this one was never closed), or the end

    def _skip(self, lines, boundaries):
        while True:
            item = lines.next()
            if item is None:
                return None
            piece, start = item
            if start and boundaries:
                end = _delimiter(piece, boundaries)
                if end is not None:
                    return end

    def _leaf(self, lines, boundaries, headers, ctype, encoding, ancestors, forwarded, parts,
              end):
        part = Part(headers=headers, content_type=ctype, disposition=_disposition(headers),
                    filename=filename_of(headers),
                    content_id=(str(headers.get("Content-ID") or "").strip().strip("<>").strip()
                                or None),
                    encoding=encoding, ancestors=ancestors, forwarded=forwarded)
        fate = self.choose(part)
        limit = part.extra.get("max_bytes", self.max_file_bytes)
        sink = Sink(self.data_dir, limit) if fate == FILE else (
            _Collect(self.html_budget) if fate == HTML else None)
        decoder = _decoder(encoding)
        try:
            if end is None:
                end = self._body(lines, boundaries, sink, decoder)
            if sink is not None:
                sink.write(decoder.finish())
        except BaseException:
            if isinstance(sink, Sink):
                sink.abort()
            raise
        if isinstance(sink, Sink):
            part.staged = sink.close()
            part.too_large = sink.too_large
        elif isinstance(sink, _Collect):
            self.html_budget -= len(sink.buf)
            charset = headers.get_content_charset() or "utf-8"
            try:
                part.text = bytes(sink.buf).decode(charset, "replace")
            except LookupError:
                part.text = bytes(sink.buf).decode("utf-8", "replace")
        parts.append(part)
        return end

    def _body(self, lines, boundaries, sink, decoder):
        """Reads the body up to a delimiter (returned) or the end of the file; the line
        break before a delimiter belongs to the delimiter, not to the body."""
        pending = bytearray()
        held = b""
        while True:
            item = lines.next()
            if item is None:
                end = None
                break
            piece, start = item
            if start and boundaries and piece[:2] == b"--":
                end = _delimiter(piece, boundaries)
                if end is not None:
                    break
            if sink is None:
                continue
            if piece.endswith(b"\r\n"):
                body, eol = piece[:-2], b"\r\n"
            elif piece.endswith(b"\n"):
                body, eol = piece[:-1], b"\n"
            else:
                body, eol = piece, b""
            pending += held
            pending += body
            held = eol
            if len(pending) >= FEED:
                sink.write(decoder.feed(bytes(pending)))
                pending.clear()
        if sink is not None and pending:
            sink.write(decoder.feed(bytes(pending)))
        return end


def read_top_headers(path: Path) -> Message | None:
    """The top-level headers of the message in ``path`` (bounded read), or None."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_HEADER_BYTES)
    except OSError:
        return None
    if raw.startswith(b"From "):
        raw = raw.partition(b"\n")[2]
    match = re.search(rb"\r?\n\r?\n", raw)
    return parse_headers(raw[: match.start()] if match else raw)
