"""The ``web_search`` tool on ``POST /v1/responses``, run by the server through the search
service the operator configures (a fake SearXNG on loopback, ``parley.testing.fake_search``),
on the demo model and on a fake upstream of each provider kind that calls the function:
the ``web_search_call`` item and its events, sources when asked, ``url_citation``
annotations where the answer names a page, domain filters, a failing service, a resent
call; and, on a server with no search service, the tool taken but not offered."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest
import pytest_asyncio

from parley.testing.fake_search import FakeSearch
from tests.e2e.responses_providers_helpers import (
    AnthropicUpstream,
    Call,
    CallsTurn,
    OllamaUpstream,
    ResponsesUpstream,
    TextTurn,
    Upstream,
    serving_with,
)
from tests.e2e.test_mcp_providers import offered_names, results_of
from tests.harness import ParleyServer

pytestmark = pytest.mark.asyncio(loop_scope="module")

QUEUED: dict[str, type[Upstream]] = {
    "openai-responses": ResponsesUpstream,
    "anthropic": AnthropicUpstream,
    "ollama": OllamaUpstream,
}
WEB = {"type": "web_search"}
SOURCES = ["web_search_call.action.sources"]


class Served:
    def __init__(
        self,
        server: ParleyServer,
        http: httpx.AsyncClient,
        upstreams: dict[str, Upstream],
        search: FakeSearch,
    ) -> None:
        self.server, self.http, self.upstreams, self.search = server, http, upstreams, search
        key = http.headers["Authorization"].removeprefix("Bearer ")
        self.sdk = openai.AsyncOpenAI(
            base_url=f"{server.base_url}/v1", api_key=key, max_retries=0, timeout=60
        )


@pytest.fixture(scope="module")
def search() -> Iterator[FakeSearch]:
    with FakeSearch() as fake:
        yield fake


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(
    tmp_path_factory: pytest.TempPathFactory, search: FakeSearch
) -> AsyncIterator[Served]:
    tmp = tmp_path_factory.mktemp("web-search")
    upstreams = {kind: cls(tmp, 2) for kind, cls in QUEUED.items()}
    env = {"PARLEY_WEB_SEARCH_URL": search.url, "PARLEY_WEB_SEARCH_TIMEOUT": "1"}
    async with serving_with(tmp, upstreams, env) as (server, http):
        served = Served(server, http, upstreams, search)
        try:
            yield served
        finally:
            await served.sdk.close()


async def create(served: Served, **body: Any) -> dict[str, Any]:
    answer = await served.http.post("/responses", json={"model": "demo/parley", **body})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def only(response: dict[str, Any], kind: str) -> dict[str, Any]:
    (item,) = [i for i in response["output"] if i["type"] == kind]
    return dict(item)


def annotations(response: dict[str, Any]) -> list[dict[str, Any]]:
    message = only(response, "message")
    return [a for part in message["content"] for a in part.get("annotations") or ()]


async def test_the_demo_model_searches_the_web_and_cites_the_pages(served: Served) -> None:
    response = await create(served, input="web_search solar eclipse 2027", tools=[WEB])
    kinds = [i["type"] for i in response["output"] if i["type"] != "reasoning"]
    assert kinds == ["web_search_call", "message"], response["output"]
    call = only(response, "web_search_call")
    assert call["status"] == "completed" and call["id"].startswith("ws_")
    assert call["action"] == {
        "type": "search",
        "query": "solar eclipse 2027",
        "queries": ["solar eclipse 2027"],
    }
    assert served.search.queries[-1] == "solar eclipse 2027"
    # The demo quotes what it was told: the five pages (medium context), each by its URL.
    cited = annotations(response)
    text = only(response, "message")["content"][0]["text"]
    assert len(cited) == 5
    for annotation in cited:
        assert annotation["type"] == "url_citation"
        assert (
            annotation["url"].startswith("https://") and "solar-eclipse-2027" in annotation["url"]
        )
        assert text[annotation["start_index"] : annotation["end_index"]] == annotation["url"]
        assert annotation["title"].startswith("solar eclipse 2027 (")
    # The response answers its tools back as given, and reads back the same.
    assert response["tools"] == [WEB]
    again = (await served.http.get(f"/responses/{response['id']}")).json()
    assert again["output"] == response["output"]


async def test_the_sources_show_when_asked(served: Served) -> None:
    response = await create(
        served,
        input="web_search tide tables",
        tools=[{"type": "web_search", "search_context_size": "low"}],
        include=SOURCES,
    )
    sources = only(response, "web_search_call")["action"]["sources"]
    assert [s["type"] for s in sources] == ["url"] * 3  # low: three pages
    assert all("tide-tables" in s["url"] for s in sources)


async def test_allowed_domains_keep_the_pages_of_those_domains(served: Served) -> None:
    one = await create(
        served,
        input="web_search rust editions",
        tools=[{"type": "web_search", "filters": {"allowed_domains": ["https://Example.org/"]}}],
        include=SOURCES,
    )
    assert served.search.queries[-1] == "rust editions site:example.org"
    assert [s["url"] for s in only(one, "web_search_call")["action"]["sources"]] == [
        "https://example.org/rust-editions/2"
    ]
    two = await create(
        served,
        input="web_search rust editions",
        tools=[
            {"type": "web_search", "filters": {"allowed_domains": ["example.com", "example.edu"]}}
        ],
        include=SOURCES,
    )
    hosts = [httpx.URL(s["url"]).host for s in only(two, "web_search_call")["action"]["sources"]]
    assert hosts == ["docs.example.com", "wiki.example.com", "example.edu"]


async def test_the_call_streams_its_events(served: Served) -> None:
    events = []
    stream = await served.sdk.responses.create(
        model="demo/parley", input="web_search comet orbit", tools=[WEB], stream=True
    )
    async for event in stream:
        events.append(event)
    kinds = [e.type for e in events]
    start = kinds.index("response.web_search_call.in_progress")
    assert kinds[start - 1] == "response.output_item.added"
    assert kinds[start : start + 3] == [
        "response.web_search_call.in_progress",
        "response.web_search_call.searching",
        "response.web_search_call.completed",
    ]
    assert kinds[start + 3] == "response.output_item.done"
    added = events[start - 1].item
    assert added.type == "web_search_call" and added.status == "in_progress"
    done = events[start + 3].item
    assert done.status == "completed" and done.action.query == "comet orbit"
    final = events[-1].response
    assert final.status == "completed"
    message = next(i for i in final.output if i.type == "message")
    assert len(message.content[0].annotations) == 5


async def test_a_failing_search_service_is_the_call_s_error(served: Served) -> None:
    for word, why in (
        ("error500", "the search service answered 500"),
        ("notjson", "the search service's answer is not JSON"),
        ("slow", "the search service did not answer within 1 s"),
    ):
        response = await create(served, input=f"web_search {word} please", tools=[WEB])
        assert response["status"] == "completed"
        call = only(response, "web_search_call")
        assert call["status"] == "failed"
        assert "error" not in call  # kept for the model, not shown
        assert why in only(response, "message")["content"][0]["text"]


async def test_a_search_with_no_result_says_so(served: Served) -> None:
    response = await create(served, input="web_search nothing at all", tools=[WEB])
    assert only(response, "web_search_call")["status"] == "completed"
    assert "no page found" in only(response, "message")["content"][0]["text"]
    assert annotations(response) == []


async def test_bad_web_search_fields_are_a_400_naming_them(served: Served) -> None:
    cases = [
        ({"type": "web_search", "search_context_size": "huge"}, "tools[0].search_context_size"),
        (
            {"type": "web_search", "filters": {"allowed_domains": "x.com"}},
            "tools[0].filters.allowed_domains",
        ),
        ({"type": "web_search", "filters": []}, "tools[0].filters"),
    ]
    for tool, param in cases:
        answer = await served.http.post(
            "/responses", json={"model": "demo/parley", "input": "hi", "tools": [tool]}
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["param"] == param
    two = await served.http.post(
        "/responses", json={"model": "demo/parley", "input": "hi", "tools": [WEB, WEB]}
    )
    assert two.status_code == 400 and two.json()["error"]["param"] == "tools[1].type"


async def test_a_resent_web_search_call_is_taken(served: Served) -> None:
    first = await create(
        served, input="web_search glacier speed", tools=[WEB], include=SOURCES, store=False
    )
    history: list[Any] = [{"role": "user", "content": "web_search glacier speed"}]
    history += [i for i in first["output"] if i["type"] != "reasoning"]
    history.append({"role": "user", "content": "thanks"})
    again = await create(served, input=history)
    assert again["status"] == "completed"


async def test_tool_choice_forces_the_search(served: Served) -> None:
    response = await create(
        served, input="anything", tools=[WEB], tool_choice={"type": "web_search"}
    )
    assert only(response, "web_search_call")["status"] == "completed"


@pytest.mark.parametrize("kind", list(QUEUED))
async def test_the_call_reaches_each_provider(served: Served, kind: str) -> None:
    upstream = served.upstreams[kind]
    slot = upstream.take()
    call = Call(upstream.call_ids[0], "web_search", {"query": "aurora forecast"})
    page = "https://docs.example.com/aurora-forecast/1"
    model, _ = upstream.script(slot, CallsTurn((call,)), TextTurn((f"See {page} for it.",)))
    response = await create(
        served, model=model, input="Will there be an aurora?", tools=[WEB], include=SOURCES
    )
    kinds = [i["type"] for i in response["output"] if i["type"] != "reasoning"]
    assert kinds == ["web_search_call", "message"], response["output"]
    assert only(response, "web_search_call")["action"]["query"] == "aurora forecast"
    (cited,) = annotations(response)
    assert cited["url"] == page and cited["start_index"] == 4
    asked, told = upstream.requests(slot)
    assert offered_names(kind, asked) == ["web_search"]
    ((_, result),) = results_of(kind, told)
    assert page in str(result) and "Cite each result you use by its URL." in str(result)


# ------------------------------------------------------------------ no search service


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bare(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    tmp = tmp_path_factory.mktemp("no-web-search")
    async with serving_with(tmp, {}, {}) as (_, http):
        yield http


async def test_without_a_search_service_the_tool_is_taken_not_offered(
    bare: httpx.AsyncClient,
) -> None:
    answer = await bare.post(
        "/responses",
        json={"model": "demo/parley", "input": "web_search anything", "tools": [WEB]},
    )
    assert answer.status_code == 200, answer.text
    response = answer.json()
    assert [i["type"] for i in response["output"] if i["type"] != "reasoning"] == ["message"]
    assert response["tools"] == [WEB]
    forced = await bare.post(
        "/responses",
        json={
            "model": "demo/parley",
            "input": "hi",
            "tools": [WEB],
            "tool_choice": {"type": "web_search"},
        },
    )
    assert forced.status_code == 400, forced.text
    error = forced.json()["error"]
    assert error["param"] == "tool_choice" and "PARLEY_WEB_SEARCH_URL" in error["message"]
