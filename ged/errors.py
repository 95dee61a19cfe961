"""Errors a user can cause, raised by the domain and shown by the API (JSON error
shape of API.md) or the web pages (a readable French message)."""

from __future__ import annotations


class GedError(Exception):
    """Base of user-facing errors: an HTTP status, a snake_case code and a sentence."""

    status = 400
    code = "bad_request"
    # True when ``message`` is already the French sentence a person should read.
    in_french = False

    def __init__(self, message: str, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status


class Invalid(GedError):
    status = 400
    code = "invalid"


class NotFound(GedError):
    """The object does not exist, or the caller may not see it (never 403, ids leak nothing)."""

    status = 404
    code = "not_found"

    def __init__(self, message: str = "Not found.", code: str | None = None):
        super().__init__(message, code)


class Forbidden(GedError):
    """The caller sees the object but their role may not do this."""

    status = 403
    code = "forbidden"

    def __init__(self, message: str = "Your role may not do this.", code: str | None = None):
        super().__init__(message, code)


class Conflict(GedError):
    status = 409
    code = "conflict"


class TooLarge(GedError):
    status = 413
    code = "too_large"


class Unsupported(GedError):
    status = 415
    code = "unsupported_type"


class Unauthorized(GedError):
    status = 401
    code = "unauthorized"


class RateLimited(GedError):
    """Too many tries; ``retry_after``: seconds until one is allowed again (0: unknown)."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, code: str | None = None, retry_after: int = 0):
        super().__init__(message, code)
        self.retry_after = retry_after


class MailFailed(GedError):
    """What was asked for exists (an invitation, a reset link) but its e-mail could not
    be handed to the relay."""

    status = 502
    code = "mail_failed"
