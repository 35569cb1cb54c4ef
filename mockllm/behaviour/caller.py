"""Who sent a request: :class:`Caller`, as scenarios and the journal see it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Caller:
    """The sender of one request."""

    #: Per-client state key: ``X-Mock-Key``, else the certificate subject, else the address.
    key: str
    #: ``host:port`` of the peer.
    address: str
    #: The verified client certificate's details over mTLS, else ``None``.
    identity: dict[str, Any] | None
    #: The scenario named by ``X-Mock-Scenario``, if any.
    scenario: str | None = None


def caller_key(explicit: str | None, identity: dict[str, Any] | None, host: str) -> str:
    """The state key: an explicit key, else the certificate subject, else the client host."""
    if explicit:
        return explicit
    if identity and identity.get("subject"):
        return str(identity["subject"])
    return host
