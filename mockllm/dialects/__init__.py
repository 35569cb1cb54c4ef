"""
API dialects: one module per wire format a client speaks.

A dialect turns a request body into the request model
(:class:`~mockllm.behaviour.request.CompletionRequest`) and an answer into bytes: the whole
body, the stream's frames (its framing, event names and terminator) and the error envelope
with its headers.  The engine and the executor know nothing of any wire format; the routes
pick a dialect per path.  :mod:`.chat` (``/v1/chat/completions``), :mod:`.completions`
(``/v1/completions``), :mod:`.embeddings` (``/v1/embeddings``) and :mod:`.responses`
(``/v1/responses``); what they share is in :mod:`.openai`.  Adding a dialect
is one module providing :class:`IDialect` plus its routes (see ``docs/architecture.md``).
"""

from __future__ import annotations

from zope.interface import Attribute, Interface

#: Response headers as ``(name, value)`` byte pairs.
Headers = tuple[tuple[bytes, bytes], ...]


class IDialect(Interface):
    """One API's wire format."""

    kind = Attribute("The request model's ``kind`` this dialect makes (``chat``, ``text``, ``responses``, ``embeddings``).")
    replies = Attribute(
        "Whether the answer is a reply the engine draws; ``False`` (embeddings): the dialect renders "
        "from the request alone, and no reply is drawn or counted."
    )
    content_type = Attribute("The ``content-type`` of a whole answer or an error (bytes).")
    stream_content_type = Attribute("The ``content-type`` of a streamed answer (bytes).")
    stream_headers = Attribute("Further headers of a streamed answer (:data:`Headers`).")

    def parse(raw, stream_override):
        """The request model of body ``raw`` (bytes); raise ``APIError`` (400) naming the bad field.

        ``stream_override`` is the query's ``stream`` control (``None``: absent).
        """

    def model_refusal(model, served):
        """The real API's ``APIError`` for ``model`` on this route, or ``None``: answer it.

        ``served`` says whether the server has the model at all; one it has may still be of the
        wrong kind for the route (an embedding model on chat, a chat model on embeddings)."""

    def new_id(ids):
        """A fresh answer id from the ``random.Random`` ``ids``."""

    def common_headers(request_id):
        """The headers every response carries (:data:`Headers`)."""

    def timing_headers(elapsed):
        """Headers telling how long the answer took until its status went out (``elapsed`` seconds)."""

    def error(error):
        """``(headers, body)``: the error envelope of an ``APIError`` and its headers."""

    def fault_error(fault, now=None):
        """The ``APIError`` a ``StatusFault`` answers with (``now``: the server clock's time, for
        retry headers that name a date)."""

    def render(request, reply, stamp):
        """The whole (non-streamed) answer of ``reply`` as bytes."""

    def stream(request, reply, stamp):
        """The streamed answer of ``reply``: an iterator of ``Frame`` objects, its terminator last."""

    def broken(request, stamp):
        """A malformed event (the ``fail_chunk`` fault) as bytes."""

    def stream_error(request, stamp, error, sent=0):
        """The in-band error event(s) ending a 200 stream (``fail_mode=error``) for the
        ``APIError`` ``error``, as bytes: chat and text completions send
        ``data: {"error": {...}}``, the Responses API an ``error`` event and ``response.failed``
        (numbered on from ``sent``, the events the stream has already sent)."""
