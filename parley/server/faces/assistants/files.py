"""The Assistants API's files for ``file_search``: the vector stores of an assistant's and a
thread's ``tool_resources``, and the files of a message's ``attachments``.

- An assistant's ``tool_resources.file_search.vector_store_ids`` (one store) is kept in its
  ``options`` (``tool_resources``); ``vector_stores: [{file_ids, ...}]`` makes that store
  in passing, its files attached (indexed by the ingestion worker).
- A thread has one store of its own: the store whose ``thread_id`` is the thread's. Its
  ``tool_resources`` name it (or make it), and a message's attachments go into it, made
  with the first attachment.
- A run searches the stores of its assistant and of its thread (``run_stores``): the
  ``file_search`` entry of the run's tools gets their ids when the run is made.

Data functions over a ``Connection``, run on a database thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from parley.engine.hosted.file_search import citations, cited_files
from parley.errors import NotFound
from parley.server.faces.kit.resources import MessagePublic, RunStepPublic
from parley.store import threads as thread_store
from parley.store import vector_stores as stores
from parley.store.files import file_not_found
from parley.store.tables import files, messages, vector_stores
from parley.types import Role


def resource_ids(resources: Mapping[str, Any] | None) -> list[str]:
    """The store ids ``tool_resources`` (as kept) names."""
    search = (resources or {}).get("file_search") or {}
    return list(search.get("vector_store_ids") or [])


def check_files(conn: Connection, *, user_id: str, file_ids: Sequence[str]) -> None:
    """``NotFound`` naming the first file that is not the user's."""
    wanted = list(dict.fromkeys(file_ids))
    if not wanted:
        return
    found = set(
        conn.execute(
            select(files.c.id).where(files.c.id.in_(wanted), files.c.user_id == user_id)
        ).scalars()
    )
    for file_id in wanted:
        if file_id not in found:
            raise file_not_found(file_id)


def _fill(
    conn: Connection,
    *,
    user_id: str,
    store_id: str,
    file_ids: Sequence[str],
    chunking: Mapping[str, Any] | None = None,
) -> None:
    check_files(conn, user_id=user_id, file_ids=file_ids)
    for file_id in dict.fromkeys(file_ids):
        stores.attach_file(
            conn,
            user_id=user_id,
            vector_store_id=store_id,
            file_id=file_id,
            chunking_strategy=chunking,
        )


def kept_resources(
    conn: Connection,
    *,
    user_id: str,
    resources: Mapping[str, Any] | None,
    embedding_model: str | None,
    thread_id: str | None = None,
) -> dict[str, Any]:
    """``tool_resources`` as kept: the store it names (the user's: ``NotFound`` else), or
    the store it makes (its files the user's), each made active now; a thread's store gets
    the thread (``thread_id``)."""
    search = (resources or {}).get("file_search")
    if not search:
        return {}
    ids = list(search.get("vector_store_ids") or [])
    stores.usable_stores(conn, user_id=user_id, vector_store_ids=ids)
    for spec in search.get("vector_stores") or ():
        store = stores.create_vector_store(
            conn,
            user_id=user_id,
            metadata=spec.get("metadata"),
            embedding_model=embedding_model,
            thread_id=thread_id,
        )
        _fill(
            conn,
            user_id=user_id,
            store_id=store.id,
            file_ids=spec.get("file_ids") or [],
            chunking=spec.get("chunking_strategy"),
        )
        ids.append(store.id)
    if thread_id is not None:
        give_thread(conn, user_id=user_id, thread_id=thread_id, store_ids=ids)
    return {"file_search": {"vector_store_ids": ids}}


def check_given(
    conn: Connection,
    *,
    user_id: str,
    resources: Mapping[str, Any] | None = None,
    attachments: Sequence[Mapping[str, Any]] = (),
) -> None:
    """``NotFound`` for a store ``resources`` names, or a file it or ``attachments``
    give, that is not the user's."""
    search = (resources or {}).get("file_search") or {}
    ids = search.get("vector_store_ids") or []
    if ids:
        stores.usable_stores(conn, user_id=user_id, vector_store_ids=ids)
    file_ids = [f for spec in search.get("vector_stores") or () for f in spec.get("file_ids") or ()]
    file_ids += [a["file_id"] for a in attachments if a.get("tools")]
    check_files(conn, user_id=user_id, file_ids=file_ids)


def thread_resources(
    conn: Connection,
    *,
    user_id: str,
    thread_id: str,
    resources: Mapping[str, Any] | None,
    embedding_model: str | None,
    attachments: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """A new thread's ``tool_resources`` and its messages' attachments, made its own
    (``kept_resources``, ``attach``); what its ``tool_resources`` are then."""
    kept_resources(
        conn,
        user_id=user_id,
        resources=resources,
        embedding_model=embedding_model,
        thread_id=thread_id,
    )
    attach(
        conn,
        user_id=user_id,
        thread_id=thread_id,
        attachments=attachments,
        embedding_model=embedding_model,
    )
    ids = thread_stores(conn, user_id=user_id, thread_id=thread_id)
    return {"file_search": {"vector_store_ids": ids}} if ids else {}


def thread_stores(conn: Connection, *, user_id: str, thread_id: str) -> list[str]:
    """The ids of the thread's own stores (oldest first)."""
    rows = conn.execute(
        select(vector_stores.c.id)
        .where(vector_stores.c.thread_id == thread_id, vector_stores.c.user_id == user_id)
        .order_by(vector_stores.c.created_at)
    )
    return [str(r) for r in rows.scalars()]


def attach(
    conn: Connection,
    *,
    user_id: str,
    thread_id: str,
    attachments: Sequence[Mapping[str, Any]] | None,
    embedding_model: str | None,
) -> None:
    """Put the files a message's ``attachments`` give ``file_search`` into the thread's
    store, made with the first of them (the thread the user's: ``NotFound`` else)."""
    file_ids = [a["file_id"] for a in attachments or () if a.get("tools")]
    if not file_ids:
        return
    thread_store.get_thread(conn, user_id=user_id, thread_id=thread_id)
    found = thread_stores(conn, user_id=user_id, thread_id=thread_id)
    if found:
        store_id = found[0]
    else:
        store_id = stores.create_vector_store(
            conn, user_id=user_id, embedding_model=embedding_model, thread_id=thread_id
        ).id
    _fill(conn, user_id=user_id, store_id=store_id, file_ids=file_ids)


def attach_new(
    conn: Connection,
    *,
    user_id: str,
    attachments: Sequence[Mapping[str, Any]] | None,
    embedding_model: str | None,
) -> str | None:
    """A new store holding the files a new thread's attachments give ``file_search`` (the
    thread gets it once made: ``give_thread``); None when they give none."""
    file_ids = [a["file_id"] for a in attachments or () if a.get("tools")]
    if not file_ids:
        return None
    check_files(conn, user_id=user_id, file_ids=file_ids)
    store = stores.create_vector_store(conn, user_id=user_id, embedding_model=embedding_model)
    _fill(conn, user_id=user_id, store_id=store.id, file_ids=file_ids)
    return store.id


def give_thread(
    conn: Connection, *, user_id: str, thread_id: str, store_ids: Sequence[str]
) -> None:
    """The stores ``store_ids`` (the user's) become the thread's own."""
    conn.execute(
        update(vector_stores)
        .where(vector_stores.c.id.in_(list(store_ids)), vector_stores.c.user_id == user_id)
        .values(thread_id=thread_id)
    )


def run_tools(
    conn: Connection,
    *,
    user_id: str,
    tools: list[dict[str, Any]],
    assistant_resources: Mapping[str, Any] | None,
    thread_id: str | None,
    extra: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """A run's tools, its ``file_search`` entry given the stores to search: its own, its
    assistant's (``assistant_resources``), its thread's, and ``extra``; the stores that
    are no longer usable (deleted, expired) are left out."""
    if not any(t.get("type") == "file_search" for t in tools):
        return tools
    ids = resource_ids(assistant_resources) + list(extra)
    if thread_id is not None:
        ids += thread_stores(conn, user_id=user_id, thread_id=thread_id)
    out = []
    for tool in tools:
        if tool.get("type") == "file_search":
            wanted = list(dict.fromkeys([*tool.get("vector_store_ids", ()), *ids]))
            usable = [s for s in wanted if _usable(conn, user_id, s)]
            tool = {**tool, "vector_store_ids": usable}
        out.append(tool)
    return out


def _usable(conn: Connection, user_id: str, store_id: str) -> bool:
    try:
        stores.usable_stores(conn, user_id=user_id, vector_store_ids=[store_id])
    except NotFound:
        return False
    return True


# ------------------------------------------------------------------ steps and citations

#: The ``include[]`` value that shows the text of a search's results in its run step.
RESULTS_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"
#: The rankers OpenAI's run steps name.
_STEP_RANKERS = ("auto", "default_2024_08_21")


def search_items(conn: Connection, *, run_id: str) -> dict[str, dict[str, Any]]:
    """The ``file_search_call`` items of a run's searches, by call id."""
    query = select(messages.c.tool_call_id, messages.c.item).where(
        messages.c.run_id == run_id, messages.c.role == Role.TOOL.value
    )
    return {
        row.tool_call_id: row.item
        for row in conn.execute(query)
        if isinstance(row.item, dict) and row.item.get("type") == "file_search_call"
    }


def with_searches(
    step: RunStepPublic,
    searches: Mapping[str, Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]],
    contents: bool,
) -> RunStepPublic:
    """A ``tool_calls`` step whose file searches show as ``file_search`` calls: the
    ranking options, and the results (their text with ``contents``)."""
    calls = step.step_details.get("tool_calls")
    if not calls or not any(c.get("id") in searches for c in calls):
        return step
    entry = next((t for t in tools if t.get("type") == "file_search"), {})
    ranking = entry.get("ranking_options") or {}
    ranker = ranking.get("ranker", "auto")
    options = {
        "ranker": ranker if ranker in _STEP_RANKERS else "auto",
        "score_threshold": float(ranking.get("score_threshold", 0.0)),
    }
    shown = []
    for call in calls:
        item = searches.get(call.get("id", ""))
        if item is None:
            shown.append(call)
            continue
        results = []
        for r in item.get("results") or ():
            result = {"file_id": r["file_id"], "file_name": r["filename"], "score": r["score"]}
            if contents:
                result["content"] = [{"type": "text", "text": r["text"]}]
            results.append(result)
        search = {"ranking_options": options, "results": results}
        shown.append({"id": call["id"], "type": "file_search", "file_search": search})
    details = {**step.step_details, "tool_calls": shown}
    return step.model_copy(update={"step_details": details})


def run_files(conn: Connection, *, run_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """The files the searches of each run found: id by name, by run id."""
    if not run_ids:
        return {}
    query = (
        select(messages.c.run_id, messages.c.item)
        .where(messages.c.run_id.in_(list(run_ids)), messages.c.role == Role.TOOL.value)
        .order_by(messages.c.seq)
    )
    found: dict[str, dict[str, str]] = {}
    for row in conn.execute(query):
        if isinstance(row.item, dict) and row.item.get("type") == "file_search_call":
            found.setdefault(row.run_id, {}).update(cited_files([row.item]))
    return found


def cited(message: MessagePublic, files_found: Mapping[str, str]) -> MessagePublic:
    """An assistant message whose text names files its run's searches found, with its
    ``file_citation`` annotations (the mention, its place, the file)."""
    if not files_found or message.role != "assistant":
        return message
    content = []
    for part in message.content:
        if part.get("type") == "text":
            value = part["text"]["value"]
            annotations = [
                {
                    "type": "file_citation",
                    "text": value[c.start : c.end],
                    "file_citation": {"file_id": c.file_id},
                    "start_index": c.start,
                    "end_index": c.end,
                }
                for c in citations(value, files_found)
            ]
            part = {**part, "text": {**part["text"], "annotations": annotations}}
        content.append(part)
    return message.model_copy(update={"content": content})
