"""Runs, their actions (one per tool call) and their event log.

Status changes are compare-and-set: ``set_status`` only moves a run that is still in one of
the expected states, and says whether it did. Which moves are allowed is the engine's table
(``parley.engine.states``); this module only executes them.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import bindparam, exists, func, insert, or_, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from parley.errors import Conflict, NotFound
from parley.store import driver
from parley.store.db import new_id, now
from parley.store.pagination import ListQuery, fetch_page
from parley.store.records import Action, Run, StoredEvent
from parley.store.tables import (
    ACTIVE_RUN_SQL,
    SCRATCH_THREAD_SQL,
    actions,
    run_events,
    runs,
    threads,
)
from parley.store.threads import SCRATCH
from parley.store.transaction import translate_ahead

# Statements of the hot path, built once (building one per call costs more than running it).
#: The largest event sequence number a run's log can hold on every database (a 32-bit
#: column). A cursor above it is past every event there will ever be.
MAX_SEQ = 2**31 - 1

_INSERT_ACTIONS = insert(actions)
#: The condition of the index of active runs (``uq_runs_active_thread``), word for word:
#: SQLite uses a partial index only for a statement whose WHERE holds the index's own
#: condition (it does not see that ``status = ?`` implies it), nor does PostgreSQL in a
#: generic plan, so the reads of active runs carry it, and read the few active runs
#: instead of every run ever made.
ACTIVE = text(ACTIVE_RUN_SQL)
#: A run anyone may see: not one of a scratch thread (``tables.threads.scratch_until``).
VISIBLE = ~exists().where(threads.c.id == runs.c.thread_id, SCRATCH)
_GET_RUN = select(runs).where(runs.c.id == bindparam("run_id"))
_GET_ANY_OWN_RUN = _GET_RUN.where(runs.c.user_id == bindparam("user_id"))
_GET_OWN_RUN = _GET_ANY_OWN_RUN.where(VISIBLE)
_LOCK_ANY_OWN_RUN = _GET_ANY_OWN_RUN.with_for_update(of=runs)
_LOCK_OWN_RUN = _GET_OWN_RUN.with_for_update(of=runs)


def _run_not_found(run_id: str) -> NotFound:
    return NotFound(f"No run with id {run_id}.", code="run_not_found")


def new_run(
    *,
    user_id: str,
    thread_id: str,
    assistant_id: str | None,
    model: str,
    instructions: str | None,
    tools: list[dict[str, Any]],
    parameters: dict[str, Any],
    status: str = "queued",
    metadata: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    request: dict[str, Any] | None = None,
    created_at: float | None = None,
) -> Run:
    """A new run's record, made now (or at ``created_at``) and not stored (``create_run``
    stores one)."""
    t = now() if created_at is None else created_at
    return Run(
        id=new_id("run"),
        user_id=user_id,
        thread_id=thread_id,
        assistant_id=assistant_id,
        model=model,
        instructions=instructions,
        tools=tools,
        parameters=parameters,
        status=status,
        input_tokens=0,
        output_tokens=0,
        reasoning_tokens=0,
        cached_tokens=0,
        error_code=None,
        error_message=None,
        last_seq=0,
        created_at=t,
        started_at=t if status == "in_progress" else None,
        completed_at=None,
        expires_at=None,
        metadata=metadata,
        options=options,
        request=request,
    )


def create_run(
    conn: Connection,
    *,
    user_id: str,
    thread_id: str,
    assistant_id: str | None,
    model: str,
    instructions: str | None,
    tools: list[dict[str, Any]],
    parameters: dict[str, Any],
    status: str = "queued",
    lease: tuple[str, float] | None = None,
    metadata: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    request: dict[str, Any] | None = None,
    created_at: float | None = None,
) -> Run:
    """A new run; ``status="in_progress"`` with a ``(owner, expires_at)`` lease creates it
    already claimed, for a turn that starts in the same transaction."""
    run = new_run(
        user_id=user_id,
        thread_id=thread_id,
        assistant_id=assistant_id,
        model=model,
        instructions=instructions,
        tools=tools,
        parameters=parameters,
        status=status,
        metadata=metadata,
        options=options,
        request=request,
        created_at=created_at,
    )
    values = run.values()
    if lease is not None:
        values["lease_owner"], values["lease_expires_at"] = lease
    busy = functools.partial(thread_busy, thread_id=thread_id)
    translate_ahead(conn, busy)
    try:
        driver.insert_rows(conn, runs, [values])
    except IntegrityError as exc:
        if (error := busy(exc)) is not None:
            raise error from None
        raise
    return run


def thread_busy(exc: IntegrityError, *, thread_id: str) -> Conflict | None:
    """The error of a run inserted into a thread that has an active run already (a race
    lost: the one active run of a thread is enforced by a unique index), else None."""
    if "uq_runs_active_thread" not in str(exc.orig) and "runs.thread_id" not in str(exc.orig):
        return None
    return Conflict(
        f"Thread {thread_id} has an active run; wait for it, submit its tool outputs, "
        "or cancel it.",
        code="thread_busy",
    )


def run_requests(conn: Connection, *, run_ids: Sequence[str]) -> dict[str, Any]:
    """The face's record of the request (``runs.request``) of each of ``run_ids``."""
    if not run_ids:
        return {}
    rows = conn.execute(select(runs.c.id, runs.c.request).where(runs.c.id.in_(list(run_ids))))
    return {row.id: row.request for row in rows}


def get_run(
    conn: Connection, *, run_id: str, user_id: str | None = None, scratch: bool = False
) -> Run:
    """The run; with ``user_id``, only if it belongs to that user and, unless ``scratch``,
    to a thread anyone may see (not a scratch one)."""
    if user_id is None:
        row = conn.execute(_GET_RUN, {"run_id": run_id}).first()
    else:
        query = _GET_ANY_OWN_RUN if scratch else _GET_OWN_RUN
        row = conn.execute(query, {"run_id": run_id, "user_id": user_id}).first()
    if row is None:
        raise _run_not_found(run_id)
    return Run.from_row(row)


def lock_run(conn: Connection, *, run_id: str, user_id: str, scratch: bool = False) -> Run:
    """The run, locked for the rest of the transaction (SQLite's write lock already is); a
    run of a scratch thread only with ``scratch`` (the engine's own)."""
    if conn.dialect.name == "postgresql":
        query = _LOCK_ANY_OWN_RUN if scratch else _LOCK_OWN_RUN
    else:
        query = _GET_ANY_OWN_RUN if scratch else _GET_OWN_RUN
    row = conn.execute(query, {"run_id": run_id, "user_id": user_id}).first()
    if row is None:
        raise _run_not_found(run_id)
    return Run.from_row(row)


def list_runs(
    conn: Connection,
    *,
    user_id: str,
    thread_id: str | None,
    page: ListQuery,
) -> tuple[list[Run], bool]:
    where = (runs.c.user_id == user_id) & VISIBLE
    if thread_id is not None:
        where = where & (runs.c.thread_id == thread_id)
    rows, more = fetch_page(
        conn,
        runs,
        where=where,
        sort_column="created_at",
        page=page,
    )
    return [Run.from_row(r) for r in rows], more


def active_run_id(conn: Connection, *, thread_id: str) -> str | None:
    query = select(runs.c.id).where(runs.c.thread_id == thread_id, ACTIVE)
    return (conn.execute(query)).scalar_one_or_none()


def set_status(
    conn: Connection,
    *,
    run_id: str,
    expected: Iterable[str],
    status: str,
    **values: Any,
) -> bool:
    """Move the run to ``status`` if it is in one of ``expected``; True when it moved."""
    statement, params = _move(run_id, expected, status, values)
    return bool(statement.run(conn, params))


#: What an ending move answers besides moving: whether the run's user has a webhook
#: endpoint (``webhooks.enqueue`` then looks for the subscribed ones).
_ANY_ENDPOINT = (
    "(SELECT 1 FROM webhook_endpoints WHERE webhook_endpoints.user_id = runs.user_id LIMIT 1)"
)


def end_status(
    conn: Connection,
    *,
    run_id: str,
    expected: Iterable[str],
    status: str,
    **values: Any,
) -> tuple[bool, bool]:
    """As ``set_status``, for a move that ends the run (or pauses it): whether it moved,
    and whether the run's user has a webhook endpoint, read by the same statement."""
    statement, params = _move(run_id, expected, status, values, returning=_ANY_ENDPOINT)
    rows = statement.rows(conn, params)
    return bool(rows), bool(rows and rows[0][0] is not None)


def _move(
    run_id: str,
    expected: Iterable[str],
    status: str,
    values: dict[str, Any],
    *,
    returning: str = "",
) -> tuple[driver.Statement, list[Any]]:
    """The compare-and-set update of a move and its values."""
    allowed = tuple(expected)
    columns = tuple(sorted(values))
    where = f"id = ? AND status IN ({', '.join('?' * len(allowed))})"
    statement = driver.update(runs, ("status", *columns), where, returning)
    return statement, [status, *(values[c] for c in columns), run_id, *allowed]


def update_run(conn: Connection, *, run_id: str, **values: Any) -> None:
    conn.execute(update(runs).where(runs.c.id == run_id).values(**values))


_RENEW_LEASES = driver.ForEach(
    "UPDATE runs SET lease_expires_at = ?"
    " WHERE lease_owner = ? AND status = 'in_progress' AND id IN ??"
)


def renew_leases(conn: Connection, *, owner: str, run_ids: Sequence[str], until: float) -> None:
    if run_ids:
        _RENEW_LEASES.run(conn, (until, owner), run_ids)


def in_progress_leases(conn: Connection) -> dict[str, tuple[str | None, float | None]]:
    """The lease (owner, expiry) of every run with a turn in progress (few: the active runs
    are indexed)."""
    query = select(runs.c.id, runs.c.lease_owner, runs.c.lease_expires_at).where(
        ACTIVE, runs.c.status == "in_progress"
    )
    return {r.id: (r.lease_owner, r.lease_expires_at) for r in conn.execute(query).all()}


def lock_lease(conn: Connection, *, run_id: str) -> tuple[str, float | None] | None:
    """Lock a run's row and read its status and lease expiry (None: no such run)."""
    query = (
        select(runs.c.status, runs.c.lease_expires_at).where(runs.c.id == run_id).with_for_update()
    )
    row = conn.execute(query).first()
    return None if row is None else (row.status, row.lease_expires_at)


def orphaned_runs(conn: Connection, *, at: float) -> list[Run]:
    """Runs still ``in_progress`` whose owner stopped renewing its lease."""
    query = select(runs).where(ACTIVE, runs.c.status == "in_progress", runs.c.lease_expires_at < at)
    return [Run.from_row(r) for r in (conn.execute(query)).all()]


def falling_due(conn: Connection) -> tuple[float | None, float | None, float | None]:
    """When the sweep's work next falls due, in one read: the earliest lease of a run in
    progress, the earliest expiry of a run waiting for tool outputs, the earliest hold of
    a scratch thread (each None when there is none)."""
    lease, expiry, hold = _FALLING_DUE.one(conn, ())
    return lease, expiry, hold


_FALLING_DUE = driver.Statement(
    f"SELECT (SELECT min(lease_expires_at) FROM runs WHERE {ACTIVE_RUN_SQL}"
    " AND status = 'in_progress'),"
    f" (SELECT min(expires_at) FROM runs WHERE {ACTIVE_RUN_SQL} AND status = 'action_required'),"
    f" (SELECT min(scratch_until) FROM threads WHERE {SCRATCH_THREAD_SQL})"
)


def overdue_runs(conn: Connection, *, at: float, thread_id: str | None = None) -> list[Run]:
    """``action_required`` runs whose wait for tool outputs has run out."""
    query = select(runs).where(ACTIVE, runs.c.status == "action_required", runs.c.expires_at < at)
    if thread_id is not None:
        query = query.where(runs.c.thread_id == thread_id)
    return [Run.from_row(r) for r in (conn.execute(query)).all()]


# ------------------------------------------------------------------------------ actions


def create_actions(
    conn: Connection,
    *,
    run_id: str,
    calls: Sequence[tuple[str, str, str, dict[str, Any]]],
    approvals: frozenset[str] = frozenset(),
) -> list[Action]:
    """One pending action per ``(action_id, tool_call_id, name, arguments)``; those whose
    action id is among ``approvals`` wait for an approval (``kind`` ``approval``)."""
    t = now()
    rows = [
        Action(
            id=action_id,
            run_id=run_id,
            tool_call_id=call_id,
            position=position,
            name=name,
            arguments=arguments,
            status="pending",
            output=None,
            created_at=t,
            kind="approval" if action_id in approvals else None,
        )
        for position, (action_id, call_id, name, arguments) in enumerate(calls)
    ]
    if rows:
        conn.execute(_INSERT_ACTIONS, [a.values() for a in rows])
    return rows


def delete_run(conn: Connection, *, run_id: str) -> None:
    """Delete a run with its actions and event log; its messages stay in the thread."""
    conn.execute(runs.delete().where(runs.c.id == run_id))


def list_actions(conn: Connection, *, run_id: str, status: str | None = None) -> list[Action]:
    query = select(actions).where(actions.c.run_id == run_id)
    if status is not None:
        query = query.where(actions.c.status == status)
    query = query.order_by(actions.c.created_at, actions.c.position)
    return [Action.from_row(r) for r in (conn.execute(query)).all()]


def get_action(conn: Connection, *, action_id: str, user_id: str) -> Action:
    query = (
        select(actions)
        .join(runs, runs.c.id == actions.c.run_id)
        .where(actions.c.id == action_id, runs.c.user_id == user_id, VISIBLE)
    )
    row = (conn.execute(query)).first()
    if row is None:
        raise NotFound(f"No action with id {action_id}.", code="action_not_found")
    return Action.from_row(row)


def complete_action(conn: Connection, *, action_id: str, output: str) -> None:
    conn.execute(
        update(actions)
        .where(actions.c.id == action_id)
        .values(status="completed", output=output, completed_at=now())
    )


def close_pending_actions(conn: Connection, *, run_id: str, status: str) -> None:
    conn.execute(
        update(actions)
        .where(actions.c.run_id == run_id, actions.c.status == "pending")
        .values(status=status, completed_at=now())
    )


# ---------------------------------------------------------------------------- event log


#: The ``type`` of an event-log row that holds several events (``pack``).
BATCH = "batch"

Event = tuple[int, str, str]


def pack(run_id: str, events: Sequence[Event]) -> dict[str, Any]:
    """The one event-log row of ``events`` (``(seq, type, json)``, in order): each event
    as ``<seq> <type> <length>`` and a newline, then its JSON (``length`` characters), the
    whole compressed (zlib, fastest level: the events of one run repeat its ids, so a
    checkpoint's shrink about tenfold, and the write-ahead log with them), starting from
    ``_dictionary``: a checkpoint's few events then need not spell out their first one."""
    text = "".join(f"{s} {t} {len(d)}\n{d}" for s, t, d in events)
    compressor = zlib.compressobj(1, zdict=_dictionary(run_id))
    return {
        "run_id": run_id,
        "seq": events[-1][0],
        "first_seq": events[0][0],
        "type": BATCH,
        "data": "",
        "packed": compressor.compress(text.encode()) + compressor.flush(),
    }


def _dictionary(run_id: str) -> bytes:
    """What a run's log rows are likely to hold, for zlib to refer back to: its events'
    common starts, the most common last (nearest, cheapest to refer to)."""
    kinds = ("done", "usage", "tool_calls", "run.status", "reasoning.delta", "content.delta")
    starts = [f'1 {kind} 100\n{{"type":"{kind}","run_id":"{run_id}",' for kind in kinds]
    return ("".join(starts) + '"message_id":"msg_","text":"').encode()


def unpack(packed: bytes, run_id: str) -> list[StoredEvent]:
    """The events of a batch row of the run (its ``packed``: ``pack``); a row packed
    without the dictionary (FDICT clear in the zlib header) reads too."""
    if packed[1] & 0x20:
        decompressor = zlib.decompressobj(zdict=_dictionary(run_id))
        data = (decompressor.decompress(packed) + decompressor.flush()).decode()
    else:
        data = zlib.decompress(packed).decode()
    events = []
    at, end = 0, len(data)
    while at < end:
        line = data.index("\n", at)
        seq, kind, length = data[at:line].split(" ")
        start = line + 1
        at = start + int(length)
        events.append(StoredEvent(seq=int(seq), type=kind, data=data[start:at]))
    return events


def append_events(conn: Connection, *, run_id: str, events: Sequence[Event]) -> None:
    """Store ``(seq, type, json)`` events, in order, as one row of the log. The caller
    advances ``runs.last_seq`` in the same transaction (it already updates the run)."""
    if events:
        driver.insert_rows(conn, run_events, [pack(run_id, events)])


def read_events(
    conn: Connection,
    *,
    run_id: str,
    after: int,
    before: int | None = None,
    kind: str | None = None,
) -> list[StoredEvent]:
    """The run's logged events after ``after`` (and before ``before``; of type ``kind``
    only, when given), in order: the rows that hold any, each unpacked."""
    log = run_events.c
    query = select(log.seq, log.type, log.data, log.first_seq, log.packed).where(
        log.run_id == run_id, log.seq > after
    )
    if before is not None:
        query = query.where(func.coalesce(log.first_seq, log.seq) < before)
    if kind is not None:
        query = query.where(or_(log.type == kind, log.type == BATCH))
    found: list[StoredEvent] = []
    for row in conn.execute(query.order_by(log.seq)):
        if row.first_seq is None:  # a row of one event (written before batches)
            found.append(StoredEvent(seq=row.seq, type=row.type, data=row.data))
            continue
        found += [
            e
            for e in unpack(row.packed, run_id)
            if e.seq > after
            and (before is None or e.seq < before)
            and (kind is None or e.type == kind)
        ]
    return found


_IN_PROGRESS_IDS = driver.ForEach("SELECT id FROM runs WHERE status = 'in_progress' AND id IN ??")


def in_progress_ids(conn: Connection, *, run_ids: Sequence[str]) -> list[str]:
    return [row[0] for row in _IN_PROGRESS_IDS.rows(conn, (), run_ids)]


def append_many_events(conn: Connection, *, batches: Sequence[tuple[str, Sequence[Event]]]) -> None:
    """Store the events of several runs, ``(run_id, events)``: a row each."""
    driver.insert_rows(conn, run_events, [pack(r, events) for r, events in batches if events])
