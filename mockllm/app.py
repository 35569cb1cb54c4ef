"""
The Klein application: :class:`MockLLM` holds all server state and its routes.

Flow per completion request: validate the body and the controls, resolve a
:class:`~mockllm.plan.Plan` (request controls > scenario > configuration),
wait the delay on the injected clock, then answer with an error, a JSON body
or an :class:`~mockllm.sse.EventStream`.  Every path returns bytes or a
Deferred; none blocks, and a client that goes away cancels whatever is
pending (Klein cancels the route's Deferred).
"""

from __future__ import annotations

import random
from dataclasses import replace
from http import HTTPStatus
from typing import Any, Callable, Iterable, Iterator, Protocol
from urllib.parse import unquote_to_bytes

from klein import Klein
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from mockllm import content, tls, wire
from mockllm.caller import Caller, caller_key
from mockllm.config import Config
from mockllm.errors import (
    APIError,
    invalid_request,
    invalid_url,
    method_not_allowed,
    rate_limit_headers,
    status_error,
)
from mockllm.exchange import COMPLETED, CUT, DISCONNECTED, SHUTDOWN, Exchange, ExchangeObserver
from mockllm.identity import PeerIdentities
from mockllm.plan import NO_FAULT, ChunkFault, Plan, PlanPart, StatusFault, StreamTiming, TimeoutFault, resolve
from mockllm.sse import EventStream, paced
from mockllm.validation import (
    CompletionRequest,
    control_lookup,
    parse_chat,
    parse_controls,
    parse_json_object,
    parse_stream_flag,
    parse_text,
    query_args,
)

OPENAI_VERSION = wire.OPENAI_VERSION.encode("ascii")
JSON = b"application/json"
EVENT_STREAM = b"text/event-stream; charset=utf-8"


class ScenarioChooser(Protocol):
    """Picks the scenario layer of a request's plan."""

    def plan(self, request: CompletionRequest, caller: Caller) -> tuple[str, PlanPart]:
        """The scenario's name and its opinion on this request."""


class NoScenario:
    """The scenario layer when the app is built without one (tests): no opinion on anything.

    ``tap.makeService`` always gives the app a :class:`~mockllm.scenario.ScenarioRunner`, which
    is also what applies ``[responses] error_rate_percent``.
    """

    def plan(self, request: CompletionRequest, caller: Caller) -> tuple[str, PlanPart]:
        """Always ``("default", PlanPart())``."""
        return "default", PlanPart()


class MockLLM:
    """The mock OpenAI API: routes plus the state they share."""

    app = Klein()
    log = Logger()

    def __init__(
        self,
        config: Config,
        clock: IReactorTime,
        rng: random.Random | None = None,
        scenarios: ScenarioChooser | None = None,
        identify: Callable[[IRequest], dict[str, Any] | None] | None = None,
        peers: PeerIdentities | None = None,
        observers: Iterable[ExchangeObserver] = (),
        admin: Any = None,
        metrics: Any = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.rng = rng if rng is not None else random.Random()
        #: Ids come from their own generator (seeded from the OS), apart from ``rng``.
        self._ids = random.Random()
        self.scenarios = scenarios if scenarios is not None else NoScenario()
        #: Describes each request's TLS connection (the admin API's ``/whoami`` asks it too).
        self.peers = peers if peers is not None else PeerIdentities()
        self.identify = identify if identify is not None else self.peers.identify
        self.observers = list(observers)
        #: The admin API (:class:`mockllm.admin.Admin`) served at ``/__admin/``; ``None``: 404 there.
        self.admin = admin
        #: What ``GET /metrics`` shows (:class:`mockllm.metrics.Metrics`); ``None``: 404 there.
        self.metrics = metrics
        #: The HTTPS listener's TLS (set by ``tap.makeService``), for the admin API's ``/__admin/reload-tls``.
        self.server_tls: tls.ReloadableServerTLS | None = None
        #: Set when the server starts stopping: requests cut after that were not left by their client.
        self.stopping = False
        self._models = frozenset(config.models.available)
        self._model_list = wire.dumps(wire.model_list(config.models.available))
        responses = config.responses
        self._config_layer = PlanPart(
            delay=responses.default_delay_ms / 1000,
            timing=StreamTiming(
                first_token=responses.stream_interval_ms / 1000,
                inter_token=responses.stream_interval_ms / 1000,
            ),
        )

    def resource(self) -> Resource:
        """The ``twisted.web`` resource serving this app (Klein's, behind a check of the URL's encoding)."""
        return _UTF8Paths(self, self.app.resource())

    def bad_url(self, request: IRequest) -> bytes:
        """The answer for a path that is not UTF-8 once percent-decoded (Klein's own is HTML)."""
        ex = self._begin(request)
        message = "Invalid URL: the path is not UTF-8 once percent-decoded."
        ex.error = message
        return self._error(request, ex, invalid_request(message))

    # --- every response ------------------------------------------------------

    def _stamp(self, request: IRequest) -> str:
        """Set the headers every response carries and return the request id.

        ``openai-processing-ms`` starts at 0; answers timed by :meth:`_headers_out` overwrite it.
        """
        request_id = wire.request_id(self._ids)
        request.setHeader(b"x-request-id", request_id.encode("ascii"))
        request.setHeader(b"openai-version", OPENAI_VERSION)
        request.setHeader(b"openai-processing-ms", b"0")
        return request_id

    def _begin(self, request: IRequest) -> Exchange:
        """Stamp the common headers and start the request's :class:`Exchange`."""
        request_id = self._stamp(request)
        peer = request.getClientAddress()
        observed = bool(self.observers)
        ex = Exchange(
            request_id=request_id,
            started=self.clock.seconds(),
            method=request.method.decode("ascii", "replace"),
            path=request.path.decode("utf-8", "replace"),
            query=request.uri.partition(b"?")[2].decode("utf-8", "replace"),
            client=f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', 0)}",
            identity=self.identify(request),
            # Only observers (the journal, the request log) read the headers.
            headers=_header_pairs(request) if observed else [],
            body=b"",
        )
        request.mockllm_exchange = ex  # for :meth:`failed`, which only gets the request
        if observed:
            for observer in self.observers:
                observer.exchange_started(ex)
            request.notifyFinish().addBoth(self._finished, ex)
        return ex

    def record(self, ex: Exchange) -> None:
        """Tell the observers about an exchange answered outside the app (a ``max_connections`` 503)."""
        for observer in self.observers:
            observer.exchange_started(ex)
            observer.exchange_finished(ex)

    def _finished(self, result: object, ex: Exchange) -> None:
        ex.finished_at = self.clock.seconds()
        if isinstance(result, Failure) and ex.outcome is None:
            ex.outcome = SHUTDOWN if self.stopping else DISCONNECTED
        elif ex.outcome is None:
            ex.outcome = COMPLETED
        for observer in self.observers:
            observer.exchange_finished(ex)

    def _headers_out(self, request: IRequest, ex: Exchange, status: int, content_type: bytes) -> None:
        now = self.clock.seconds()
        ex.status = status
        ex.first_byte_at = now
        request.setResponseCode(status, _phrase(status))
        request.setHeader(b"content-type", content_type)
        request.setHeader(b"openai-processing-ms", b"%d" % round((now - ex.started) * 1000))

    def _json(self, request: IRequest, ex: Exchange, status: int, body: bytes) -> bytes:
        self._headers_out(request, ex, status, JSON)
        request.setHeader(b"content-length", b"%d" % len(body))
        ex.response_body = body
        return body

    def _error(self, request: IRequest, ex: Exchange, error: APIError) -> bytes:
        for name, value in error.headers or self._default_error_headers(error.status):
            request.setHeader(name.encode("latin-1"), value.encode("latin-1"))
        return self._json(request, ex, error.status, wire.dumps(error.body()))

    def _default_error_headers(self, status: int) -> tuple[tuple[str, str], ...]:
        if status != 429:
            return ()
        return rate_limit_headers(1.0)

    # --- routes ----------------------------------------------------------------

    @app.route("/health", methods=["GET"])
    def health(self, request: IRequest) -> bytes:
        """``{"status": "healthy"}``."""
        ex = self._begin(request)
        return self._json(request, ex, 200, b'{"status":"healthy"}')

    @app.route("/v1/models", methods=["GET"])
    def models(self, request: IRequest) -> bytes:
        """The configured models, as ``GET /v1/models`` lists them."""
        ex = self._begin(request)
        return self._json(request, ex, 200, self._model_list)

    @app.route("/v1/models/<path:model_id>", methods=["GET"])
    def model(self, request: IRequest, model_id: str) -> bytes:
        """One model, or the real API's 404 for a model it does not have."""
        ex = self._begin(request)
        if model_id not in self._models:
            return self._error(request, ex, model_not_found(model_id, None))
        return self._json(request, ex, 200, wire.dumps(wire.model_object(model_id)))

    @app.route("/v1/chat/completions", methods=["POST"])
    def chat_completions(self, request: IRequest) -> bytes | Deferred:
        """``POST /v1/chat/completions``, streamed or not, with the seed's failure controls."""
        return self._complete(request, parse_chat)

    @app.route("/v1/completions", methods=["POST"])
    def completions(self, request: IRequest) -> bytes | Deferred:
        """The legacy ``POST /v1/completions``, streamed or not."""
        return self._complete(request, parse_text)

    @app.route("/__admin/", branch=True, strict_slashes=False)
    def admin_api(self, request: IRequest) -> Any:
        """The admin API's own (access-checked) resource; not journaled."""
        if self.admin is None:
            raise NotFound()
        self._stamp(request)
        return self.admin.resource()

    @app.route("/metrics", methods=["GET"])
    def metrics_page(self, request: IRequest) -> bytes:
        """Prometheus metrics; not journaled."""
        if self.metrics is None:
            raise NotFound()
        self._stamp(request)
        return self.metrics.page(request)

    @app.handle_errors(NotFound)
    def not_found(self, request: IRequest, failure: Failure) -> bytes:
        """Unknown paths get the real API's ``Invalid URL`` 404."""
        ex = self._begin(request)
        return self._error(request, ex, invalid_url(request.method, request.path))

    @app.handle_errors(MethodNotAllowed)
    def not_allowed(self, request: IRequest, failure: Failure) -> bytes:
        """A known path with the wrong method: 405 with ``Allow``, OpenAI-shaped."""
        ex = self._begin(request)
        allowed = ", ".join(failure.value.valid_methods or ())
        request.setHeader(b"allow", allowed.encode("ascii"))
        return self._error(request, ex, method_not_allowed(request.method, request.path, allowed))

    @app.handle_errors(HTTPException)
    def http_error(self, request: IRequest, failure: Failure) -> bytes:
        """Any other routing error Werkzeug raises, OpenAI-shaped with its status."""
        ex = self._begin(request)
        error = failure.value
        return self._error(request, ex, APIError(error.code or 400, error.description or error.name))

    @app.handle_errors(Exception)
    def failed(self, request: IRequest, failure: Failure) -> bytes:
        """A bug: log it, and answer an OpenAI-shaped 500 (never an HTML traceback)."""
        self.log.failure("mockllm: unexpected error answering {method} {path}", failure,
                         method=request.method, path=request.path)
        ex = getattr(request, "mockllm_exchange", None) or self._begin(request)
        ex.error = f"internal error: {failure.getErrorMessage()}"
        return self._error(request, ex, status_error(500))

    # --- completions -------------------------------------------------------------

    def _complete(self, request: IRequest, parse: Callable[..., CompletionRequest]) -> bytes | Deferred:
        ex = self._begin(request)
        limit = self.config.server.max_body_bytes
        raw = request.content.read(limit + 1)
        ex.body = raw
        if len(raw) > limit:
            error = status_error(
                413, f"The request body is larger than this server's limit of {limit} bytes (--max-body-bytes)."
            )
            ex.error = error.message
            return self._error(request, ex, error)
        try:
            creq, caller, controls = self._validate(request, raw, parse, ex)
            ex.key = caller.key
            ex.stream = creq.stream
            ex.scenario, scenario_part = self.scenarios.plan(creq, caller)
        except APIError as error:
            ex.error = error.message
            return self._error(request, ex, error)
        plan = resolve(controls, scenario_part, self._config_layer)
        if isinstance(plan.fault, ChunkFault) and not creq.stream:
            plan = replace(plan, fault=NO_FAULT)  # nothing to cut: record no fault
        ex.fault = plan.fault_name
        if plan.delay > 0:
            return deferLater(self.clock, plan.delay, self._answer, request, ex, creq, plan)
        return self._answer(request, ex, creq, plan)

    def _validate(
        self, request: IRequest, raw: bytes, parse: Callable[..., CompletionRequest], ex: Exchange
    ) -> tuple[CompletionRequest, Caller, PlanPart]:
        """Check the body and the controls; raise :class:`APIError` for the first problem."""
        responses = self.config.responses
        lookup = control_lookup(query_args(request.uri), request.requestHeaders)
        controls = parse_controls(lookup, responses.max_delay_ms, responses.timeout_ms / 1000)
        creq = parse(parse_json_object(raw), parse_stream_flag(lookup("stream")))
        if creq.model not in self._models:
            raise model_not_found(creq.model, "model")
        if creq.stream and not responses.streaming_enabled:
            raise invalid_request("Streaming is disabled on this server.", "stream", "unsupported_value")
        host = ex.client.rpartition(":")[0]
        caller = Caller(
            key=caller_key(_header_text(request, b"x-mock-key"), ex.identity, host),
            address=ex.client,
            identity=ex.identity,
            scenario=_header_text(request, b"x-mock-scenario"),
        )
        return creq, caller, controls

    def _answer(self, request: IRequest, ex: Exchange, creq: CompletionRequest, plan: Plan) -> bytes | Deferred:
        """After the delay: the fault, or the completion."""
        fault = plan.fault
        if isinstance(fault, StatusFault):
            return self._error(request, ex, status_error(fault.status, fault.message, fault.headers))
        if isinstance(fault, TimeoutFault):
            return deferLater(self.clock, fault.hold, self._error, request, ex, status_error(504))
        rng = random.Random(plan.seed) if plan.seed is not None else self.rng
        prompt = creq.texts[-1] if creq.texts else ""
        reply = plan.content if plan.content is not None else content.draw_reply(rng, prompt)
        cid = wire.completion_id(creq.kind, self._ids)
        created = int(self.clock.seconds())
        if creq.stream:
            return self._stream(request, ex, creq, plan, content.tokenize(reply), cid, created, rng)
        ex.completion_tokens = tokens = content.count_tokens(reply)
        body = wire.dumps(wire.completion(creq, cid, created, reply, tokens))
        return self._json(request, ex, 200, body)

    def _stream(
        self,
        request: IRequest,
        ex: Exchange,
        creq: CompletionRequest,
        plan: Plan,
        pieces: list[str],
        cid: str,
        created: int,
        rng: random.Random,
    ) -> Deferred:
        """Answer with an event stream of ``pieces``; fires when the stream has ended."""
        maker = wire.ChunkMaker(creq, cid, created)
        fault = plan.fault
        cut_at = fault.chunk if isinstance(fault, ChunkFault) else None
        ex.completion_tokens = len(pieces)
        events = stream_events(maker, pieces, cut_at)
        self._headers_out(request, ex, 200, EVENT_STREAM)
        request.setHeader(b"cache-control", b"no-cache")
        items = paced(events, plan.timing, rng)
        stream = EventStream(request, self.clock, items, watch=maker.first_content, progress=ex)
        return stream.start().addCallback(_note_cut, ex, maker)


class StoppingMarker(Service):
    """Tells the app when the server starts to stop, so the requests the shutdown cuts say so."""

    def __init__(self, app: MockLLM) -> None:
        self.app = app

    def startService(self) -> None:
        """The server runs."""
        super().startService()
        self.app.stopping = False

    def stopService(self) -> None:
        """The server is stopping: connections still open will be cut by it, not by their clients."""
        self.app.stopping = True
        return super().stopService()


class _UTF8Paths(Resource):
    """Hands requests to Klein, except those whose path Klein would refuse with HTML."""

    isLeaf = True

    def __init__(self, app: MockLLM, klein: Resource) -> None:
        super().__init__()
        self._app = app
        self._klein = klein

    def render(self, request: IRequest) -> bytes | int:
        """Klein's answer, or the app's JSON 400 for a path that is not UTF-8."""
        path = request.path
        if not path.isascii() or b"%" in path:
            try:
                unquote_to_bytes(path).decode("utf-8")
            except UnicodeDecodeError:
                return self._app.bad_url(request)
        return self._klein.render(request)


def _header_text(request: IRequest, name: bytes) -> str | None:
    """The last value of header ``name`` as text (bytes that are not UTF-8 replaced), or ``None``."""
    values = request.requestHeaders.getRawHeaders(name)
    return values[-1].decode("utf-8", "replace") if values else None


def _header_pairs(request: IRequest) -> list[tuple[str, str]]:
    """The request's headers as ``(name, value)`` text pairs, in arrival order."""
    return [
        (k.decode("latin-1"), v.decode("latin-1"))
        for k, vs in request.requestHeaders.getAllRawHeaders()
        for v in vs
    ]


def _note_cut(sent: int, ex: Exchange, maker: wire.ChunkMaker) -> None:
    """After a stream: record whether a fault cut it."""
    if maker.cut:
        ex.outcome = CUT


_PHRASES = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}


def _phrase(status: int) -> bytes:
    """The reason phrase for ``status`` (Twisted lacks some, such as 429's)."""
    return _PHRASES.get(status, b"Error")


def stream_events(maker: wire.ChunkMaker, pieces: list[str], cut_at: int | None = None) -> Iterator[bytes]:
    """The events of a stream of the reply's token-sized ``pieces``, rendered one at a time as pulled.

    With ``cut_at`` (the ``fail_chunk`` fault, 1-based), event ``cut_at`` is malformed and
    the stream ends there, without ``[DONE]``.
    """
    for number, event in enumerate(_whole_stream(maker, pieces), start=1):
        if number == cut_at:
            yield maker.broken()
            return
        yield event


def _whole_stream(maker: wire.ChunkMaker, pieces: list[str]) -> Iterator[bytes]:
    role = maker.role()
    if role is not None:
        yield role
    for piece in pieces:
        yield maker.piece(piece)
    yield maker.finish()
    usage = maker.usage(len(pieces))
    if usage is not None:
        yield usage
    yield wire.DONE_EVENT


def model_not_found(model: str, param: str | None) -> APIError:
    """The real API's 404 for a model it does not serve."""
    return APIError(
        404,
        f"The model `{model}` does not exist or you do not have access to it.",
        "invalid_request_error",
        param,
        "model_not_found",
    )
