"""HTTP errors become typed ``ParleyError``s; network failures become connection errors;
only safe requests are retried."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from parley.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationFailed,
    Conflict,
    InternalError,
    InvalidRequest,
    NotFound,
    ParleyError,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    UpstreamError,
    ValidationFailed,
)
from tests.sdk.fake import (
    FakeServer,
    call,
    collect,
    error,
    ok,
    openai_error,
    raises,
    run_body,
)

DETAILS = [
    {"loc": ["body", "tools", 0, "function", "name"], "msg": "too long", "type": "value_error"}
]

ERRORS = [
    (400, "invalid_request", None, None, InvalidRequest),
    (401, "authentication_error", None, None, AuthenticationFailed),
    (404, "not_found", "run_not_found", None, NotFound),
    (409, "conflict", "thread_busy", None, Conflict),
    (413, "payload_too_large", None, None, PayloadTooLarge),
    (422, "validation_error", None, DETAILS, ValidationFailed),
    (500, "internal_error", None, None, InternalError),
    (502, "upstream_error", None, None, UpstreamError),
]


@pytest.mark.parametrize(("status", "type_", "code", "details", "cls"), ERRORS)
async def test_error_answers_raise_typed_errors(
    client: Any,
    fake_server: FakeServer,
    status: int,
    type_: str,
    code: str | None,
    details: Any,
    cls: type[ParleyError],
) -> None:
    fake_server.on(
        "POST", "/v1/runs", error(status, type_, "Something is off.", code=code, details=details)
    )

    with pytest.raises(cls) as caught:
        await call(client.runs.create_run(assistant_id="asst_1", thread_id="thread_1"))

    err = caught.value
    assert type(err) is cls
    assert err.status_code == status
    assert err.code == (code or type_)
    assert err.message == "Something is off."
    assert err.details == details
    assert len(fake_server.requests) == 1  # a POST is never retried


#: Errors in OpenAI's shape (the Assistants paths): status, OpenAI's type, Parley's own type
#: (``X-Parley-Error-Type``), code, param, and the class the SDK raises, the same as for
#: Parley's shape.
OPENAI_ERRORS = [
    (400, "invalid_request", "validation_error", "invalid_value", "top_p", ValidationFailed),
    (400, "invalid_request", "invalid_request", "invalid_value", "response_format", InvalidRequest),
    (400, "invalid_request", "invalid_request", "invalid_json", None, InvalidRequest),
    (
        401,
        "authentication_error",
        "authentication_error",
        "invalid_api_key",
        None,
        AuthenticationFailed,
    ),
    (404, "not_found", "not_found", "assistant_not_found", None, NotFound),
    (405, "invalid_request", "invalid_request", None, None, InvalidRequest),
    (409, "invalid_request", "conflict", "thread_busy", None, Conflict),
    (413, "invalid_request", "payload_too_large", None, None, PayloadTooLarge),
    (
        422,
        "invalid_request",
        "validation_error",
        "idempotency_key_reused",
        "Idempotency-Key",
        ValidationFailed,
    ),
    (429, "too_many_requests", "rate_limited", "too_many_requests", None, RateLimited),
    (500, "server_error", "internal_error", None, None, InternalError),
    (500, "model_error", "upstream_error", None, None, UpstreamError),
    (503, "server_error", "service_unavailable", None, None, ServiceUnavailable),
]


@pytest.mark.parametrize(("status", "type_", "own", "code", "param", "cls"), OPENAI_ERRORS)
async def test_errors_in_openais_shape_raise_the_same_classes(
    client: Any,
    fake_server: FakeServer,
    status: int,
    type_: str,
    own: str,
    code: str | None,
    param: str | None,
    cls: type[ParleyError],
) -> None:
    answer = openai_error(status, type_, "Something is off.", own_type=own, code=code, param=param)
    fake_server.on("POST", "/v1/assistants", answer)

    with pytest.raises(cls) as caught:
        await call(client.assistants.create(model="demo/x"))

    err = caught.value
    assert type(err) is cls
    assert (err.status_code, err.code, err.param) == (status, code or own, param)
    assert err.message == "Something is off."
    assert len(fake_server.requests) == 1


async def test_an_openai_shaped_error_without_parleys_type_maps_by_its_own(
    client: Any, fake_server: FakeServer
) -> None:
    """Without ``X-Parley-Error-Type`` (a proxy dropped it) the body's type decides, then
    the status, as for any answer."""
    body = {"error": {"message": "Busy.", "type": "too_many_requests", "param": None, "code": None}}
    fake_server.on("GET", "/v1/threads/thread_1", ok(body, 429))
    with pytest.raises(RateLimited):
        await call(client.threads.retrieve("thread_1"))


async def test_gets_on_openai_paths_are_retried_as_before(
    client: Any, fake_server: FakeServer
) -> None:
    """A 503 in OpenAI's shape is retried like Parley's own; a 500 is not."""
    fake_server.on(
        "GET",
        "/v1/threads/thread_1",
        openai_error(503, "server_error", "Stopping.", own_type="service_unavailable"),
        ok({"id": "thread_1"}),
    )
    assert (await call(client.threads.retrieve("thread_1"))).id == "thread_1"
    assert len(fake_server.requests) == 2
    fake_server.on(
        "GET",
        "/v1/assistants/asst_1",
        openai_error(500, "server_error", "Oops.", own_type="internal_error"),
    )
    with pytest.raises(InternalError):
        await call(client.assistants.retrieve("asst_1"))
    assert len(fake_server.requests) == 3


async def test_error_without_json_body_maps_by_status(client: Any, fake_server: FakeServer) -> None:
    fake_server.on(
        "POST", "/v1/threads", lambda r: httpx.Response(502, text="<html>Bad gateway</html>")
    )
    with pytest.raises(UpstreamError) as caught:
        await call(client.threads.create())
    assert caught.value.status_code == 502
    assert "502" in caught.value.message


async def test_success_answer_that_is_not_json(client: Any, fake_server: FakeServer) -> None:
    fake_server.on("GET", "/v1/me", lambda r: httpx.Response(200, text="hello"))
    with pytest.raises(InternalError) as caught:
        await call(client.users.me())
    assert caught.value.code == "invalid_response"


async def test_success_answer_with_wrong_shape(client: Any, fake_server: FakeServer) -> None:
    fake_server.on("GET", "/v1/me", ok({"id": "user_1"}))
    with pytest.raises(InternalError, match="unexpected shape"):
        await call(client.users.me())


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (httpx.ConnectError("connection refused"), APIConnectionError),
        (httpx.ConnectTimeout("connect timed out"), APITimeoutError),
        (httpx.ReadTimeout("read timed out"), APITimeoutError),
        (httpx.ReadError("connection reset"), APIConnectionError),
    ],
)
async def test_network_failures_after_retries(
    client: Any, fake_server: FakeServer, exc: Exception, cls: type[Exception]
) -> None:
    fake_server.on("GET", "/v1/runs/run_1", raises(exc))
    with pytest.raises(cls) as caught:
        await call(client.runs.retrieve("run_1"))
    assert caught.type is cls
    assert "http://parley.test" in str(caught.value)
    assert len(fake_server.requests) == 3  # max_retries=2


async def test_get_is_retried_after_503_then_succeeds(client: Any, fake_server: FakeServer) -> None:
    fake_server.on(
        "GET",
        "/v1/runs/run_1",
        error(503, "service_unavailable", "Busy."),
        raises(httpx.ReadError("reset")),
        ok(run_body("completed")),
    )
    run = await call(client.runs.retrieve("run_1"))
    assert run.status == "completed"
    assert len(fake_server.requests) == 3


async def test_post_is_not_retried_once_it_may_have_arrived(
    client: Any, fake_server: FakeServer
) -> None:
    fake_server.on("POST", "/v1/runs/run_1/cancel", raises(httpx.ReadError("reset")))
    with pytest.raises(APIConnectionError):
        await call(client.runs.cancel("run_1"))
    assert len(fake_server.requests) == 1


async def test_post_is_retried_when_it_never_left(client: Any, fake_server: FakeServer) -> None:
    fake_server.on(
        "POST",
        "/v1/runs/run_1/cancel",
        raises(httpx.ConnectError("refused")),
        ok(run_body("cancelled")),
    )
    run = await call(client.runs.cancel("run_1"))
    assert run.status == "cancelled"
    assert len(fake_server.requests) == 2


async def test_errors_other_than_gateway_are_not_retried(
    client: Any, fake_server: FakeServer
) -> None:
    fake_server.on("GET", "/v1/runs/run_1", error(500, "internal_error", "Oops."))
    with pytest.raises(InternalError):
        await call(client.runs.retrieve("run_1"))
    assert len(fake_server.requests) == 1


async def test_streaming_post_error_raises_before_any_event(
    client: Any, fake_server: FakeServer
) -> None:
    fake_server.on(
        "POST",
        "/v1/process",
        error(409, "conflict", "The thread has an active run.", code="thread_busy"),
    )
    with pytest.raises(Conflict) as caught:
        await collect(
            await call(client.process(assistant_id="asst_1", content="hi", thread_id="t"))
        )
    assert caught.value.code == "thread_busy"


async def test_streaming_connection_failure(client: Any, fake_server: FakeServer) -> None:
    fake_server.on("POST", "/v1/process", raises(httpx.ReadError("reset")))
    with pytest.raises(APIConnectionError):
        await call(client.process(run_id="run_1"))
    assert len(fake_server.requests) == 1
