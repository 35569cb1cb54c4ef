"""
Setting a response's headers in one go: :func:`set_headers`.

Every answer sets about a dozen headers (the request id, the rate-limit standing, the content
type and length, the processing time), and ``Request.setHeader`` checks and canonicalises the
name and sanitises the value of each one, every time: a sixtieth of a request's cost.  The names
are always among a few dozen, so :func:`set_headers` has Twisted make the name's stored form once
per name (through ``Headers.setRawHeaders`` itself, so the name is checked as Twisted checks it and
stored as Twisted stores it) and then stores each value under it directly.  A value holding a line
break goes through ``setRawHeaders`` as before, which replaces it with a space.

This reads ``Headers._rawHeaders``, the name-to-values dict that Twisted's ``Headers`` documents
as its state; ``tests/test_headers.py`` checks that what it sets is what ``setHeader`` would have
set, so a Twisted release that changes the dict shows up there.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable

from twisted.web.http_headers import Headers
from twisted.web.iweb import IRequest

#: The line-break bytes, as ints: ``int in bytes`` is a plain search, while ``bytes in bytes``
#: first tries the needle as an int and raises and clears a TypeError (about 1,400 instructions).
_LF, _CR = ord("\n"), ord("\r")


@lru_cache(maxsize=1024)
def stored_name(name: bytes) -> bytes:
    """The key Twisted's ``Headers`` keeps ``name``'s values under (checked: an invalid name raises as ``setHeader`` does)."""
    probe = Headers()
    probe.setRawHeaders(name, [b""])
    (key,) = probe._rawHeaders
    return key


def set_headers(request: IRequest, pairs: Iterable[tuple[bytes, bytes]]) -> None:
    """``request.setHeader(name, value)`` for each pair, replacing earlier values of the name, in order."""
    headers = request.responseHeaders
    raw = headers._rawHeaders
    for name, value in pairs:
        if _LF in value or _CR in value:
            headers.setRawHeaders(name, [value])
        else:
            raw[stored_name(name)] = [value]
