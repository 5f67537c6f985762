"""What ``parley import`` writes to the database: each function one transaction's work
(``Database.write``), so that a thread is written whole or not at all, and a second import
adds only what the first did not write."""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from parley.cli.importing.convert import ThreadPlan
from parley.store import threads as thread_store
from parley.store.records import Message
from parley.store.tables import actions, assistants, messages, runs, threads, users


class Written(NamedTuple):
    """What ``write_thread`` added."""

    new_thread: bool
    runs: int
    messages: int
    tool_calls: int


class NoUser(LookupError):
    """No user to import into: none named, and not exactly one to choose."""


def pick_user(conn: Connection, *, user_id: str | None) -> str:
    """The user ``user_id``, else the database's only user, else its only admin."""
    if user_id is not None:
        if conn.execute(select(users.c.id).where(users.c.id == user_id)).first() is None:
            raise NoUser(f"no user with id {user_id} (parley users list shows them)")
        return user_id
    rows = conn.execute(select(users.c.id, users.c.is_admin).order_by(users.c.created_at)).all()
    if len(rows) == 1:
        return str(rows[0].id)
    admins = [r.id for r in rows if r.is_admin]
    if len(admins) == 1:
        return str(admins[0])
    if not rows:
        raise NoUser("the database has no user yet: make one with parley users create")
    raise NoUser("the database has several users: name one with --user (parley users list)")


def write_assistants(conn: Connection, *, rows: list[dict[str, Any]]) -> int:
    """Store the assistants not stored yet; returns how many were new."""
    wanted = [r["id"] for r in rows]
    present = set(
        conn.execute(select(assistants.c.id).where(assistants.c.id.in_(wanted))).scalars()
    )
    new = [r for r in rows if r["id"] not in present]
    if new:
        conn.execute(insert(assistants), new)
    return len(new)


def write_thread(conn: Connection, *, user_id: str, plan: ThreadPlan) -> Written:
    """Store the thread if it is not there, its runs not stored yet, and the messages not
    stored yet after those that are, in the plan's order."""
    found = conn.execute(
        select(threads.c.user_id).where(threads.c.id == plan.id)
    ).scalar_one_or_none()
    new_thread = found is None
    if new_thread:
        conn.execute(
            insert(threads).values(
                id=plan.id,
                user_id=user_id,
                metadata=plan.metadata,
                message_count=0,
                created_at=plan.created_at,
            )
        )
    elif found != user_id:  # ids are derived from the user: never another's
        raise LookupError(f"thread {plan.id} belongs to another user")
    run_ids = [r.id for r in plan.runs]
    present_runs = set(conn.execute(select(runs.c.id).where(runs.c.id.in_(run_ids))).scalars())
    known_assistants = set(
        conn.execute(
            select(assistants.c.id).where(
                assistants.c.id.in_(list(plan.run_assistants.values())),
                assistants.c.user_id == user_id,
            )
        ).scalars()
    )
    new_runs = []
    for run in plan.runs:
        if run.id in present_runs:
            continue
        values = run.values()
        assistant = plan.run_assistants.get(run.id)
        values["assistant_id"] = assistant if assistant in known_assistants else None
        new_runs.append(values)
    if new_runs:
        conn.execute(insert(runs), new_runs)
        added_runs = {r["id"] for r in new_runs}
        new_actions = [a for a in plan.actions if a["run_id"] in added_runs]
        if new_actions:
            conn.execute(insert(actions), new_actions)
    thread_store.lock_thread(conn, user_id=user_id, thread_id=plan.id)
    present = set(
        conn.execute(select(messages.c.id).where(messages.c.thread_id == plan.id)).scalars()
    )
    linked = present_runs | {r["id"] for r in new_runs}
    added = [m for m in plan.messages if m.id not in present]
    if added:
        last = thread_store.reserve_seqs(conn, user_id=user_id, thread_id=plan.id, count=len(added))
        first = last - len(added) + 1
        rows: list[Message] = []
        for n, message in enumerate(added):
            values = message.values()
            values.update(seq=first + n)
            if values["run_id"] not in linked:
                values["run_id"] = None
            rows.append(Message(**values))
        thread_store.insert_messages(conn, user_id=user_id, rows=rows)
    calls = sum(len(m.tool_calls or ()) for m in added)
    return Written(new_thread, len(new_runs), len(added), calls)
