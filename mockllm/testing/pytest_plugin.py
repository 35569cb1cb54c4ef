"""
The pytest plugin: the ``mockllm_server`` fixture and the ``mockllm`` marker.

Registered through the ``pytest11`` entry point, so installing the package is enough.
Each test that asks for ``mockllm_server`` gets a fresh server (empty journal, fresh
scenario state) configured by its closest ``@pytest.mark.mockllm(scenario=..., params=...,
seed=..., https=..., config=...)``; a relative ``config`` path is read from the test
file's directory.  The servers run on one private reactor in a thread for the whole session
(:mod:`mockllm.testing.thread`), so blocking clients work in plain pytest tests and under
pytest-twisted alike.  Loading this module imports no reactor and nothing of the server.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest

#: The marker's description for ``pytest --markers``.
MARKER = (
    "mockllm(scenario=None, params=None, seed=None, https=False, config=None): "
    "how the mockllm_server fixture makes its server (see docs/testing.md)"
)


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``mockllm`` marker."""
    config.addinivalue_line("markers", MARKER)


@pytest.fixture(scope="session")
def mockllm_reactor_thread() -> Iterator[Any]:
    """The session's private reactor thread, started when a test first asks for a server."""
    from mockllm.testing.thread import ReactorThread

    thread = ReactorThread().start()
    yield thread
    thread.stop()


@pytest.fixture
def mockllm_server(request: pytest.FixtureRequest, mockllm_reactor_thread: Any) -> Iterator[Any]:
    """A fresh :class:`~mockllm.testing.MockServer` for this test, stopped after it."""
    from mockllm.testing.options import ServerOptions

    marker = request.node.get_closest_marker("mockllm")
    options = ServerOptions(**(marker.kwargs if marker is not None else {}))
    server, stop = mockllm_reactor_thread.serve(options, str(request.path.parent))
    yield server
    stop()
