"""
OpenAI-shaped errors: ``{"error": {"message", "type", "param", "code"}}``.

:class:`APIError` is raised anywhere in request handling and turned into a
response by the app; :func:`status_error` knows the real API's type and code
for each status the seed document and OpenAI use.
"""

from __future__ import annotations

import math
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


def invalid_url(method: bytes, path: bytes) -> APIError:
    """The real API's 404 for a URL it does not serve: ``Invalid URL (METHOD /path)``."""
    return APIError(404, f"Invalid URL ({_text(method)} {_text(path)})", "invalid_request_error")


def method_not_allowed(method: bytes, path: bytes, allowed: str) -> APIError:
    """A 405 for a known path asked with the wrong method (``allowed`` goes in ``Allow`` too)."""
    message = f"Method {_text(method)} is not allowed for {_text(path)}; use {allowed}."
    return APIError(405, message, "invalid_request_error")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def rate_limit_headers(
    wait_s: float,
    limit: int = 500,
    remaining: int = 0,
    tokens: tuple[int, int, float] = (200000, 200000, 0.0),
    requests_reset: float | None = None,
) -> tuple[tuple[str, str], ...]:
    """
    ``retry-after`` (whole seconds, rounded up), ``retry-after-ms`` and ``x-ratelimit-*``
    telling a wait of ``wait_s``; ``tokens`` is (limit, remaining, reset seconds) for tokens.

    A reset is the time until that bucket is back at its limit; ``requests_reset`` defaults
    to ``wait_s``.
    """
    token_limit, token_remaining, token_reset = tokens
    requests_reset = wait_s if requests_reset is None else requests_reset
    return (
        ("retry-after", str(max(1, math.ceil(round(wait_s, 6))))),
        ("retry-after-ms", str(math.ceil(round(wait_s * 1000, 6)))),
        ("x-ratelimit-limit-requests", str(limit)),
        ("x-ratelimit-remaining-requests", str(remaining)),
        ("x-ratelimit-reset-requests", _duration(requests_reset)),
        ("x-ratelimit-limit-tokens", str(token_limit)),
        ("x-ratelimit-remaining-tokens", str(token_remaining)),
        ("x-ratelimit-reset-tokens", _duration(token_reset)),
    )


def _duration(seconds: float) -> str:
    """A reset time as OpenAI writes it: ``1s``, ``0.25s``."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
