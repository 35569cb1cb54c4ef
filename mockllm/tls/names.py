"""
The names clients are told to use for a listener: the address in a URL, and the name a
development certificate is made for.  Imports nothing heavy.
"""

from __future__ import annotations

#: Listening addresses that mean "every interface".
WILDCARDS = ("", "0.0.0.0", "::")


def client_name(host: str) -> str:
    """
    The name clients are told to use for a listener on ``host``: ``localhost``
    for loopback and wildcard addresses (the development certificate's
    name), else ``host`` itself.
    """
    return "localhost" if host in WILDCARDS or host in ("127.0.0.1", "::1") else host


def url_host(host: str) -> str:
    """``host`` as it goes in a URL (IPv6 in brackets; the wildcard as localhost)."""
    if host in WILDCARDS:
        return "localhost"
    return f"[{host}]" if ":" in host else host
