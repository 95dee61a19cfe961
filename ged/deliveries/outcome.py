"""What one attempt at a delivery came to, whatever the channel (http or e-mail)."""

from __future__ import annotations

from dataclasses import dataclass

# Said when the blob store no longer has a document's bytes.
FILE_MISSING = "Le fichier est introuvable dans le stockage."


@dataclass
class Outcome:
    """What one attempt came to: ``success`` (status sent/accepted), ``retry`` or ``fail``."""

    kind: str
    status: str | None = None
    error: str | None = None
    status_code: int | None = None
    retry_after: float | None = None
    pause: bool = False


def success(status: str, code: int | None = None) -> Outcome:
    return Outcome("success", status=status, status_code=code)


def retry(error: str, code: int | None = None, retry_after: float | None = None) -> Outcome:
    return Outcome("retry", error=error, status_code=code, retry_after=retry_after)


def fail(error: str, code: int | None = None, pause: bool = False) -> Outcome:
    return Outcome("fail", error=error, status_code=code, pause=pause)
