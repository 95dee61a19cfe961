"""The embedded mode's outbox: when no relay is configured (GED_SMTP_HOST unset),
`ged serve` receives ged's outgoing mail on a loopback SMTP port and keeps each
message as an .eml file in ``<GED_DATA_DIR>/outbox`` instead of sending it.

So a fresh install works end to end without a mail server: an e-mail connection's
deliveries succeed (the file is what the tool would have received), an invitation's
link can be read from its file. Nothing leaves the machine. A real deployment sets
GED_SMTP_HOST and this never runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from .db import new_id
from .processes import free_port

DIR_NAME = "outbox"


def outbox_dir(data_dir: Path) -> Path:
    path = Path(data_dir) / DIR_NAME
    path.mkdir(parents=True, exist_ok=True)
    return path


class OutboxHandler:
    """Accepts every message from loopback and writes it whole, or not at all."""

    def __init__(self, directory: Path):
        self.directory = directory

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        name = f"{new_id()}.eml"
        tmp = self.directory / f".{name}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(envelope.original_content or envelope.content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.directory / name)
        return "250 2.0.0 Kept in the ged outbox"


def start(data_dir: Path, port: int | None = None):
    """Start the outbox on 127.0.0.1; returns the running aiosmtpd Controller (its
    ``port`` is the relay's port)."""
    from aiosmtpd.controller import Controller

    controller = Controller(OutboxHandler(outbox_dir(data_dir)), hostname="127.0.0.1",
                            port=port or free_port(), ident="ged outbox")
    controller.start()
    return controller


def messages(data_dir: Path) -> list[Path]:
    """The kept messages, oldest first."""
    return sorted(outbox_dir(data_dir).glob("*.eml"))
