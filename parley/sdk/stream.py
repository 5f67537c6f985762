"""Server-sent event streams: one decoder, and the sync and async stream objects.

``SSEDecoder`` turns bytes into frames (``id`` / ``event`` / ``data``); it ignores ``:``
comments such as ``: ping``, accepts ``\\n``, ``\\r\\n`` and ``\\r`` line ends and frames split
anywhere across chunks, and joins multi-line ``data``.

``Stream`` and ``AsyncStream`` yield ``parley.events`` models. They come in two kinds:

* a **turn** stream (``process``, ``completions``, ``stream_chunks``) ends after its
  ``done`` event. If the connection drops before that (read error, incomplete chunked
  body, or the server closing early), it reopens ``GET /v1/runs/{run_id}/events`` with
  ``Last-Event-ID`` set to the last id it saw and goes on yielding only newer events, up to
  the first ``done``. A drop before the first event cannot be resumed and raises
  ``APIConnectionError``.
* a **log** stream (``runs.events``) yields every event, through each turn's ``done``,
  until the server ends the response; drops are resumed the same way.

A turn stream folds the events it yields into a ``TurnAccumulator``: ``final_result()``
reads the rest and answers the turn as a ``TurnResult``, and raises ``RunFailed`` when the
turn ended ``failed`` (iterating never raises for that: the ``error`` event tells it).

Resuming gives up (``APIConnectionError`` / ``APITimeoutError``) after a few attempts in a
row that bring no new event. Events of a type this SDK does not know are skipped.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx
from pydantic import ValidationError

from parley.errors import (
    APIConnectionError,
    APITimeoutError,
    InternalError,
    ParleyError,
    ServiceUnavailable,
    UpstreamError,
)
from parley.events import EVENT_TYPES, DoneEvent, Event, event_from_dict
from parley.sdk import _calls
from parley.sdk._base import MAX_STREAM_RESUMES
from parley.sdk._calls import Call
from parley.sdk._loops import TurnAccumulator, raise_if_failed
from parley.sdk.models import TurnResult

__all__ = ["AsyncStream", "SSEDecoder", "ServerSentEvent", "Stream"]

_LINE_END = re.compile(r"\r\n|\r|\n")
#: Failures of a resume attempt that are worth another attempt.
_RESUMABLE = (APIConnectionError, UpstreamError, ServiceUnavailable, httpx.TransportError)


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One SSE frame."""

    data: str
    event: str | None = None
    id: str | None = None


class SSEDecoder:
    """Incremental SSE parser: ``feed()`` chunks, get the frames they complete.

    An unfinished frame at the end of a body is never returned (it may be truncated).
    """

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._started = False
        self._after_cr = False
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None

    def feed(self, chunk: bytes | str) -> list[ServerSentEvent]:
        text = self._utf8.decode(chunk) if isinstance(chunk, bytes) else chunk
        if not text:
            return []
        if not self._started:
            self._started = True
            text = text.removeprefix("\ufeff")
        if self._after_cr:  # the "\n" of a "\r\n" split across chunks
            text = text.removeprefix("\n")
        self._after_cr = text.endswith("\r")
        lines = _LINE_END.split(self._pending + text)
        self._pending = lines.pop()
        frames: list[ServerSentEvent] = []
        for line in lines:
            frame = self._line(line)
            if frame is not None:
                frames.append(frame)
        return frames

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        frame = None
        if self._data:
            frame = ServerSentEvent(data="\n".join(self._data), event=self._event, id=self._id)
        self._data, self._event, self._id = [], None, None
        return frame


def _decode_event(frame: ServerSentEvent) -> Event | None:
    """The event of a frame, or None for a type this SDK does not know."""
    if frame.event is not None and frame.event not in EVENT_TYPES:
        return None
    try:
        data: Any = json.loads(frame.data)
    except json.JSONDecodeError as exc:
        raise InternalError(
            "The server sent an event that is not JSON.", code="invalid_event"
        ) from exc
    if not isinstance(data, dict):
        raise InternalError("The server sent an event that is not an object.", code="invalid_event")
    kind = data.get("type", frame.event)
    if kind not in EVENT_TYPES:
        return None
    try:
        return event_from_dict({**data, "type": kind})
    except ValidationError as exc:
        raise InternalError(
            f"The server sent a malformed {kind!r} event: {exc.errors()[0]['msg']}",
            code="invalid_event",
        ) from exc


def _is_replayed(event_id: str, last_id: str | None) -> bool:
    if last_id is None:
        return False
    try:
        return int(event_id) <= int(last_id)
    except ValueError:
        return False


class _Tracker:
    """The I/O-free half of a stream: which events to yield, when to stop, how to resume."""

    def __init__(self, *, until_done: bool, run_id: str | None, after: str | int | None) -> None:
        self.until_done = until_done
        self.run_id = run_id
        self.last_event_id = None if after is None else str(after)
        self.finished = False
        self.failures = 0

    def accept(self, frame: ServerSentEvent) -> Event | None:
        if frame.id is not None:
            if _is_replayed(frame.id, self.last_event_id):
                return None
            self.last_event_id = frame.id
        event = _decode_event(frame)
        if event is None:
            return None
        self.failures = 0
        if self.run_id is None and event.run_id:
            self.run_id = event.run_id
        if self.until_done and isinstance(event, DoneEvent):
            self.finished = True
        return event

    def body_ended(self) -> bool:
        """The server ended the body cleanly: True when that is the end of the stream."""
        if not self.until_done:
            self.finished = True
        return self.finished

    def resume_call(self, cause: BaseException | None) -> Call[None]:
        """The request that resumes after a drop, or the error to raise instead."""
        if self.run_id is None or (self.until_done and self.last_event_id is None):
            raise APIConnectionError(
                "The stream was interrupted before its first event and cannot be resumed."
            ) from cause
        if self.failures >= MAX_STREAM_RESUMES:
            error = self._gave_up(cause)
            if error is cause:
                raise error
            raise error from cause
        self.failures += 1
        return _calls.runs_events(self.run_id, after=self.last_event_id)

    def _gave_up(self, cause: BaseException | None) -> ParleyError:
        if isinstance(cause, ParleyError) and not isinstance(cause, APIConnectionError):
            return cause
        what = f"The stream of run {self.run_id} was interrupted"
        tail = f"and could not be resumed after {self.failures} attempts"
        if isinstance(cause, httpx.TimeoutException | APITimeoutError):
            return APITimeoutError(f"{what} (timeout) {tail}.")
        return APIConnectionError(f"{what} {tail}.")


class _StreamBase:
    def __init__(
        self,
        call: Call[Any],
        *,
        until_done: bool,
        run_id: str | None,
        after: str | int | None,
        response: httpx.Response | None,
        delay: Callable[[int], float],
    ) -> None:
        self._call = call
        self._tracker = _Tracker(until_done=until_done, run_id=run_id, after=after)
        self._response = response
        self._delay = delay
        self._turn = TurnAccumulator()

    @property
    def last_event_id(self) -> str | None:
        """The ``id`` of the last event seen (what a resume sends as ``Last-Event-ID``)."""
        return self._tracker.last_event_id

    @property
    def run_id(self) -> str | None:
        """The run this stream belongs to, once known."""
        return self._tracker.run_id

    def _taken(self, event: Event) -> Event:
        """An event on its way to the caller, folded into the turn first (a log stream,
        which may follow a run for hours, keeps nothing)."""
        if self._tracker.until_done:
            self._turn.add(event)
        return event

    def _only_turns(self) -> None:
        if not self._tracker.until_done:
            raise TypeError(
                "final_result() is for a turn stream (process, completions, stream_chunks): "
                "a log stream (runs.events) holds no one turn"
            )

    def _result(self, raise_on_failure: bool) -> TurnResult:
        result = self._turn.result()
        return raise_if_failed(result) if raise_on_failure else result


class Stream(_StreamBase):
    """A synchronous event stream: ``for event in stream``; close it, or use ``with``."""

    def __init__(
        self,
        opener: Callable[[Call[Any]], httpx.Response],
        call: Call[Any],
        *,
        until_done: bool,
        run_id: str | None = None,
        after: str | int | None = None,
        response: httpx.Response | None = None,
        delay: Callable[[int], float] = lambda attempt: 0.0,
    ) -> None:
        super().__init__(
            call, until_done=until_done, run_id=run_id, after=after, response=response, delay=delay
        )
        self._opener = opener
        self._events = self._generate()

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        return self._taken(next(self._events))

    def final_result(self, *, raise_on_failure: bool = True) -> TurnResult:
        """The turn as a ``TurnResult``: reads what is left of the stream (the events not
        taken yet are folded in, not shown), closes it, and answers the events folded.

        Raises:
            RunFailed: the turn ended ``failed`` (unless ``raise_on_failure`` is false).
            TypeError: this is a log stream (``runs.events``), not one turn.
        """
        self._only_turns()
        with self:
            for _ in self:
                pass
        return self._result(raise_on_failure)

    def __enter__(self) -> Stream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop reading and release the connection. Safe to call more than once."""
        self._events.close()
        if self._response is not None:
            self._response.close()

    def _generate(self) -> Generator[Event, None, None]:
        response = self._response or self._opener(self._call)
        self._response = response
        while True:
            dropped: BaseException | None = None
            try:
                decoder = SSEDecoder()
                for chunk in response.iter_bytes():
                    for frame in decoder.feed(chunk):
                        event = self._tracker.accept(frame)
                        if event is not None:
                            yield event
                        if self._tracker.finished:
                            return
            except httpx.TransportError as exc:
                dropped = exc
            finally:
                response.close()
            if dropped is None and self._tracker.body_ended():
                return
            response = self._reopen(dropped)
            self._response = response

    def _reopen(self, dropped: BaseException | None) -> httpx.Response:
        while True:
            call = self._tracker.resume_call(dropped)
            time.sleep(self._delay(self._tracker.failures - 1))
            try:
                return self._opener(call)
            except _RESUMABLE as exc:
                dropped = exc


class AsyncStream(_StreamBase):
    """An asynchronous event stream: ``async for event in stream``; ``aclose()`` it, or use
    ``async with``. The request is sent at the first iteration when not already sent."""

    def __init__(
        self,
        opener: Callable[[Call[Any]], Awaitable[httpx.Response]],
        call: Call[Any],
        *,
        until_done: bool,
        run_id: str | None = None,
        after: str | int | None = None,
        response: httpx.Response | None = None,
        delay: Callable[[int], float] = lambda attempt: 0.0,
    ) -> None:
        super().__init__(
            call, until_done=until_done, run_id=run_id, after=after, response=response, delay=delay
        )
        self._opener = opener
        self._events = self._generate()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        return self._taken(await anext(self._events))

    async def final_result(self, *, raise_on_failure: bool = True) -> TurnResult:
        """``Stream.final_result`` for asyncio (sends the request first when it was not
        sent yet)."""
        self._only_turns()
        async with self:
            async for _ in self:
                pass
        return self._result(raise_on_failure)

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop reading and release the connection. Safe to call more than once."""
        await self._events.aclose()
        if self._response is not None:
            await self._response.aclose()

    async def _generate(self) -> AsyncGenerator[Event, None]:
        response = self._response or await self._opener(self._call)
        self._response = response
        while True:
            dropped: BaseException | None = None
            try:
                decoder = SSEDecoder()
                async for chunk in response.aiter_bytes():
                    for frame in decoder.feed(chunk):
                        event = self._tracker.accept(frame)
                        if event is not None:
                            yield event
                        if self._tracker.finished:
                            return
            except httpx.TransportError as exc:
                dropped = exc
            finally:
                await response.aclose()
            if dropped is None and self._tracker.body_ended():
                return
            response = await self._reopen(dropped)
            self._response = response

    async def _reopen(self, dropped: BaseException | None) -> httpx.Response:
        while True:
            call = self._tracker.resume_call(dropped)
            await asyncio.sleep(self._delay(self._tracker.failures - 1))
            try:
                return await self._opener(call)
            except _RESUMABLE as exc:
                dropped = exc
