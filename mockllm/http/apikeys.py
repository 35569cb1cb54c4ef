"""
The optional API key check (``--api-key KEY``, ``[server] api_keys``) of the ``/v1/*`` routes.

:func:`bearer_key` reads the key a request sends (``Authorization: Bearer KEY``);
:class:`APIKeys` answers whether it may pass: with no keys configured every request does,
otherwise a missing key gets the real API's "You didn't provide an API key" 401 and an
unknown one its ``invalid_api_key`` 401 naming the key masked as OpenAI masks it.
``/health``, ``/metrics`` and ``/__admin/`` are never checked.
"""

from __future__ import annotations

from typing import Iterable

from twisted.web.iweb import IRequest

from mockllm.behaviour.caller import masked_key
from mockllm.behaviour.errors import APIError
from mockllm.dialects.openai import incorrect_api_key, missing_api_key


def bearer_key(request: IRequest) -> str | None:
    """The key of the request's ``Authorization: Bearer KEY`` header (``None``: none given)."""
    raw = request.getHeader(b"authorization")
    if raw is None:
        return None
    scheme, _, key = raw.decode("utf-8", "replace").strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        return None
    return key


class APIKeys:
    """The keys the ``/v1/*`` routes accept; none: no check."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._keys = frozenset(keys)

    def refusal(self, request: IRequest) -> APIError | None:
        """The 401 for ``request``'s key, or ``None`` if it may pass."""
        if not self._keys:
            return None
        key = bearer_key(request)
        if key is None:
            return missing_api_key()
        if key not in self._keys:
            return incorrect_api_key(masked_key(key))
        return None
