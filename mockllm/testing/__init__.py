"""
mockllm inside your own test suite: a server per test, and a verdict on your client's retries.

- pytest: the ``mockllm_server`` fixture (:mod:`mockllm.testing.pytest_plugin`, registered
  when the package is installed), configured with ``@pytest.mark.mockllm(...)``;
- trial: ``await serve(self, **options)`` (:func:`serve`);
- in memory: ``client, server = memory(clock, **options)`` (:func:`memory`).

Each gives a :class:`MockServer`; the ``assert_*`` helpers judge its retry verdict.  The
options are :class:`~mockllm.testing.options.ServerOptions`' fields: ``scenario``,
``params``, ``seed``, ``https``, ``config``.  See ``docs/testing.md``.  Importing this
package loads no reactor.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed

from mockllm.testing.assertions import (
    assert_honoured_retry_after,
    assert_no_duplicate_content,
    assert_retried,
    assert_succeeded,
    assert_within_budget,
)
from mockllm.testing.handle import MockServer
from mockllm.testing.options import ServerOptions


def serve(testcase: Any, **options: Any) -> Deferred[MockServer]:
    """A server on port 0 of the running reactor for ``testcase``, stopped in its cleanup."""
    from twisted.internet import reactor

    from mockllm.testing.running import start

    server, stop = start(ServerOptions(**options), reactor)
    testcase.addCleanup(stop)
    return succeed(server)


def memory(clock: Any = None, **options: Any) -> tuple[Any, MockServer]:
    """``(client, server)``: a ``treq.testing.StubTreq`` over a server that runs on ``clock``.

    ``clock`` is a ``twisted.internet.task.Clock`` (a new one if ``None``): advance it, then
    call ``client.flush()``, to let delays and streams go on.
    """
    from twisted.internet.task import Clock

    from mockllm.testing.running import in_memory

    return in_memory(ServerOptions(**options), clock if clock is not None else Clock())


__all__ = [
    "MockServer",
    "ServerOptions",
    "assert_honoured_retry_after",
    "assert_no_duplicate_content",
    "assert_retried",
    "assert_succeeded",
    "assert_within_budget",
    "memory",
    "serve",
]
