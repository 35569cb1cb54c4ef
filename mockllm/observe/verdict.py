"""
The retry verdict: what a client did with the answers it got, judged from journal records.

:func:`verdict` groups each caller key's attempts into *logical requests*: an attempt whose
``x-stainless-retry-count`` header (sent by the official SDKs) is ``N > 0`` continues the
latest logical request of its key, method and path whose last attempt counted ``N - 1``
(one with the same body first, as concurrent calls of one key interleave);
an attempt without the header continues the latest one with the same method, path and
body whose last attempt failed and ended at most ``window_ms`` before it started.  Every
other attempt starts a logical request.  For each it tells the attempts, the pause before
each retry (``waited_ms``, from the previous attempt's end to this one's start), whether
that pause honoured the wait the previous answer advertised (``advertised_wait_ms``) (``retry-after-ms`` first, then
``retry-after`` in seconds or as an HTTP date: what the SDK honours), whether a stream was
retried after content had reached the client (so the user may see it twice), and whether
the attempts went over ``attempt_budget``.  :class:`VerdictQuery` holds the options
``GET /__admin/verdict`` accepts.  The output is documented in ``docs/api.md`` ("Retry
verdict").
"""

from __future__ import annotations

import email.utils
import math
from typing import Any, Iterable, Mapping, Sequence

from mockllm.behaviour.errors import invalid_request
from mockllm.config.checks import MAX_MS, ascii_whole
from mockllm.config.model import VerdictConfig
from mockllm.frozen import Frozen, frozen
from mockllm.observe.journal import JournalQuery
from mockllm.observe.record import Record

#: The request header the official SDKs number their attempts with (0 for the first).
RETRY_COUNT = "x-stainless-retry-count"
#: Rounding slack, in ms, when comparing a pause with an advertised wait (records keep µs).
_SLACK_MS = 0.001
#: The options of ``GET /__admin/verdict`` besides the journal filters it passes on.
_OWN = frozenset({"window_ms", "attempt_budget"})
#: The journal filters ``GET /__admin/verdict`` passes on (``status`` and ``limit`` would cut groups apart).
_JOURNAL = frozenset({"key", "path", "since"})
#: The most attempts a budget may name.
_MAX_BUDGET = 1_000_000


@frozen
class VerdictQuery(Frozen):
    """Which records to judge and how: journal filters, the grouping window and the attempt budget."""

    journal: JournalQuery = JournalQuery()
    window_ms: int = VerdictConfig.window_ms
    attempt_budget: int = VerdictConfig.attempt_budget

    @classmethod
    def from_args(cls, args: Mapping[bytes, Sequence[bytes]]) -> "VerdictQuery":
        """The query from a request's query string; a 400 :class:`APIError` naming a bad one."""
        names = {k.decode("utf-8", "replace"): k for k in args}
        unknown = sorted(set(names) - _OWN - _JOURNAL)
        if unknown:
            raise invalid_request(f"Unrecognized request argument supplied: {', '.join(unknown)}", unknown[0])
        journal = JournalQuery.from_args({k: args[k] for name, k in names.items() if name in _JOURNAL})
        own = {name: args[k][-1].decode("utf-8", "replace") for name, k in names.items() if name in _OWN and args[k]}
        return cls(
            journal,
            _whole(own, "window_ms", 0, MAX_MS, VerdictConfig.window_ms),
            _whole(own, "attempt_budget", 1, _MAX_BUDGET, VerdictConfig.attempt_budget),
        )


def _whole(given: Mapping[str, str], name: str, low: int, high: int, default: int) -> int:
    """Option ``name`` as a whole number from ``low`` to ``high``; ``default`` when absent."""
    if name not in given:
        return default
    number = ascii_whole(given[name].strip(), len(str(high)))
    if number is None or not low <= number <= high:
        message = f"Invalid '{name}': expected a whole number from {low} to {high}, got {given[name]!r}."
        raise invalid_request(message, name, "invalid_value")
    return number


def verdict(records: Iterable[Record], query: VerdictQuery = VerdictQuery()) -> dict[str, Any]:
    """The verdict on ``records`` (journal records, in any order) as a JSON-ready dict."""
    by_key: dict[str, list[list[Record]]] = {}
    for record in sorted(records, key=lambda r: r["timestamp"]):
        groups = by_key.setdefault(caller_of(record), [])
        group = _continued(groups, record, query.window_ms)
        if group is None:
            groups.append([record])
        else:
            group.append(record)
    keys = {key: _key_summary([_logical(group, query.attempt_budget) for group in groups])
            for key, groups in by_key.items()}
    logical = [request for summary in keys.values() for request in summary["requests"]]
    return {
        "object": "mockllm.verdict",
        "window_ms": query.window_ms,
        "attempt_budget": query.attempt_budget,
        **_totals(logical),
        "keys": keys,
    }


def caller_of(record: Record) -> str:
    """The record's caller key; the client host for records without one (refusals, non-completion routes)."""
    return record["key"] or record["client"].rpartition(":")[0]


def _retry_count(record: Record) -> int | None:
    """The attempt number the client sent in ``x-stainless-retry-count``, if a valid one."""
    return ascii_whole(record["request"]["headers"].get(RETRY_COUNT, "").strip(), 9)


def _ended(record: Record) -> float:
    """When the attempt ended (seconds since the epoch)."""
    total = record["timings"]["total_ms"]
    return record["timestamp"] + (total or 0) / 1000


def _failed(record: Record) -> bool:
    """Whether the attempt did not deliver a whole answer (error status, cut, abandoned)."""
    status = record["status"]
    return status is None or status >= 400 or record["outcome"] != "completed"


def _same_call(a: Record, b: Record) -> bool:
    return a["method"] == b["method"] and a["path"] == b["path"]


def _same_body(a: Record, b: Record) -> bool:
    ra, rb = a["request"], b["request"]
    return ra["body"] == rb["body"] and ra["body_bytes"] == rb["body_bytes"]


def _continued(groups: list[list[Record]], record: Record, window_ms: int) -> list[Record] | None:
    """The logical request (latest first) that ``record`` retries, if any."""
    count = _retry_count(record)
    if count == 0:
        return None
    calls = [group for group in reversed(groups) if _same_call(group[-1], record)]
    if count is not None:
        counted = [group for group in calls if _retry_count(group[-1]) == count - 1]
        same = [group for group in counted if _same_body(group[-1], record)]
        return (same or counted or [None])[0]
    for group in calls:
        last = group[-1]
        gap_ms = (record["timestamp"] - _ended(last)) * 1000
        if _failed(last) and _same_body(last, record) and gap_ms <= window_ms:
            return group
    return None


def advertised_wait_ms(record: Record) -> float | None:
    """The wait the answer advertised, in ms, read as the OpenAI SDK reads it; ``None``: none."""
    headers = record["response"].get("retry_headers") or {}
    for name, scale in (("retry-after-ms", 1.0), ("retry-after", 1000.0)):
        try:
            value = float(headers[name])
        except (KeyError, ValueError):
            continue
        return value * scale if math.isfinite(value) else None
    return _date_wait_ms(headers.get("retry-after"), record)


def _date_wait_ms(text: str | None, record: Record) -> float | None:
    """An HTTP-date ``retry-after`` as ms after the answer's headers were sent."""
    try:
        moment = email.utils.parsedate_tz(text) if text else None
        at = email.utils.mktime_tz(moment) if moment else None
    except (TypeError, ValueError, OverflowError):
        return None
    if at is None:
        return None
    sent = record["timestamp"] + (record["timings"]["ttfb_ms"] or 0) / 1000
    return (at - sent) * 1000


def _attempt(record: Record, previous: Record | None, content_before: bool) -> dict[str, Any]:
    """One attempt's entry; ``previous``: the attempt it retries."""
    waited = told = None
    if previous is not None:
        waited = round((record["timestamp"] - _ended(previous)) * 1000, 3)
        told = advertised_wait_ms(previous)
    return {
        "request_id": record["request_id"],
        "timestamp": record["timestamp"],
        "retry_count": _retry_count(record),
        "status": record["status"],
        "outcome": record["outcome"],
        "fault": record["fault"],
        "content_sent": record["timings"]["ttft_ms"] is not None,
        "advertised_wait_ms": advertised_wait_ms(record),
        "waited_ms": waited,
        "honoured_wait": None if told is None else waited + _SLACK_MS >= told,
        "after_content": content_before,
    }


def _logical(group: list[Record], budget: int) -> dict[str, Any]:
    """One logical request's entry."""
    attempts, content = [], False
    for index, record in enumerate(group):
        attempts.append(_attempt(record, group[index - 1] if index else None, content))
        content = content or attempts[-1]["content_sent"]
    first, last = group[0], group[-1]
    retries = attempts[1:]
    return {
        "key": caller_of(first),
        "method": first["method"],
        "path": first["path"],
        "attempts": attempts,
        "retries": len(retries),
        "succeeded": not _failed(last),
        "backoff_ms": [a["waited_ms"] for a in retries],
        "waits_advertised": sum(a["honoured_wait"] is not None for a in retries),
        "honoured_retry_after": all(a["honoured_wait"] is not False for a in retries),
        "duplicated_content": any(a["after_content"] for a in retries),
        "over_budget": len(attempts) > budget,
    }


def _totals(logical: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts and flags over several logical requests."""
    return {
        "logical_requests": len(logical),
        "attempts": sum(len(r["attempts"]) for r in logical),
        "retries": sum(r["retries"] for r in logical),
        "waits_advertised": sum(r["waits_advertised"] for r in logical),
        "honoured_retry_after": all(r["honoured_retry_after"] for r in logical),
        "duplicated_content": any(r["duplicated_content"] for r in logical),
        "over_budget": any(r["over_budget"] for r in logical),
    }


def _key_summary(logical: list[dict[str, Any]]) -> dict[str, Any]:
    """One caller key's entry: its totals and its logical requests."""
    return {**_totals(logical), "requests": logical}
