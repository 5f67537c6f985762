"""The translators of a response's stream for the kit's pump (``kit.streams``): its
events (``stream.ResponseEvents``) as server-sent events (``ResponseFrames``) or as a
WebSocket's JSON messages (``ResponseMessages``), a resumed stream's events numbered
``after`` or below left out, and the batches that may end a model call held until the
turn's end when the request asks for the answers' provider state."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from parley.engine import Entry
from parley.errors import ParleyError
from parley.server.faces.responses.items import state_blob
from parley.server.faces.responses.stream import Event, ResponseEvents, sse_frame

#: What reads the provider state of a response's answers, by message id (``_Stream``).
StateReader = Callable[[], Awaitable[dict[str, dict[str, Any]]]]
#: The run events that may end a model call: from them on, the state of its answer is
#: known once the turn has ended.
_CALL_ENDS = frozenset(("tool_calls", "done"))


class _Stream:
    """One response's stream, its events numbered ``after`` or below left out. With
    ``stored`` (a response answered whole: its run's log pruned, or a WebSocket warm-up),
    the stream is its start and then that stored end, from no run events.

    With ``states`` (the request's ``include`` asks for ``reasoning.encrypted_content``),
    the batches from the first that may end a model call on are held until the turn's end,
    when ``states`` reads what the provider kept with each answer (stored as the turn ended),
    so that the reasoning items closed then carry it (``ResponseEvents._close``)."""

    __slots__ = ("after", "events", "held", "states", "stored")

    def __init__(
        self,
        events: ResponseEvents,
        *,
        after: int = -1,
        stored: dict[str, Any] | None = None,
        states: StateReader | None = None,
    ) -> None:
        self.events = events
        self.after = after
        self.stored = stored
        self.states = states
        self.held: list[list[Entry]] | None = None

    def _holds(self, batch: list[Entry]) -> bool:
        """Whether ``batch`` waits for the turn's end (kept in ``held``)."""
        if self.held is None:
            if self.states is None or not any(entry[1] in _CALL_ENDS for entry in batch):
                return False
            self.held = []
        self.held.append(batch)
        return True

    async def _read_states(self) -> list[list[Entry]]:
        """The held batches, the answers' states read for them."""
        held, self.held = self.held or [], None
        if held and self.states is not None:
            states = await self.states()
            self.events.states = {m: state_blob(state) for m, state in states.items()}
        return held

    def _opening(self) -> list[Event]:
        return [e for e in self.events.start() if e["sequence_number"] > self.after]

    def _closing(self) -> list[Event]:
        if self.stored is None:
            return []
        ending = self.events.stored_end(self.stored)
        return [e for e in ending if e["sequence_number"] > self.after]


class ResponseFrames(_Stream):
    """The translator of a response's stream as server-sent events (``sse_frame``; a text
    delta written straight to its bytes, ``ResponseEvents.frames``). Cut off, it ends with
    the end frame alone; a client resumes with ``starting_after``."""

    __slots__ = ("_frames", "add")

    def __init__(
        self,
        events: ResponseEvents,
        *,
        after: int = -1,
        stored: dict[str, Any] | None = None,
        states: StateReader | None = None,
    ) -> None:
        super().__init__(events, after=after, stored=stored, states=states)
        #: A batch's frames: ``ResponseEvents.frames`` itself, with no call between on a
        #: live stream (one that leaves nothing out), the bulk of streams.
        self._frames = events.frames if after < 0 else functools.partial(events.frames, after=after)
        self.add = self._frames if states is None else self._add_held

    def _add_held(self, batch: list[Entry]) -> bytes:
        return b"" if self._holds(batch) else self._frames(batch)

    def opening(self) -> bytes:
        return b"".join([sse_frame(e) for e in self._opening()])

    async def closing(self) -> bytes:
        held = [self._frames(batch) for batch in await self._read_states()]
        return b"".join([*held, *(sse_frame(e) for e in self._closing())])

    def cut_off(self, error: ParleyError | None) -> bytes:
        if error is not None:
            raise error
        held, self.held = self.held or [], None  # told without the states never read
        return b"".join([self._frames(batch) for batch in held])


class ResponseMessages(_Stream):
    """The translator of a response's stream as a WebSocket's JSON messages."""

    __slots__ = ()

    def opening(self) -> list[Event]:
        return self._opening()

    def add(self, batch: list[Entry]) -> list[Event]:
        return [] if self._holds(batch) else self._messages(batch)

    def _messages(self, batch: list[Entry]) -> list[Event]:
        feed = self.events.feed
        return [e for entry in batch for e in feed(entry) if e["sequence_number"] > self.after]

    async def closing(self) -> list[Event]:
        held = [e for batch in await self._read_states() for e in self._messages(batch)]
        return held + self._closing()

    def cut_off(self, error: ParleyError | None) -> list[Event]:
        if error is not None:
            raise error
        held, self.held = self.held or [], None  # told without the states never read
        return [e for batch in held for e in self._messages(batch)]
