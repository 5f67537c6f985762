"""What a provider wants back with the tool calls of an answer no run keeps (a chat
completion): its ``StatePart`` data (thinking signatures, reasoning items), kept under a
token the calls' ids carry, so that the client's next request, which sends the calls back,
gets it sent to the provider with them. Kept for ``KEEP_SECONDS``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from parley.store.tables import call_states

#: How long a state is kept: a client that sends the calls back later loses nothing but it.
KEEP_SECONDS = 7 * 24 * 3600.0


def keep_state(
    conn: Connection, *, user_id: str, token: str, state: dict[str, Any], at: float
) -> None:
    """Keep ``state`` under ``token``; states older than ``KEEP_SECONDS`` go."""
    conn.execute(delete(call_states).where(call_states.c.created_at < at - KEEP_SECONDS))
    conn.execute(
        insert(call_states).values(user_id=user_id, token=token, state=state, created_at=at)
    )


def states_of(
    conn: Connection, *, user_id: str, tokens: Collection[str]
) -> dict[str, dict[str, Any]]:
    """The user's states kept under ``tokens``, by token (a token unknown is left out)."""
    rows = conn.execute(
        select(call_states.c.token, call_states.c.state).where(
            call_states.c.user_id == user_id, call_states.c.token.in_(list(tokens))
        )
    )
    return {token: state for token, state in rows}
