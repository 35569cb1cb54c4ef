"""Who sent a request: :class:`Caller`, as scenarios and the journal see it."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from mockllm.frozen import Frozen, frozen

if TYPE_CHECKING:
    from mockllm.behaviour.ratelimit import Meter


@frozen
class Caller(Frozen):
    """The sender of one request."""

    #: Per-client state key: ``X-Mock-Key``, else the API key (masked), else the certificate
    #: subject, else the address.
    key: str
    #: ``host:port`` of the peer.
    address: str
    #: The verified client certificate's details over mTLS, else ``None``.
    identity: dict[str, Any] | None
    #: The scenario named by ``X-Mock-Scenario``, if any.
    scenario: str | None = None
    #: This request's charge to the key's rate-limit buckets (made once, when first asked for);
    #: ``None`` where no rate limiter runs (a scenario's own tests).
    meter: Meter | None = None


def masked_key(api_key: str) -> str:
    """An API key as OpenAI's messages show it: the first 8 and last 4 characters of a long key,
    the rest starred (``sk-abcde***...***wxyz``); a key of 12 characters or fewer as it is."""
    if len(api_key) <= 12:
        return api_key
    return api_key[:8] + "*" * (len(api_key) - 12) + api_key[-4:]


def caller_key(explicit: str | None, identity: dict[str, Any] | None, host: str, api_key: str | None = None) -> str:
    """The state key: an explicit key, else the API key (never whole: masked, a short one down to
    its first 3 characters, with a digest of the whole key so keys that look alike stay apart),
    else the certificate subject, else the client host."""
    if explicit:
        return explicit
    if api_key:
        digest = hashlib.sha256(api_key.encode("utf-8", "replace")).hexdigest()[:8]
        shown = masked_key(api_key) if len(api_key) > 12 else api_key[:3] + "***"
        return f"{shown}#{digest}"
    if identity and identity.get("subject"):
        return str(identity["subject"])
    return host
