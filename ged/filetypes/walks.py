"""Bounded walks through a file's structure, made before any parser is given the file:
a ZIP's end record, an OLE2 (legacy Office) directory, a TIFF's chain of page
directories, PNG chunks and JPEG segments. Each reads headers only (never compressed
or pixel data) and stops at a count and a time budget, whatever the file."""

from __future__ import annotations

import struct
import time
from pathlib import Path

from ..errors import Invalid

MAX_OLE_SECTORS = 4096  # sectors followed in a legacy Office file's directory
CHECK_SECONDS = 5.0  # time budget of one structure walk


class Damaged(Exception):
    """A structure walk found the file truncated or inconsistent."""


def _read_at(fh, offset: int, size: int) -> bytes:
    """``size`` bytes at ``offset``; Damaged when the file ends before."""
    fh.seek(offset)
    data = fh.read(size)
    if len(data) < size:
        raise Damaged
    return data


class _Budget:
    """A bound on the work one structure walk may do: so many steps, so much time."""

    def __init__(self, steps: int, what: str):
        self.left, self.what = steps, what
        self.deadline = time.monotonic() + CHECK_SECONDS

    def step(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise Damaged
        if not self.left % 256 and time.monotonic() > self.deadline:
            raise Invalid(f"Checking this {self.what} took too long.", "corrupt_file")


def too_large() -> Invalid:
    """The error of an image with more pixels than ged accepts."""
    return Invalid("This image is too large in pixels (a possible decompression bomb).",
                   "image_too_large")


def zip_entries(path: Path) -> int | None:
    """The entry count a ZIP's end record announces (ZIP64 included), read before any
    parser builds its directory; None when there is no end record."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        start = max(0, size - 65_557)  # the end record and its longest comment
        fh.seek(start)
        tail = fh.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < 22:
            return None
        entries = struct.unpack_from("<H", tail, at + 10)[0]
        if entries == 0xFFFF and at >= 20 and tail[at - 20:at - 16] == b"PK\x06\x07":
            z64 = struct.unpack_from("<Q", tail, at - 12)[0]
            try:
                record = _read_at(fh, z64, 56)
            except Damaged:
                return None
            if record[:4] == b"PK\x06\x06":
                entries = struct.unpack_from("<Q", record, 32)[0]
        return entries


def ole_streams(path: Path) -> set[str]:
    """The names in an OLE2 (legacy Office) file's directory, following at most
    MAX_OLE_SECTORS sectors of its chain."""
    names: set[str] = set()
    with open(path, "rb") as fh:
        try:
            header = _read_at(fh, 0, 512)
            shift = struct.unpack_from("<H", header, 30)[0]
            if shift not in (9, 12):
                return names
            size = 1 << shift
            fat_count, first_dir = struct.unpack_from("<II", header, 44)
            first_difat, difat_count = struct.unpack_from("<II", header, 68)
            fat = list(struct.unpack_from("<109I", header, 76))[:min(fat_count, 109)]
            difat, hops = first_difat, 0
            while len(fat) < fat_count and difat < 0xFFFFFFFA and hops < MAX_OLE_SECTORS:
                block = struct.unpack(f"<{size // 4}I", _read_at(fh, (difat + 1) * size, size))
                fat.extend(block[:-1][:fat_count - len(fat)])
                difat, hops = block[-1], hops + 1
            per = size // 4
            cache: dict[int, bytes] = {}

            def following(sector: int) -> int:
                index = sector // per
                if index >= len(fat):
                    return 0xFFFFFFFE
                if index not in cache:
                    cache[index] = _read_at(fh, (fat[index] + 1) * size, size)
                return struct.unpack_from("<I", cache[index], (sector % per) * 4)[0]

            sector, seen = first_dir, set()
            while sector < 0xFFFFFFFA and sector not in seen and len(seen) < MAX_OLE_SECTORS:
                seen.add(sector)
                block = _read_at(fh, (sector + 1) * size, size)
                for at in range(0, size, 128):
                    length = struct.unpack_from("<H", block, at + 64)[0]
                    if 2 <= length <= 64:
                        names.add(block[at:at + length - 2].decode("utf-16-le", "replace"))
                sector = following(sector)
        except (Damaged, struct.error):
            pass
    return names


def tiff_pages(path: Path, max_pages: int, max_pixels: int) -> int:
    """Walk a TIFF's chain of page directories (classic or BigTIFF), checking each page's
    size against ``max_pixels``, up to ``max_pages`` + 1 pages: the count never costs
    more than that."""
    budget = _Budget(max_pages + 2, "image")
    with open(path, "rb") as fh:
        head = _read_at(fh, 0, 16)
        order = {b"II": "<", b"MM": ">"}.get(head[:2])
        if order is None:
            raise Damaged
        big = struct.unpack_from(order + "H", head, 2)[0] == 43
        if big:
            offset, count_fmt, entry_size, next_fmt = (struct.unpack_from(order + "Q", head, 8)[0],
                                                       "Q", 20, "Q")
        else:
            offset, count_fmt, entry_size, next_fmt = (struct.unpack_from(order + "I", head, 4)[0],
                                                       "H", 12, "I")
        count_size, next_size = struct.calcsize(count_fmt), struct.calcsize(next_fmt)
        value_at = 12 if big else 8
        pages, seen = 0, set()
        while offset and pages <= max_pages:
            if offset in seen:
                break  # a loop back to an earlier page: the pages so far are the file
            seen.add(offset)
            budget.step()
            entries = struct.unpack(order + count_fmt, _read_at(fh, offset, count_size))[0]
            # Tags are sorted: width (256) and height (257) are among the first few.
            shown = min(entries, 16)
            table = _read_at(fh, offset + count_size, shown * entry_size)
            width = height = 0
            for i in range(shown):
                tag, kind = struct.unpack_from(order + "HH", table, i * entry_size)
                if tag in (256, 257):
                    fmt = {3: "H", 4: "I", 16: "Q"}.get(kind, "I")
                    value = struct.unpack_from(order + fmt, table, i * entry_size + value_at)[0]
                    width, height = (value, height) if tag == 256 else (width, value)
            if width * height > max_pixels:
                raise too_large()
            pages += 1
            offset = struct.unpack(order + next_fmt, _read_at(
                fh, offset + count_size + entries * entry_size, next_size))[0]
    return pages


def walk_png(path: Path, max_segments: int) -> None:
    """PNG chunks up to the image data: at most ``max_segments`` of them."""
    budget = _Budget(max_segments, "image")
    with open(path, "rb") as fh:
        offset = 8
        while True:
            budget.step()
            length, kind = struct.unpack(">I4s", _read_at(fh, offset, 8))
            if kind in (b"IDAT", b"IEND"):
                return
            offset += 12 + length


def walk_jpeg(path: Path, max_segments: int) -> None:
    """JPEG segments up to the start of scan: at most ``max_segments`` of them and 64 KB
    of stray bytes between them (Pillow steps through those a byte at a time)."""
    budget = _Budget(max_segments, "image")
    stray = 0
    with open(path, "rb") as fh:
        offset = 2
        while True:
            budget.step()
            marker = _read_at(fh, offset, 2)
            if marker[0] != 0xFF:
                stray += 1
                offset += 1
                if stray > 65_536:
                    raise Damaged
                continue
            code = marker[1]
            if code == 0xFF or 0xD0 <= code <= 0xD8 or code == 0x01:
                offset += 1 if code == 0xFF else 2
                continue
            if code in (0xDA, 0xD9):
                return
            length = struct.unpack(">H", _read_at(fh, offset + 2, 2))[0]
            offset += 2 + length
