"""Two ``parley serve`` replicas on one database: any replica serves any turn, follows any
run's events, and cancels a turn running on the other."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from parley import Client
from parley.testing.fake_upstream import expected_text, tool_results_text
from tests.harness import FreshDatabase, ParleyServer, free_port, provider_config

TOOL = {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}


@pytest.fixture(scope="module")
def replicas(
    upstream: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ParleyServer, ParleyServer]]:
    tmp = tmp_path_factory.mktemp("replicas")
    db = FreshDatabase(tmp)
    config = provider_config(upstream.base_url, free_port())
    a = ParleyServer(database_url=db.url, workdir=tmp, config=config).start()
    b = ParleyServer(database_url=db.url, workdir=tmp, config=config).start()
    yield a, b
    for srv in (a, b):
        srv.stop()
        srv.assert_clean_log()
    db.drop()


def test_turn_two_is_served_by_the_other_replica(
    replicas: tuple[ParleyServer, ParleyServer],
) -> None:
    a, b = replicas
    key = a.new_user()
    with (
        Client(base_url=a.base_url, api_key=key) as on_a,
        Client(base_url=b.base_url, api_key=key) as on_b,
    ):
        bot = on_a.assistants.create(name="r", model="fake/tools:1", tools=[TOOL])
        with on_a.process(assistant_id=bot.id, content="look it up") as stream:
            events = list(stream)
        manifest = next(e for e in events if e.type == "tool_calls")
        run_id = events[-1].run_id
        action = manifest.actions[0]
        on_b.submit_tool_output(run_id=run_id, tool_call_id=action.tool_call_id, output="found it")
        with on_b.process(run_id=run_id) as stream:
            text = "".join(e.text for e in stream if e.type == "content.delta")
        assert text == tool_results_text([("lookup", "found it")])
        assert on_a.runs.retrieve(run_id).status == "completed"


def test_a_run_is_followed_live_from_the_other_replica(
    replicas: tuple[ParleyServer, ParleyServer],
) -> None:
    a, b = replicas
    key = a.new_user()
    with (
        Client(base_url=a.base_url, api_key=key) as on_a,
        Client(base_url=b.base_url, api_key=key) as on_b,
    ):
        bot = on_a.assistants.create(name="r", model="fake/text:30:30")  # about a second
        stream = on_a.process(assistant_id=bot.id, content="go")
        first = next(iter(stream))
        followed: list[Any] = []
        follower = threading.Thread(target=lambda: followed.extend(on_b.runs.events(first.run_id)))
        follower.start()
        rest = list(stream)
        stream.close()
        follower.join(timeout=30)
        assert not follower.is_alive()
    direct = [first, *rest]
    assert [e.model_dump() for e in followed] == [e.model_dump() for e in direct]
    assert "".join(e.text for e in followed if e.type == "content.delta") == expected_text(30)


def test_cancel_on_one_replica_stops_the_turn_on_the_other(
    replicas: tuple[ParleyServer, ParleyServer], upstream: Any
) -> None:
    a, b = replicas
    key = a.new_user()
    with (
        Client(base_url=a.base_url, api_key=key) as on_a,
        Client(base_url=b.base_url, api_key=key) as on_b,
    ):
        bot = on_a.assistants.create(name="r", model="fake/stall:3")
        stream = on_a.process(assistant_id=bot.id, content="go")
        events = iter(stream)
        texts = []
        for event in events:
            if event.type == "content.delta":
                texts.append(event.text)
                if len(texts) == 3:
                    break
        started = time.monotonic()
        assert on_b.runs.cancel(stream.run_id).status == "cancelled"
        rest = list(events)  # replica A notices at its next checkpoint and ends the stream
        stream.close()
        assert time.monotonic() - started < 5
        assert rest[-1].type == "done" and rest[-1].status == "cancelled"
        messages = on_b.messages.list(thread_id=on_b.runs.retrieve(stream.run_id).thread_id).data
        assert messages[-1].text == "".join(texts)
