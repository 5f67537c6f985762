"""The ``file_search`` tool on the Assistants API, driven by the official ``openai`` SDK:
a message's attachment goes into the thread's vector store (made with it), the server's
ingestion worker indexes it, and a run of an assistant with ``file_search`` searches it:
its run step is a ``file_search`` call (results' text with ``include[]``) and the answer's
text cites the file. Parley's own runs take the same tool (``vector_store_ids`` given),
shown in the run's stream as ``hosted_tool`` events."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
import pytest_asyncio
from sqlalchemy import select

from parley.store.db import Database
from parley.store.tables import vector_store_files
from tests.e2e.responses_providers_helpers import serving_with
from tests.file_search.helpers import OWLS, OWLS_FILE, file_search_tool
from tests.openai_sdk.assistants import Recorder, streamed_message

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    # The SDK marks its Assistants API deprecated (OpenAI is retiring it).
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]
CONTENT = "step_details.tool_calls[*].file_search.results[*].content"


class Served:
    def __init__(
        self, http: httpx.AsyncClient, sdk: openai.AsyncOpenAI, db: Database, other: str
    ) -> None:
        self.http, self.sdk, self.db = http, sdk, db
        #: Another user's API key.
        self.other = other


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    tmp = tmp_path_factory.mktemp("file-search-assistants")
    async with serving_with(tmp, {}, {}) as (server, http):
        key = http.headers["Authorization"].removeprefix("Bearer ")
        sdk = openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key=key, max_retries=0)
        db = Database(server.database_url)
        try:
            yield Served(http, sdk, db, server.new_user("other"))
        finally:
            await sdk.close()
            await db.dispose()


#: How long the ingestion worker may take to index a file.
INDEXING = 30.0


async def indexed(db: Database, store_id: str) -> None:
    """Wait (a deadline, no fixed sleep) until the worker has indexed the store's files."""
    deadline = time.monotonic() + INDEXING

    def statuses(conn: Any) -> list[str]:
        query = select(vector_store_files.c.status).where(
            vector_store_files.c.vector_store_id == store_id
        )
        return [str(s) for s in conn.execute(query).scalars()]

    while True:
        found = await db.read(statuses)
        if found and all(s != "in_progress" for s in found):
            assert found == ["completed"], found
            return
        assert time.monotonic() < deadline, f"not indexed in {INDEXING} s: {found}"
        await asyncio.sleep(0.05)  # polled, up to the deadline


async def searching_assistant(served: Served) -> tuple[Any, Any]:
    """``OWLS_FILE`` uploaded in a store of its own, indexed, and an assistant that
    searches that store (its ``tool_resources``): ``(file, assistant)``."""
    sdk = served.sdk
    made = await sdk.files.create(file=(OWLS_FILE, OWLS.encode()), purpose="assistants")
    store = await sdk.vector_stores.create(file_ids=[made.id])
    await indexed(served.db, store.id)
    assistant = await sdk.beta.assistants.create(
        model="demo/parley",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    return made, assistant


async def test_an_attachment_is_searched_and_cited(served: Served) -> None:
    sdk = served.sdk
    made = await sdk.files.create(file=(OWLS_FILE, OWLS.encode()), purpose="assistants")
    assistant = await sdk.beta.assistants.create(
        model="demo/parley",
        tools=[{"type": "file_search", "file_search": {"max_num_results": 5}}],
    )
    (tool,) = assistant.tools
    assert tool.type == "file_search" and tool.file_search.max_num_results == 5  # type: ignore[union-attr]
    thread = await sdk.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": "file_search how do owls hunt?",
                "attachments": [{"file_id": made.id, "tools": [{"type": "file_search"}]}],
            }
        ]
    )
    assert thread.tool_resources is not None and thread.tool_resources.file_search is not None
    (store_id,) = thread.tool_resources.file_search.vector_store_ids or []
    await indexed(served.db, store_id)

    run = await sdk.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id
    )
    assert run.status == "completed", run.last_error
    steps = await sdk.beta.threads.runs.steps.list(
        run_id=run.id, thread_id=thread.id, include=[CONTENT], order="asc"
    )
    calls = [c for s in steps.data if s.type == "tool_calls" for c in s.step_details.tool_calls]  # type: ignore[union-attr]
    (search,) = calls
    assert search.type == "file_search"
    (result,) = search.file_search.results or []  # type: ignore[union-attr]
    assert (result.file_id, result.file_name) == (made.id, OWLS_FILE)
    assert result.content and OWLS in (result.content[0].text or "")
    plain = await sdk.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id)
    shown = [c for s in plain.data if s.type == "tool_calls" for c in s.step_details.tool_calls]  # type: ignore[union-attr]
    assert shown[0].file_search.results[0].content is None  # type: ignore[union-attr,index]

    # The same thread again, streamed: the message completed cites the file.
    await sdk.beta.threads.messages.create(
        thread_id=thread.id, role="user", content="file_search owls at night"
    )
    stream = await sdk.beta.threads.runs.create(
        thread_id=thread.id, assistant_id=assistant.id, stream=True
    )
    events = [event async for event in stream]
    completed = [e.data for e in events if e.event == "thread.message.completed"]
    assert events[-1].event == "thread.run.completed", [e.event for e in events]
    said = completed[-1].content[0].text  # type: ignore[union-attr]
    assert OWLS in said.value and said.annotations, said
    searched = [
        c
        for e in events
        if e.event == "thread.run.step.delta"
        for c in e.data.delta.step_details.tool_calls or ()  # type: ignore[union-attr]
    ]
    assert [c.type for c in searched] == ["file_search"]
    step_id = next(
        e.data.id
        for e in events
        if e.event == "thread.run.step.created" and e.data.type == "tool_calls"  # type: ignore[union-attr]
    )
    names = [e.event for e in events if getattr(e.data, "id", None) == step_id]
    assert names == [
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.run.step.delta",
        "thread.run.step.completed",
    ], names

    messages = await sdk.beta.threads.messages.list(thread_id=thread.id, run_id=run.id)
    (answer,) = messages.data
    text = answer.content[0].text  # type: ignore[union-attr]
    assert OWLS in text.value
    assert text.annotations, text
    for cited in text.annotations:
        assert cited.type == "file_citation" and cited.file_citation.file_id == made.id  # type: ignore[union-attr]
        assert text.value[cited.start_index : cited.end_index] in (OWLS_FILE, f"[{OWLS_FILE}]")


async def test_a_streamed_search_fires_the_handlers_as_openais_does(served: Served) -> None:
    """Through ``AssistantEventHandler``: the search is one call, created and done with
    ``file_search: {}`` and no delta (OpenAI's stream gives it one delta, its results in
    the completed step), then the answer's text created, in deltas, and done, citing the
    file."""
    sdk = served.sdk
    _, assistant = await searching_assistant(served)
    thread = await sdk.beta.threads.create(
        messages=[{"role": "user", "content": "file_search how do owls hunt?"}]
    )

    def streamed() -> Recorder:
        handler = Recorder()
        with (
            openai.OpenAI(base_url=str(sdk.base_url), api_key=sdk.api_key, max_retries=0) as c,
            c.beta.threads.runs.stream(
                thread_id=thread.id, assistant_id=assistant.id, event_handler=handler
            ) as stream,
        ):
            stream.until_done()
        return handler

    handler = await asyncio.to_thread(streamed)
    assert handler.get_final_run().status == "completed"
    [(call_id, kind, given)] = handler.named("tool_call_created")
    assert (kind, given) == ("file_search", {"ranking_options": None, "results": None})
    assert handler.named("tool_call_delta") == []
    # Done as it was created (the SDK says so again at each step's and the run's end).
    dones = handler.named("tool_call_done")
    assert dones and all(done == (call_id, kind, given) for done in dones), dones
    steps = handler.get_final_run_steps()
    [searched] = [c for s in steps if s.type == "tool_calls" for c in s.step_details.tool_calls]  # type: ignore[union-attr]
    assert searched.id == call_id
    names = handler.content()
    assert names == streamed_message(len(names)), names
    [text] = handler.named("text_done")
    assert OWLS in text and "".join(handler.named("text_delta")) == text
    [answer] = handler.get_final_messages()
    assert answer.content[0].text.annotations  # type: ignore[union-attr]


async def test_parleys_own_runs_search_and_show_it(served: Served) -> None:
    """``POST /v1/process`` with the tool on the run: the stream's ``hosted_tool`` events."""
    sdk = served.sdk
    made = await sdk.files.create(file=(OWLS_FILE, OWLS.encode()), purpose="assistants")
    store = await served.http.post("/vector_stores", json={"file_ids": [made.id]})
    if store.status_code == 404:
        pytest.skip("the /v1/vector_stores routes are not in this tree yet")
    assert store.status_code == 200, store.text
    store_id = store.json()["id"]
    await indexed(served.db, store_id)
    assistant = await served.http.post(
        "/assistants",
        json={"model": "demo/parley", "tools": [file_search_tool(store_id)]},
    )
    assert assistant.status_code == 200, assistant.text
    thread = (await served.http.post("/threads", json={})).json()
    said = {"thread_id": thread["id"], "content": "file_search how do owls hunt?"}
    assert (await served.http.post("/messages", json=said)).status_code == 201
    run = await served.http.post(
        "/runs", json={"thread_id": thread["id"], "assistant_id": assistant.json()["id"]}
    )
    assert run.status_code == 201, run.text
    assert run.json()["tools"][0]["vector_store_ids"] == [store_id]
    events = await stream_events(served.http, {"run_id": run.json()["id"]})
    hosted = [(d["phase"], d["item"]) for e, d in events if e == "hosted_tool"]
    assert [(phase, item["type"]) for phase, item in hosted] == [
        ("started", "file_search_call"),
        ("done", "file_search_call"),
    ]
    done = hosted[1][1]
    assert done["status"] == "completed" and done["queries"] == ["how do owls hunt?"]
    assert [r["file_id"] for r in done["results"]] == [made.id]
    said_back = "".join(d["text"] for e, d in events if e == "content.delta")
    assert OWLS in said_back
    other = await served.http.post(
        "/runs",
        json={
            "thread_id": thread["id"],
            "assistant_id": assistant.json()["id"],
            "tools": [file_search_tool("vs_nothing")],
        },
    )
    assert other.status_code == 404 and other.json()["error"]["code"] == "vector_store_not_found"


async def test_an_assistants_api_assistant_run_by_parleys_own_api_searches_its_stores(
    served: Served,
) -> None:
    """An assistant made through the Assistants API keeps its store in ``tool_resources``;
    a run of it through ``/v1/runs`` (its tool naming no store) searches that store."""
    made, assistant = await searching_assistant(served)
    thread = (await served.http.post("/threads", json={})).json()
    said = {"thread_id": thread["id"], "content": "file_search how do owls hunt?"}
    assert (await served.http.post("/messages", json=said)).status_code == 201
    run = await served.http.post(
        "/runs", json={"thread_id": thread["id"], "assistant_id": assistant.id}
    )
    assert run.status_code == 201, run.text
    events = await stream_events(served.http, {"run_id": run.json()["id"]})
    done = [d["item"] for e, d in events if e == "hosted_tool" and d["phase"] == "done"]
    assert [r["file_id"] for r in done[0]["results"]] == [made.id], done


async def stream_events(http: httpx.AsyncClient, body: dict[str, Any]) -> list[tuple[str, Any]]:
    """The ``(event, data)`` of a turn streamed by ``POST /v1/completions``."""
    events: list[tuple[str, Any]] = []
    async with http.stream("POST", "/completions", json=body) as answer:
        assert answer.status_code == 200
        name = ""
        async for line in answer.aiter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
    return events


async def test_tool_resources_make_or_name_a_store_of_the_callers_own(served: Served) -> None:
    sdk = served.sdk
    made = await sdk.files.create(file=("notes.txt", b"Herons fish at dawn."), purpose="assistants")
    assistant = await sdk.beta.assistants.create(
        model="demo/parley",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_stores": [{"file_ids": [made.id]}]}},
    )
    assert assistant.tool_resources and assistant.tool_resources.file_search
    (store_id,) = assistant.tool_resources.file_search.vector_store_ids or []
    again = await sdk.beta.assistants.retrieve(assistant.id)
    assert again.tool_resources == assistant.tool_resources
    thread = await sdk.beta.threads.create(
        tool_resources={"file_search": {"vector_store_ids": [store_id]}}
    )
    assert thread.tool_resources.file_search.vector_store_ids == [store_id]  # type: ignore[union-attr]

    # Another user names the store: 404, as for a store that does not exist.
    theirs = {"Authorization": f"Bearer {served.other}"}
    for store in (store_id, "vs_nothing"):
        missing = await served.http.post(
            "/assistants",
            headers=theirs,
            json={
                "model": "demo/parley",
                "tool_resources": {"file_search": {"vector_store_ids": [store]}},
            },
        )
        assert missing.status_code == 404, missing.text
        assert missing.json()["error"]["code"] == "vector_store_not_found"
    unknown_file = await served.http.post(
        "/threads",
        json={
            "messages": [
                {
                    "role": "user",
                    "content": "Hi",
                    "attachments": [
                        {"file_id": "file-nothing", "tools": [{"type": "file_search"}]}
                    ],
                }
            ]
        },
    )
    assert unknown_file.status_code == 404, unknown_file.text
    assert unknown_file.json()["error"]["code"] == "file_not_found"


async def test_a_runs_tools_can_be_sent_back_as_they_came(served: Served) -> None:
    """A run's ``tools`` show what its request could give: not the keys the server keeps
    for itself (the thread's stores it waits for, what ``include`` asked to show), which a
    new run's request would refuse as unknown."""
    sdk = served.sdk
    made = await sdk.files.create(file=(OWLS_FILE, OWLS.encode()), purpose="assistants")
    assistant = await sdk.beta.assistants.create(model="demo/parley")
    thread = await sdk.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": "file_search how do owls hunt?",
                "attachments": [{"file_id": made.id, "tools": [{"type": "file_search"}]}],
            }
        ]
    )
    run = await sdk.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        tools=[{"type": "file_search"}],
        include=[CONTENT],  # type: ignore[list-item]
    )
    assert run.status == "completed", run.last_error
    raw = await served.http.get(
        f"/threads/{thread.id}/runs/{run.id}", headers={"OpenAI-Beta": "assistants=v2"}
    )
    assert raw.status_code == 200, raw.text
    (tool,) = raw.json()["tools"]
    assert tool["type"] == "file_search"
    assert not {"thread_vector_store_ids", "include_results"} & set(tool), tool
    again = await sdk.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        tools=raw.json()["tools"],
    )
    assert again.status == "completed", again.last_error
