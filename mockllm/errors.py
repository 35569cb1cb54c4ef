"""
OpenAI-shaped errors: ``{"error": {"message", "type", "param", "code"}}``.

:class:`APIError` is raised anywhere in request handling and turned into a
response by the app; :func:`status_error` knows the real API's type and code
for each status the seed document and OpenAI use.
"""

from __future__ import annotations

from dataclasses import dataclass

#: status -> (message, type, code), as the real API (or the seed document) sends them.
KNOWN_STATUS_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Bad request.", "invalid_request_error", None),
    401: (
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        "invalid_api_key",
    ),
    403: (
        "You are not allowed to sample from this model.",
        "invalid_request_error",
        "model_not_allowed",
    ),
    404: (
        "The model does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
    408: ("Request timed out.", "timeout_error", None),
    409: ("The request conflicted with another request.", "invalid_request_error", "conflict"),
    413: ("The request is too large.", "invalid_request_error", "request_too_large"),
    422: ("The request could not be processed.", "invalid_request_error", "unprocessable_entity"),
    429: ("Rate limit exceeded", "rate_limit_error", "rate_limit_exceeded"),
    500: ("Internal server error", "server_error", "internal_error"),
    502: ("Bad gateway.", "server_error", "bad_gateway"),
    503: (
        "The engine is currently overloaded, please try again later.",
        "server_error",
        "overloaded",
    ),
    504: ("Gateway timeout", "timeout_error", None),
}


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
        """The JSON body, every key the spec requires present (``param``/``code`` may be null)."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


def status_error(
    status: int, message: str | None = None, headers: tuple[tuple[str, str], ...] = ()
) -> APIError:
    """The error the real API sends with ``status``; a generic one for other statuses."""
    known = KNOWN_STATUS_ERRORS.get(status)
    if known is None:
        known = (f"Simulated {status} error", "simulated_error", None)
    default_message, type_, code = known
    return APIError(status, message or default_message, type_, None, code, headers)


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    """A 400 ``invalid_request_error`` naming the offending ``param``."""
    return APIError(400, message, "invalid_request_error", param, code)
