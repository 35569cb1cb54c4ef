"""
The site: :class:`MockSite`, its channel, and the guard in front of Klein.

:class:`MockSite` is a quiet ``Site`` (mockllm logs each exchange itself) whose channel
refuses a body larger than ``max_body_bytes`` from its ``Content-Length`` alone, before
Twisted reads or spools any of it: an immediate OpenAI-shaped 413, then the connection is
half-closed and what the client still sends is dropped (see :mod:`.refusal`).
:class:`UTF8Paths` hands requests to Klein except those whose path is not UTF-8, which
Klein would refuse with HTML.
"""

from __future__ import annotations

import random
from typing import Callable
from urllib.parse import unquote_to_bytes

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.web.http import HTTPChannel
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import Site

from mockllm.dialects.openai import body_too_large, raw_response, request_id
from mockllm.http.refusal import OnRefused, refuse, refused_exchange


class MockChannel(HTTPChannel):
    """An ``HTTPChannel`` that answers an oversized ``Content-Length`` with a 413 at once."""

    _refusal: IDelayedCall | None = None

    def allHeadersReceived(self) -> None:
        """Refuse a declared body over the site's limit; otherwise carry on as usual."""
        limit = self.site.max_body_bytes
        if limit is not None and self.length is not None and self.length > limit:
            self._refuse_body(limit)
            return
        super().allHeadersReceived()

    def _refuse_body(self, limit: int) -> None:
        site: MockSite = self.site
        error = body_too_large(limit)
        rid = request_id(site.ids)
        response = raw_response(error, rid)
        self._refusal = refuse(self.transport, response, site.clock)
        # The request line, as HTTPChannel.lineReceived keeps it (no Request is complete yet).
        site.refused(rid, self._command, self._path, self.transport.getPeer(), error, response)

    def rawDataReceived(self, data: bytes) -> None:
        """Drop the body of a refused request (the channel is in raw mode from its headers on)."""
        if self._refusal is None:
            super().rawDataReceived(data)

    def connectionLost(self, reason: object) -> None:
        """Cancel a refusal's linger timer."""
        if self._refusal is not None and self._refusal.active():
            self._refusal.cancel()
        super().connectionLost(reason)


class MockSite(Site):
    """A ``Site`` without Twisted's access log or form parsing, refusing bodies over ``max_body_bytes`` early.

    ``on_refused`` is told about each refusal as a finished exchange (the app's ``record``).
    """

    noisy = False
    displayTracebacks = False
    protocol = MockChannel

    def __init__(
        self,
        resource: IResource,
        max_body_bytes: int | None = None,
        on_refused: OnRefused | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        # A JSON API never reads form arguments: skip parsing POST bodies into request.args
        # (Twisted's content-type parsing through ``email`` was a sixth of each request's cost).
        if clock is None:
            from twisted.internet import reactor as clock
        # The channels' timeouts run on ``clock`` too (Twisted's default is the global reactor).
        super().__init__(resource, parsePOSTFormSubmission=False, reactor=clock)
        self.max_body_bytes = max_body_bytes
        self.on_refused = on_refused
        self.clock = clock
        #: Request ids of refusals, apart from every seeded generator.
        self.ids = random.Random()

    def log(self, request: object) -> None:
        """No combined-log line per request."""

    def refused(self, rid: str, method: bytes, target: bytes, peer: object, error, response: bytes) -> None:
        """Hand one refusal to ``on_refused``."""
        if self.on_refused is not None:
            self.on_refused(refused_exchange(rid, method, target, peer, error, response, self.clock.seconds()))


class UTF8Paths(Resource):
    """Hands requests to Klein, except those whose path Klein would refuse with HTML."""

    isLeaf = True

    def __init__(self, klein: IResource, bad_url: Callable[[IRequest], bytes]) -> None:
        super().__init__()
        self._klein = klein
        self._bad_url = bad_url

    def render(self, request: IRequest) -> bytes | int:
        """Klein's answer, or ``bad_url``'s JSON 400 for a path that is not UTF-8."""
        path = request.path
        if not path.isascii() or b"%" in path:
            try:
                unquote_to_bytes(path).decode("utf-8")
            except UnicodeDecodeError:
                return self._bad_url(request)
        return self._klein.render(request)
