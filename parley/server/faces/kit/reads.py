"""What the runs and messages routes read, said once: a run as every path answers it (a run
waiting for tool outputs with its ``required_action``), a page of runs, and a run or
message named under a thread it is not of (404, as if it did not exist)."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.engine import Connection

from parley.errors import NotFound
from parley.server.faces.kit.resources import RunPublic
from parley.store import runs as run_store
from parley.store import threads as thread_store
from parley.store.pagination import ListQuery
from parley.store.records import Message, Run
from parley.types import ActionStatus, RunStatus

#: A record that belongs to a thread.
InThread = TypeVar("InThread", Run, Message)


def run_public(conn: Connection, run: Run) -> RunPublic:
    """The run; one waiting for tool outputs with the calls that wait (``required_action``)."""
    pending, marks = None, {}
    if run.status == RunStatus.ACTION_REQUIRED:
        pending = run_store.list_actions(conn, run_id=run.id, status=ActionStatus.PENDING)
        if any(a.kind == "approval" for a in pending):
            marks = thread_store.call_marks(conn, run_id=run.id)
    return RunPublic.of(run, pending, marks)


def list_runs(
    conn: Connection, *, user_id: str, thread_id: str | None, page: ListQuery
) -> tuple[list[RunPublic], bool]:
    """A page of the user's runs (of one thread with ``thread_id``: 404 when the user has
    no such thread), each as ``run_public`` answers it, and whether more follow."""
    if thread_id is not None:
        thread_store.get_thread(conn, user_id=user_id, thread_id=thread_id)
    runs, more = run_store.list_runs(conn, user_id=user_id, thread_id=thread_id, page=page)
    return [run_public(conn, run) for run in runs], more


def of_thread(item: InThread, thread_id: str) -> InThread:
    """``item`` (a run or a message of the user's), when it is of the thread ``thread_id``.

    Raises:
        NotFound: it is of another thread.
    """
    if item.thread_id != thread_id:
        kind = "run" if isinstance(item, Run) else "message"
        raise NotFound(f"No {kind} with id {item.id}.", code=f"{kind}_not_found")
    return item
