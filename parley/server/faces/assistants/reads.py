"""The Assistants face's queries: each runs in one transaction (``Database.read`` /
``write``) and answers what its route needs, in the API's shapes where it can."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from parley.engine import FILE_SEARCH_THREAD_STORES, cited_files
from parley.errors import Conflict, InvalidRequest, NotFound
from parley.server.faces.assistants import files
from parley.server.faces.kit.reads import of_thread, run_public
from parley.server.faces.kit.resources import MessagePublic, RunPublic
from parley.server.faces.kit.run_steps import RunStepPublic, calls_step_id, run_steps
from parley.store import assistants as assistant_store
from parley.store import code_files
from parley.store import runs as run_store
from parley.store import threads as thread_store
from parley.store import vector_stores as stores
from parley.store.files import file_not_found
from parley.store.pagination import ListQuery
from parley.store.records import Action, Assistant, Message, Run, Thread
from parley.store.tables import files as file_rows
from parley.store.tables import messages, vector_stores
from parley.types import ACTIVE_STATUSES, Role

# ------------------------------------------------------------------------- assistants


def update_assistant(
    conn: Connection,
    *,
    user_id: str,
    assistant_id: str,
    change: Callable[[Assistant], dict[str, Any]],
) -> Assistant:
    """The user's assistant with the fields ``change`` makes of it as it stands."""
    current = assistant_store.get_assistant(conn, user_id=user_id, assistant_id=assistant_id)
    return assistant_store.update_assistant(
        conn, user_id=user_id, assistant_id=assistant_id, fields=change(current)
    )


# ---------------------------------------------------------------------------- threads


def update_thread(
    conn: Connection, *, user_id: str, thread_id: str, metadata: dict[str, Any] | None
) -> Thread:
    """The user's thread, its metadata replaced (None: left as it is)."""
    if metadata is None:
        return thread_store.get_thread(conn, user_id=user_id, thread_id=thread_id)
    return thread_store.update_metadata(
        conn, user_id=user_id, thread_id=thread_id, metadata=metadata
    )


# --------------------------------------------------------------------------- messages


def messages_public(conn: Connection, items: list[Message]) -> list[MessagePublic]:
    """Messages as the API answers them: each with what the run that wrote it says of it."""
    runs = thread_store.runs_of_messages(conn, run_ids={m.run_id for m in items if m.run_id})
    answered = [m.run_id for m in items if m.run_id and m.role == Role.ASSISTANT and m.content]
    made = run_outputs(conn, run_ids=list(set(answered)))
    return [
        files.with_figures(
            files.cited(
                MessagePublic.of(m, runs.get(m.run_id) if m.run_id else None),
                made.found.get(m.run_id or "", {}),
            ),
            made.shown.get(m.id, []),
        )
        for m in items
    ]


@dataclass(slots=True)
class RunOutputs:
    """What the calls the server ran in some runs give the runs' messages
    (``run_outputs``)."""

    #: The files each run's searches found: id by name, by run id.
    found: dict[str, dict[str, str]] = field(default_factory=dict)
    #: The figures each run's code drew (files of purpose ``assistants_output``), by the id
    #: of the assistant message that shows them: the first with text after the call.
    shown: dict[str, list[str]] = field(default_factory=dict)
    #: By run id, the figures no message shows yet.
    waiting: dict[str, list[str]] = field(default_factory=dict)


def run_outputs(conn: Connection, *, run_ids: Sequence[str]) -> RunOutputs:
    """The files the runs' searches found and the figures their code drew, from one read
    of their messages in order."""
    made = RunOutputs()
    if not run_ids:
        return made
    query = (
        select(
            messages.c.id, messages.c.run_id, messages.c.role, messages.c.content, messages.c.item
        )
        .where(messages.c.run_id.in_(list(run_ids)))
        .order_by(messages.c.seq)
    )
    for row in conn.execute(query):
        kind = row.item.get("type") if isinstance(row.item, dict) else None
        if kind == "file_search_call" and row.role == Role.TOOL.value:
            made.found.setdefault(row.run_id, {}).update(cited_files([row.item]))
        elif kind == "code_interpreter_call":
            made.waiting.setdefault(row.run_id, []).extend(files.figures([row.item]))
        elif row.role == Role.ASSISTANT.value and row.content and made.waiting.get(row.run_id):
            made.shown[row.id] = made.waiting.pop(row.run_id)
    return made


def list_messages(
    conn: Connection,
    *,
    user_id: str,
    thread_id: str,
    page: ListQuery,
    run_id: str | None,
    with_tools: bool,
) -> tuple[list[MessagePublic], bool]:
    """A page of the thread's messages (``thread_store.list_messages``), and whether more
    follow."""
    items, more = thread_store.list_messages(
        conn, user_id=user_id, thread_id=thread_id, page=page, run_id=run_id, with_tools=with_tools
    )
    return messages_public(conn, items), more


def message(conn: Connection, *, user_id: str, message_id: str) -> MessagePublic:
    """A message of the user's, by its id alone."""
    found = thread_store.get_message(conn, user_id=user_id, message_id=message_id)
    return messages_public(conn, [found])[0]


def thread_message(
    conn: Connection, *, user_id: str, thread_id: str, message_id: str
) -> MessagePublic:
    """A message of the user's thread."""
    return messages_public(conn, [_of_thread(conn, user_id, thread_id, message_id)])[0]


def update_message(
    conn: Connection,
    *,
    user_id: str,
    thread_id: str,
    message_id: str,
    metadata: dict[str, Any] | None,
) -> MessagePublic:
    """A message of the user's thread, its metadata replaced (None: left as it is; empty:
    cleared)."""
    found = _of_thread(conn, user_id, thread_id, message_id)
    if metadata is not None:
        thread_store.update_message(conn, message_id=found.id, metadata=metadata or None)
        found.metadata = metadata
    return messages_public(conn, [found])[0]


def delete_message(conn: Connection, *, user_id: str, thread_id: str, message_id: str) -> None:
    """Delete a message of the user's thread. An assistant message that holds tool calls
    keeps them (their results answer them) and loses its text; a tool result cannot be
    deleted alone, nor a message of a thread with an active run."""
    found = _of_thread(conn, user_id, thread_id, message_id)
    busy = {str(s) for s in ACTIVE_STATUSES}
    if thread_store.thread_has_run_in(conn, thread_id=thread_id, statuses=busy):
        raise Conflict(
            "The thread has an active run; wait for it, or cancel it, before deleting "
            "its messages.",
            code="thread_busy",
        )
    if found.role == Role.TOOL:
        raise InvalidRequest(
            "A tool result answers a tool call: it cannot be deleted alone.",
            code="tool_result_not_deletable",
        )
    if found.tool_calls:
        thread_store.update_message(conn, message_id=found.id, content="", layout=None)
    else:
        thread_store.delete_message(conn, message_id=found.id)


def _of_thread(conn: Connection, user_id: str, thread_id: str, message_id: str) -> Message:
    return of_thread(
        thread_store.get_message(conn, user_id=user_id, message_id=message_id), thread_id
    )


# ------------------------------------------------------------------------------- runs


def run_in_thread(conn: Connection, *, user_id: str, thread_id: str, run_id: str) -> Run:
    """A run of the user's thread (404 for a run of another thread, as for none)."""
    return of_thread(run_store.get_run(conn, run_id=run_id, user_id=user_id), thread_id)


def thread_run(conn: Connection, *, user_id: str, thread_id: str, run_id: str) -> RunPublic:
    """A run of the user's thread, as every path answers it (``kit.reads.run_public``)."""
    return run_public(
        conn, run_in_thread(conn, user_id=user_id, thread_id=thread_id, run_id=run_id)
    )


def update_run(
    conn: Connection,
    *,
    user_id: str,
    thread_id: str,
    run_id: str,
    metadata: dict[str, Any] | None,
) -> RunPublic:
    """A run of the user's thread, its metadata replaced (None: left as it is)."""
    run = of_thread(run_store.lock_run(conn, run_id=run_id, user_id=user_id), thread_id)
    if metadata is not None:
        run_store.update_run(conn, run_id=run.id, metadata=metadata)
    return thread_run(conn, user_id=user_id, thread_id=thread_id, run_id=run_id)


def turn_message(conn: Connection, *, user_id: str, message_id: str) -> Message:
    """The assistant message a turn writes (its stream's ``thread.message.*``)."""
    return thread_store.get_message(conn, user_id=user_id, message_id=message_id)


def first_turn(conn: Connection, *, user_id: str, run_id: str) -> tuple[Run, Message]:
    """A run of the user's and the message its first turn wrote."""
    run = run_store.get_run(conn, run_id=run_id, user_id=user_id)
    return run, thread_store.run_answers(conn, run_id=run_id)[0]


def resumed_turn(
    conn: Connection, *, queued: Run, message_id: str
) -> tuple[list[RunStepPublic], Message, list[str]]:
    """A run's turn that started after its tool outputs: the step of the calls they answer,
    as it stood when the run was ``queued`` with them (the run as the outputs left it),
    the message the new turn writes (``message_id``), and the figures it shows first:
    those it has, or, while it has no text yet, those the run's code drew that no message
    has shown (drawn before the calls the turn waited for)."""
    message = thread_store.get_message(conn, user_id=queued.user_id, message_id=message_id)
    answers = thread_store.run_answers(conn, run_id=queued.id)
    earlier = [m for m in answers if m.seq < message.seq][-1:]
    actions = run_store.list_actions(conn, run_id=queued.id)
    results = thread_store.run_tool_results(conn, run_id=queued.id)
    steps = run_steps(queued, earlier, actions, results)
    answered = [s for s in steps if s.id == calls_step_id(earlier[0].id)] if earlier else []
    made = run_outputs(conn, run_ids=[queued.id])
    return answered, message, made.shown.get(message.id) or made.waiting.get(queued.id, [])


def steps(
    conn: Connection, *, user_id: str, thread_id: str, run_id: str, contents: bool = False
) -> list[RunStepPublic]:
    """A run's steps, oldest first; a file search's with its results (their text with
    ``contents``)."""
    run = run_in_thread(conn, user_id=user_id, thread_id=thread_id, run_id=run_id)
    answers = [m for m in thread_store.run_answers(conn, run_id=run_id) if m.role == Role.ASSISTANT]
    actions = run_store.list_actions(conn, run_id=run_id)
    found = run_steps(run, answers, actions, thread_store.run_tool_results(conn, run_id=run_id))
    searches = search_items(conn, run_id=run_id)
    if not searches:
        return found
    return [files.with_searches(step, searches, run.tools, contents) for step in found]


@dataclass(frozen=True, slots=True)
class TurnEnd:
    """A turn that ended, as its stream's closing events show it (``turn_end``)."""

    run: Run
    #: The message the turn wrote.
    message: Message
    #: The run's actions.
    actions: list[Action]
    #: The files the run's searches found (id by name), which the message may cite.
    found: dict[str, str]
    #: The figures the message shows first.
    figures: list[str]


def turn_end(conn: Connection, *, run_id: str, message_id: str) -> TurnEnd:
    """A turn that ended: its run, the message it wrote (with what the run's searches and
    code give it, when it has text) and the run's actions."""
    run = run_store.get_run(conn, run_id=run_id)
    written = thread_store.get_message(conn, user_id=run.user_id, message_id=message_id)
    actions = run_store.list_actions(conn, run_id=run_id)
    made = run_outputs(conn, run_ids=[run.id]) if written.content else RunOutputs()
    return TurnEnd(
        run, written, actions, made.found.get(run.id, {}), made.shown.get(written.id, [])
    )


# --------------------------------------------- file_search: stores, attachments, steps


def check_files(conn: Connection, *, user_id: str, file_ids: Sequence[str]) -> None:
    """``NotFound`` naming the first file that is not the user's."""
    wanted = list(dict.fromkeys(file_ids))
    if not wanted:
        return
    found = set(
        conn.execute(
            select(file_rows.c.id).where(file_rows.c.id.in_(wanted), file_rows.c.user_id == user_id)
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
    the thread (``thread_id``). Its ``code_interpreter`` files (the user's) are kept as
    given: an assistant's in the result, a thread's in the thread (``store.code_files``)."""
    if thread_id is not None:  # the user's (``NotFound`` else)
        thread_store.get_thread(conn, user_id=user_id, thread_id=thread_id)
    code = (resources or {}).get("code_interpreter")
    code_kept: dict[str, Any] = {}
    if code is not None:
        file_ids = list(code.get("file_ids") or [])
        check_files(conn, user_id=user_id, file_ids=file_ids)
        if thread_id is not None:
            code_files.set_code_files(conn, user_id=user_id, thread_id=thread_id, file_ids=file_ids)
        code_kept = {"code_interpreter": {"file_ids": file_ids}}
    search = (resources or {}).get("file_search")
    if not search:
        return code_kept
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
    return {"file_search": {"vector_store_ids": ids}, **code_kept}


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
    file_ids += ((resources or {}).get("code_interpreter") or {}).get("file_ids") or []
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
    return thread_tool_resources(conn, user_id=user_id, thread_id=thread_id)


def thread_tool_resources(conn: Connection, *, user_id: str, thread_id: str) -> dict[str, Any]:
    """A thread's ``tool_resources`` as the API shows them: its own store, and its code
    interpreter files."""
    ids = stores.thread_stores(conn, user_id=user_id, thread_id=thread_id)
    resources: dict[str, Any] = {"file_search": {"vector_store_ids": ids}} if ids else {}
    code = code_files.thread_code_files(conn, user_id=user_id, thread_id=thread_id)
    if code:
        resources["code_interpreter"] = {"file_ids": code}
    return resources


def attach(
    conn: Connection,
    *,
    user_id: str,
    thread_id: str,
    attachments: Sequence[Mapping[str, Any]] | None,
    embedding_model: str | None,
) -> None:
    """Put the files a message's ``attachments`` give ``file_search`` into the thread's
    store, made with the first of them, and those they give ``code_interpreter`` among the
    thread's code interpreter files (the thread the user's: ``NotFound`` else)."""
    code = for_tool(attachments, "code_interpreter")
    if code:
        thread_store.get_thread(conn, user_id=user_id, thread_id=thread_id)
        check_files(conn, user_id=user_id, file_ids=code)
        code_files.add_code_files(conn, user_id=user_id, thread_id=thread_id, file_ids=code)
    file_ids = for_tool(attachments, "file_search")
    if not file_ids:
        return
    thread_store.get_thread(conn, user_id=user_id, thread_id=thread_id)
    found = stores.thread_stores(conn, user_id=user_id, thread_id=thread_id)
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
    file_ids = for_tool(attachments, "file_search")
    if not file_ids:
        return None
    check_files(conn, user_id=user_id, file_ids=file_ids)
    store = stores.create_vector_store(conn, user_id=user_id, embedding_model=embedding_model)
    _fill(conn, user_id=user_id, store_id=store.id, file_ids=file_ids)
    return store.id


def for_tool(attachments: Sequence[Mapping[str, Any]] | None, kind: str) -> list[str]:
    """The files ``attachments`` give the tool ``kind``."""
    return [
        a["file_id"]
        for a in attachments or ()
        if any(t.get("type") == kind for t in a.get("tools") or ())
    ]


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
    are no longer usable (deleted, expired) are left out. The thread's stores among them
    (its own, and ``extra``: those the request gave the thread, or made for a new thread,
    which gets them only once its run has started) are named apart
    (``FILE_SEARCH_THREAD_STORES``): the run waits for their files to be indexed."""
    if not any(t.get("type") == "file_search" for t in tools):
        return tools
    own = list(extra)
    if thread_id is not None:
        own += stores.thread_stores(conn, user_id=user_id, thread_id=thread_id)
    ids = files.resource_ids(assistant_resources) + own
    out = []
    for tool in tools:
        if tool.get("type") == "file_search":
            wanted = list(dict.fromkeys([*tool.get("vector_store_ids", ()), *ids]))
            usable = [s for s in wanted if _usable(conn, user_id, s)]
            tool = {**tool, "vector_store_ids": usable}
            thread_stores = [s for s in usable if s in own]
            if thread_stores:
                tool[FILE_SEARCH_THREAD_STORES] = thread_stores
        out.append(tool)
    return out


def code_tools(
    conn: Connection,
    *,
    user_id: str,
    tools: list[dict[str, Any]],
    assistant_resources: Mapping[str, Any] | None,
    thread_id: str | None,
    extra: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """A run's tools, its ``code_interpreter`` entry (one naming no container) given the
    files the thread's container starts with: its assistant's (``assistant_resources``), its
    thread's, and ``extra``; its figures kept as files too (``image_files``: the Assistants
    API names them by file id)."""
    code = (assistant_resources or {}).get("code_interpreter") or {}
    ids = list(code.get("file_ids") or [])
    if thread_id is not None:
        ids += code_files.thread_code_files(conn, user_id=user_id, thread_id=thread_id)
    ids = list(dict.fromkeys([*ids, *extra]))
    out = []
    for tool in tools:
        if tool.get("type") == "code_interpreter":
            container = tool.get("container")
            if not isinstance(container, str):
                auto = dict(container or {"type": "auto"})
                auto["file_ids"] = list(dict.fromkeys([*(auto.get("file_ids") or ()), *ids]))
                tool = {**tool, "container": auto}
            tool = {**tool, "image_files": True}
        out.append(tool)
    return out


def _usable(conn: Connection, user_id: str, store_id: str) -> bool:
    try:
        stores.usable_stores(conn, user_id=user_id, vector_store_ids=[store_id])
    except NotFound:
        return False
    return True


def search_items(conn: Connection, *, run_id: str) -> dict[str, dict[str, Any]]:
    """The items of the calls a run's server ran that its steps show in their own shape
    (``files.STEPS``), by call id."""
    query = select(messages.c.tool_call_id, messages.c.item).where(
        messages.c.run_id == run_id, messages.c.role == Role.TOOL.value
    )
    return {
        row.tool_call_id: row.item
        for row in conn.execute(query)
        if isinstance(row.item, dict) and row.item.get("type") in files.STEPS
    }
