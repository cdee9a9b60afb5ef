"""Errors of the hearth API: one exception class per error kind.

Every error the server reports is a :class:`HearthError` with ``.kind`` (the
stable kind name of the JSON error body), ``.message`` and ``.status`` (the
HTTP status). Catch a subclass to handle one kind::

    try:
        c.workspace("nope").show()
    except hearth.NotFoundError:
        ...
"""

from typing import Dict, Optional, Type

__all__ = [
    "HearthError",
    "NotFoundError",
    "AlreadyExistsError",
    "InvalidArgumentError",
    "FailedPreconditionError",
    "ConflictError",
    "UnavailableError",
    "HearthTimeoutError",
    "NotImplementedByServerError",
    "ResourceExhaustedError",
    "InternalError",
    "AuthenticationError",
    "error_from_body",
]


class HearthError(Exception):
    """Base class of every hearth error."""

    kind: str = "internal"

    def __init__(self, message: str, kind: Optional[str] = None, status: int = 0) -> None:
        super().__init__(message)
        self.message = message
        if kind is not None:
            self.kind = kind
        self.status = status


class NotFoundError(HearthError):
    """A workspace, command or shell does not exist."""

    kind = "not_found"


class AlreadyExistsError(HearthError):
    """The name is taken (or a destination exists)."""

    kind = "already_exists"


class InvalidArgumentError(HearthError):
    """The request is malformed or an argument is out of range."""

    kind = "invalid_argument"


class FailedPreconditionError(HearthError):
    """The workspace is not in a state that allows the operation (e.g. stopped)."""

    kind = "failed_precondition"


class ConflictError(HearthError):
    """Another operation holds the workspace."""

    kind = "conflict"


class UnavailableError(HearthError):
    """The server, VM or guest cannot be reached."""

    kind = "unavailable"


class HearthTimeoutError(HearthError, TimeoutError):
    """The operation ran out of time (also a builtin ``TimeoutError``)."""

    kind = "timeout"


class NotImplementedByServerError(HearthError, NotImplementedError):
    """The operation is not available (also a builtin ``NotImplementedError``)."""

    kind = "not_implemented"


class ResourceExhaustedError(HearthError):
    """Disk, memory or another limit ran out."""

    kind = "resource_exhausted"


class CanceledError(HearthError):
    """The call was cancelled before it finished (the caller went away)."""

    kind = "canceled"


class InternalError(HearthError):
    """An error without a more specific kind."""

    kind = "internal"


class AuthenticationError(InvalidArgumentError):
    """The TCP server refused the bearer token (HTTP 401)."""


_BY_KIND: Dict[str, Type[HearthError]] = {
    cls.kind: cls
    for cls in (
        NotFoundError,
        AlreadyExistsError,
        InvalidArgumentError,
        FailedPreconditionError,
        ConflictError,
        UnavailableError,
        HearthTimeoutError,
        NotImplementedByServerError,
        ResourceExhaustedError,
        CanceledError,
        InternalError,
    )
}


def error_from_body(body: object, status: int = 0) -> HearthError:
    """Build the exception for a JSON error body ``{"error": {"kind", "message"}}``."""
    kind, message = "internal", "hearth serve: HTTP %d" % status
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        kind = str(body["error"].get("kind") or kind)
        message = str(body["error"].get("message") or message)
    if status == 401:
        return AuthenticationError(message, kind=kind, status=status)
    cls = _BY_KIND.get(kind, HearthError)
    return cls(message, kind=kind, status=status)
