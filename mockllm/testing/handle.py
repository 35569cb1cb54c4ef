"""
:class:`MockServer`: the handle every entry point of :mod:`mockllm.testing` gives a test.

It reads the server's journal and scenario state directly, through ``call``: a plain call
when the test runs on the server's reactor (trial, in memory), or a blocking call into the
server's reactor thread (the pytest fixture).  Its answers are the admin API's:
:meth:`MockServer.requests` returns what ``GET /__admin/requests`` lists, with the same
filters and the same errors, and :meth:`MockServer.verdict` what ``GET /__admin/verdict``
answers.  Importing this module loads no reactor.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from typing import Any, Callable, Mapping, TypeVar

from mockllm.behaviour.errors import APIError
from mockllm.observe.journal import Journal, JournalQuery
from mockllm.observe.verdict import VerdictQuery, verdict

T = TypeVar("T")
#: Runs a function where the server's state lives and returns its result.
Call = Callable[..., Any]


def direct(function: Callable[..., T], *args: Any) -> T:
    """The :data:`Call` of a test on the server's own reactor: just call."""
    return function(*args)


@dataclass(frozen=True)
class Address:
    """Where a server listens: base URLs and the client's TLS material (``None`` without HTTPS)."""

    url: str
    https_url: str | None = None
    ca_path: str | None = None
    client_cert_path: str | None = None
    client_key_path: str | None = None
    #: Whether the URLs are real sockets (``False`` for :func:`mockllm.testing.memory`).
    sockets: bool = True


def _query_args(options: Mapping[str, Any]) -> dict[bytes, list[bytes]]:
    """Keyword options as the query string arguments the admin API parses (``None`` left out)."""
    return {name.encode(): [str(value).encode()] for name, value in options.items() if value is not None}


def _parsed(parse: Callable[[dict[bytes, list[bytes]]], T], options: Mapping[str, Any]) -> T:
    """``parse`` over ``options``; the admin API's 400 as a ``ValueError`` with its message."""
    try:
        return parse(_query_args(options))
    except APIError as error:
        raise ValueError(error.message) from None


class MockServer:
    """One mock server, as a test sees it."""

    def __init__(self, address: Address, journal: Journal, scenarios: Any, call: Call = direct) -> None:
        self.address = address
        self._journal = journal
        self._scenarios = scenarios
        self._call = call
        #: The SDK clients :meth:`openai_client` made, closed by :meth:`close`.
        self._clients: list[Any] = []

    @property
    def url(self) -> str:
        """The base URL to give an OpenAI client: ``http://127.0.0.1:PORT/v1``."""
        return self.address.url

    @property
    def https_url(self) -> str | None:
        """The mTLS base URL (``https://127.0.0.1:PORT/v1``), when made with ``https=True``."""
        return self.address.https_url

    @property
    def ca_path(self) -> str | None:
        """The development CA (PEM) that signed the server's and the client's certificates."""
        return self.address.ca_path

    @property
    def client_cert_path(self) -> str | None:
        """A client certificate (PEM) the mTLS listener accepts."""
        return self.address.client_cert_path

    @property
    def client_key_path(self) -> str | None:
        """Its private key (PEM)."""
        return self.address.client_key_path

    def requests(self, **filters: Any) -> list[dict[str, Any]]:
        """The journal's records, as ``GET /__admin/requests`` lists them (``path``, ``status``, ``key``, ``since``, ``limit``)."""
        query = _parsed(JournalQuery.from_args, filters)
        return self._call(self._records, query)

    def _records(self, query: JournalQuery) -> list[dict[str, Any]]:
        """The records as JSON would carry them (copies: changing them changes nothing)."""
        return json.loads(json.dumps(self._journal.query(query)))

    def reset(self) -> None:
        """Forget scenario state and empty the journal, as ``POST /__admin/reset`` does."""
        self._call(self._reset)

    def _reset(self) -> None:
        self._scenarios.reset()
        self._journal.clear()

    def set_scenario(self, name: str, **params: Any) -> dict[str, Any]:
        """Make ``name`` current with ``params``, as ``PUT /__admin/scenario``; its description."""
        return self._call(self._switch, name, params)

    def _switch(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        self._scenarios.switch(name, params)
        return self._scenarios.describe()

    def verdict(self, **options: Any) -> dict[str, Any]:
        """The retry verdict, as ``GET /__admin/verdict`` (``window_ms``, ``attempt_budget``, ``key``, ``path``, ``since``)."""
        query = _parsed(VerdictQuery.from_args, options)
        return self._call(self._verdict, query)

    def _verdict(self, query: VerdictQuery) -> dict[str, Any]:
        return json.loads(json.dumps(verdict(self._journal.query(query.journal), query)))

    def openai_client(self, *, https: bool | None = None, **kwargs: Any) -> Any:
        """An ``openai.OpenAI`` for this server (over mTLS when it has HTTPS, unless ``https=False``).

        ``kwargs`` go to ``openai.OpenAI`` (``max_retries``, ``timeout``, ...); the client is
        closed when the server stops.
        """
        try:
            import openai
        except ImportError:
            raise RuntimeError("MockServer.openai_client needs the openai package (pip install openai)") from None
        if not self.address.sockets:
            raise RuntimeError("an in-memory server has no socket: use the client memory() returned with it")
        secure = self.https_url is not None if https is None else https
        if secure:
            kwargs.setdefault("http_client", openai.DefaultHttpxClient(verify=self._tls_context()))
        kwargs.setdefault("api_key", "sk-mockllm")
        client = openai.OpenAI(base_url=self.https_url if secure else self.url, **kwargs)
        self._clients.append(client)
        return client

    def _tls_context(self) -> ssl.SSLContext:
        """Trusts the development CA and presents the client certificate."""
        if self.https_url is None:
            raise ValueError("this server has no HTTPS listener: ask for one with https=True")
        context = ssl.create_default_context(cafile=self.ca_path)
        context.load_cert_chain(self.client_cert_path, self.client_key_path)
        return context

    def close(self) -> None:
        """Close the SDK clients made by :meth:`openai_client` (the server's cleanup calls this)."""
        for client in self._clients:
            client.close()
        self._clients.clear()

    def __repr__(self) -> str:
        return f"<MockServer {self.url}{' ' + self.https_url if self.https_url else ''}>"
