"""
The same answers, byte for byte: what one checkout answers to a battery of requests, with
ids, dates and ``created`` normalised, so two checkouts' outputs can be diffed.

    git worktree add --detach ../mockllm-before HEAD~10
    python bench/same_bytes.py . > after.txt; python bench/same_bytes.py ../mockllm-before > before.txt
    diff before.txt after.txt

It runs the app in memory on a ``task.Clock`` (no sockets), seeded, so only behaviour differs.
It understands both the current layout and the one before the reshape into packages.
"""

import json
import random
import re
import sys

tree = sys.argv[1]
sys.path.insert(0, tree)
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.internet.address import IPv4Address
try:
    from mockllm.http.routes import MockLLM
    from mockllm.http.site import MockSite
    new = True
except ImportError:
    from mockllm.app import MockLLM
    from mockllm.listen import MockSite
    new = False
from mockllm.config import Config, ResponsesConfig
clock = Clock(); clock.advance(1_700_000_000)
app = MockLLM(Config(responses=ResponsesConfig(stream_interval_ms=10)), clock, rng=random.Random(5))
site = MockSite(app.resource(), None, None, clock) if new else MockSite(app.resource())
site.timeOut = None
chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello there"}]}
text = {"model": "gpt-4o-mini", "prompt": "Say hi"}
cases = [
 ("POST", "/v1/chat/completions", chat, {}),
 ("POST", "/v1/chat/completions?stream=true", chat, {}),
 ("POST", "/v1/chat/completions", dict(chat, stream=True, stream_options={"include_usage": True}), {}),
 ("POST", "/v1/chat/completions?stream=true&fail_chunk=3", chat, {}),
 ("POST", "/v1/chat/completions?fail=429", chat, {}),
 ("POST", "/v1/chat/completions?fail=500&retry_after=250", chat, {}),
 ("POST", "/v1/chat/completions?fail=timeout", chat, {}),
 ("POST", "/v1/chat/completions?delay=300", chat, {}),
 ("POST", "/v1/chat/completions", chat, {"X-Mock-Fail": "503"}),
 ("POST", "/v1/chat/completions?fail=abc", chat, {}),
 ("POST", "/v1/chat/completions", [1], {}),
 ("POST", "/v1/chat/completions", {"model": "nope", "messages": [{"role":"user","content":"x"}]}, {}),
 ("POST", "/v1/completions", text, {}),
 ("POST", "/v1/completions", dict(text, stream=True), {}),
 ("GET", "/v1/models", None, {}),
 ("GET", "/v1/models/gpt-4o", None, {}),
 ("GET", "/v1/models/nope", None, {}),
 ("GET", "/v1/chat/completions", None, {}),
 ("GET", "/nothing", None, {}),
 ("GET", "/health", None, {}),
 ("GET", "/%ff", None, {}),
]
for method, path, body, headers in cases:
    t = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 4000))
    p = site.buildProtocol(None); p.makeConnection(t)
    data = json.dumps(body).encode() if body is not None else b""
    hdrs = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    p.dataReceived(f"{method} {path} HTTP/1.1\r\nHost: x\r\n{hdrs}Content-Length: {len(data)}\r\n\r\n".encode() + data)
    for _ in range(4000): clock.advance(0.01)
    out = t.value()
    out = re.sub(rb"req_[0-9a-f]{32}", b"REQ", out)
    out = re.sub(rb"(chatcmpl-|cmpl-)[A-Za-z0-9]{29}", rb"\1ID", out)
    out = re.sub(rb"Date: [^\r]*", b"Date: X", out)
    out = re.sub(rb"\"created\":\d+", b"\"created\":N", out)
    print(f"### {method} {path} {headers}")
    print(out.decode("utf-8", "replace"))
