"""
The Klein routes: :class:`MockLLM`, the mock OpenAI API's URL map.

Routes pick a dialect and hand completion requests to
:class:`~mockllm.http.completions.Completions`; the models, health, admin and metrics
routes and the error handlers answer here.  Everything the routes need comes through the
constructor; nothing is set on the app afterwards, and per-request state lives in a
component of the request (see :mod:`.exchanges`).  Every path returns bytes or a Deferred;
none blocks, and a client that goes away cancels whatever is pending (Klein cancels the
route's Deferred).
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any, Callable, Iterable

from klein import Klein
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from mockllm.behaviour.engine import Engine, body_head, error_script
from mockllm.behaviour.ratelimit import RateLimiter
from mockllm.behaviour.rules import RuleBook
from mockllm.behaviour.errors import APIError, invalid_request
from mockllm.behaviour.steps import FINISH, Write
from mockllm.config import Config
from mockllm.dialects.chat import ChatCompletions
from mockllm.dialects.completions import TextCompletions
from mockllm.dialects.embeddings import Embeddings
from mockllm.dialects.responses import Responses
from mockllm.dialects.openai import dumps, invalid_url, method_not_allowed, model_list, model_not_found, model_object, status_error
from mockllm.http.completions import Completions, NoScenario, ScenarioChooser
from mockllm.http.direct import Direct
from mockllm.http.exchanges import Exchanges, Lifecycle
from mockllm.http.site import UTF8Paths
from mockllm.observe.exchange import Exchange, ExchangeObserver
from mockllm.tls.identity import PeerIdentities

CHAT = ChatCompletions()
TEXT = TextCompletions()
EMBEDDINGS = Embeddings()
RESPONSES = Responses()
_HEALTHY = b'{"status":"healthy"}'


class MockLLM:
    """The mock OpenAI API: routes plus the parts they share."""

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
        admin: IResource | None = None,
        metrics: Any = None,
        lifecycle: Lifecycle | None = None,
        rate_limits: RateLimiter | None = None,
        rules: RuleBook | None = None,
    ) -> None:
        """``admin``: the resource served at ``/__admin/`` (``None``: 404 there); ``metrics``: what
        ``GET /metrics`` shows (``None``: 404 there); ``peers`` describes each TLS connection;
        ``rate_limits``, ``rules``: the buckets and response rules the admin API shares (default:
        the configuration's own)."""
        self.config = config
        self.clock = clock
        self.scenarios = scenarios if scenarios is not None else NoScenario()
        self.peers = peers if peers is not None else PeerIdentities()
        self.identify = identify if identify is not None else self.peers.identify
        self.exchanges = Exchanges(clock, CHAT, self.identify, observers, lifecycle)
        engine = Engine(clock, self.exchanges.ids, rng if rng is not None else random.Random())
        self.completions = Completions(config, clock, self.exchanges, engine, self.scenarios, rate_limits, rules)
        self._admin = admin
        self._metrics = metrics
        self._model_list = dumps(model_list(config.models.available))

    def resource(self) -> IResource:
        """The ``twisted.web`` resource serving this app: Klein's, with the fixed ``POST`` routes
        answered directly (:mod:`.direct`), behind a check of the URL's encoding."""
        return UTF8Paths(Direct(self.direct_routes(), self.app.resource(), self.failed), self.bad_url)

    def direct_routes(self) -> dict[tuple[bytes, bytes], Callable[[IRequest], bytes | Deferred]]:
        """``(b"POST", path): route`` for each ``POST``-only route of a fixed path (the completion routes)."""
        return {
            (b"POST", rule.rule.encode("ascii")): getattr(self, rule.endpoint)
            for rule in self.app.url_map.iter_rules()
            if rule.methods == {"POST"} and not rule.arguments
        }

    def record(self, ex: Exchange) -> None:
        """Tell the observers about an exchange answered below the site (a refusal)."""
        self.exchanges.record(ex)

    def bad_url(self, request: IRequest) -> bytes | Deferred:
        """The answer for a path that is not UTF-8 once percent-decoded (Klein's own is HTML).

        An error's script never waits, so this is always bytes, as a plain resource must return.
        """
        error = invalid_request("Invalid URL: the path is not UTF-8 once percent-decoded.")
        return self.completions.fail(request, self.exchanges.begin(request), CHAT, error)

    def _error(self, request: IRequest, error: APIError) -> bytes | Deferred:
        """Answer with ``error`` (a routing answer, not a refusal: the exchange records no reason)."""
        return self.completions.run(request, self.exchanges.begin(request), CHAT, error_script(CHAT, error))

    def _json(self, request: IRequest, body: bytes) -> bytes | Deferred:
        """A 200 JSON answer of ``body``."""
        ex = self.exchanges.begin(request)
        return self.completions.run(request, ex, CHAT, (body_head(200, CHAT.content_type, body), Write(body), FINISH))

    def _keyed(self, request: IRequest, answer: Callable[[], bytes | Deferred]) -> bytes | Deferred:
        """``answer()`` for a ``/v1/`` route, or the 401 of a missing or wrong API key."""
        refusal = self.completions.refusal(request)
        if refusal is not None:
            return self.completions.fail(request, self.exchanges.begin(request), CHAT, refusal)
        return answer()

    # --- routes ----------------------------------------------------------------

    @app.route("/health", methods=["GET"])
    def health(self, request: IRequest) -> bytes | Deferred:
        """``{"status": "healthy"}``."""
        return self._json(request, _HEALTHY)

    @app.route("/v1/models", methods=["GET"])
    def models(self, request: IRequest) -> bytes | Deferred:
        """The configured models, as ``GET /v1/models`` lists them."""
        return self._keyed(request, lambda: self._json(request, self._model_list))

    @app.route("/v1/models/<path:model_id>", methods=["GET"])
    def model(self, request: IRequest, model_id: str) -> bytes | Deferred:
        """One model, or the real API's 404 for a model it does not have."""
        return self._keyed(request, lambda: self._model_answer(request, model_id))

    def _model_answer(self, request: IRequest, model_id: str) -> bytes | Deferred:
        if not self.completions.serves(model_id):
            return self._error(request, model_not_found(model_id, None))
        return self._json(request, dumps(model_object(model_id)))

    @app.route("/v1/chat/completions", methods=["POST"])
    def chat_completions(self, request: IRequest) -> bytes | Deferred:
        """``POST /v1/chat/completions``, streamed or not, with the seed's failure controls."""
        return self.completions.answer(request, CHAT)

    @app.route("/v1/completions", methods=["POST"])
    def text_completions(self, request: IRequest) -> bytes | Deferred:
        """The legacy ``POST /v1/completions``, streamed or not."""
        return self.completions.answer(request, TEXT)

    @app.route("/v1/embeddings", methods=["POST"])
    def embeddings(self, request: IRequest) -> bytes | Deferred:
        """``POST /v1/embeddings``: one vector per input, with the failure controls."""
        return self.completions.answer(request, EMBEDDINGS)

    @app.route("/v1/responses", methods=["POST"])
    def responses(self, request: IRequest) -> bytes | Deferred:
        """``POST /v1/responses``, streamed or not, with the failure controls."""
        return self.completions.answer(request, RESPONSES)

    @app.route("/__admin/", branch=True, strict_slashes=False)
    def admin_api(self, request: IRequest) -> IResource:
        """The admin API's own (access-checked) resource; not journaled."""
        if self._admin is None:
            raise NotFound()
        self.exchanges.stamp(request)
        return self._admin

    @app.route("/metrics", methods=["GET"])
    def metrics_page(self, request: IRequest) -> bytes:
        """Prometheus metrics; not journaled."""
        if self._metrics is None:
            raise NotFound()
        self.exchanges.stamp(request)
        return self._metrics.page(request)

    @app.handle_errors(NotFound)
    def not_found(self, request: IRequest, failure: Failure) -> bytes | Deferred:
        """Unknown paths get the real API's ``Invalid URL`` 404."""
        return self._error(request, invalid_url(request.method, request.path))

    @app.handle_errors(MethodNotAllowed)
    def not_allowed(self, request: IRequest, failure: Failure) -> bytes | Deferred:
        """A known path with the wrong method: 405 with ``Allow``, OpenAI-shaped."""
        allowed = ", ".join(failure.value.valid_methods or ())
        error = method_not_allowed(request.method, request.path, allowed)
        return self._error(request, replace(error, headers=(("allow", allowed),)))

    @app.handle_errors(HTTPException)
    def http_error(self, request: IRequest, failure: Failure) -> bytes | Deferred:
        """Any other routing error Werkzeug raises, OpenAI-shaped with its status."""
        error = failure.value
        return self._error(request, APIError(error.code or 400, error.description or error.name))

    @app.handle_errors(Exception)
    def failed(self, request: IRequest, failure: Failure) -> bytes | Deferred:
        """A bug: log it, and answer an OpenAI-shaped 500 (never an HTML traceback)."""
        self.log.failure("mockllm: unexpected error answering {method} {path}", failure,
                         method=request.method, path=request.path)
        ex = self.exchanges.of(request) or self.exchanges.begin(request)
        ex.error = f"internal error: {failure.getErrorMessage()}"
        return self.completions.run(request, ex, CHAT, error_script(CHAT, status_error(500)))


def route_templates() -> list[str]:
    """The route templates of :class:`MockLLM`, for bounded metric labels."""
    return [rule.rule for rule in MockLLM.app.url_map.iter_rules()]
