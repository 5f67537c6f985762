"""``POST /api/messages/process``: the seed's flow A as the browser sees it, over real HTTP
against the real Parley server (demo model and fake upstream)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from parley.sdk import Client
from parley.testing.fake_upstream import expected_text
from parley.types import TERMINAL_STATUSES, Usage
from parley.web import ToolRegistry, create_app, default_tools, exchange
from tests.web.conftest import SECRET, Browser, Events, read_events, serve


def _names(events: Events) -> list[str]:
    return [name for name, _ in events]


def _one(events: Events, name: str) -> dict[str, Any]:
    found = [data for n, data in events if n == name]
    assert len(found) == 1, (name, events)
    return found[0]


def _text(events: Events, name: str = "content.delta") -> str:
    return "".join(data["text"] for n, data in events if n == name)


def _states(events: Events) -> list[str]:
    return [data["state"] for n, data in events if n == "status"]


def test_calculator_through_the_demo_model(browser: Browser, sdk: Client) -> None:
    events = browser.process("calculator (2+3)*4 - 2**3")
    names = _names(events)
    assert names[0] == "thread" and names[-1] == "done"
    thread = events[0][1]
    assert thread["title"] == "calculator (2+3)*4 - 2**3"
    run_id = _one(events, "run")["run_id"]

    # The order of the flow: run → first stream → tool call → tools → result → second stream.
    expected = ["message", "run", "streaming", "tools", "tools_done", "streaming", "done"]
    assert _states(events) == expected
    order = [n for n in names if n in ("run", "tool.start", "tool.result", "content.delta", "done")]
    first_content = order.index("content.delta")
    assert order[:first_content] == ["run", "tool.start", "tool.result"]
    assert set(order[first_content:-1]) == {"content.delta"}

    call = _one(events, "tool.start")
    assert call["name"] == "calculator" and call["arguments"] == {"expression": "(2+3)*4 - 2**3"}
    result = _one(events, "tool.result")
    assert result == {
        "type": "tool.result",
        "tool_call_id": call["tool_call_id"],
        "name": "calculator",
        "output": "12",
        "is_error": False,
    }
    assert '"12"' in _text(events)
    assert _text(events, "reasoning.delta")  # the demo reasons first
    usage = _one(events, "usage")
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    # every turn's tokens added up: the run's, the reasoning (the demo reasons on each turn)
    # among the output
    assert 0 < usage["reasoning_tokens"] < usage["output_tokens"]
    run_usage = sdk.runs.retrieve(run_id).usage
    assert {"type": "usage", "run_id": run_id, **Usage.of(run_usage).model_dump()} == usage
    assert (run_usage.prompt_tokens, run_usage.completion_tokens, run_usage.total_tokens) == (
        usage["input_tokens"],
        usage["output_tokens"],
        usage["input_tokens"] + usage["output_tokens"],
    )
    done = {
        "type": "done",
        "status": "completed",
        "run_id": run_id,
        "thread_id": thread["thread_id"],
    }
    assert _one(events, "done") == done

    # What the server kept, as the page reads it back.
    messages = browser.get(f"/api/threads/{thread['thread_id']}/messages").json()["data"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[1]["tool_calls"] == [
        {"id": call["tool_call_id"], "name": "calculator", "arguments": call["arguments"]}
    ]
    assert messages[2]["tool_call_id"] == call["tool_call_id"] and messages[2]["content"] == "12"
    assert messages[3]["content"] == _text(events) and messages[3]["run_id"] == run_id
    assert "reasoning" in messages[3] and "tool_calls" not in messages[3]
    assert sdk.runs.retrieve(run_id).model == "demo/parley"
    listed = browser.get("/api/threads").json()["data"]
    assert [t["title"] for t in listed] == ["calculator (2+3)*4 - 2**3"]


def test_a_conversation_goes_on_in_its_thread_with_the_chosen_model(
    browser: Browser, sdk: Client
) -> None:
    first = browser.process("Hello, who are you?", model="fake/text:4")
    thread_id = first[0][1]["thread_id"]
    assert _text(first) == expected_text(4)
    assert _states(first) == ["message", "run", "streaming", "done"]
    second = browser.process("current_time Europe/Lisbon", thread_id=thread_id, model="demo/x")
    assert second[0][1] == {
        "type": "thread",
        "thread_id": thread_id,
        "title": "Hello, who are you?",
    }
    result = _one(second, "tool.result")
    assert result["is_error"] is False and "Europe/Lisbon" in result["output"]
    run_id = _one(second, "run")["run_id"]
    assert sdk.runs.retrieve(run_id).model == "demo/x"
    assert len(browser.get("/api/threads").json()["data"]) == 1
    roles = [m["role"] for m in browser.get(f"/api/threads/{thread_id}/messages").json()["data"]]
    assert roles == ["user", "assistant", "user", "assistant", "tool", "assistant"]


def test_a_long_first_message_names_the_thread_with_its_start(browser: Browser) -> None:
    text = "Please tell me " + "a great deal about Lisbon " * 10
    thread = browser.process(text, model="fake/text:2")[0][1]
    assert len(thread["title"]) <= 60 and thread["title"].startswith("Please tell me a great")
    assert browser.get("/api/threads").json()["data"][0]["title"] == thread["title"]


def test_tool_failures_go_back_to_the_model_as_errors(browser: Browser) -> None:
    events = browser.process("calculator 1/0")
    result = _one(events, "tool.result")
    assert result["is_error"] is True
    assert result["output"] == "Error: division by zero"
    assert '"Error: division by zero"' in _text(events)
    assert _one(events, "done")["status"] == "completed"


def test_parallel_calls_are_answered_each_with_its_own_id(browser: Browser) -> None:
    events = browser.process("hi", model="fake/tools:2")  # current_time, calculator
    calls = [data for n, data in events if n == "tool.start"]
    results = [data for n, data in events if n == "tool.result"]
    assert [c["name"] for c in calls] == ["current_time", "calculator"]
    assert [r["tool_call_id"] for r in results] == [c["tool_call_id"] for c in calls]
    assert all(r["is_error"] for r in results)  # "timezone 0", "expression 1": not valid
    assert "Fake upstream got tool results" in _text(events)
    assert _one(events, "done")["status"] == "completed"


def test_a_provider_error_is_an_error_event_then_done(browser: Browser) -> None:
    events = browser.process("hello", model="fake/error:500")
    assert _names(events)[-4:] == ["error", "usage", "status", "done"]
    error = _one(events, "error")
    assert error["code"] and "500" in error["message"]
    assert _one(events, "done")["status"] == "failed"
    # The thread is not stuck: the next message is answered.
    thread_id = events[0][1]["thread_id"]
    again = browser.process("hello again", thread_id=thread_id, model="fake/text:2")
    assert _one(again, "done")["status"] == "completed"


def test_an_unknown_model_is_an_error_event(browser: Browser) -> None:
    events = browser.process("hello", model="nowhere/model")
    error = _one(events, "error")
    assert "nowhere/model" in error["message"]
    done = {
        "type": "done",
        "status": "failed",
        "run_id": None,
        "thread_id": events[0][1]["thread_id"],
    }
    assert _one(events, "done") == done


def test_stop_cancels_the_run_and_keeps_what_arrived(browser: Browser, sdk: Client) -> None:
    events: Events = []
    with browser.open_stream("tell me a story", model="fake/slow:200") as response:
        for name, data in read_events(response):
            events.append((name, data))
            if name == "content.delta" and _names(events).count("content.delta") == 2:  # Stop, once
                run_id = _one(events, "run")["run_id"]
                stopped = browser.post(f"/api/runs/{run_id}/cancel")
                assert stopped.json() == {"id": run_id, "status": "cancelled"}
    assert _one(events, "done")["status"] == "cancelled"
    assert _states(events)[-1] == "done"
    assert "error" not in _names(events)
    partial = _text(events)
    assert partial and expected_text().startswith(partial) and partial != expected_text()
    thread_id = events[0][1]["thread_id"]
    messages = browser.get(f"/api/threads/{thread_id}/messages").json()["data"]
    assert messages[-1]["role"] == "assistant"
    assert expected_text().startswith(messages[-1]["content"]) and messages[-1]["content"]
    # Stopping a finished run tells its status.
    again = browser.post(f"/api/runs/{run_id}/cancel")
    assert again.json() == {"id": run_id, "status": "cancelled"}


def test_too_many_tool_rounds_stop_the_run(
    browser: Browser, sdk: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exchange, "MAX_TOOL_ROUNDS", 0)
    events = browser.process("calculator 1+1")
    assert _one(events, "error")["code"] == "too_many_tool_rounds"
    assert "tool.result" not in _names(events)
    done = _one(events, "done")
    assert done["status"] == "cancelled"
    assert sdk.runs.retrieve(done["run_id"]).status == "cancelled"


@pytest.fixture
def held_tool() -> tuple[ToolRegistry, threading.Event, threading.Event]:
    """The default tools plus ``hold``, which waits until the test lets it go."""
    tools = default_tools()
    started, release = threading.Event(), threading.Event()

    @tools.tool(description="Wait for the test.")
    def hold(note: str) -> str:
        started.set()
        assert release.wait(30)
        return f"held {note}"

    return tools, started, release


def test_a_browser_that_leaves_mid_stream_still_gets_its_answer(
    server: Any, user_key: str, sdk: Client, held_tool: Any
) -> None:
    """The page goes away while the app runs a tool: the app still submits the output and
    streams the final turn, so the thread holds the whole answer."""
    tools, started, release = held_tool
    app = create_app(base_url=server.base_url, api_key=user_key, tools=tools, secret_key=SECRET)
    for web in serve(app):
        b = Browser(web.url)
        b.open_page()
        with b.open_stream("hold on") as response:
            for name, data in read_events(response):
                if name == "run":
                    run_id = data["run_id"]
                if name == "status" and data["state"] == "tools":
                    break
        assert started.wait(30)
        release.set()  # the browser is gone by now: the rest happens unwatched
        deadline = time.monotonic() + 30
        while (run := sdk.runs.retrieve(run_id)).status not in TERMINAL_STATUSES:
            assert time.monotonic() < deadline, run.status
            time.sleep(0.05)
        assert run.status == "completed"
        messages = sdk.messages.list(thread_id=run.thread_id).data
        assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant"]
        assert messages[2].text == "held on" and '"held on"' in messages[3].text
        # The app is still fine.
        assert _one(b.process("hello", model="fake/text:1"), "done")["status"] == "completed"
        b.close()


def test_the_app_keeps_one_assistant_with_its_tools(
    browser: Browser, other_browser: Browser, sdk: Client
) -> None:
    browser.process("hello", model="fake/text:1")
    other_browser.process("hello", model="fake/text:1")
    mine = [a for a in sdk.assistants.list(limit=100).data if a.name == "Parley web"]
    assert len(mine) == 1
    assert [t.function.name for t in mine[0].tools] == ["current_time", "calculator"]


def test_a_tool_of_your_own_is_added_to_the_assistant(
    server: Any, user_key: str, sdk: Client, browser: Browser
) -> None:
    """The documented way to add a tool; the app's assistant gets it on the next start."""
    browser.process("hello", model="fake/text:1")  # the assistant with the two built-ins
    glossary = {"parley": "a discussion between enemies"}
    tools = default_tools()

    @tools.tool(description="Look up a word in the glossary.")
    def lookup(word: str) -> str:
        return glossary.get(word.lower(), "not in the glossary")

    app = create_app(base_url=server.base_url, api_key=user_key, tools=tools, secret_key=SECRET)
    for web in serve(app):
        b = Browser(web.url)
        b.open_page()
        events = b.process("lookup Parley")
        assert _one(events, "tool.result")["output"] == "a discussion between enemies"
        b.close()
    mine = [a for a in sdk.assistants.list(limit=100).data if a.name == "Parley web"]
    assert len(mine) == 1
    assert [t.function.name for t in mine[0].tools] == ["current_time", "calculator", "lookup"]


def test_stop_while_the_tools_run_is_not_an_error(
    server: Any, user_key: str, sdk: Client, held_tool: Any
) -> None:
    tools, started, release = held_tool
    app = create_app(base_url=server.base_url, api_key=user_key, tools=tools, secret_key=SECRET)
    for web in serve(app):
        b = Browser(web.url)
        b.open_page()
        events: Events = []
        with b.open_stream("hold still") as response:
            for name, data in read_events(response):
                events.append((name, data))
                if name == "status" and data["state"] == "tools":
                    assert started.wait(30)
                    run_id = _one(events, "run")["run_id"]
                    assert b.post(f"/api/runs/{run_id}/cancel").json()["status"] == "cancelled"
                    release.set()
        b.close()
    assert "error" not in _names(events), events
    assert _one(events, "done")["status"] == "cancelled"
    assert _states(events)[-1] == "done" and "tools_done" not in _states(events)
    assert sdk.runs.retrieve(run_id).status == "cancelled"
