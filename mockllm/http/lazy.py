"""
A resource made on its first request: :class:`OnFirstUse`.

The admin API is on by default but most runs never call it; its module and what only it
uses are imported when the first ``/__admin/`` request arrives, not at start-up.
"""

from __future__ import annotations

from typing import Callable

from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource


class OnFirstUse(Resource):
    """A leaf resource answering as ``make()``'s resource (a leaf too), made on the first request."""

    isLeaf = True

    def __init__(self, make: Callable[[], IResource]) -> None:
        super().__init__()
        self._make = make
        self._made: IResource | None = None

    def render(self, request: IRequest) -> bytes | int:
        """What the made resource answers."""
        if self._made is None:
            self._made = self._make()
        return self._made.render(request)
