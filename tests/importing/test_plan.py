"""The import's pieces without a database: a server's lists read page by page and its
errors (``httpx.MockTransport`` as the server), and where a run's tool calls go in a
thread's order."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from parley.cli.importing.convert import Ids, Report, plan_thread, spread
from parley.cli.importing.sources import ImportFailure, UrlSource, oldest_first


def _server(routes: dict[str, Any], seen: list[httpx.Request]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        found = routes.get(request.url.path)
        if callable(found):
            return found(request)  # type: ignore[no-any-return]
        if found is None:
            return httpx.Response(404, json={"error": {"message": "Not Found"}})
        return httpx.Response(200, json=found)

    return httpx.MockTransport(answer)


def _paged(items: list[dict[str, Any]], size: int) -> Any:
    """A list endpoint of ``items`` (oldest first), ``size`` a page, honouring ``after``."""

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.params["order"] == "asc"
        after = request.url.params.get("after")
        start = next((n + 1 for n, i in enumerate(items) if i["id"] == after), 0)
        page = items[start : start + size]
        return httpx.Response(
            200,
            json={
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": start + size < len(items),
            },
        )

    return answer


async def test_a_server_s_lists_are_read_to_their_last_page() -> None:
    messages = [{"id": f"msg_{n}", "created_at": n} for n in range(7)]
    seen: list[httpx.Request] = []
    transport = _server({"/v1/threads/t1/messages": _paged(messages, 3)}, seen)
    source = UrlSource("http://src.test", "sk-1", thread_ids=["t1"], transport=transport)
    try:
        assert await source.messages("t1") == messages
    finally:
        await source.aclose()
    assert len(seen) == 3
    assert seen[0].headers["authorization"] == "Bearer sk-1"
    assert seen[0].headers["openai-beta"] == "assistants=v2"
    assert [r.url.params.get("after") for r in seen] == [None, "msg_2", "msg_5"]


async def test_a_server_without_a_thread_list_asks_for_thread_ids() -> None:
    source = UrlSource("http://src.test/v1/", "k", thread_ids=[], transport=_server({}, []))
    try:
        with pytest.raises(ImportFailure, match="name them with --thread or --threads-file"):
            await source.thread_ids()
    finally:
        await source.aclose()


async def test_a_refused_key_and_an_answer_not_json_are_said() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"message": "Incorrect API key"}})

    def garbled(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>")

    routes = {"/v1/assistants": refuse, "/v1/threads/t": garbled}
    source = UrlSource("http://src.test", "k", thread_ids=[], transport=_server(routes, []))
    try:
        with pytest.raises(ImportFailure, match="401, the source refused the API key"):
            await source.assistants()
        with pytest.raises(ImportFailure, match="/v1/threads/t: the answer is not JSON"):
            await source.thread("t")
        with pytest.raises(ImportFailure, match="is not an id"):
            await source.thread("../assistants")
    finally:
        await source.aclose()


def test_lists_given_newest_first_are_turned_around() -> None:
    newest_first = [{"id": "c", "created_at": 3}, {"id": "b", "created_at": 3}, {"id": "a"}]
    assert oldest_first(newest_first) == newest_first  # no times to go by: as given
    stamped = [
        {"id": "c", "created_at": 5},
        {"id": "b", "created_at": 5},
        {"id": "a", "created_at": 1},
    ]
    assert [i["id"] for i in oldest_first(stamped)] == ["a", "b", "c"]


def test_one_second_s_objects_are_told_apart_within_it() -> None:
    assert spread([10.0, 10.0, 10.0, 11.0, 11.5]) == pytest.approx(
        [10.0, 10.001, 10.002, 11.0, 11.5]
    )


def _msg(mid: str, role: str, at: int, text: str = "", run: str | None = None) -> dict[str, Any]:
    content = [{"type": "text", "text": {"value": text or mid, "annotations": []}}]
    return {"id": mid, "role": role, "created_at": at, "content": content, "run_id": run}


def _calls(sid: str, at: int, *calls: tuple[str, str | None]) -> dict[str, Any]:
    return {
        "id": sid,
        "created_at": at,
        "step_details": {
            "type": "tool_calls",
            "tool_calls": [
                {
                    "id": cid,
                    "type": "function",
                    "function": {"name": "f", "arguments": '{"x": 1}', "output": out},
                }
                for cid, out in calls
            ],
        },
    }


def _made(sid: str, at: int, mid: str) -> dict[str, Any]:
    details = {"type": "message_creation", "message_creation": {"message_id": mid}}
    return {"id": sid, "created_at": at, "step_details": details}


def _run(rid: str, at: int, status: str = "completed") -> dict[str, Any]:
    return {"id": rid, "created_at": at, "status": status, "model": "gpt-4o"}


def _order(plan: Any) -> list[str]:
    found = []
    for m in plan.messages:
        if m.tool_calls:
            found.append("calls:" + ",".join(c["id"] for c in m.tool_calls))
        elif m.role == "tool":
            found.append("output:" + str(m.tool_call_id))
        else:
            found.append(m.content)
    return found


def test_tool_calls_go_where_their_steps_were() -> None:
    """A run's calls go before the message it wrote next; a run's calls after its last
    message go after that message; those of a run that wrote none go by time. A call with
    no output is left out."""
    messages = [
        _msg("q1", "user", 100),
        _msg("a1", "assistant", 100, run="run_1"),  # same second as its calls
        _msg("a2", "assistant", 100, run="run_1"),
        _msg("q2", "user", 200),
        _msg("q3", "user", 300),
    ]
    runs = [_run("run_1", 100), _run("run_2", 250)]
    steps = {
        "run_1": [
            _calls("s1", 100, ("c1", "one"), ("c2", None)),
            _made("s2", 100, "a1"),
            _made("s3", 100, "a2"),
            _calls("s4", 100, ("c3", "three")),
        ],
        "run_2": [_calls("s5", 250, ("c4", "four"))],
    }
    report = Report()
    plan = plan_thread(
        {"id": "t1", "created_at": 99},
        messages,
        runs,
        steps,
        ids=Ids("user_1", "test"),
        report=report,
        at=1000.0,
    )
    assert _order(plan) == [
        "q1",
        "calls:c1",
        "output:c1",
        "a1",
        "a2",
        "calls:c3",
        "output:c3",
        "q2",
        "calls:c4",
        "output:c4",
        "q3",
    ]
    assert report.skipped["tool call without an output (its run ended before it got one)"] == 1
    assert [r.created_at for r in plan.runs] == [100.0, 250.0]
    assert {a["tool_call_id"]: a["output"] for a in plan.actions} == {
        "c1": "one",
        "c3": "three",
        "c4": "four",
    }
    again = plan_thread(
        {"id": "t1"}, messages, runs, steps, ids=Ids("user_1", "test"), report=Report(), at=5.0
    )
    assert [m.id for m in again.messages] == [m.id for m in plan.messages]
    other_user = plan_thread(
        {"id": "t1"}, messages, runs, steps, ids=Ids("user_2", "test"), report=Report(), at=5.0
    )
    assert other_user.id != plan.id
    assert not {m.id for m in other_user.messages} & {m.id for m in plan.messages}
    assert all(len(m.id) <= 40 and m.id.count("_") == 1 for m in plan.messages)


def test_arguments_that_are_not_an_object_are_kept_whole() -> None:
    step = _calls("s1", 1, ("c1", "ok"))
    step["step_details"]["tool_calls"][0]["function"]["arguments"] = "not json"
    report = Report()
    plan = plan_thread(
        {"id": "t"},
        [],
        [_run("r", 1)],
        {"r": [step]},
        ids=Ids("u", "o"),
        report=report,
        at=1.0,
    )
    assert plan.messages[0].tool_calls == [
        {"id": "c1", "name": "f", "arguments": {"input": "not json"}}
    ]
    assert json.dumps(plan.actions[0]["arguments"]) == '{"input": "not json"}'
    assert sum(report.skipped.values()) == 1


def test_the_steps_order_wins_over_times() -> None:
    """Calls a run made after its message go after it, even when the times (whole seconds,
    or a clock that disagrees) say otherwise; the thread's first message as well."""
    messages = [_msg("a0", "assistant", 100, run="r"), _msg("q1", "user", 100)]
    steps = {"r": [_made("s1", 100, "a0"), _calls("s2", 50, ("c1", "out"))]}
    plan = plan_thread(
        {"id": "t"}, messages, [_run("r", 100)], steps, ids=Ids("u", "o"), report=Report(), at=1.0
    )
    assert _order(plan) == ["a0", "calls:c1", "output:c1", "q1"]
