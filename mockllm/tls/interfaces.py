"""
What the TLS package shares with the rest of the server, importing nothing heavy: the
handshake hook and its observer, the mTLS endpoint's interface, and the material error.
"""

from __future__ import annotations

from typing import Callable

from zope.interface import Attribute, Interface

#: The signature of the handshake hook: ``hook(ok, reason)``.
HandshakeHook = Callable[[bool, str], None]


class TLSConfigError(Exception):
    """TLS material cannot be used; the message names the file at fault."""


class IHandshakeObserver(Interface):
    """A protocol served over TLS that wants its handshake's outcome (see :mod:`.handshakes`)."""

    def handshake(ok: bool, reason: str, subject: str | None) -> None:
        """The handshake ended: ``ok`` with ``"ok"``, or refused for ``reason``; ``subject``: the
        client certificate's, if it presented one."""


class IMTLSEndpoint(Interface):
    """A server endpoint requiring client certificates (see :mod:`.endpoint`)."""

    tls = Attribute("Its reloadable TLS (``reload()`` re-reads the material).")

    def announce(port):
        """The line telling where it listens, with a curl command to paste."""
