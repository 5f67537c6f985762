"""File search as a hosted tool: a run's ``{"type": "file_search", ...}`` tool entry.

The entry names the user's vector stores (``vector_store_ids``), and may bound the results
(``max_num_results``, 1 to 50), filter them by the files' attributes (``filters``) and
rank them (``ranking_options``), all checked when the request came (``kit.hosted``). The
model sees one function, ``file_search``, taking ``{"queries": [string]}``. When it calls
it, the turn searches the stores (``parley.store.index.search``; a store with an
``embedding_model`` is searched by its words and by the queries' vectors, one without by
its words), stores a ``file_search_call`` item, and hands the results to the model as
numbered passages, each naming its file, with the request to cite a passage by its file's
name in brackets (``told``). The answer's citations are found afterwards, where a result's
file name appears in its text (``citations``): a rule that needs nothing of the model but
naming the file, so it holds on every provider.

A search of a run's thread's stores (an entry's ``thread_vector_store_ids``: the files a
thread's messages attached) waits first, before the turn's first model call, until none of
their files is being indexed, up to ``file_search_wait_seconds`` (``ready``): a run started
right after an attachment searches it. The files search cannot find then (still being
indexed past the wait, or failed) are named in the call's item and told to the model.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from parley.engine.hosted.kind import Kind, Ran, Tool, Toolset, TurnView
from parley.engine.hosted.records import FileSearchCall
from parley.errors import NotFound, ParleyError
from parley.providers.registry import ProviderRegistry
from parley.store import index
from parley.store import vector_stores as store_of
from parley.store.db import Database, new_id
from parley.store.index import RankingOptions, SearchResult
from parley.store.records import VectorStore
from parley.store.vector_stores import Unindexed
from parley.types import FunctionSpec, ToolCall, ToolSpec

if TYPE_CHECKING:
    from parley.engine.hosted.services import Services

#: The function the model sees (another name when a client function has it).
NAME = "file_search"
OTHER_NAME = "parley_file_search"
#: The results of a search when the entry gives no ``max_num_results`` (``index.search``'s).
DEFAULT_RESULTS = 10
#: How long one search may take, embedding its queries included.
SEARCH_TIMEOUT = 20.0
#: The most queries one call searches for (each cut to ``MAX_QUERY`` characters), and the
#: most characters of one passage the model is told (the item keeps the whole chunk).
MAX_QUERIES = 8
MAX_QUERY = 1000
MAX_PASSAGE = 4000
#: The key of a stored entry that names the stores among its ``vector_store_ids`` that are
#: the run's thread's own: a turn waits for their files to be indexed (``ready``).
THREAD_STORES = "thread_vector_store_ids"
#: Seconds between two looks at the files a turn waits for: soon at first (a small file
#: is indexed within a second), then further apart, up to ``WAIT_POLL_MOST``.
WAIT_POLL_FIRST = 0.1
WAIT_POLL_MOST = 1.0
#: The most files not searched a search names (``unindexed_entries``), the rest counted: a
#: thread whose store holds many files that failed fills neither each search's item nor
#: what its model is told with them.
MAX_UNINDEXED = 20

DESCRIPTION = (
    "Search the user's files for passages relevant to a question. Give one or more search "
    "queries. Each result names the file it comes from; when your answer uses a result, "
    "cite it by its file's name in square brackets, like [report.pdf]."
)
PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "queries": {
            "type": "array",
            "items": {"type": "string"},
            "description": "The search queries: short questions or keywords.",
        }
    },
    "required": ["queries"],
}


@dataclass(frozen=True, slots=True)
class FileSearch:
    """One ``file_search`` entry of a run, ready to search."""

    vector_store_ids: tuple[str, ...]
    max_num_results: int
    filters: Mapping[str, Any] | None
    ranking: RankingOptions
    #: Whether the faces show the results in the call's item (the request's ``include``).
    show_results: bool
    #: The stores among ``vector_store_ids`` that are the run's thread's (``THREAD_STORES``).
    thread_stores: tuple[str, ...] = ()
    #: The files of those stores search could not find when the turn began (``ready``).
    unindexed: Unindexed = field(default_factory=Unindexed)

    @classmethod
    def of(cls, entry: Mapping[str, Any]) -> FileSearch:
        """The search of a stored entry (checked when it was made)."""
        most = entry.get("max_num_results")
        return cls(
            vector_store_ids=tuple(entry.get("vector_store_ids") or ()),
            max_num_results=most if isinstance(most, int) else DEFAULT_RESULTS,
            filters=entry.get("filters"),
            ranking=index.parse_ranking_options(entry.get("ranking_options")),
            show_results=bool(entry.get("include_results")),
            thread_stores=tuple(entry.get(THREAD_STORES) or ()),
        )

    def spec(self, name: str) -> ToolSpec:
        return ToolSpec(
            function=FunctionSpec(name=name, description=DESCRIPTION, parameters=PARAMETERS)
        )


@dataclass(frozen=True, slots=True)
class Found:
    """What a search found, or why it failed."""

    results: list[SearchResult]
    error: str | None = None
    #: Seconds the search took (embedding the queries, and the database's search).
    took: float = 0.0
    #: ``words``, ``vectors`` or ``hybrid``: how it searched (``parley.metrics``).
    mode: str = "words"


# ------------------------------------------------------------------ waiting for files


async def ready(tool: FileSearch, *, db: Database, user_id: str, within: float) -> FileSearch:
    """The search once the files of its thread's stores are indexed (``wait_for_files``),
    knowing those search cannot find. OpenAI's runs wait so for their thread's stores, not
    for their assistant's: a thread's files are those its user just attached."""
    if not tool.thread_stores:
        return tool
    found = await wait_for_files(
        db, user_id=user_id, vector_store_ids=tool.thread_stores, within=within
    )
    return replace(tool, unindexed=found)


async def wait_for_files(
    db: Database, *, user_id: str, vector_store_ids: Sequence[str], within: float
) -> Unindexed:
    """The files of the stores that search cannot find (the first ``MAX_UNINDEXED``, and
    their count), once none of them is ``in_progress`` any more or ``within`` seconds have
    passed. Polled: the worker indexing a file may be on any replica, and the files' rows
    are where every replica writes. The caller's task may be cancelled meanwhile (the run
    is): nothing is held."""
    deadline = time.monotonic() + within
    gap = WAIT_POLL_FIRST
    while True:
        found = await db.read(
            store_of.unindexed_files,
            user_id=user_id,
            vector_store_ids=vector_store_ids,
            most=MAX_UNINDEXED,
        )
        left = deadline - time.monotonic()
        if left <= 0 or not found.indexing:
            return found
        await asyncio.sleep(min(gap, left))
        gap = min(gap * 2, WAIT_POLL_MOST)


# ------------------------------------------------------------------------ searching


def queries_of(arguments: Mapping[str, Any]) -> list[str]:
    """The queries of a call: ``queries`` (a list, or one string), or ``query``."""
    given = arguments.get("queries", arguments.get("query"))
    if isinstance(given, str):
        given = [given]
    if not isinstance(given, list):
        return []
    queries = [q.strip()[:MAX_QUERY] for q in given if isinstance(q, str) and q.strip()]
    return queries[:MAX_QUERIES]


async def search(
    tool: FileSearch,
    queries: Sequence[str],
    *,
    db: Database,
    providers: ProviderRegistry | None,
    user_id: str,
) -> Found:
    """Search the tool's stores for ``queries``, within ``SEARCH_TIMEOUT`` seconds."""
    began = time.perf_counter()
    if not queries:
        return Found([], 'no query was given: call file_search with {"queries": [...]}')
    try:
        async with asyncio.timeout(SEARCH_TIMEOUT):
            results, mode = await _search(
                tool, queries, db=db, providers=providers, user_id=user_id
            )
    except TimeoutError:
        return Found([], f"the search took longer than {SEARCH_TIMEOUT:g} s", _since(began))
    except NotFound as exc:
        return Found([], f"{exc.message} (it was deleted or expired)", _since(began))
    except ParleyError as exc:  # an embedding call that failed, a bad filter
        return Found([], exc.message, _since(began))
    return Found(results, None, _since(began), mode)


async def _search(
    tool: FileSearch,
    queries: Sequence[str],
    *,
    db: Database,
    providers: ProviderRegistry | None,
    user_id: str,
) -> tuple[list[SearchResult], str]:
    stores: list[VectorStore] = await db.write(
        store_of.usable_stores, user_id=user_id, vector_store_ids=tool.vector_store_ids
    )
    by_model: dict[str | None, list[str]] = {}
    for store in stores:
        by_model.setdefault(store.embedding_model, []).append(store.id)
    found: list[SearchResult] = []
    mode = "words"
    for model, ids in by_model.items():
        vectors = None
        if model is not None and providers is not None and tool.ranking.embedding_weight > 0:
            vectors = (await providers.embed(model, list(queries))).vectors
            mode = "hybrid" if tool.ranking.text_weight > 0 else "vectors"
        found += await db.read(
            index.search,
            user_id=user_id,
            vector_store_ids=ids,
            query=list(queries),
            query_embeddings=vectors,
            filters=tool.filters,
            max_num_results=tool.max_num_results,
            ranking_options=tool.ranking,
        )
    if len(by_model) > 1:
        found.sort(key=lambda r: r.score, reverse=True)
    return found[: tool.max_num_results], mode


def _since(began: float) -> float:
    return time.perf_counter() - began


# --------------------------------------------------------------------------- items


def call_record(
    queries: Sequence[str],
    *,
    item_id: str,
    found: Found | None = None,
    show: bool = False,
    call_id: str | None = None,
    unindexed: Unindexed | None = None,
) -> FileSearchCall:
    """The ``file_search_call`` record of a search: in progress (nothing ``found`` yet), or
    ended. It keeps the results whatever ``show`` says: ``show_results`` tells the faces
    whether the request asked to see them; ``call_id`` is the model's call (the
    Assistants API names a run step's call by it). An ended one names the files of the
    thread's stores the search could not find (``unindexed``), when there are some, and
    counts those past ``MAX_UNINDEXED`` (``unindexed_more``)."""
    record = FileSearchCall(id=item_id, queries=list(queries), show_results=show, call_id=call_id)
    if found is None:
        return record
    record.status = "failed" if found.error else "completed"
    record.results = [
        {
            "file_id": r.file_id,
            "filename": r.filename,
            "score": round(r.score, 6),
            "attributes": r.attributes,
            "text": r.text,
        }
        for r in found.results
    ]
    record.error = found.error or None
    if unindexed is not None and unindexed.files:
        record.unindexed = entries = unindexed_entries(unindexed)
        if unindexed.count > len(entries):
            record.unindexed_more = unindexed.count - len(entries)
    return record


def unindexed_entries(unindexed: Unindexed) -> list[dict[str, Any]]:
    """The files search could not find, as an item names them: each file once, with its
    status (``in_progress`` or ``failed``) and its ``last_error``."""
    entries: dict[str, dict[str, Any]] = {}
    for f in unindexed.files:
        entries.setdefault(
            f.file_id,
            {
                "file_id": f.file_id,
                "filename": f.filename,
                "status": f.status,
                "error": f.last_error,
            },
        )
    return list(entries.values())


#: What a search cut short by its server's death says (``cut_short``).
CUT_SHORT = "The Parley server running this response stopped during the search."


def cut_short(item: dict[str, Any]) -> dict[str, Any]:
    """The ``file_search_call`` item of a search still running when the turn died with
    its server: ``incomplete``, no results, its error saying so."""
    return {**item, "status": "incomplete", "results": None, "error": CUT_SHORT}


def new_item_id() -> str:
    return new_id("fs")


def told(item: Mapping[str, Any]) -> str:
    """What the model is told of a search (its ``file_search_call`` item): its passages,
    numbered, each naming its file, and how to cite them."""
    if item.get("status") == "failed":
        error = f"Error: the file search failed: {item.get('error') or 'unknown error'}."
        return error + _not_searched(item)
    asked = "; ".join(f'"{q}"' for q in item.get("queries") or ())
    results = [r for r in item.get("results") or () if isinstance(r, Mapping)]
    if not results:
        return f"File search for {asked}: no passage of the user's files matched." + (
            _not_searched(item)
        )
    count = "1 passage" if len(results) == 1 else f"{len(results)} passages, best first"
    lines = [f"File search for {asked}: {count}."]
    for n, result in enumerate(results, 1):
        text = str(result.get("text") or "")
        text = text if len(text) <= MAX_PASSAGE else text[:MAX_PASSAGE] + "…"
        score = result.get("score")
        scored = f" (score {score:.2f})" if isinstance(score, int | float) else ""
        lines.append(f"\n[{n}] From the file {result.get('filename')}{scored}:\n{text}")
    lines.append(
        "\nCite each passage you use by its file's name in square brackets, like "
        f"[{results[0].get('filename')}]."
    )
    return "\n".join(lines) + _not_searched(item)


def _not_searched(item: Mapping[str, Any]) -> str:
    """What the model is told of the files a search could not find (``unindexed``): which,
    and why, so that its answer does not pass over them in silence."""
    files = [f for f in item.get("unindexed") or () if isinstance(f, Mapping)]
    if not files:
        return ""
    lines = ["\n\nFiles not searched:"]
    for f in files:
        if f.get("status") == "in_progress":
            lines.append(f"- {f.get('filename')}: it was still being indexed.")
            continue
        error = f.get("error")
        why = "unknown error"
        if isinstance(error, Mapping):
            why = error.get("message") or error.get("code") or why
        lines.append(f"- {f.get('filename')}: it could not be indexed: {why}")
    more = item.get("unindexed_more")
    if more:
        lines.append(f"- and {more} more files that are still being indexed or failed.")
    lines.append("Tell the user that these files were not searched.")
    return "\n".join(lines)


# ------------------------------------------------------------------------ citations


@dataclass(frozen=True, slots=True)
class Citation:
    """A place in an answer's text that names a file a search found: ``text[start:end]``
    is the mention (the file's name, with its brackets when it has them)."""

    file_id: str
    filename: str
    start: int
    end: int


def cited_files(items: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The files the ``file_search_call`` items among ``items`` found: id by file name."""
    files: dict[str, str] = {}
    for item in items:
        if item.get("type") != "file_search_call":
            continue
        for result in item.get("results") or ():
            name, file_id = result.get("filename"), result.get("file_id")
            if isinstance(name, str) and name and isinstance(file_id, str):
                files.setdefault(name, file_id)
    return files


def citations(text: str, files: Mapping[str, str]) -> list[Citation]:
    """Every place ``text`` names one of ``files`` (id by name), as a whole word, in order;
    a longer name wins where two overlap."""
    if not files or not text:
        return []
    names = sorted(files, key=len, reverse=True)
    pattern = "|".join(re.escape(n) for n in names)
    found = []
    for match in re.finditer(rf"\[(?:{pattern})\]|(?<![\w.-])(?:{pattern})(?![\w-])", text):
        mention = match.group()
        name = mention[1:-1] if mention.startswith("[") and mention[1:-1] in files else mention
        found.append(Citation(files[name], name, match.start(), match.end()))
    return found


# ----------------------------------------------------------------------------- kind


class FileSearchTool(Tool):
    """The turn's file search, as the model sees it."""

    name, fallback = NAME, OTHER_NAME

    def __init__(self, search: FileSearch, services: Services) -> None:
        self.search, self.services = search, services

    def spec(self, name: str) -> ToolSpec:
        return self.search.spec(name)

    def about(self) -> dict[str, Any]:
        return {"type": "file_search"}

    async def call(self, call: ToolCall, turn: TurnView, approval_id: str | None = None) -> Ran:
        queries = queries_of(call.arguments)
        item_id, show = new_item_id(), self.search.show_results
        turn.started(call_record(queries, item_id=item_id, show=show, call_id=call.id))
        services = self.services
        found = await search(
            self.search,
            queries,
            db=services.db,
            providers=services.providers,
            user_id=turn.run.user_id,
        )
        metrics = services.metrics
        metrics.hosted_call(
            "file_search", "file_search", "search", found.took, found.error is not None
        )
        if found.error is None:
            metrics.search_duration(found.took, source="file_search", mode=found.mode)
        record = call_record(
            queries,
            item_id=item_id,
            found=found,
            show=show,
            call_id=call.id,
            unindexed=self.search.unindexed,
        )
        turn.done(record)
        return Ran(call.id, told(record.to_stored()), record)


class FileSearchKind(Kind):
    """Searches of the user's vector stores (``file_search`` entries: the first one)."""

    name = "file_search"
    types = frozenset({"file_search"})
    function, fallback = NAME, OTHER_NAME

    async def open(
        self, entries: list[Mapping[str, Any]], turn: TurnView, services: Services
    ) -> Toolset:
        search = FileSearch.of(await _with_stores(entries[0], turn, services))
        ready_one = await ready(
            search,
            db=services.db,
            user_id=turn.run.user_id,
            within=services.settings.file_search_wait_seconds,
        )
        return Toolset(tools=[FileSearchTool(ready_one, services)])

    def told(self, item: Mapping[str, Any]) -> str:
        return told(item)


KIND = FileSearchKind()


async def _with_stores(
    entry: Mapping[str, Any], turn: TurnView, services: Services
) -> Mapping[str, Any]:
    """A ``file_search`` entry that names no store (an assistant made through the
    Assistants API, run by another face) searches the stores of the run's assistant and
    thread (``vector_stores.run_stores``), as a run of the Assistants API does: a thread is
    one thread whatever face runs it. An entry that names stores searches those alone. The
    thread's among them are its ``THREAD_STORES``: the turn waits for their files
    (``ready``)."""
    if entry.get("vector_store_ids"):
        return entry
    run = turn.run
    found, own = await services.db.read(
        store_of.run_stores,
        user_id=run.user_id,
        assistant_id=run.assistant_id,
        thread_id=run.thread_id,
    )
    return {**entry, "vector_store_ids": found, THREAD_STORES: own}
