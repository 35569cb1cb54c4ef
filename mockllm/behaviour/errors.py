"""
:class:`APIError`: an error to answer with, in the fields every dialect renders.

It is raised anywhere in request handling (a bad body, a bad control, an unknown scenario)
and turned into a response by the request's dialect, which owns the envelope
(:meth:`mockllm.dialects.IDialect.error`) and the status table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class APIError(Exception):
    """An error response: HTTP ``status`` and the body's fields."""

    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def body(self) -> dict:
        """The ``{"error": {...}}`` body, every key the spec requires present (``param``/``code`` may be null)."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    """A 400 ``invalid_request_error`` naming the offending ``param``."""
    return APIError(400, message, "invalid_request_error", param, code)
