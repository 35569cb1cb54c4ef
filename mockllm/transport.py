"""
What lies under a connection's transport: :func:`handle_under` walks the layers (a protocol
wrapper, TLS, TCP) for the first handle of a kind, such as the OpenSSL connection or the socket.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def handle_under(transport: object, kind: type[T], depth: int = 4) -> T | None:
    """The first ``getHandle()`` of type ``kind`` on ``transport`` or a transport below it, or ``None``."""
    for _ in range(depth):
        get_handle = getattr(transport, "getHandle", None)
        handle = get_handle() if get_handle is not None else None
        if isinstance(handle, kind):
            return handle
        transport = getattr(transport, "transport", None)
        if transport is None:
            return None
    return None
