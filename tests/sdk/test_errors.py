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
    UpstreamError,
    ValidationFailed,
)
from tests.sdk.fake import FakeServer, call, collect, error, ok, raises, run_body

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
