"""
docs/testing.md's pytest example: a retrying client tested with the ``mockllm_server`` fixture
(run in a child pytest by tests/test_testing_pytest_runs.py).

The client under test is ``ask``; the official SDK does the retrying.
"""

import openai
import pytest

from mockllm.testing import assert_honoured_retry_after, assert_retried, assert_succeeded

MODEL = "gpt-4o-mini"


def ask(client: openai.OpenAI, question: str) -> str:
    """The client under test: one chat completion (the SDK retries 429s and 5xx)."""
    reply = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": question}])
    return reply.choices[0].message.content


@pytest.mark.mockllm(scenario="flaky", params={"fail_first": 1, "fail_status": 503})
def test_recovers_from_a_flaky_server(mockllm_server):
    """The first attempt gets a 503, the SDK's retry gets the answer."""
    client = mockllm_server.openai_client(max_retries=2)
    assert ask(client, "Hello")
    statuses = [r["status"] for r in mockllm_server.requests(path="/v1/chat/completions")]
    assert statuses == [503, 200]
    assert_retried(mockllm_server, times=1)
    assert_succeeded(mockllm_server)


def test_waits_as_a_429_says(mockllm_server):
    """Every call is a 429 asking for 200 ms: the SDK retries twice, waiting each time, then gives up."""
    failing = {"X-Mock-Fail": "429", "X-Mock-Retry-After": "200"}
    client = mockllm_server.openai_client(max_retries=2, default_headers=failing)
    with pytest.raises(openai.RateLimitError):
        ask(client, "Hello")
    assert_retried(mockllm_server, times=2)
    assert_honoured_retry_after(mockllm_server)
    (summary,) = mockllm_server.verdict()["keys"].values()  # one caller: the client's API key
    (request,) = summary["requests"]
    assert all(pause >= 200 for pause in request["backoff_ms"])


@pytest.mark.mockllm(https=True)
def test_over_mtls(mockllm_server):
    """With https=True the client presents the server's fresh development client certificate."""
    assert ask(mockllm_server.openai_client(), "Hello")
    (record,) = mockllm_server.requests()
    assert record["client_cert"]["subject"].startswith("CN=mockllm-client")
