"""
Composing the whole reply to a request: :func:`compose`.

It honours every generation option of the request model: ``n`` choices, each from its own
draw; the text ended before the first ``stop`` sequence, cut to ``max_tokens`` (finishing with
``"length"``); tool calls when tools are offered and ``tool_choice`` asks for them (or, under
``auto``, when the last message mentions a tool), their ``arguments`` drawn from the function's
``parameters`` schema; JSON text for ``json_object``/``json_schema``; the log probabilities of
every piece when ``logprobs`` asks.  A request ``seed`` seeds every draw, so the same request
with the same seed gets the same choices.
"""

from __future__ import annotations

import json
import random
import re
import string
from mockllm.behaviour.content import count_tokens, draw_reply, reply_pieces, tokenize
from mockllm.behaviour.reply import Alternative, Choice, Reply, TokenLogprob, ToolCall
from mockllm.behaviour.request import CompletionRequest, Tool

#: What tool-call ids are made of (``call_`` and 24 of them).
ID_ALPHABET = string.ascii_letters + string.digits
#: Tokens offered as the less likely alternatives in ``top_logprobs`` (at least 20).
ALTERNATIVES = (
    " the", " a", ",", ".", " is", " and", " to", " of", " I", " you", " it", " that", " this",
    " in", "!", " for", " with", " on", " can", " be", " here", " more", " so", " we",
)
#: Words of a tool's name or description too common to say the message is about that tool.
_COMMON = frozenset(
    "call calls create current from function get given info information into list make return returns "
    "should specified that the this their update using with".split()
)
_WORD = re.compile(r"[a-z0-9]+")
_NAME_PART = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def compose(request: CompletionRequest, rng: random.Random, text: str | None = None, tokens: int | None = None) -> Reply:
    """The reply to ``request``: ``request.n`` choices drawn with ``rng`` (or the request's seed).

    ``text`` (a scenario's fixed text) replaces the drawn prose of a text answer; it still ends at
    a stop sequence and is cut to ``max_tokens``.  ``tokens`` (``reply_tokens``) makes each plain
    text choice that many pieces long (the text cut, or drawn prose added after it), before the
    stop sequences and ``max_tokens`` apply; tool calls and JSON formats keep their own length.
    """
    draws = random.Random(request.seed) if request.seed is not None else rng
    if request.n == 1:  # one choice draws from ``draws`` itself (a generator of its own costs more than the draw)
        return Reply((_choice(request, draws, text, tokens),))
    return Reply(tuple(_choice(request, random.Random(draws.getrandbits(64)), text, tokens) for _ in range(request.n)))


def _choice(request: CompletionRequest, rng: random.Random, text: str | None, tokens: int | None) -> Choice:
    """One choice: tool calls if the request's tools and ``tool_choice`` call for them, else text."""
    tools = tools_to_call(request, rng)
    if tools:
        return _calls(request, rng, tools)
    whole = answer_text(request, rng, text)
    if request.output_format != "text":
        tokens = None
    if tokens is not None:
        whole = at_least(whole, tokens, request, rng)
    pieces, finish = cut(whole, request, tokens)
    logprobs = _logprobs(pieces, request.top_logprobs, rng) if request.logprobs else None
    return Choice(pieces, finish_reason=finish, logprobs=logprobs)


def at_least(text: str, tokens: int, request: CompletionRequest, rng: random.Random) -> str:
    """``text``, followed by as many drawn replies as it takes to make ``tokens`` pieces or more."""
    parts, count = [text], count_tokens(text)
    while count < tokens:
        more = " " + draw_reply(rng, request.last_text)
        parts.append(more)
        count += count_tokens(more)
    return "".join(parts)


def tools_to_call(request: CompletionRequest, rng: random.Random) -> tuple[Tool, ...]:
    """The tools one choice calls: the named one, the mentioned ones, or (``required``) one at random.

    ``auto`` calls the tools the last message mentions, and none after a tool's result;
    without ``parallel_tool_calls`` at most one is called.
    """
    if not request.tools or request.tool_choice == "none":
        return ()
    if request.tool_choice == "function":
        return tuple(t for t in request.tools if t.name == request.forced_tool)[:1]
    chosen = () if request.after_tool else tuple(t for t in request.tools if mentions(request.last_text, t))
    if not chosen and request.tool_choice == "required":
        chosen = (rng.choice(request.tools),)
    return chosen if request.parallel_tool_calls else chosen[:1]


def mentions(text: str, tool: Tool) -> bool:
    """Whether ``text`` names ``tool``: its name, or a distinctive word of its name or description."""
    lowered = text.lower()
    if tool.name.lower() in lowered:
        return True
    words = set(_WORD.findall(lowered))
    names = {part.lower() for part in _NAME_PART.findall(tool.name)}
    described = set(_WORD.findall(tool.description.lower()))
    keys = {w for w in names if len(w) >= 4} | {w for w in described if len(w) >= 6}
    return bool((keys - _COMMON) & words)


def _instance(schema: dict, rng: random.Random) -> object:
    """An instance of ``schema`` (:mod:`.schemagen`, with ``rstr``, imported with the first tool call or schema)."""
    from mockllm.behaviour.schemagen import instance

    return instance(schema, rng)


def _calls(request: CompletionRequest, rng: random.Random, tools: tuple[Tool, ...]) -> Choice:
    """A choice of calls to ``tools``, within ``max_tokens`` (the last call cut short, ``"length"``)."""
    budget = request.max_tokens
    calls = []
    for tool in tools:
        arguments = json.dumps(_instance(tool.parameters, rng), separators=(",", ":"), ensure_ascii=False)
        call = ToolCall(call_id(rng), tool.name, arguments)
        if budget is not None and call.tokens > budget:
            calls.append(ToolCall(call.id, tool.name, "".join(tokenize(arguments)[:budget])))
            return Choice(tool_calls=tuple(calls), finish_reason="length", logprobs=_none_or_empty(request))
        budget = None if budget is None else budget - call.tokens
        calls.append(call)
    finish = "stop" if request.tool_choice == "function" else "tool_calls"
    return Choice(tool_calls=tuple(calls), finish_reason=finish, logprobs=_none_or_empty(request))


def _none_or_empty(request: CompletionRequest) -> tuple[TokenLogprob, ...] | None:
    """A tool-call choice's log probabilities: none for its (absent) text, if asked for at all."""
    return () if request.logprobs else None


def call_id(rng: random.Random) -> str:
    """A tool-call id as the real API makes them: ``call_`` and 24 letters and digits."""
    return "call_" + "".join(rng.choice(ID_ALPHABET) for _ in range(24))


def answer_text(request: CompletionRequest, rng: random.Random, text: str | None) -> str:
    """The whole text before any cut: JSON for the JSON formats, else ``text`` or a drawn reply."""
    if request.output_format == "text":
        return text if text is not None else draw_reply(rng, request.last_text)
    if text is not None and _is_json_object(text):
        return text
    if request.output_format == "json_schema":
        return json.dumps(_instance(request.output_schema or {}, rng), ensure_ascii=False)
    return json.dumps({"answer": draw_reply(rng, request.last_text)}, ensure_ascii=False)


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def cut(text: str, request: CompletionRequest, tokens: int | None = None) -> tuple[tuple[str, ...], str]:
    """``text`` ended before its first stop sequence, cut to ``tokens`` pieces (if given), then to
    ``max_tokens``, as pieces, and the finish reason (``"length"`` when cut to ``max_tokens``)."""
    ends = [at for at in (text.find(stop) for stop in request.stop if stop) if at >= 0]
    if ends:
        text = text[: min(ends)]
    pieces = reply_pieces(text)
    if tokens is not None:
        pieces = pieces[:tokens]
    if request.max_tokens is not None and len(pieces) > request.max_tokens:
        return pieces[: request.max_tokens], "length"
    return pieces, "stop"


def _logprobs(pieces: tuple[str, ...], top: int, rng: random.Random) -> tuple[TokenLogprob, ...]:
    """A log probability per piece, with ``top`` likeliest tokens (the piece first) at each."""
    out = []
    for piece in pieces:
        logprob = -round(rng.expovariate(4.0), 6)
        others = rng.sample([t for t in ALTERNATIVES if t != piece], max(top - 1, 0))
        below = sorted((round(logprob - rng.uniform(0.5, 12.0), 6) for _ in others), reverse=True)
        alternatives = [Alternative(piece, logprob), *map(Alternative, others, below)][:top]
        out.append(TokenLogprob(piece, logprob, tuple(alternatives)))
    return tuple(out)

