"""
The pytest plugin's ``mockllm_server`` fixture: fresh per test, configured by the marker, quick to
start, serving blocking clients and (under pytest-twisted, as this suite runs) treq on the
global reactor; and the same fixture in plain pytest, in a child pytest without pytest-twisted.

These are pytest tests (functions taking fixtures), run by tests/test_testing_pytest_runs.py in a
child pytest: run in the suite's own session, a plain pytest function under pytest-twisted would start
the reactor's greenlet, and the trial test cases after it could no longer run the reactor.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import pytest_twisted
import treq

from mockllm.testing import ServerOptions
from tests.support import CHAT_BODY, validate

ROOT = Path(__file__).resolve().parent.parent


def test_fresh_server_per_test_first(mockllm_server):
    """A request journaled here is not seen by the next test's server (see the test below)."""
    response = httpx.post(mockllm_server.url + "/chat/completions", json=CHAT_BODY)
    validate("CreateChatCompletionResponse", response.json())
    assert len(mockllm_server.requests()) == 1


def test_fresh_server_per_test_second(mockllm_server):
    """This test's server starts with an empty journal."""
    assert mockllm_server.requests() == []


@pytest.mark.mockllm(config="testing_kit.toml", scenario="kit-flaky")
def test_marker_configures_the_server(mockllm_server):
    """The marker's config (relative to this file) and scenario reach the server."""
    models = [m.id for m in mockllm_server.openai_client().models.list()]
    assert models == ["kit-model"]
    body = {**CHAT_BODY, "model": "kit-model"}
    codes = [httpx.post(mockllm_server.url + "/chat/completions", json=body).status_code for _ in range(2)]
    assert codes == [503, 200]
    assert [r["scenario"] for r in mockllm_server.requests(path="/v1/chat/completions")] == ["kit-flaky"] * 2


def _replies(url: str) -> list[str]:
    """Three replies' texts."""
    return [httpx.post(url + "/chat/completions", json=CHAT_BODY).json()["choices"][0]["message"]["content"]
            for _ in range(3)]


@pytest.mark.mockllm(seed=5)
def test_marker_seed(mockllm_server, mockllm_reactor_thread):
    """The marker's seed seeds the replies: another server with seed 5 says the same, one with seed 6 not."""
    same, stop_same = mockllm_reactor_thread.serve(ServerOptions(seed=5))
    other, stop_other = mockllm_reactor_thread.serve(ServerOptions(seed=6))
    try:
        mine = _replies(mockllm_server.url)
        assert mine == _replies(same.url)
        assert mine != _replies(other.url)
    finally:
        stop_same()
        stop_other()


def test_start_is_quick(mockllm_reactor_thread):
    """Starting and stopping a server on the session's reactor thread takes well under a second."""
    mockllm_reactor_thread.serve(ServerOptions())[1]()  # the imports are paid once
    began = time.perf_counter()
    for _ in range(10):
        server, stop = mockllm_reactor_thread.serve(ServerOptions())
        stop()
    each = (time.perf_counter() - began) / 10
    assert each < 0.1, f"{each * 1000:.1f} ms per server"
    began = time.perf_counter()
    mockllm_reactor_thread.serve(ServerOptions(https=True))[1]()
    assert time.perf_counter() - began < 0.5


def test_stopped_server_refuses(mockllm_reactor_thread):
    """After the fixture's stop, the port is closed."""
    server, stop = mockllm_reactor_thread.serve(ServerOptions())
    assert httpx.get(server.url + "/models").status_code == 200
    stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/models")


@pytest_twisted.ensureDeferred
async def test_treq_on_the_global_reactor(mockllm_server):
    """Under pytest-twisted, an async test can use treq on the global reactor against the fixture's server."""
    response = await treq.post(mockllm_server.url + "/chat/completions", json=CHAT_BODY, persistent=False)
    assert response.code == 200
    validate("CreateChatCompletionResponse", await response.json())
    assert [r["status"] for r in mockllm_server.requests()] == [200]
