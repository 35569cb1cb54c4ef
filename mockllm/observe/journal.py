"""
The in-memory journal: the records of the last N exchanges, for ``/__admin/requests``.

A :class:`Journal` is an exchange observer: each exchange is kept once, when it
ends (answered, cut by a fault or abandoned by the client), so entries are in the
order the exchanges ended.  It keeps the compact :class:`~mockllm.observe.record.Kept`
snapshot (bodies capped) and makes the records only when they are asked for.  The
ring is bounded (``--journal-size``); the oldest records fall out first.
:class:`JournalQuery` holds the filters ``GET /__admin/requests`` accepts.
"""

from __future__ import annotations

import math
from collections import deque
from datetime import datetime, timezone
from typing import Mapping, Sequence

from mockllm.behaviour.errors import APIError, invalid_request
from mockllm.frozen import Frozen, frozen
from mockllm.observe.exchange import Exchange
from mockllm.observe.record import BODY_CAP, Kept, Record, kept_tuple, record_of
from mockllm.config.checks import ascii_whole
from mockllm.config.model import ObserveConfig

#: The query-string filters ``GET /__admin/requests`` understands.
_FILTERS = frozenset({"path", "status", "key", "since", "limit"})
#: The most digits ``limit`` may have (far beyond any journal size; keeps ``int()`` cheap and in range).
_LIMIT_DIGITS = 18


@frozen
class JournalQuery(Frozen):
    """Filters for :meth:`Journal.query`; ``None`` means "any"."""

    #: Exact request path, e.g. ``/v1/chat/completions``.
    path: str | None = None
    #: An HTTP status, or a class such as ``5`` for ``5xx`` (see :attr:`status_class`).
    status: int | None = None
    #: Whether :attr:`status` is a class (``5xx``) rather than one status.
    status_class: bool = False
    #: The caller's state key (``X-Mock-Key``, certificate subject or client host).
    key: str | None = None
    #: Only exchanges that started at or after this time (seconds since the epoch).
    since: float | None = None
    #: Only the last ``limit`` matches.
    limit: int | None = None

    def matches(self, entry: Kept) -> bool:
        """Whether ``entry`` passes every filter but ``limit``."""
        if self.path is not None and entry.path != self.path:
            return False
        if self.key is not None and entry.key != self.key:
            return False
        if self.since is not None and entry.started < self.since:
            return False
        return self.status is None or self._status_matches(entry.status)

    def _status_matches(self, status: int | None) -> bool:
        if status is None:
            return False
        return status // 100 == self.status if self.status_class else status == self.status

    @classmethod
    def from_args(cls, args: Mapping[bytes, Sequence[bytes]]) -> "JournalQuery":
        """The query from a request's query-string arguments; a 400 :class:`APIError` if one is malformed."""
        text = {k.decode("utf-8", "replace"): v[-1].decode("utf-8", "replace") for k, v in args.items() if v}
        unknown = sorted(set(text) - _FILTERS)
        if unknown:
            raise invalid_request(f"Unrecognized request argument supplied: {', '.join(unknown)}", unknown[0])
        status, status_class = _parse_status(text.get("status"))
        return cls(
            path=text.get("path"),
            status=status,
            status_class=status_class,
            key=text.get("key"),
            since=_parse_since(text.get("since")),
            limit=_parse_limit(text.get("limit")),
        )


def _parse_status(text: str | None) -> tuple[int | None, bool]:
    """``"429"`` -> ``(429, False)``; ``"5xx"`` -> ``(5, True)``."""
    if text is None:
        return None, False
    lowered = text.strip().lower()
    if len(lowered) == 3 and lowered.endswith("xx") and lowered[0] in "12345":
        return int(lowered[0]), True
    number = ascii_whole(lowered, 3)
    if number is not None and 100 <= number <= 599:
        return number, False
    raise _bad("status", f"an HTTP status such as 429 or a class such as 5xx, got {text!r}")


def _parse_since(text: str | None) -> float | None:
    """Seconds since the epoch, or an ISO 8601 time (UTC unless it says otherwise)."""
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise _bad("since", f"a finite number of seconds since the epoch, got {text!r}")
        return seconds
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _bad("since", f"seconds since the epoch or an ISO 8601 time, got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _parse_limit(text: str | None) -> int | None:
    if text is None:
        return None
    number = ascii_whole(text.strip(), _LIMIT_DIGITS)
    if number is None:
        raise _bad("limit", f"a whole number of at most {_LIMIT_DIGITS} digits, got {text!r}")
    return number


def _bad(param: str, expected: str) -> APIError:
    return invalid_request(f"Invalid '{param}': expected {expected}.", param, "invalid_value")


class Journal:
    """The records of the last ``size`` exchanges, oldest first (each body cut to ``body_cap`` bytes)."""

    def __init__(self, size: int = ObserveConfig.journal_size, body_cap: int = BODY_CAP) -> None:
        #: Each a :class:`Kept` as a plain tuple (:func:`~mockllm.observe.record.kept_tuple`).
        self._entries: deque[tuple] = deque(maxlen=size)
        self._body_cap = body_cap

    @property
    def size(self) -> int:
        """How many records the journal keeps at most."""
        return self._entries.maxlen or 0

    def __len__(self) -> int:
        return len(self._entries)

    def exchange_started(self, exchange: Exchange) -> None:
        """Nothing to keep until the exchange ends."""

    def exchange_finished(self, exchange: Exchange) -> None:
        """Keep the exchange; the oldest may fall out."""
        self._entries.append(kept_tuple(exchange, self._body_cap))

    def clear(self) -> int:
        """Forget every record; return how many there were."""
        count = len(self._entries)
        self._entries.clear()
        return count

    def query(self, query: JournalQuery = JournalQuery()) -> list[Record]:
        """The records matching ``query``, oldest first (the last ``query.limit`` of them)."""
        found = [entry for entry in map(Kept._make, self._entries) if query.matches(entry)]
        if query.limit is not None:
            found = found[len(found) - query.limit :] if query.limit else []
        return [record_of(entry) for entry in found]
