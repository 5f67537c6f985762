"""The tokens of Assistants runs, over HTTP on the suite's server and its fake upstream:
each run step's ``usage`` (the model call it is of, each call counted once, so that the
steps add up to the run), in the list, the retrieve and the stream; and
``max_completion_tokens`` as a budget for the whole run, each turn sent what is left of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from parley.testing.fake_upstream import tool_results_text
from tests.e2e.helpers import WEATHER, upstream_requests
from tests.e2e.test_assistants_api import assistant, events_of, finished, thread

RECORDINGS = Path(__file__).parent.parent / "recordings" / "openai_chat"
#: One model call that writes text, then a tool call: 347 prompt tokens, 74 completion.
TEXT_THEN_CALL = RECORDINGS / "langchaingo_deepseek_text_then_tool_call.sse"

OPENAI_NAMES = ("prompt_tokens", "completion_tokens", "total_tokens")
PARLEY_NAMES = ("input_tokens", "output_tokens", "reasoning_tokens", "cached_tokens")


def steps(http: httpx.Client, thread_id: str, run_id: str) -> list[dict[str, Any]]:
    answer = http.get(f"/threads/{thread_id}/runs/{run_id}/steps", params={"order": "asc"})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"])


def added(usages: list[dict[str, Any]]) -> dict[str, int]:
    """The usages field by field, as a run's usage counts them."""
    return {name: sum(u[name] for u in usages) for name in OPENAI_NAMES + PARLEY_NAMES}


def submit(http: httpx.Client, run: dict[str, Any], output: str, **body: Any) -> httpx.Response:
    [call] = run["required_action"]["submit_tool_outputs"]["tool_calls"]
    return http.post(
        f"/threads/{run['thread_id']}/runs/{run['id']}/submit_tool_outputs",
        json={"tool_outputs": [{"tool_call_id": call["id"], "output": output}], **body},
    )


def test_the_step_of_a_text_run_has_its_usage(http: httpx.Client) -> None:
    bot = assistant(http, "fake/text:4")
    t = thread(http, "Count my tokens please")
    run = http.post(f"/threads/{t['id']}/runs", json={"assistant_id": bot["id"]}).json()
    run = finished(http, t["id"], run["id"])
    assert run["status"] == "completed"
    [step] = steps(http, t["id"], run["id"])
    assert step["type"] == "message_creation" and step["status"] == "completed"
    usage = step["usage"]
    assert usage == run["usage"], (usage, run["usage"])
    # The fake upstream counts the words of the messages and one token per chunk.
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (4, 4, 8)
    same = http.get(f"/threads/{t['id']}/runs/{run['id']}/steps/{step['id']}").json()
    assert same["usage"] == usage


def test_the_steps_of_a_tool_round_trip_add_up_to_the_run(http: httpx.Client) -> None:
    bot = assistant(http, "fake/auto", tools=[WEATHER])
    t = thread(http, "Round trip weather in Oslo?")
    run = http.post(f"/threads/{t['id']}/runs", json={"assistant_id": bot["id"]}).json()
    run = finished(http, t["id"], run["id"])
    assert run["status"] == "requires_action"
    first_call = dict(run["usage"])
    [waiting] = steps(http, t["id"], run["id"])
    assert waiting["type"] == "tool_calls" and waiting["status"] == "in_progress"
    assert waiting["usage"] is None  # null while the step is in progress, as OpenAI's

    assert submit(http, run, "cold").status_code == 200
    run = finished(http, t["id"], run["id"])
    assert run["status"] == "completed"
    calls, answer = steps(http, t["id"], run["id"])
    assert (calls["type"], calls["status"]) == ("tool_calls", "completed")
    assert (answer["type"], answer["status"]) == ("message_creation", "completed")
    assert calls["usage"] == first_call and calls["usage"]["completion_tokens"] > 0
    answer_words = len(tool_results_text([("get_weather", "cold")]).split())
    assert answer["usage"]["completion_tokens"] == answer_words
    assert answer["usage"]["prompt_tokens"] > 0
    assert added([calls["usage"], answer["usage"]]) == {
        name: run["usage"][name] for name in OPENAI_NAMES + PARLEY_NAMES
    }


def test_a_call_that_writes_text_and_calls_a_tool_is_counted_once(http: httpx.Client) -> None:
    """One model call makes two steps: its tokens are the first step's (the text), and
    the calls' step that follows counts none, so the steps still add up to the run."""
    bot = assistant(http, f"fake/replay:{TEXT_THEN_CALL}", tools=[WEATHER])
    t = thread(http, "Weather in Boston?")
    run = http.post(f"/threads/{t['id']}/runs", json={"assistant_id": bot["id"]}).json()
    run = finished(http, t["id"], run["id"])
    assert run["status"] == "requires_action"
    assert (run["usage"]["prompt_tokens"], run["usage"]["completion_tokens"]) == (347, 74)
    text, calls = steps(http, t["id"], run["id"])
    assert (text["type"], text["status"]) == ("message_creation", "completed")
    assert text["usage"] == run["usage"]
    assert (calls["type"], calls["status"], calls["usage"]) == ("tool_calls", "in_progress", None)

    cancelled = http.post(f"/threads/{t['id']}/runs/{run['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    text, calls = steps(http, t["id"], run["id"])
    assert calls["status"] == "cancelled" and text["usage"] == run["usage"]
    assert calls["usage"] == dict.fromkeys(OPENAI_NAMES + PARLEY_NAMES, 0)


def test_streamed_completed_steps_carry_their_usage(http: httpx.Client) -> None:
    bot = assistant(http, "fake/auto", tools=[WEATHER])
    t = thread(http, "Streamed weather in Rome?")
    first = events_of(
        http.post(f"/threads/{t['id']}/runs", json={"assistant_id": bot["id"], "stream": True})
    )
    created = [d for name, d in first if name == "thread.run.step.created"]
    assert created and all(step["usage"] is None for step in created)
    name, run = first[-2]
    assert name == "thread.run.requires_action"
    resumed = events_of(submit(http, run, "hot", stream=True))
    done = [d for name, d in resumed if name == "thread.run.step.completed"]
    assert [s["step_details"]["type"] for s in done] == ["tool_calls", "message_creation"]
    assert done[0]["usage"] == run["usage"]  # the first call's, now that its step completed
    assert all(s["usage"]["completion_tokens"] > 0 for s in done)
    name, final = resumed[-2]
    assert name == "thread.run.completed"
    assert added([s["usage"] for s in done]) == {
        name: final["usage"][name] for name in OPENAI_NAMES + PARLEY_NAMES
    }
    assert [s["usage"] for s in steps(http, t["id"], run["id"])] == [s["usage"] for s in done]


def test_each_turn_gets_what_is_left_of_max_completion_tokens(
    http: httpx.Client, upstream: Any
) -> None:
    budget = 6
    bot = assistant(http, "fake/auto", tools=[WEATHER])
    t = thread(http, "Budgeted weather in Lima?")
    run = http.post(
        f"/threads/{t['id']}/runs",
        json={"assistant_id": bot["id"], "max_completion_tokens": budget},
    ).json()
    run = finished(http, t["id"], run["id"])
    assert run["status"] == "requires_action" and run["max_completion_tokens"] == budget
    spent = run["usage"]["completion_tokens"]
    assert 0 < spent < budget - 1
    assert submit(http, run, "humid").status_code == 200
    run = finished(http, t["id"], run["id"])
    first, second = upstream_requests(upstream, "Budgeted weather in Lima?")
    assert first["max_tokens"] == budget
    assert second["messages"][-1]["role"] == "tool" and second["max_tokens"] == budget - spent
    # The answer after the tool result is longer than what was left: cut there.
    assert run["status"] == "incomplete"
    assert run["incomplete_details"] == {"reason": "max_completion_tokens"}
    assert run["usage"]["completion_tokens"] == budget


def test_a_run_whose_budget_is_used_up_ends_before_its_next_call(
    http: httpx.Client, upstream: Any
) -> None:
    bot = assistant(http, "fake/auto", tools=[WEATHER])
    t = thread(http, "Spent weather in Quito?")
    run = http.post(
        f"/threads/{t['id']}/runs",
        json={"assistant_id": bot["id"], "max_completion_tokens": 2},
    ).json()
    run = finished(http, t["id"], run["id"])
    # The fake upstream never cuts a tool call: the first call used more than the budget.
    assert run["status"] == "requires_action" and run["usage"]["completion_tokens"] > 2
    pairs = events_of(submit(http, run, "windy", stream=True))
    assert [name for name, _ in pairs] == [
        "thread.run.step.completed",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.incomplete",
        "done",
    ]
    ended = pairs[-2][1]
    assert ended["incomplete_details"] == {"reason": "max_completion_tokens"}
    assert ended["usage"] == run["usage"]  # no second call: nothing more counted
    assert len(upstream_requests(upstream, "Spent weather in Quito?")) == 1
    stored = http.get(f"/threads/{t['id']}/runs/{run['id']}").json()
    assert stored["status"] == "incomplete" and stored["incomplete_details"] == {
        "reason": "max_completion_tokens"
    }
    [calls] = steps(http, t["id"], run["id"])
    assert calls["status"] == "completed" and calls["usage"] == run["usage"]
    listed = http.get(f"/threads/{t['id']}/messages").json()["data"]
    assert [m["role"] for m in listed] == ["user"]


def test_a_turn_that_asks_the_model_again_sends_what_its_first_call_left(
    http: httpx.Client, upstream: Any
) -> None:
    """A call whose tool arguments could not be read is answered with a tool error and
    the model asked again in the same turn: that call gets what the first one left."""
    budget = 400
    bot = assistant(http, "fake/badargs", tools=[WEATHER])
    t = thread(http, "Unreadable weather in Bern?")
    run = http.post(
        f"/threads/{t['id']}/runs",
        json={"assistant_id": bot["id"], "max_completion_tokens": budget},
    ).json()
    run = finished(http, t["id"], run["id"])
    assert run["status"] == "completed"
    first, second = upstream_requests(upstream, "Unreadable weather in Bern?")
    # The call the run answered itself with a tool error is a completed step, so the
    # steps still add up to the run.
    calls, answer = steps(http, t["id"], run["id"])
    assert (calls["type"], calls["status"]) == ("tool_calls", "completed")
    [detail] = calls["step_details"]["tool_calls"]
    assert detail["function"]["output"] == second["messages"][-1]["content"]
    assert (answer["type"], answer["status"]) == ("message_creation", "completed")
    assert added([calls["usage"], answer["usage"]]) == {
        name: run["usage"][name] for name in OPENAI_NAMES + PARLEY_NAMES
    }
    spent = calls["usage"]["completion_tokens"]
    assert spent > 0
    assert (first["max_tokens"], second["max_tokens"]) == (budget, budget - spent)


def test_a_new_thread_and_run_calls_the_model_once_within_its_budget(
    http: httpx.Client, upstream: Any
) -> None:
    """``threads/runs`` starts its model call while the run is being stored; the call it
    starts so is the one the run would make, budget included, so it is kept."""
    bot = assistant(http, "fake/text:3")
    body = {
        "assistant_id": bot["id"],
        "thread": {"messages": [{"role": "user", "content": "Early budget words"}]},
        "max_completion_tokens": 50,
    }
    run = http.post("/threads/runs", json=body).json()
    run = finished(http, run["thread_id"], run["id"])
    assert run["status"] == "completed"
    [sent] = upstream_requests(upstream, "Early budget words")
    assert sent["max_tokens"] == 50
