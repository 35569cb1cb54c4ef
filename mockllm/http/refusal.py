"""
Refusing a connection below the site: answer once with raw bytes, half-close, drain, give up.

Used for the ``max_connections`` 503 (:mod:`.connlimit`) and the ``Content-Length`` 413
(:mod:`.site`).  Half-closing instead of closing avoids the TCP reset that could destroy
the response before the client reads it; whatever else the client sends is read and
dropped until it hangs up or :data:`LINGER` seconds pass.  Each refusal becomes a finished
:class:`~mockllm.observe.exchange.Exchange` (outcome ``refused``) for the observers.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from mockllm.behaviour.errors import APIError
from mockllm.observe.exchange import REFUSED, Exchange

#: How long a refused connection may keep sending before it is dropped, in seconds.
LINGER = 10.0


def refuse(transport: object, response: bytes, clock: IReactorTime) -> IDelayedCall:
    """Write ``response``, half-close (FIN after it), and return the timer that aborts after :data:`LINGER`."""
    transport.write(response)
    # Through a protocol wrapper (the connection limiter), ``ITCPTransport`` is not declared,
    # but the wrapper forwards the call to the TCP or TLS transport beneath.
    half_close = getattr(transport, "loseWriteConnection", None)
    (half_close or transport.loseConnection)()
    return clock.callLater(LINGER, transport.abortConnection)


def refused_exchange(
    request_id: str,
    method: bytes,
    target: bytes,
    peer: object,
    error: APIError,
    response: bytes,
    now: float,
) -> Exchange:
    """The finished exchange of one refusal (``target``: the request line's path and query)."""
    path, _, query = target.partition(b"?")
    return Exchange(
        request_id=request_id,
        started=now,
        method=method.decode("latin-1"),
        path=path.decode("utf-8", "replace"),
        query=query.decode("utf-8", "replace"),
        client=client_text(peer),
        headers=[],
        body=b"",
        error=error.message,
        status=error.status,
        response_body=response.partition(b"\r\n\r\n")[2],
        outcome=REFUSED,
        first_byte_at=now,
        finished_at=now,
    )


def client_text(peer: object) -> str:
    """``host:port`` of a peer address (``?:0`` for one without, such as a UNIX socket's)."""
    return f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', 0)}"


#: Something told about each refusal.
OnRefused = Callable[[Exchange], None]
