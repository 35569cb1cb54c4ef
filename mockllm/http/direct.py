"""
The completion routes answered without Klein's routing.

A ``POST`` to one of the completion paths is most of what a mock under load sees, and it
needs none of what Klein does around a route: no URL map to bind and match (the path is
exact), no path segments to move, no rendering of resources or elements.  :class:`Direct`
looks the method and path up in a table and calls the route itself, doing what Klein does
with the answer: bytes are written and the request finished; a Deferred is cancelled when
the client goes away, and its result written unless the request is already gone; an error
goes to the app's handler of unexpected errors.  Every other request (another method or
path, a trailing slash, a 404 or 405) is Klein's, unchanged.

:class:`Direct` is a ``twisted.web`` resource in front of Klein, rendered by Twisted's own
``Request.render``: its ``NOT_DONE_YET`` means "the answer finishes the request itself", as a
resource's does.  The routes it calls return bytes or a Deferred, never ``NOT_DONE_YET``, so
they answer the same when Klein calls them.
"""

from __future__ import annotations

from typing import Callable, Mapping

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET

#: A route's answer: the body, or a Deferred firing with what is left to write.
Answer = bytes | Deferred
Route = Callable[[IRequest], Answer]


class Direct(Resource):
    """Calls ``routes[(method, path)]`` itself; hands every other request to ``fallback`` (Klein).

    ``failed(request, failure)`` answers an unexpected error of a direct route, as the app's
    handler of ``Exception`` does under Klein.
    """

    isLeaf = True
    log = Logger()

    def __init__(
        self,
        routes: Mapping[tuple[bytes, bytes], Route],
        fallback: IResource,
        failed: Callable[[IRequest, Failure], Answer],
    ) -> None:
        super().__init__()
        self._routes = dict(routes)
        self._fallback = fallback
        self._failed = failed

    def render(self, request: IRequest) -> bytes | int:
        """The route's answer for an exact method and path; otherwise ``fallback``'s."""
        route = self._routes.get((request.method, request.path))
        if route is None:
            return self._fallback.render(request)
        try:
            answer = route(request)
        except Exception:
            answer = self._failed(request, Failure())
        _respond(request, answer, self._failed)
        return NOT_DONE_YET


def _respond(request: IRequest, answer: Answer, failed: Callable[[IRequest, Failure], Answer]) -> None:
    """Write ``answer`` and finish, at once or, for a Deferred, when it fires (:class:`_Pending`)."""
    if isinstance(answer, Deferred):
        _Pending(request, answer, failed)
    else:
        _write(request, answer)


class _Pending:
    """An answer still under way: cancelled if the client leaves, written when it fires."""

    def __init__(self, request: IRequest, answer: Deferred, failed: Callable[[IRequest, Failure], Answer]) -> None:
        self._request = request
        self._failed = failed
        self._gone = False
        request.notifyFinish().addErrback(self._left, answer)
        answer.addCallbacks(self._done, self._error)

    def _left(self, _: Failure, answer: Deferred) -> None:
        """The client went away: cancel what is pending (the executor drops its timer)."""
        self._gone = True
        answer.cancel()

    def _done(self, rest: bytes) -> None:
        if not self._gone:
            _write(self._request, rest)

    def _error(self, failure: Failure) -> None:
        """A failed answer: the app's error answer, unless the client has left (then only logged)."""
        if not self._gone:
            _respond(self._request, self._failed(self._request, failure), self._failed)
        elif not failure.check(CancelledError):
            Direct.log.failure("Unhandled error after the client left", failure)


def _write(request: IRequest, body: bytes) -> None:
    """Write what is left of the answer and finish it."""
    if body:
        request.write(body)
    request.finish()
