"""
What lies under a connection's transport: :func:`handle_under` walks the layers (a protocol
wrapper, TLS, TCP) for the first handle of a kind, such as the OpenSSL connection or the socket;
:func:`unsent_bytes` tells how much written data has not left the machine yet.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import termios
from typing import TypeVar

T = TypeVar("T")

#: Linux's ``SIOCOUTQ`` (the same number as ``TIOCOUTQ``): bytes in a socket's send queue not yet acknowledged.
_SIOCOUTQ = getattr(termios, "TIOCOUTQ", None)


def layer_under(transport: object, kind: type[T], depth: int = 4) -> tuple[object, T] | None:
    """The first layer (``transport`` or one below it) whose ``getHandle()`` is of type ``kind``,
    with that handle; or ``None``."""
    for _ in range(depth):
        get_handle = getattr(transport, "getHandle", None)
        handle = get_handle() if get_handle is not None else None
        if isinstance(handle, kind):
            return transport, handle
        transport = getattr(transport, "transport", None)
        if transport is None:
            return None
    return None


def handle_under(transport: object, kind: type[T], depth: int = 4) -> T | None:
    """The first ``getHandle()`` of type ``kind`` on ``transport`` or a transport below it, or ``None``."""
    found = layer_under(transport, kind, depth)
    return None if found is None else found[1]


def unsent_bytes(transport: object) -> int:
    """Bytes written to ``transport`` that the peer has not received yet: those still in Twisted's
    buffer at the TCP layer and those in the kernel's send queue (Linux); 0 when there is no socket.

    Twisted has no public accessor for its buffer, so its ``FileDescriptor`` fields are read
    defensively (any that is missing counts as empty).
    """
    found = layer_under(transport, socket.socket)
    if found is None:
        return 0
    tcp, sock = found
    buffered = len(getattr(tcp, "dataBuffer", b"")) - getattr(tcp, "offset", 0) + getattr(tcp, "_tempDataLen", 0)
    return buffered + _kernel_queue(sock)


def _kernel_queue(sock: socket.socket) -> int:
    """The socket's unacknowledged send queue in bytes (0 where the platform cannot tell)."""
    if _SIOCOUTQ is None:
        return 0
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), _SIOCOUTQ, b"\0\0\0\0"))[0]
    except OSError:
        return 0
