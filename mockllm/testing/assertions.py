"""
Assertions on the retry verdict, failing with a message that tells what the client did.

Each takes a :class:`~mockllm.testing.handle.MockServer` (anything with ``verdict()``) and
the verdict's options (``key``, ``path``, ``since``, ``window_ms``, ``attempt_budget``), and
raises ``AssertionError`` listing every logical request that breaks the promise, attempt by
attempt (status, pause, advertised wait).
"""

from __future__ import annotations

from typing import Any, Callable


def _requests(verdict: dict[str, Any]) -> list[dict[str, Any]]:
    """The logical requests of ``verdict``, every key's, oldest first."""
    found = [request for summary in verdict["keys"].values() for request in summary["requests"]]
    return sorted(found, key=lambda r: r["attempts"][0]["timestamp"])


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:g} ms"


def describe(request: dict[str, Any]) -> str:
    """One logical request as lines: what was asked, then each attempt."""
    tries = len(request["attempts"])
    lines = [f"{request['method']} {request['path']} (key {request['key']!r}): {tries} attempt{'s' * (tries != 1)}"]
    told = None
    for number, attempt in enumerate(request["attempts"], 1):
        status = attempt["status"] if attempt["status"] is not None else "no status"
        parts = [f"  {number}."]
        if number > 1:
            parts.append(f"after {_ms(attempt['waited_ms'])}" + (f" (told to wait {_ms(told)}):" if told is not None else ":"))
        parts.append(f"{status} {attempt['outcome']}")
        if attempt["content_sent"]:
            parts.append("[content sent]")
        told = attempt["advertised_wait_ms"]
        lines.append(" ".join(parts))
    return "\n".join(lines)


def _fail(promise: str, offenders: list[dict[str, Any]]) -> None:
    raise AssertionError("\n".join([promise, *map(describe, offenders)]))


def _need_some(promise: str, requests: list[dict[str, Any]]) -> None:
    if not requests:
        raise AssertionError(f"{promise}, but the server saw no request")


def _check(promise: str, requests: list[dict[str, Any]], offends: Callable[[dict[str, Any]], bool], why: str = "") -> None:
    """Fail with ``promise`` (and ``why``) listing the requests that ``offends``; fail if there are none at all."""
    _need_some(promise, requests)
    offenders = [r for r in requests if offends(r)]
    if offenders:
        _fail(f"{promise}{why}:", offenders)


def assert_retried(server: Any, times: int | None = None, **options: Any) -> None:
    """Every logical request was retried exactly ``times`` times (``None``: at least once)."""
    wanted = "at least once" if times is None else f"exactly {times} time{'s' * (times != 1)}"
    offends = (lambda r: r["retries"] == 0) if times is None else (lambda r: r["retries"] != times)
    _check(f"expected every request to be retried {wanted}", _requests(server.verdict(**options)), offends)


def assert_honoured_retry_after(server: Any, **options: Any) -> None:
    """Every retry waited at least what the answer before it advertised; at least one such wait was judged."""
    requests = _requests(server.verdict(**options))
    promise = "expected every retry to wait at least the retry-after the server advertised"
    _need_some(promise, requests)
    if not any(r["waits_advertised"] for r in requests):
        _fail(f"{promise}, but no request was retried after an answer that advertised a wait:", requests)
    _check(promise, requests, lambda r: not r["honoured_retry_after"])


def assert_no_duplicate_content(server: Any, **options: Any) -> None:
    """No stream was retried after some of its content had reached the client."""
    _check(
        "expected no request to be retried after content had reached the client",
        _requests(server.verdict(**options)),
        lambda r: r["duplicated_content"],
        " (the user would see it twice)",
    )


def assert_within_budget(server: Any, **options: Any) -> None:
    """No logical request took more attempts than ``attempt_budget`` (default 3)."""
    verdict = server.verdict(**options)  # asked once: the budget and the requests come from the same verdict
    promise = f"expected every request to take at most {verdict['attempt_budget']} attempts"
    _check(promise, _requests(verdict), lambda r: r["over_budget"])


def assert_succeeded(server: Any, **options: Any) -> None:
    """Every logical request ended with a whole answer (after its retries)."""
    _check("expected every request to end with a whole answer", _requests(server.verdict(**options)), lambda r: not r["succeeded"])
