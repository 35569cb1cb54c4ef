"""
The admin API: runtime control and the request journal, under ``/__admin/``.

:class:`Admin` is a Klein app of its own; :class:`~mockllm.http.routes.MockLLM`
mounts :meth:`Admin.resource` at ``/__admin/`` (a branch route), so routes
here are written relative to it and admin requests never reach the journal,
the request log or the metrics.

Routes: ``GET``/``PUT /scenario``, ``POST /reset``, ``GET``/``DELETE
/requests``, ``GET /verdict``, ``GET``/``PUT``/``DELETE /rules`` (see ``docs/api.md``, "Admin API and
metrics" and "Response rules"), and for mTLS
``GET /whoami`` and ``POST /reload-tls`` (see ``docs/mtls.md``).

Who may call them (:class:`AdminAccess`): anyone whose client certificate the
TLS handshake verified; without one (plain HTTP, or HTTPS under
``--client-cert optional``) only loopback peers and the networks given with
``--admin-from``.
A refusal is an OpenAI-shaped 403.  ``--no-admin`` builds no :class:`Admin`,
and ``/__admin/...`` is then a 404 like any unknown URL.

Adding a route
--------------
Add a method to :class:`Admin` decorated with ``@app.route("/name",
methods=[...])`` (the path is relative to ``/__admin/``); return
:func:`send_json`'s bytes (or a Deferred of them), or raise
:class:`~mockllm.behaviour.errors.APIError` for an OpenAI-shaped error.  No decorator
is needed for access control: :meth:`Admin.resource` checks every request,
known route or not, before Klein routes it.  Give :class:`Admin` a keyword
argument for whatever the route needs (``mockllm.server.build`` makes it).
"""

from __future__ import annotations

from typing import Any, Callable

from klein import Klein
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from werkzeug.exceptions import MethodNotAllowed, NotFound

from mockllm.admin.access import AdminAccess
from mockllm.behaviour.errors import APIError, invalid_request
from mockllm.behaviour.ratelimit import RateLimiter
from mockllm.behaviour.rules import RuleBook, RuleError
from mockllm.behaviour.scenarios import IScenarioControl
from mockllm.dialects.openai import dumps, invalid_url, method_not_allowed, parse_json_object
from mockllm.observe.journal import Journal, JournalQuery
from mockllm.observe.verdict import VerdictQuery, verdict
from mockllm.tls.identity import PeerIdentities
from mockllm.tls.reload import Reloadable, reload_response

def send_json(request: IRequest, status: int, obj: Any) -> bytes:
    """Set ``status`` and the JSON content type on ``request``; return ``obj`` as JSON bytes."""
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    return dumps(obj)


def send_error(request: IRequest, error: APIError) -> bytes:
    """An :class:`APIError` as its status and OpenAI-shaped body."""
    return send_json(request, error.status, error.body())


def _message(error: Exception) -> str:
    """The message of a ``KeyError``/``ValueError`` (a ``KeyError``'s ``str`` adds quotes)."""
    if isinstance(error, KeyError) and type(error).__str__ is KeyError.__str__ and error.args:
        return str(error.args[0])
    return str(error)


class _Guarded(Resource):
    """Checks :class:`AdminAccess` before handing the request to the admin Klein resource."""

    isLeaf = True
    log = Logger(namespace="mockllm.admin")

    def __init__(self, access: AdminAccess, inner: IResource, identify: Callable[[IRequest], dict | None]) -> None:
        super().__init__()
        self._access = access
        self._inner = inner
        self._identify = identify

    def render(self, request: IRequest) -> bytes | int:
        """Refuse with a 403, or route."""
        verified = request.isSecure() and self._identify(request) is not None
        refusal = self._access.refusal(request, verified)
        if refusal is None:
            return self._inner.render(request)
        peer = request.getClientAddress()
        self.log.warn(
            "admin: refused {method} {path} from {client}",
            method=request.method.decode("ascii", "replace"),
            path=request.path.decode("utf-8", "replace"),
            client=getattr(peer, "host", "?"),
        )
        return send_error(request, refusal)


class Admin:
    """The admin API's routes and the state they act on."""

    app = Klein()
    log = Logger(namespace="mockllm.admin")

    def __init__(
        self,
        journal: Journal,
        scenarios: object = None,
        access: AdminAccess | None = None,
        server_tls: Reloadable | None = None,
        peers: PeerIdentities | None = None,
        identify: Callable[[IRequest], dict | None] | None = None,
        rate_limits: RateLimiter | None = None,
        rules: RuleBook | None = None,
    ) -> None:
        """``scenarios``: the scenario layer, switchable here if it provides ``IScenarioControl``;
        ``server_tls``: the mTLS listeners' TLS, for ``/reload-tls``; ``peers``: describes each
        caller's TLS connection (the app's own, so both see the same); ``identify``: the
        caller's verified certificate (default: ``peers.identify``); ``rate_limits``: the app's
        buckets, refilled by ``/reset``; ``rules``: the app's response rules, for ``/rules``."""
        self.journal = journal
        self.rate_limits = rate_limits
        self.rules = rules
        self.scenarios = scenarios if IScenarioControl.providedBy(scenarios) else None
        self.access = access if access is not None else AdminAccess()
        self.server_tls = server_tls
        peers = peers if peers is not None else PeerIdentities()
        #: Describes the caller's TLS connection, for ``/whoami``.
        self.describe_peer = peers.describe
        #: The caller's verified client certificate, or ``None`` (decides admin access over HTTPS).
        self.identify = identify if identify is not None else peers.identify
        self._resource = _Guarded(self.access, self.app.resource(), self.identify)

    def resource(self) -> IResource:
        """The access-checked resource that :class:`~mockllm.http.routes.MockLLM` mounts at ``/__admin/``."""
        return self._resource

    def _control(self) -> IScenarioControl:
        if self.scenarios is None:
            raise APIError(404, "This server has no switchable scenarios.", "invalid_request_error", None, "no_scenarios")
        return self.scenarios

    # --- scenario ----------------------------------------------------------------

    @app.route("/scenario", methods=["GET"])
    def get_scenario(self, request: IRequest) -> bytes:
        """The current scenario and its parameters."""
        return send_json(request, 200, self._control().describe())

    @app.route("/scenario", methods=["PUT"])
    def put_scenario(self, request: IRequest) -> bytes:
        """Switch to ``{"name": ..., "params": {...}}``; either may be left out (not both)."""
        control = self._control()
        name, params = _scenario_change(parse_json_object(request.content.read()), control.current)
        try:
            control.switch(name, params)
        except (KeyError, ValueError) as error:
            param = "name" if isinstance(error, KeyError) else "params"
            raise invalid_request(_message(error), param, "invalid_scenario") from None
        self.log.info("admin: scenario is now {name} with {params}", name=name, params=params or {})
        return send_json(request, 200, control.describe())

    # --- reset and journal ------------------------------------------------------------

    @app.route("/reset", methods=["POST"])
    def reset(self, request: IRequest) -> bytes:
        """Forget scenario state (counters, "first N fail") and empty the journal."""
        if self.scenarios is not None:
            self.scenarios.reset()
        if self.rate_limits is not None:
            self.rate_limits.reset()
        cleared = self.journal.clear()
        self.log.info("admin: reset (scenario state, {cleared} journal entries)", cleared=cleared)
        scenario = self.scenarios.describe() if self.scenarios is not None else None
        return send_json(request, 200, {"reset": True, "journal_cleared": cleared, "scenario": scenario})

    @app.route("/requests", methods=["GET"])
    def get_requests(self, request: IRequest) -> bytes:
        """Journal records, oldest first, filtered by ``path``, ``status``, ``key``, ``since``, ``limit``."""
        found = self.journal.query(JournalQuery.from_args(request.args))
        body = {"object": "list", "data": found, "count": len(found), "capacity": self.journal.size}
        return send_json(request, 200, body)

    @app.route("/requests", methods=["DELETE"])
    def delete_requests(self, request: IRequest) -> bytes:
        """Empty the journal."""
        return send_json(request, 200, {"deleted": self.journal.clear()})

    # --- response rules ----------------------------------------------------------------------

    def _rule_book(self) -> RuleBook:
        if self.rules is None:
            raise APIError(404, "This server has no response rules.", "invalid_request_error", None, "no_rules")
        return self.rules

    def _rule_list(self, request: IRequest) -> bytes:
        rules = self._rule_book().describe()
        return send_json(request, 200, {"object": "list", "data": rules, "count": len(rules)})

    @app.route("/rules", methods=["GET"])
    def get_rules(self, request: IRequest) -> bytes:
        """The response rules in effect, in order."""
        return self._rule_list(request)

    @app.route("/rules", methods=["PUT"])
    def put_rules(self, request: IRequest) -> bytes:
        """Replace the rules with ``{"rules": [...]}``; a bad rule is a 400 naming it, and nothing changes."""
        book = self._rule_book()
        body = parse_json_object(request.content.read())
        unknown = sorted(set(body) - {"rules"})
        if unknown:
            raise invalid_request(f"Unrecognized request argument supplied: {', '.join(unknown)}", unknown[0])
        rules = body.get("rules")
        if not isinstance(rules, list):
            raise invalid_request("Invalid 'rules': expected an array of rule objects.", "rules", "invalid_type")
        try:
            book.replace(rules)
        except RuleError as error:
            raise invalid_request(str(error), error.param, "invalid_rule") from None
        self.log.info("admin: {count} response rules", count=len(rules))
        return self._rule_list(request)

    @app.route("/rules", methods=["DELETE"])
    def delete_rules(self, request: IRequest) -> bytes:
        """Drop every rule: ``{"deleted": n}``."""
        return send_json(request, 200, {"deleted": self._rule_book().clear()})
    @app.route("/verdict", methods=["GET"])
    def get_verdict(self, request: IRequest) -> bytes:
        """The retry verdict on the journal (see :mod:`mockllm.observe.verdict`)."""
        query = VerdictQuery.from_args(request.args)
        return send_json(request, 200, verdict(self.journal.query(query.journal), query))

    # --- mTLS ------------------------------------------------------------------------------

    @app.route("/whoami", methods=["GET"])
    def whoami(self, request: IRequest) -> bytes:
        """The caller's verified client certificate and TLS parameters (all null over plain HTTP)."""
        return send_json(request, 200, self.describe_peer(request))

    @app.route("/reload-tls", methods=["POST"])
    def reload_tls(self, request: IRequest) -> Deferred:
        """Re-read the TLS certificate, key and CA bundle; 500 naming a broken file, 404 without HTTPS."""
        return reload_response(self.server_tls).addCallback(lambda outcome: send_json(request, *outcome))

    # --- errors ---------------------------------------------------------------------------

    @app.handle_errors(APIError)
    def api_error(self, request: IRequest, failure: Failure) -> bytes:
        """A raised :class:`APIError` becomes its OpenAI-shaped response."""
        return send_error(request, failure.value)

    @app.handle_errors(NotFound)
    def not_found(self, request: IRequest, failure: Failure) -> bytes:
        """Unknown admin paths: the same ``Invalid URL`` 404 as elsewhere."""
        return send_error(request, invalid_url(request.method, request.path))

    @app.handle_errors(MethodNotAllowed)
    def not_allowed(self, request: IRequest, failure: Failure) -> bytes:
        """A known admin path with the wrong method: 405 with ``Allow``."""
        allowed = ", ".join(failure.value.valid_methods or ())
        request.setHeader(b"allow", allowed.encode("ascii"))
        return send_error(request, method_not_allowed(request.method, request.path, allowed))


def _scenario_change(body: dict[str, Any], current: str) -> tuple[str, dict[str, Any] | None]:
    """``(name, params)`` from a ``PUT /__admin/scenario`` body; a 400 if it is malformed."""
    unknown = sorted(set(body) - {"name", "params"})
    if unknown:
        raise invalid_request(f"Unrecognized request argument supplied: {', '.join(unknown)}", unknown[0])
    if not body:
        raise invalid_request("Give the scenario's 'name', its 'params', or both.", "name", "missing_required_parameter")
    name = body.get("name", current)
    params = body.get("params")
    if not isinstance(name, str):
        raise invalid_request("Invalid 'name': expected a string.", "name", "invalid_type")
    if params is not None and not isinstance(params, dict):
        raise invalid_request("Invalid 'params': expected an object.", "params", "invalid_type")
    return name, params
