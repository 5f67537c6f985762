"""Turn and log streams: typed events, ``done``, closing, and resuming after a drop."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from parley.errors import APIConnectionError, APITimeoutError, NotFound, ServiceUnavailable
from parley.events import ContentDelta, DoneEvent, ToolCallsEvent
from parley.sdk import RunFailed
from tests.sdk.fake import (
    RUN,
    Chunks,
    FakeServer,
    call,
    close,
    collect,
    done,
    error,
    frame,
    make_client,
    raises,
    sse,
    status,
    text,
    thinking,
    tool_calls,
    turn,
    usage,
)

EVENTS_PATH = f"/v1/runs/{RUN}/events"

TURN_1 = turn(
    1,
    status("in_progress"),
    thinking("hmm"),
    text("Hel"),
    text("lo"),
    tool_calls(("get_time", {"tz": "UTC"})),
    usage(5, 7),
    status("action_required"),
    done("action_required"),
)
TURN_2 = turn(
    9,
    status("in_progress"),
    text("It is noon."),
    usage(9, 3),
    status("completed"),
    done("completed"),
)


def kinds(events: list[Any]) -> list[str]:
    return [event.type for event in events]


async def next_event(stream: Any) -> Any:
    """The next event, or None at the end."""
    return await anext(stream, None) if hasattr(stream, "__anext__") else next(stream, None)


async def test_turn_stream_yields_typed_events_until_done(
    client: Any, fake_server: FakeServer
) -> None:
    fake_server.on("POST", "/v1/process", sse(TURN_1 + TURN_2, split=13))

    stream = await call(client.process(assistant_id="asst_1", content="What time is it?"))
    events = await collect(stream)

    assert kinds(events) == [event["type"] for _, event in TURN_1]
    assert isinstance(events[2], ContentDelta) and events[2].text == "Hel"
    assert isinstance(events[4], ToolCallsEvent) and events[4].actions[0].arguments == {"tz": "UTC"}
    assert isinstance(events[-1], DoneEvent) and events[-1].status == "action_required"
    assert stream.last_event_id == "8"
    assert stream.run_id == RUN
    [seen] = fake_server.requests
    assert seen.body == {"assistant_id": "asst_1", "content": "What time is it?", "stream": True}
    assert seen.headers["accept"] == "text/event-stream"


async def test_unknown_event_types_are_skipped(client: Any, fake_server: FakeServer) -> None:
    future = b'id: 2\nevent: future.thing\ndata: {"type": "future.thing"}\n\n'
    body = frame(1, status("in_progress")) + future + frame(3, done("completed"))
    fake_server.on("POST", "/v1/process", lambda r: httpx.Response(200, stream=Chunks([body])))

    stream = await call(client.process(run_id=RUN))
    assert kinds(await collect(stream)) == ["run.status", "done"]
    assert stream.last_event_id == "3"


@pytest.mark.parametrize(
    "cut",
    [
        httpx.ReadError("connection reset by peer"),
        httpx.RemoteProtocolError("incomplete chunked read"),
        None,  # the server closed the body early, without an error
    ],
)
async def test_turn_stream_resumes_from_last_event_id(
    client: Any, fake_server: FakeServer, cut: Exception | None
) -> None:
    fake_server.on("POST", "/v1/process", sse(TURN_1[:3], fail=cut))
    # The log replays after id 3, through this turn's done and into the next turn.
    fake_server.on("GET", EVENTS_PATH, sse(TURN_1[3:] + TURN_2, expect_last_event_id="3"))

    stream = await call(client.process(run_id=RUN))
    events = await collect(stream)

    assert kinds(events) == [event["type"] for _, event in TURN_1]
    assert stream.last_event_id == "8"
    assert fake_server.routes == ["POST /v1/process", f"GET {EVENTS_PATH}"]
    assert fake_server.requests[1].headers["authorization"].startswith("Bearer ")


async def test_resume_skips_replayed_events_and_retries_gateway_errors(
    client: Any, fake_server: FakeServer
) -> None:
    fake_server.on("POST", "/v1/completions", sse(TURN_1[:4], fail=httpx.ReadError("reset")))
    fake_server.on(
        "GET",
        EVENTS_PATH,
        error(503, "service_unavailable", "Restarting."),
        raises(httpx.ConnectError("refused")),
        sse(TURN_1[2:], expect_last_event_id="4"),  # a server replaying too much
    )

    events = await collect(await call(client.completions.create(run_id=RUN)))

    assert [e.type for e in events] == [event["type"] for _, event in TURN_1]
    assert [e.text for e in events if isinstance(e, ContentDelta)] == ["Hel", "lo"]
    assert fake_server.routes.count(f"GET {EVENTS_PATH}") >= 3


async def test_drop_before_first_event_cannot_resume(client: Any, fake_server: FakeServer) -> None:
    fake_server.on("POST", "/v1/process", sse([], fail=httpx.ReadError("reset")))
    stream = await call(client.process(assistant_id="asst_1", content="hi"))
    with pytest.raises(APIConnectionError, match="before its first event"):
        await collect(stream)
    assert fake_server.routes == ["POST /v1/process"]


async def test_resume_gives_up_without_progress(client: Any, fake_server: FakeServer) -> None:
    fake_server.on("POST", "/v1/process", sse(TURN_1[:2], fail=httpx.ReadError("reset")))
    fake_server.on("GET", EVENTS_PATH, sse([], fail=httpx.ReadError("reset again")))

    stream = await call(client.process(run_id=RUN))
    with pytest.raises(APIConnectionError, match="could not be resumed after 3 attempts"):
        await collect(stream)
    assert fake_server.routes.count(f"GET {EVENTS_PATH}") == 3


async def test_resume_answered_404_raises_it(client: Any, fake_server: FakeServer) -> None:
    fake_server.on("POST", "/v1/process", sse(TURN_1[:2], fail=httpx.ReadError("reset")))
    fake_server.on(
        "GET", EVENTS_PATH, error(404, "not_found", "No run with id run_1.", code="run_not_found")
    )
    with pytest.raises(NotFound):
        await collect(await call(client.process(run_id=RUN)))


async def test_log_stream_covers_every_turn(client: Any, fake_server: FakeServer) -> None:
    fake_server.on("GET", EVENTS_PATH, sse(TURN_1 + TURN_2))
    stream = await call(client.runs.events(RUN))
    events = await collect(stream)
    assert [e.type for e in events].count("done") == 2
    assert stream.last_event_id == "13"
    assert "last-event-id" not in fake_server.requests[0].headers


async def test_log_stream_after_and_resume(client: Any, fake_server: FakeServer) -> None:
    fake_server.on(
        "GET",
        EVENTS_PATH,
        sse(TURN_1[4:6], fail=httpx.ReadError("reset"), expect_last_event_id="4"),
        sse(TURN_1[6:] + TURN_2, expect_last_event_id="6"),
    )
    events = await collect(await call(client.runs.events(RUN, after=4)))
    assert events[0].type == "tool_calls"
    assert len(events) == 4 + len(TURN_2)
    assert len(fake_server.requests) == 2


async def test_close_mid_stream(client: Any, fake_server: FakeServer) -> None:
    fake_server.on("POST", "/v1/process", sse(TURN_1))
    stream = await call(client.process(run_id=RUN))
    first = await next_event(stream)
    assert first.type == "run.status"
    await close(stream)
    await close(stream)  # twice is fine
    assert await next_event(stream) is None


async def test_inference_stream_helper(client: Any, fake_server: FakeServer) -> None:
    fake_server.on("POST", "/v1/completions", sse(TURN_2))
    helper = client.synchronous_inference_stream
    helper.setup(thread_id="thread_1", assistant_id="asst_1", message_id="msg_1", run_id=RUN)

    events = [event async for event in _iterate(helper.stream_chunks())]
    await close(helper)

    assert [e.type for e in events][-1] == "done"
    assert fake_server.requests[0].body == {
        "run_id": RUN,
        "thread_id": "thread_1",
        "assistant_id": "asst_1",
        "message_id": "msg_1",
        "stream": True,
    }


async def test_final_result_folds_the_whole_turn(client: Any, fake_server: FakeServer) -> None:
    """The events taken before it and those left unread, resumed after a drop too."""
    fake_server.on("POST", "/v1/process", sse(TURN_1[:4], fail=httpx.ReadError("reset")))
    fake_server.on("GET", EVENTS_PATH, sse(TURN_1[4:], expect_last_event_id="4"))
    stream = await call(client.process(run_id=RUN))
    assert (await next_event(stream)).type == "run.status"

    result = await call(stream.final_result())

    assert (result.run_id, result.status, result.text) == (RUN, "action_required", "Hello")
    assert result.reasoning == "hmm" and result.actions[0].name == "get_time"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (5, 7)
    assert await next_event(stream) is None  # read to its end, and closed
    assert await call(stream.final_result()) == result  # asked again: the same


async def test_final_result_raises_for_a_failed_turn(client: Any, fake_server: FakeServer) -> None:
    failed = turn(
        1,
        status("in_progress"),
        text("Hal"),
        {"type": "error", "run_id": RUN, "code": "upstream_auth", "message": "Key refused."},
        status("failed"),
        done("failed"),
    )
    fake_server.on("POST", "/v1/completions", sse(failed), sse(failed))

    stream = await call(client.completions.create(run_id=RUN))
    events = [event async for event in _iterate(stream)]  # iterating does not raise
    assert events[-1].type == "done"
    with pytest.raises(RunFailed, match=f"^run {RUN} failed: upstream_auth: Key refused.$") as got:
        await call(stream.final_result())
    assert (got.value.code, got.value.result.text) == ("upstream_auth", "Hal")

    stream = await call(client.completions.create(run_id=RUN))
    answered = await call(stream.final_result(raise_on_failure=False))
    assert answered.status == "failed" and answered.error is not None
    assert answered.error.message == "Key refused."


async def test_a_log_stream_has_no_final_result(client: Any, fake_server: FakeServer) -> None:
    fake_server.on("GET", EVENTS_PATH, sse(TURN_1 + TURN_2))
    stream = await call(client.runs.events(RUN))
    try:
        with pytest.raises(TypeError, match="turn stream"):
            await call(stream.final_result())
    finally:
        await close(stream)


async def test_inference_stream_needs_setup(client: Any) -> None:
    with pytest.raises(RuntimeError, match="setup"):
        client.synchronous_inference_stream.stream_chunks()


async def test_streams_are_context_managers(fake_server: FakeServer) -> None:
    fake_server.on("POST", "/v1/process", sse(TURN_2))
    with make_client("sync", fake_server) as sync_client, sync_client.process(run_id=RUN) as stream:
        assert next(stream).type == "run.status"
    async with (
        make_client("async", fake_server) as async_client,
        await async_client.process(run_id=RUN) as astream,
    ):
        assert (await anext(astream)).type == "run.status"


async def _iterate(stream: Any) -> Any:
    if hasattr(stream, "__aiter__"):
        async for event in stream:
            yield event
    else:
        for event in stream:
            yield event


async def test_resume_attempts_survive_failed_reopens(kind: str, fake_server: FakeServer) -> None:
    fake_server.on("POST", "/v1/process", sse(TURN_1[:4], fail=httpx.ReadError("reset")))
    fake_server.on(
        "GET",
        EVENTS_PATH,
        error(503, "service_unavailable", "Restarting."),
        raises(httpx.ConnectError("refused")),
        sse(TURN_1[4:], expect_last_event_id="4"),
    )
    client = make_client(kind, fake_server, max_retries=0)
    try:
        events = await collect(await call(client.process(run_id=RUN)))
    finally:
        await close(client)
    assert len(events) == len(TURN_1)
    assert fake_server.routes.count(f"GET {EVENTS_PATH}") == 3


async def test_resume_gives_up_with_the_last_failure(kind: str, fake_server: FakeServer) -> None:
    fake_server.on("POST", "/v1/process", sse(TURN_1[:2], fail=httpx.ReadTimeout("slow")))
    fake_server.on("GET", EVENTS_PATH, sse([], fail=httpx.ReadTimeout("slow")))
    fake_server.on("POST", "/v1/completions", sse(TURN_1[:2], fail=httpx.ReadError("reset")))
    fake_server.on("GET", "/v1/runs/run_2/events", error(503, "service_unavailable", "Down."))
    client = make_client(kind, fake_server, max_retries=0)
    try:
        with pytest.raises(APITimeoutError, match=r"\(timeout\)"):
            await collect(await call(client.process(run_id=RUN)))
        with pytest.raises(ServiceUnavailable, match="Down"):
            await collect(await call(client.completions.create(run_id="run_2")))
    finally:
        await close(client)
