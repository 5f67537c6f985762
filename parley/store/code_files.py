"""A thread's files for the code interpreter (the Assistants API's): its
``tool_resources.code_interpreter.file_ids`` and the files its messages attach for
``code_interpreter`` (``threads.code_file_ids``). Each run's auto container starts with them,
beside its assistant's (``engine.hosted.containers``)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from parley.store.tables import threads

#: The files one thread keeps for the code interpreter at most (the newest ones).
MOST = 100


def thread_code_files(conn: Connection, *, user_id: str, thread_id: str) -> list[str]:
    """The thread's code interpreter files (none for a thread that is not the user's)."""
    found = conn.execute(
        select(threads.c.code_file_ids).where(
            threads.c.id == thread_id, threads.c.user_id == user_id
        )
    ).scalar_one_or_none()
    return list(found or [])


def set_code_files(
    conn: Connection, *, user_id: str, thread_id: str, file_ids: Sequence[str]
) -> None:
    """The thread's code interpreter files become ``file_ids`` (its ``tool_resources``)."""
    kept = list(dict.fromkeys(file_ids))[-MOST:]
    conn.execute(
        update(threads)
        .where(threads.c.id == thread_id, threads.c.user_id == user_id)
        .values(code_file_ids=kept or None)
    )


def add_code_files(
    conn: Connection, *, user_id: str, thread_id: str, file_ids: Sequence[str]
) -> None:
    """``file_ids`` join the thread's code interpreter files (a message's attachments)."""
    if not file_ids:
        return
    kept = thread_code_files(conn, user_id=user_id, thread_id=thread_id)
    set_code_files(conn, user_id=user_id, thread_id=thread_id, file_ids=[*kept, *file_ids])
