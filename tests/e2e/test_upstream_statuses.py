"""An upstream failure has one answer on every face, from one table
(``parley.errors.UPSTREAM_FAILURES``), and never a 500: refused credentials or an unknown
model 502, unreachable 502, timed out 504, rate limited 429 with ``Retry-After``, a request
refused as invalid 400. ``X-Should-Retry`` tells the SDKs whether another try can help; the
message names the provider, the URL Parley called and the provider's own words. A stream
that ends with nothing in it is a failure (``upstream_empty``), not an empty answer; an
OpenRouter stream whose reasoning comes only as ``reasoning_details`` shows it.

Real ``parley serve``, the fake upstream over real sockets (and a closed port), raw HTTP and
the official ``openai`` SDK."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.helpers import create_assistant, get_run, marker, stream_process, upstream_requests
from tests.e2e.responses_helpers import create, stream_create

#: model -> (status, code, X-Should-Retry, what the provider said): the session server's
#: ``fake`` provider is the fake upstream, ``dead`` a closed port, ``slowpoke`` a provider
#: whose read timeout is 1 s.
FAILURES = {
    "fake/error:401": (502, "upstream_auth", "false", "fake upstream error 401"),
    "fake/error:404": (502, "upstream_not_found", "false", "fake upstream error 404"),
    "fake/error:400": (400, "upstream_invalid_request", "false", "fake upstream error 400"),
    "fake/error:429:7": (429, "upstream_rate_limited", "true", "fake upstream error 429"),
    "fake/error:503": (502, "upstream_http_error", "true", "fake upstream error 503"),
    "dead/x": (502, "upstream_unreachable", "true", "connection refused"),
    "slowpoke/hang": (504, "upstream_timeout", "true", "sent nothing for 1 s"),
}
#: The OpenAI type of each status of an upstream failure.
OPENAI_TYPES = {400: "invalid_request", 429: "too_many_requests"}


@pytest.fixture
def sdk(server: Any, user_key: str) -> Iterator[openai.OpenAI]:
    """The official SDK with its own retries (two), as users run it."""
    with openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=user_key, timeout=30) as client:
        yield client


def chat(model: str, content: str = "hi", **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **fields}


def check_where(message: str, model: str, upstream: Any) -> None:
    """The message names the URL called, never the key or the provider's raw body."""
    if model.startswith("dead/"):
        assert "at http://127.0.0.1:" in message and "/v1/chat/completions" in message, message
    else:
        assert f"at {upstream.base_url}/chat/completions" in message, message
    assert "sk-fake" not in message and "{" not in message, message


# ------------------------------------------------------------------ Chat Completions


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("model", FAILURES)
def test_chat_completions_answer_each_failure_with_its_status(
    http: httpx.Client, upstream: Any, model: str, stream: bool
) -> None:
    status, code, should_retry, said = FAILURES[model]
    answer = http.post("/chat/completions", json=chat(model, stream=stream))
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code, error
    assert error["type"] == OPENAI_TYPES.get(status, "model_error"), error
    assert said in error["message"], error
    check_where(error["message"], model, upstream)
    assert answer.headers["x-should-retry"] == should_retry
    own = "upstream_timeout" if status == 504 else "upstream_error"
    assert answer.headers["x-parley-error-type"] == own
    assert answer.headers.get("retry-after") == ("7" if status == 429 else None)


@pytest.mark.parametrize("said", ["inf", "1e300"])
def test_an_endless_retry_after_of_the_provider_is_bounded(http: httpx.Client, said: str) -> None:
    """At most a day (``parley.errors.MAX_RETRY_AFTER``): never an internal error, nor a
    wait of 300 digits passed on."""
    answer = http.post("/chat/completions", json=chat(f"fake/error:429:{said}"))
    assert answer.status_code == 429, answer.text
    assert answer.json()["error"]["code"] == "upstream_rate_limited"
    assert answer.headers["retry-after"] == "86400"


def test_a_key_the_provider_echoes_reaches_no_one(
    http: httpx.Client, server: Any, upstream: Any
) -> None:
    """An OpenAI-compatible server that says the whole key it was sent in its refusal: the
    key is masked in the answer, in the run's stored error and in the server's log."""
    since = len(server.log())
    answer = http.post("/chat/completions", json=chat("fake/badkey"))
    assert answer.status_code == 502, answer.text
    error = answer.json()["error"]
    assert error["code"] == "upstream_auth"
    assert error["message"].endswith("(HTTP 401): Incorrect API key provided: ***.")
    check_where(error["message"], "fake/badkey", upstream)
    bot = create_assistant(http, "fake/badkey")
    run = get_run(http, stream_process(http, assistant_id=bot["id"], content="hi").run_id)
    assert run["last_error"]["code"] == "upstream_auth"
    assert run["last_error"]["message"].endswith("Incorrect API key provided: ***.")
    assert "sk-fake" not in answer.text + json.dumps(run) + server.log()[since:]


def test_the_sdk_does_not_retry_refused_credentials(sdk: openai.OpenAI, upstream: Any) -> None:
    word = marker()
    with pytest.raises(openai.InternalServerError) as caught:
        sdk.chat.completions.create(
            model="fake/error:401", messages=[{"role": "user", "content": word}]
        )
    assert caught.value.status_code == 502
    assert "rejected the credentials (HTTP 401): fake upstream error 401" in caught.value.message
    assert len(upstream_requests(upstream, word)) == 1  # X-Should-Retry: false, obeyed


def test_the_sdk_waits_out_an_upstream_rate_limit(sdk: openai.OpenAI, upstream: Any) -> None:
    word = marker()
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.with_options(max_retries=1).chat.completions.create(
            model="fake/error:429:1", messages=[{"role": "user", "content": word}]
        )
    waited = time.monotonic() - started
    assert caught.value.status_code == 429 and caught.value.code == "upstream_rate_limited"
    assert caught.value.response.headers["retry-after"] == "1"
    assert len(upstream_requests(upstream, word)) == 2  # tried again, once
    assert waited >= 0.9, waited  # after the second the upstream asked for


def test_the_sdk_reads_the_providers_refusal_as_a_bad_request(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(
            model="fake/error:400", messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.code == "upstream_invalid_request"
    assert "refused the request (HTTP 400): fake upstream error 400" in caught.value.message


def test_a_failure_after_the_first_byte_ends_the_stream_with_its_error(
    http: httpx.Client, upstream: Any
) -> None:
    """Once the answer has begun its status is sent: the failure is the stream's error."""
    answer = http.post("/chat/completions", json=chat("fake/truncate:2", stream=True))
    assert answer.status_code == 200
    frames = [b.removeprefix("data: ") for b in answer.text.split("\n\n") if b.strip()]
    last = json.loads(frames[-2])
    assert frames[-1] == "[DONE]" and last["error"]["code"] == "upstream_truncated", last
    assert f"at {upstream.base_url}/chat/completions" in last["error"]["message"]


# ------------------------------------------------------------------------ Responses


def test_a_failed_response_carries_the_failure(http: httpx.Client, upstream: Any) -> None:
    """Not streamed: the response, failed, with the failure's code and message; streamed:
    the same in ``response.failed``."""
    answered = create(http, model="fake/error:401", input="hi")
    events = stream_create(http, model="fake/error:401", input="hi")
    assert events[-1]["type"] == "response.failed"
    for response in (answered, events[-1]["response"]):
        assert response["status"] == "failed"
        error = response["error"]
        assert error["code"] == "upstream_auth", error
        assert "rejected the credentials (HTTP 401): fake upstream error 401" in error["message"]
        check_where(error["message"], "fake/error:401", upstream)


def test_a_failed_run_keeps_the_providers_words_and_url(http: httpx.Client, upstream: Any) -> None:
    bot = create_assistant(http, "fake/error:404")
    turn = stream_process(http, assistant_id=bot["id"], content="hi")
    run = get_run(http, turn.run_id)
    assert run["status"] == "failed"
    assert run["last_error"]["code"] == "upstream_not_found"
    assert "(HTTP 404): fake upstream error 404" in run["last_error"]["message"]
    check_where(run["last_error"]["message"], "fake/error:404", upstream)


# ------------------------------------------------------------------------ embeddings


@pytest.mark.parametrize(
    ("model", "status", "code"),
    [
        ("fake/error:401", 502, "upstream_auth"),
        ("fake/error:503", 502, "upstream_http_error"),
        ("dead/embedder", 502, "upstream_unreachable"),
    ],
)
def test_embeddings_answer_a_failure_with_its_status(
    sdk: openai.OpenAI, model: str, status: int, code: str
) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.with_options(max_retries=0).embeddings.create(model=model, input="x")
    assert (caught.value.status_code, caught.value.code) == (status, code)
    assert "/embeddings" in caught.value.message


def test_embeddings_dimensions_are_bounded(sdk: openai.OpenAI, upstream: Any) -> None:
    asked = len(upstream.embedding_requests)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.embeddings.create(model="fake/text-embedding-3-small", input="x", dimensions=20_779_331)
    assert caught.value.param == "dimensions"
    assert "8192" in caught.value.message
    assert len(upstream.embedding_requests) == asked  # refused before any call
    answer = sdk.embeddings.create(
        model="fake/text-embedding-3-small", input="x", dimensions=8192, encoding_format="float"
    )
    assert len(answer.data[0].embedding) == 8192


# ------------------------------------------------------------- empty streams, reasoning


def _replay(path: Path, *chunks: dict[str, Any]) -> str:
    """A Chat Completions stream of ``chunks`` and ``[DONE]``, for the fake upstream to
    send as recorded; answers the model that replays it."""
    frames = [{"id": "chatcmpl-1", "object": "chat.completion.chunk", **c} for c in chunks]
    path.write_text("".join(f"data: {json.dumps(f)}\n\n" for f in frames) + "data: [DONE]\n\n")
    return f"fake/replay:{path}"


ROLE = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}


def test_a_stream_with_nothing_in_it_is_an_upstream_failure(
    http: httpx.Client, tmp_path: Path
) -> None:
    """A role chunk and ``[DONE]``: no text, no tool call, no finish reason. A finish of
    ``stop`` with no text is still a completed, empty answer."""
    model = _replay(tmp_path / "empty.sse", ROLE)
    answer = http.post("/chat/completions", json=chat(model))
    assert answer.status_code == 502, answer.text
    assert answer.json()["error"]["code"] == "upstream_empty"
    response = create(http, model=model, input="hi")
    assert response["status"] == "failed" and response["error"]["code"] == "upstream_empty"
    assert "without any text, tool call or finish reason" in response["error"]["message"]

    response = create(http, model="fake/text:0", input="hi")
    assert response["status"] == "completed" and response["error"] is None
    answer = http.post("/chat/completions", json=chat("fake/text:0"))
    assert answer.status_code == 200, answer.text
    (choice,) = answer.json()["choices"]
    assert choice["finish_reason"] == "stop" and not choice["message"]["content"]


def test_reasoning_sent_only_as_reasoning_details_is_read(
    http: httpx.Client, tmp_path: Path
) -> None:
    def details(*items: dict[str, Any]) -> dict[str, Any]:
        return {"choices": [{"index": 0, "delta": {"reasoning_details": list(items)}}]}

    model = _replay(
        tmp_path / "openrouter.sse",
        ROLE,
        details(
            {"type": "reasoning.text", "text": "Weighing it", "signature": None, "format": "x"}
        ),
        details({"type": "reasoning.text", "text": " up.", "signature": "EqQBsig", "format": "x"}),
        details({"type": "reasoning.encrypted", "data": "gAAAAopaque", "format": "x"}),
        {"choices": [{"index": 0, "delta": {"content": "Yes."}, "finish_reason": "stop"}]},
    )
    answer = http.post("/chat/completions", json=chat(model))
    assert answer.status_code == 200, answer.text
    message = answer.json()["choices"][0]["message"]
    assert (message["reasoning_content"], message["content"]) == ("Weighing it up.", "Yes.")
    assert "opaque" not in answer.text and "EqQBsig" not in answer.text
