"""What a data function may ask of the transaction it runs in (``Database.write``): to share
a commit with the writes queued beside it (``group_commit``), to tell listeners once it
commits (``notify``), to send its writes ahead with the commit (``send_ahead``); and what a
transaction's errors say: run it again (``retryable``), or answer 409 (``lost_race``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from parley.errors import Conflict
from parley.store import driver

__all__ = [
    "RACES",
    "WRITE_TRIES",
    "group_commit",
    "grouped",
    "lost_race",
    "notify",
    "retryable",
    "send_ahead",
    "translate_ahead",
]

log = logging.getLogger("parley.store")

T = TypeVar("T")
P = ParamSpec("P")


#: The attribute that marks a write function ``group_commit``.
GROUPED = "parley_group_commit"


def group_commit(fn: Callable[P, T]) -> Callable[P, T]:
    """Mark a write function that may share its transaction with the writes queued beside
    it (``Database._run_group``): on SQLite, under load, several claims, ends or
    checkpoints then cost one commit. Only for functions that keep no state of their own
    on the connection and whose failure is their own: each runs in a savepoint, rolled
    back alone when it raises."""
    setattr(fn, GROUPED, True)
    return fn


def grouped(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` is marked ``group_commit``."""
    return bool(getattr(fn, GROUPED, False))


#: The key of the topics a transaction will tell of once it commits (``notify``).
TOPICS = "parley_notify"


#: How many times ``Database.write_retried`` runs a write that PostgreSQL aborted to break a
#: deadlock or a serialization conflict.
WRITE_TRIES = 3

#: PostgreSQL's errors of a transaction that lost a race it can win when run again: a
#: deadlock (the database aborted this one to free the other) and a serialization failure.
_RETRYABLE = frozenset({"40P01", "40001"})


def retryable(exc: BaseException) -> bool:
    """Whether ``exc`` (from ``Database.write``) aborted a transaction only to break a
    deadlock or a serialization conflict: nothing was written, and the same transaction
    run again can succeed."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in _RETRYABLE


def notify(conn: Connection, topic: str) -> None:
    """Have the listeners of ``topic`` (``Database.listen``) told once this transaction
    commits; nothing is told of one that rolls back."""
    conn.info.setdefault(TOPICS, set()).add(topic)


def send_ahead(conn: Connection) -> None:
    """From here to its commit, send the transaction's writes without waiting for each
    answer: on PostgreSQL the driver's (``parley.store.driver``) go with the COMMIT as one
    query, one round trip instead of one each (SQLite's statements cost no round trip:
    nothing changes there). What they answer can't be read, so call it once every read,
    and every compare-and-set update whose row count decides something, is done (a
    statement run after it sends those kept first). Their errors come with the commit
    (``translate_ahead``)."""
    if conn.dialect.name == "postgresql" and driver.AHEAD not in conn.info:
        conn.info[driver.AHEAD] = driver.Ahead()


def translate_ahead(
    conn: Connection, translate: Callable[[IntegrityError], Exception | None]
) -> None:
    """For a statement about to be sent ahead (``send_ahead``): ``translate`` turns a
    unique-key violation, which then comes with the commit, into the statement's own error
    (None: not its violation)."""
    if (ahead := conn.info.get(driver.AHEAD)) is not None:
        ahead.translators.append(translate)


#: A transaction's errors that say it lost a race (a unique key taken meanwhile, a row it
#: names deleted): answered 409 ``conflict``, a retry may succeed (``lost_race``).
RACES: tuple[type[Exception], ...] = (IntegrityError,)


def lost_race(exc: Exception) -> Conflict | None:
    """``exc`` as the 409 its client is answered, when it is one of ``RACES``."""
    if not isinstance(exc, RACES):
        return None
    log.info("integrity conflict: %s", getattr(exc, "orig", None))
    return Conflict("The request conflicts with the current state; retry.", code="conflict")
