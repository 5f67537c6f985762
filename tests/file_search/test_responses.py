"""The ``file_search`` tool on ``POST /v1/responses``, driven by the official ``openai``
SDK: the demo model calls it for a message naming it, the server searches the user's
store within the turn, and the answer quotes the passage and cites its file; the same
over the fake upstream of every provider kind (the scripted model calls
``file_search`` in its provider's wire format, and the next model call carries the
passage, naming its file; on Chat Completions and Gemini beside an MCP call, whose hook
swaps in the model's next answer). Other users' stores answer 404 and their chunks are
never found.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import pytest_asyncio
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from parley.store.db import Database
from tests.e2e.responses_providers_helpers import (
    ANSWER,
    AnthropicUpstream,
    Call,
    CallsTurn,
    ChatUpstream,
    DemoModel,
    GeminiUpstream,
    OllamaUpstream,
    RecordingMCP,
    ResponsesUpstream,
    TextTurn,
    Upstream,
    one_model_turns,
    serving_with,
)
from tests.e2e.test_mcp_providers import mcp_tool, offered_names, results_of
from tests.file_search.helpers import (
    OWLS,
    OWLS_FILE,
    THEIRS,
    Library,
    file_search_tool,
    indexed_store,
    user_id_of,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

#: The kinds whose fakes queue a turn's answers (the second model call, after the search,
#: takes the next one).
QUEUED: dict[str, type[Upstream]] = {
    "openai-responses": ResponsesUpstream,
    "anthropic": AnthropicUpstream,
    "ollama": OllamaUpstream,
}
#: The kinds whose fakes answer by model name: their next answer is swapped in while the
#: turn runs an MCP call beside the search (the test MCP server's hook).
BY_NAME: dict[str, type[Upstream]] = {"openai-chat": ChatUpstream, "gemini": GeminiUpstream}
UPSTREAMS: dict[str, type[Upstream]] = {**QUEUED, **BY_NAME, "demo": DemoModel}
INCLUDE = ["file_search_call.results"]
STREAM_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def library(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Library]:
    tmp = tmp_path_factory.mktemp("file-search")
    upstreams = {kind: cls(tmp, 4) for kind, cls in UPSTREAMS.items()}
    mcp = RecordingMCP()
    with mcp.serve() as mcp_url:
        async with _serving(tmp, upstreams, mcp, mcp_url) as library:
            yield library


@contextlib.asynccontextmanager
async def _serving(
    tmp: Path, upstreams: dict[str, Upstream], mcp: RecordingMCP, mcp_url: str
) -> AsyncIterator[Library]:
    env = {"PARLEY_MCP_ALLOW_URLS": "127.0.0.1"}
    async with serving_with(tmp, upstreams, env) as (server, http):
        db = Database(server.database_url)
        other_key = server.new_user("other")
        other = httpx.AsyncClient(
            base_url=f"{server.base_url}/v1",
            headers={"Authorization": f"Bearer {other_key}"},
            timeout=30,
        )
        key = http.headers["Authorization"].removeprefix("Bearer ")
        sdk = openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key=key, max_retries=0)
        try:
            mine = await user_id_of(db, key)
            theirs = await user_id_of(db, other_key)
            store_id, file_id = await indexed_store(db, http, mine, OWLS_FILE, OWLS)
            other_store, _ = await indexed_store(db, other, theirs, "secret.txt", THEIRS)
            yield Library(
                http, sdk, db, store_id, file_id, other_store, other, upstreams, mcp, mcp_url
            )
        finally:
            await sdk.close()
            await other.aclose()
            await db.dispose()


def check_call(item: Any, *, results: bool) -> None:
    assert item.type == "file_search_call" and item.id.startswith("fs_")
    assert item.status == "completed"
    assert item.queries == ["how do owls hunt?"]
    if not results:
        assert item.results is None
        return
    (found,) = item.results  # the other user's passage, with the same words, is not found
    assert (found.filename, found.text, found.attributes) == (OWLS_FILE, OWLS, {"topic": "birds"})
    assert 0 < found.score <= 1


async def test_the_demo_model_searches_quotes_and_cites(library: Library) -> None:
    response = await library.sdk.responses.create(
        model="demo/parley",
        input="Use file_search how do owls hunt?",
        tools=[file_search_tool(library.store_id)],  # type: ignore[list-item]
        include=INCLUDE,  # type: ignore[list-item]
    )
    assert response.status == "completed"
    kinds = [item.type for item in response.output if item.type != "reasoning"]
    assert kinds == ["file_search_call", "message"], response.output
    call = next(i for i in response.output if i.type == "file_search_call")
    check_call(call, results=True)
    assert OWLS in response.output_text and OWLS_FILE in response.output_text
    text = response.output[-1].content[0]  # type: ignore[union-attr]
    citations = [a for a in text.annotations if a.type == "file_citation"]  # type: ignore[union-attr]
    assert citations, text
    for cited in citations:
        assert (cited.file_id, cited.filename) == (library.file_id, OWLS_FILE)
        assert text.text[: cited.index].rstrip("]").endswith(OWLS_FILE)  # type: ignore[union-attr]
    tools = response.tools
    assert tools[0].type == "file_search" and tools[0].vector_store_ids == [library.store_id]
    stored = await library.sdk.responses.retrieve(response.id)
    assert stored.model_dump()["output"] == response.model_dump()["output"]


async def test_the_stream_has_the_search_events_and_no_results_unless_asked(
    library: Library,
) -> None:
    stream = await library.sdk.responses.create(
        model="demo/parley",
        input="file_search how do owls hunt?",
        tools=[file_search_tool(library.store_id)],  # type: ignore[list-item]
        stream=True,
    )
    events = [event async for event in stream]
    for event in events:  # each validates as the SDK's own event type
        STREAM_EVENT.validate_python(event.model_dump())
    names = [e.type for e in events]
    searched = [n for n in names if n.startswith("response.file_search_call.")]
    assert searched == [
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
    ]
    added = next(
        e
        for e in events
        if e.type == "response.output_item.added" and e.item.type == "file_search_call"
    )  # type: ignore[union-attr]
    done = next(
        e
        for e in events
        if e.type == "response.output_item.done" and e.item.type == "file_search_call"
    )  # type: ignore[union-attr]
    assert added.item.status == "in_progress" and done.item.status == "completed"  # type: ignore[union-attr]
    check_call(done.item, results=False)  # type: ignore[union-attr]
    first = names.index("response.output_item.added")
    assert names.index("response.file_search_call.completed") > first
    annotated = [e for e in events if e.type == "response.output_text.annotation.added"]
    assert annotated and annotated[0].annotation.file_id == library.file_id  # type: ignore[union-attr]
    assert names.index("response.output_text.annotation.added") < names.index(
        "response.output_text.done"
    )
    final = events[-1]
    assert final.type == "response.completed"
    assert OWLS in final.response.output_text  # type: ignore[union-attr]


async def test_a_resent_search_item_is_taken(library: Library) -> None:
    """A client that keeps its own history sends the search back: it is accepted, and the
    model's next call sees its passages again (the demo quotes the last tool result)."""
    first = await library.sdk.responses.create(
        model="demo/parley",
        input="file_search how do owls hunt?",
        tools=[file_search_tool(library.store_id)],  # type: ignore[list-item]
        include=INCLUDE,  # type: ignore[list-item]
        store=False,
    )
    history = [{"role": "user", "content": "file_search how do owls hunt?"}]
    history += [i.model_dump(exclude_none=True) for i in first.output if i.type != "reasoning"]
    history.append({"role": "user", "content": "Thanks."})
    again = await library.sdk.responses.create(model="demo/parley", input=history)  # type: ignore[arg-type]
    assert again.status == "completed"


@pytest.mark.parametrize("kind", list(BY_NAME))
async def test_a_search_beside_an_mcp_call_reaches_the_provider(
    library: Library, kind: str
) -> None:
    """The model searches and calls an MCP tool at once; both results go back to it."""
    upstream = library.upstreams[kind]
    slot = upstream.take()
    search = Call(upstream.call_ids[0], "file_search", {"queries": ["how do owls hunt?"]})
    echo = Call(upstream.call_ids[1], "echo", {"text": "hi"})
    model, then = one_model_turns(upstream, slot, CallsTurn((search, echo)), TextTurn())
    library.mcp.on_call = lambda _: then()
    try:
        answer = await library.http.post(
            "/responses",
            json={
                "model": model,
                "input": "How do owls hunt?",
                "tools": [file_search_tool(library.store_id), mcp_tool(library.mcp_url)],
            },
        )
    finally:
        library.mcp.on_call = None
    assert answer.status_code == 200, answer.text
    output = answer.json()["output"]
    kinds = [i["type"] for i in output if i["type"] not in ("reasoning", "mcp_list_tools")]
    assert sorted(kinds[:2]) == ["file_search_call", "mcp_call"] and kinds[2:] == ["message"]
    asked, told = upstream.requests(slot)
    assert sorted(offered_names(kind, asked)) == ["echo", "file_search"]
    results = dict(results_of(kind, told))  # Gemini's results name their function
    passages = results[search.name if kind == "gemini" else search.call_id]
    assert f"From the file {OWLS_FILE}" in passages and OWLS in passages
    assert results[echo.name if kind == "gemini" else echo.call_id] == "hi"


@pytest.mark.parametrize("kind", list(QUEUED))
async def test_the_search_reaches_each_provider(library: Library, kind: str) -> None:
    upstream = library.upstreams[kind]
    slot = upstream.take()
    call = Call(upstream.call_ids[0], "file_search", {"queries": ["how do owls hunt?"]})
    model, _ = upstream.script(slot, CallsTurn((call,)), TextTurn())
    answer = await library.http.post(
        "/responses",
        json={
            "model": model,
            "input": "How do owls hunt?",
            "tools": [file_search_tool(library.store_id)],
            "include": INCLUDE,
        },
    )
    assert answer.status_code == 200, answer.text
    response = answer.json()
    kinds = [i["type"] for i in response["output"] if i["type"] != "reasoning"]
    assert kinds == ["file_search_call", "message"], response["output"]
    assert response["output"][-1]["content"][0]["text"] == "".join(ANSWER)
    asked, told = upstream.requests(slot)
    assert offered_names(kind, asked) == ["file_search"]
    ((_, result),) = results_of(kind, told)
    assert f"From the file {OWLS_FILE}" in result and OWLS in result
    assert THEIRS not in result


async def test_bad_tools_are_refused_by_field(library: Library) -> None:
    cases: list[tuple[dict[str, Any], int, str]] = [
        (file_search_tool(library.other_store_id), 404, "tools[0].vector_store_ids"),
        (file_search_tool("vs_nothing"), 404, "tools[0].vector_store_ids"),
        ({"type": "file_search", "vector_store_ids": []}, 400, "tools[0].vector_store_ids"),
        ({"type": "file_search"}, 400, "tools[0].vector_store_ids"),
        (file_search_tool(library.store_id, max_num_results=51), 400, "tools[0].max_num_results"),
        (file_search_tool(library.store_id, filters={"type": "eq"}), 400, "tools[0].filters.key"),
        (
            file_search_tool(library.store_id, ranking_options={"ranker": "best"}),
            400,
            "tools[0].ranking_options.ranker",
        ),
        (file_search_tool(library.store_id, color="red"), 400, "tools[0].color"),
    ]
    for tool, status, param in cases:
        answer = await library.http.post(
            "/responses", json={"model": "demo/parley", "input": "hi", "tools": [tool]}
        )
        assert answer.status_code == status, (tool, answer.text)
        error = answer.json()["error"]
        assert error["param"] == param, (tool, error)
        if status == 404:
            assert error["code"] == "vector_store_not_found"
    # The owner's own search never finds the other user's chunk, which has the same words.
    own = await library.http.post(
        "/responses",
        json={
            "model": "demo/parley",
            "input": "file_search owls hunt at night",
            "tools": [file_search_tool(library.store_id)],
            "include": INCLUDE,
        },
    )
    found = next(i for i in own.json()["output"] if i["type"] == "file_search_call")
    assert [r["file_id"] for r in found["results"]] == [library.file_id]
    assert json.dumps(own.json()).count("secret notebook") == 0


async def test_tool_choice_names_the_search_and_a_later_read_can_include_results(
    library: Library,
) -> None:
    # The message names no tool: the choice alone makes the demo model search.
    response = await library.sdk.responses.create(
        model="demo/parley",
        input="how do owls hunt?",
        tools=[file_search_tool(library.store_id)],  # type: ignore[list-item]
        tool_choice={"type": "file_search"},
    )
    call = next(i for i in response.output if i.type == "file_search_call")
    assert call.results is None  # not asked for
    read = await library.sdk.responses.retrieve(response.id, include=INCLUDE)  # type: ignore[arg-type]
    found = next(i for i in read.output if i.type == "file_search_call")
    assert found.results and found.results[0].filename == OWLS_FILE
    with pytest.raises(openai.BadRequestError) as refused:
        await library.sdk.responses.create(
            model="demo/parley", input="hi", tool_choice={"type": "file_search"}
        )
    assert refused.value.body["param"] == "tool_choice"  # type: ignore[index]
