"""
Who may use the admin API: :class:`AdminAccess`, and ``--admin-from`` networks.

Anyone whose client certificate the TLS handshake verified may; without one (plain HTTP,
or HTTPS under ``--client-cert optional``) only loopback peers and the networks given
with ``--admin-from``.  A refusal is an OpenAI-shaped 403.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable

from twisted.web.iweb import IRequest

from mockllm.behaviour.errors import APIError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Always allowed over plain HTTP.
LOOPBACK: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def parse_networks(text: str) -> tuple[Network, ...]:
    """``CIDR[,CIDR...]`` (a bare address is a /32 or /128); ``ValueError`` naming a bad one."""
    networks = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not an IP network such as 10.0.0.0/8 or fd00::/8") from None
    if not networks:
        raise ValueError("expected at least one IP network, such as 10.0.0.0/8")
    return tuple(networks)


class AdminAccess:
    """Decides whether a request may use the admin API."""

    def __init__(self, networks: Iterable[Network] = ()) -> None:
        #: Plain-HTTP peers allowed: loopback, then ``--admin-from``.
        self.networks = LOOPBACK + tuple(networks)

    def allows(self, host: str | None) -> bool:
        """Whether a plain-HTTP peer at ``host`` is in an allowed network."""
        try:
            address = ipaddress.ip_address((host or "").split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def refusal(self, request: IRequest, verified: bool) -> APIError | None:
        """``None`` if ``request`` may proceed, else the 403 to answer with.

        ``verified``: the request came over TLS with a client certificate the handshake verified.
        Without one (plain HTTP, or HTTPS under ``--client-cert optional``) only loopback and the
        ``--admin-from`` networks may proceed.
        """
        if verified:
            return None
        host = getattr(request.getClientAddress(), "host", None)
        if self.allows(host):
            return None
        return APIError(
            403,
            f"The admin API is not available to {host} without a verified client certificate: only "
            "loopback and the networks given with --admin-from may use it (or use HTTPS with a client "
            "certificate).",
            "invalid_request_error",
            None,
            "admin_forbidden",
        )


