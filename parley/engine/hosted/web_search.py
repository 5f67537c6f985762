"""Web search as a hosted tool: a Responses request's ``{"type": "web_search", ...}`` entry,
run through the search backend the operator configures (``parley.retrieval.websearch``).

The entry may keep the results to some domains (``filters.allowed_domains``, their
subdomains too) and say how many results the model reads (``search_context_size``: low 3,
medium 5, high 10). The model sees one function, ``web_search``, taking ``{"query":
string}``. When it calls it, the turn asks the backend, keeps the pages of the allowed
domains, stores a ``web_search_call`` item (its ``action`` the search, with the pages as
its ``sources``), and hands the pages to the model, numbered, each with its title, URL and
snippet, with the request to cite a page by its URL (``told``). The answer's
``url_citation`` annotations are found afterwards where its text names a page's URL
(``citations``), as file search finds its citations: a rule that holds on every provider.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from parley.engine.hosted.kind import Kind, Ran, Tool, Toolset, TurnView
from parley.engine.hosted.records import WebSearchCall
from parley.retrieval.websearch import Page, SearchBackend, SearchFailed
from parley.store.db import new_id
from parley.types import FunctionSpec, ToolCall, ToolSpec

if TYPE_CHECKING:
    from parley.engine.hosted.services import Services

#: The function the model sees (another name when a client function has it).
NAME = "web_search"
OTHER_NAME = "parley_web_search"
#: The tool types of OpenAI's web search, as requests name them.
KINDS = frozenset(
    {"web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11"}
)
#: Results the model reads by the entry's ``search_context_size``.
RESULTS = {"low": 3, "medium": 5, "high": 10}
#: The most characters of a query, and of a page's snippet the model is told.
MAX_QUERY = 500
MAX_SNIPPET = 1200

DESCRIPTION = (
    "Search the web for current information. Give one search query. Each result has a "
    "title, a URL and a snippet; when your answer uses a result, cite it by its URL."
)
PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"query": {"type": "string", "description": "What to search the web for."}},
    "required": ["query"],
}


@dataclass(frozen=True, slots=True)
class WebSearch:
    """One ``web_search`` entry of a run, ready to search."""

    allowed_domains: tuple[str, ...]
    results: int
    #: Whether the faces show the pages as the action's ``sources`` (the request's
    #: ``include``).
    show_sources: bool

    @classmethod
    def of(cls, entry: Mapping[str, Any]) -> WebSearch:
        """The search of a stored entry (checked when it was made: ``kit.hosted``)."""
        return cls(
            allowed_domains=tuple(entry.get("allowed_domains") or ()),
            results=RESULTS.get(str(entry.get("search_context_size")), RESULTS["medium"]),
            show_sources=bool(entry.get("include_sources")),
        )

    def spec(self, name: str) -> ToolSpec:
        return ToolSpec(
            function=FunctionSpec(name=name, description=DESCRIPTION, parameters=PARAMETERS)
        )

    def allows(self, url: str) -> bool:
        """Whether a page is of an allowed domain (or a subdomain of one); any when the
        entry names none."""
        if not self.allowed_domains:
            return True
        host = (urlsplit(url).hostname or "").lower()
        return any(host == d or host.endswith("." + d) for d in self.allowed_domains)


@dataclass(frozen=True, slots=True)
class Found:
    """What a search found, or why it failed, and the seconds it took."""

    pages: list[Page]
    error: str | None = None
    took: float = 0.0


def query_of(arguments: Mapping[str, Any]) -> str:
    """The query of a call: ``query`` (or the first of ``queries``), trimmed and cut."""
    given = arguments.get("query")
    if given is None and isinstance(arguments.get("queries"), list) and arguments["queries"]:
        given = arguments["queries"][0]
    return given.strip()[:MAX_QUERY] if isinstance(given, str) else ""


async def search(backend: SearchBackend | None, tool: WebSearch, query: str) -> Found:
    """Ask ``backend`` for ``query``; the pages of the allowed domains, at most the
    tool's number."""
    began = time.perf_counter()
    if backend is None:
        return Found([], "no web search backend is configured on this server")
    if not query:
        return Found([], 'no query was given: call web_search with {"query": "..."}')
    asked = query
    if len(tool.allowed_domains) == 1:  # the backend narrows it too, where it can
        asked = f"{query} site:{tool.allowed_domains[0]}"
    try:
        pages = await backend.search(asked)
    except SearchFailed as exc:
        return Found([], str(exc), time.perf_counter() - began)
    kept = [p for p in pages if tool.allows(p.url)][: tool.results]
    return Found(kept, None, time.perf_counter() - began)


# --------------------------------------------------------------------------- items


def new_item_id() -> str:
    return new_id("ws")


def call_record(
    query: str,
    *,
    item_id: str,
    found: Found | None = None,
    show: bool = False,
    call_id: str | None = None,
) -> WebSearchCall:
    """The ``web_search_call`` record of a search: in progress (nothing ``found`` yet), or
    ended. Its ``action`` keeps the pages as ``sources`` whatever ``show`` says (the faces
    show them when the request asked), and ``pages`` what the model read of them."""
    action: dict[str, Any] = {"type": "search", "query": query, "queries": [query] if query else []}
    record = WebSearchCall(id=item_id, action=action, show_sources=show, call_id=call_id)
    if found is None:
        return record
    record.status = "failed" if found.error else "completed"
    action["sources"] = [{"type": "url", "url": p.url} for p in found.pages]
    record.pages = [{"url": p.url, "title": p.title, "snippet": p.snippet} for p in found.pages]
    record.error = found.error or None
    return record


#: What a search cut short by its server's death says (``cut_short``).
CUT_SHORT = "The Parley server running this response stopped during the web search."


def cut_short(item: dict[str, Any]) -> dict[str, Any]:
    """The ``web_search_call`` item of a search still running when the turn died with its
    server: ``incomplete``, its error saying so."""
    return {**item, "status": "incomplete", "error": CUT_SHORT}


def told(item: Mapping[str, Any]) -> str:
    """What the model is told of a search (its ``web_search_call`` item): its pages,
    numbered, with title, URL and snippet, and how to cite them."""
    query = str((item.get("action") or {}).get("query") or "")
    if item.get("status") == "failed":
        return f"Error: the web search failed: {item.get('error') or 'unknown error'}."
    pages = [p for p in item.get("pages") or () if isinstance(p, Mapping)]
    if not pages:
        return f'Web search for "{query}": no page found.'
    lines = [f'Web search for "{query}": {len(pages)} result{"" if len(pages) == 1 else "s"}.']
    for n, page in enumerate(pages, 1):
        snippet = str(page.get("snippet") or "")
        if len(snippet) > MAX_SNIPPET:
            snippet = snippet[:MAX_SNIPPET] + "…"
        lines.append(f"\n[{n}] {page.get('title') or '(no title)'}\nURL: {page.get('url')}")
        if snippet:
            lines.append(snippet)
    lines.append("\nCite each result you use by its URL.")
    return "\n".join(lines)


# ------------------------------------------------------------------------ citations


@dataclass(frozen=True, slots=True)
class Citation:
    """A place in an answer's text that names a page a search found: ``text[start:end]``
    is its URL."""

    url: str
    title: str
    start: int
    end: int


def cited_pages(items: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The pages the ``web_search_call`` items among ``items`` found: title by URL."""
    pages: dict[str, str] = {}
    for item in items:
        if item.get("type") != "web_search_call":
            continue
        for page in item.get("pages") or ():
            url = page.get("url")
            if isinstance(url, str) and url:
                pages.setdefault(url, str(page.get("title") or ""))
    return pages


def citations(text: str, pages: Mapping[str, str]) -> list[Citation]:
    """Every place ``text`` names one of ``pages`` (title by URL) by its URL, in order; a
    longer URL wins where two overlap, and a URL followed by more of a URL is not it."""
    if not pages or not text:
        return []
    urls = sorted(pages, key=len, reverse=True)
    pattern = "|".join(re.escape(u) for u in urls)
    return [
        Citation(m.group(), pages[m.group()], m.start(), m.end())
        for m in re.finditer(rf"(?:{pattern})(?![\w/?#%&=~+-])", text)
    ]


# ----------------------------------------------------------------------------- kind


class WebSearchTool(Tool):
    """The turn's web search, as the model sees it."""

    name, fallback = NAME, OTHER_NAME

    def __init__(self, web: WebSearch, services: Services) -> None:
        self.web, self.services = web, services

    def spec(self, name: str) -> ToolSpec:
        return self.web.spec(name)

    def about(self) -> dict[str, Any]:
        return {"type": "web_search"}

    async def call(self, call: ToolCall, turn: TurnView, approval_id: str | None = None) -> Ran:
        query = query_of(call.arguments)
        item_id, show = new_item_id(), self.web.show_sources
        turn.started(call_record(query, item_id=item_id, show=show, call_id=call.id))
        found = await search(self.services.web, self.web, query)
        self.services.metrics.hosted_call(
            "web_search", "web_search", "search", found.took, found.error is not None
        )
        record = call_record(query, item_id=item_id, found=found, show=show, call_id=call.id)
        turn.done(record)
        return Ran(call.id, told(record.to_stored()), record)


class WebSearchKind(Kind):
    """Searches of the web (``web_search`` entries, by any of OpenAI's names: the first
    one)."""

    name = "web_search"
    types = KINDS
    function, fallback = NAME, OTHER_NAME

    async def open(
        self, entries: list[Mapping[str, Any]], turn: TurnView, services: Services
    ) -> Toolset:
        return Toolset(tools=[WebSearchTool(WebSearch.of(entries[0]), services)])

    def told(self, item: Mapping[str, Any]) -> str:
        return told(item)


KIND = WebSearchKind()
