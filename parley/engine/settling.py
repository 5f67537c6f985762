"""How a turn ends, or goes on after tool calls it could not run: each in one transaction,
written before its closing events are published.

A turn ends one of five ways: ``action_required`` (the model asked for tools),
``completed``, ``failed`` (typed error event), ``cancelled`` or ``incomplete`` (shutdown).
Its text, its events not yet in the log and the run's token counts go with it. A turn
whose end cannot be written fails bare (``Settler._fail_bare``): its followers get
``error`` and ``done`` whatever happens.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy.engine import Connection

from parley.config import Settings
from parley.engine import states
from parley.engine.checkpoints import Checkpointer
from parley.engine.history import items_of, last_seq
from parley.engine.hosted.toolbox import Ahead, store_ahead
from parley.engine.hub import Entry
from parley.engine.thread_item import Item
from parley.engine.turn import Behind, Turn, TurnStopped
from parley.errors import InternalError, ParleyError
from parley.events import (
    ActionItem,
    DoneEvent,
    ErrorEvent,
    RunStatusEvent,
    ToolCallsEvent,
    UsageEvent,
)
from parley.metrics import Metrics
from parley.providers.accumulator import AnswerAccumulator
from parley.providers.registry import ProviderRegistry
from parley.store import runs as run_store
from parley.store import threads as thread_store
from parley.store.db import Database, new_id, now
from parley.store.transaction import group_commit, send_ahead
from parley.types import Role, RunStatus, ToolCall

log = logging.getLogger("parley.engine")

#: Seconds a round's write waits for the turn's next model call to be sent (``next_round``).
BEHIND_BY = 0.004


class Settler:
    """Writes the ends of turns (``finish``) and the rounds between their model calls
    (``next_round``)."""

    def __init__(
        self,
        db: Database,
        providers: ProviderRegistry,
        settings: Settings,
        checkpointer: Checkpointer,
        metrics: Metrics,
    ) -> None:
        self.db = db
        self.providers = providers
        self.settings = settings
        self.checkpointer = checkpointer
        self.metrics = metrics

    async def finish(
        self,
        turn: Turn,
        outcome: ParleyError | list[ToolCall] | None,
        stopped: bool,
    ) -> None:
        await self.checkpointer.drain(turn)
        try:
            try:
                await self.caught_up(turn)
            except TurnStopped:
                stopped = True
            except Exception:
                log.exception("could not write a round of run %s", turn.run.id)
                outcome = InternalError("The turn failed because of an internal error.")
            if stopped:
                raise TurnStopped
            if isinstance(outcome, ParleyError):
                await self._fail(turn, outcome)
            elif outcome:
                await self._pause_for_tools(turn, outcome)
            else:
                await self._complete(turn)
        except TurnStopped:
            await self._stop(turn)
        except Exception:
            log.exception("could not write the end of run %s", turn.run.id)
            await self._fail_bare(turn)

    async def next_round(self, turn: Turn, calls: list[ToolCall]) -> None:
        """Answer tool calls whose arguments could not be read with tool errors, keep the
        results of the hosted calls the turn ran, and make the turn call the model again,
        into a new assistant message.

        The round is written in one transaction that goes on behind the next model call
        (``Behind``): the model needs only what the round holds, which the turn has, and a
        round lost with its process is run again like any turn that died. The turn waits
        for the write before anything else it writes (``caught_up``), and a write that
        finds the run no longer ``in_progress`` stops the turn as a checkpoint would."""
        turn.settling = True
        await self.caught_up(turn)
        await self.checkpointer.drain(turn)
        run, message_id = turn.run, turn.message_id
        entries = turn.log.take()
        text, reasoning, layout = turn.answer.texts()
        state = turn.answer.provider_state(self.providers.provider_of(run.model))
        totals = turn.run_totals()
        usage = turn.answer.call_usage()
        tool_calls = turn.hosted.stored_calls(calls)
        errors, items = turn.tool_errors(calls), turn.hosted.items()
        after = last_seq(turn.context)
        placeholder = new_id("msg")
        answer = thread_store.new_message(
            id=message_id,
            thread_id=run.thread_id,
            seq=after + 1,
            role=Role.ASSISTANT,
            content=text,
            reasoning=reasoning,
            tool_calls=tool_calls,
            run_id=run.id,
            layout=layout,
            provider_state=state,
        )
        answer.usage = usage
        results = thread_store.tool_messages(
            thread_id=run.thread_id, run_id=run.id, first=after + 2, results=errors, items=items
        )

        @group_commit
        def write(conn: Connection) -> list[Item] | None:
            locked = run_store.lock_run(conn, run_id=run.id, user_id=run.user_id, scratch=True)
            if locked.status != RunStatus.IN_PROGRESS:
                return None
            thread_store.save_message_text(
                conn,
                message_id=message_id,
                content=text,
                reasoning=reasoning,
                layout=layout,
                tool_calls=tool_calls,
                provider_state=state,
                usage=usage,
            )
            last = thread_store.reserve_seqs(
                conn, user_id=run.user_id, thread_id=run.thread_id, count=len(results) + 1
            )
            first = last - len(results)
            for n, message in enumerate(results):
                message.seq = first + n
            thread_store.insert_messages(conn, user_id=run.user_id, rows=results)
            thread_store.add_message(
                conn,
                user_id=run.user_id,
                thread_id=run.thread_id,
                role=Role.ASSISTANT,
                content="",
                run_id=run.id,
                message_id=placeholder,
                seq=last,
            )
            if entries:
                run_store.append_events(conn, run_id=run.id, events=entries)
            run_store.update_run(
                conn, run_id=run.id, last_seq=entries[-1][0] if entries else turn.log.seq, **totals
            )
            # This round's answer and tool errors, read back: not kept (``HistoryCache``),
            # as this transaction wrote them.
            rows = thread_store.messages_between(
                conn, thread_id=run.thread_id, first=after + 1, last=last - 1
            )
            return items_of(rows)

        async def behind_the_call() -> list[Item] | None:
            # The next model call's request goes out first: the write's own Python work,
            # on its database thread, would hold the interpreter while it does.
            await asyncio.sleep(BEHIND_BY)
            return await self.db.write(write)

        behind = Behind(
            asyncio.ensure_future(behind_the_call()),
            entries,
            len(turn.context),
            message_id,
            turn.answer.acc,
            turn.hosted.ran,
            turn.answer.spent,
        )
        behind.write.add_done_callback(lambda _: self._landed(turn, behind))
        turn.log.behind = behind
        turn.context = turn.context + items_of([answer, *results])
        turn.message_id = placeholder
        building = turn.answer
        turn.hosted.ran = []
        building.spent = building.usage()
        building.acc = AnswerAccumulator()
        building.rounds += 1
        turn.settling = False

    def _landed(self, turn: Turn, behind: Behind) -> None:
        """A round's write ended: the turn's context takes the messages as stored; a write
        that found the run no longer ``in_progress`` stops the turn (``caught_up`` puts
        the round back)."""
        write = behind.write
        if behind.landed is not None:
            return
        if write.cancelled() or write.exception() is not None:
            behind.landed = False  # the turn finds out in ``caught_up``
            return
        written = write.result()
        behind.landed = written is not None
        if written is not None:
            turn.context = turn.context[: behind.base] + written
            if turn.log.behind is behind:
                turn.log.behind = None
        elif turn.task is not None and not turn.settling and turn.stop_reason is None:
            turn.stop_reason = "remote"
            turn.task.cancel()

    async def caught_up(self, turn: Turn) -> None:
        """Wait for the last round's write (``next_round``), if it goes on still.

        Raises:
            TurnStopped: it found the run no longer ``in_progress``; the turn is as it was
                before that round, its answer to be written again by its end.
            Exception: the write failed (the database's error); the turn is put back too.
        """
        behind = turn.log.behind
        if behind is None:
            return
        await asyncio.wait([behind.write])
        self._landed(turn, behind)
        turn.log.behind = None
        if behind.landed:
            return
        turn.log.put_back(behind.entries)
        turn.context = turn.context[: behind.base]
        turn.message_id, turn.hosted.ran = behind.message_id, behind.ran
        building = turn.answer
        building.acc, building.spent = behind.acc, behind.spent
        building.rounds -= 1
        write = behind.write
        if not write.cancelled() and write.exception() is not None:
            raise write.exception()  # type: ignore[misc]
        raise TurnStopped

    async def store_ahead(self, turn: Turn, rows: list[Ahead]) -> None:
        """Store what a turn made before its model call (tool lists, approved calls run)
        ahead of its answer, which goes on in a new message after them; the turn's context
        takes the results of its calls (``hosted.store_ahead``)."""
        run = turn.run

        def write(conn: Connection) -> tuple[str, list[Item]]:
            placeholder = store_ahead(
                conn,
                user_id=run.user_id,
                thread_id=run.thread_id,
                run_id=run.id,
                message_id=turn.message_id,
                rows=rows,
            )
            after = last_seq(turn.context)
            written = thread_store.messages_between(
                conn, thread_id=run.thread_id, first=after + 1, last=2**31 - 1
            )
            return placeholder, items_of(m for m in written if m.id != placeholder)

        turn.message_id, added = await self.db.write(write)
        turn.context = turn.context + added

    def _closing(
        self,
        turn: Turn,
        status: RunStatus,
        *extra: Any,
        ended_at: float | None,
        reason: str | None = None,
    ) -> list[Entry]:
        """Record the closing events; they are published once the end is committed."""
        run_id = turn.run.id
        usage = UsageEvent(run_id=run_id, **turn.answer.usage().model_dump())
        events = [*extra, usage, RunStatusEvent(run_id=run_id, status=status)]
        ended = None if ended_at is None else int(ended_at)
        reason = (reason or "interrupted") if status == RunStatus.INCOMPLETE else None
        events.append(DoneEvent(run_id=run_id, status=status, ended_at=ended, reason=reason))
        return [turn.log.record(e) for e in events]

    async def _settle(
        self,
        turn: Turn,
        status: RunStatus,
        *extra: Any,
        tool_calls: list[dict[str, Any]] | None = None,
        actions: list[tuple[str, str, str, dict[str, Any]]] | None = None,
        answers: list[tuple[str, str]] | None = None,
        approvals: frozenset[str] = frozenset(),
        **run_values: Any,
    ) -> None:
        """Write the end of the turn in one transaction, then publish its closing events.
        The moment it ends is the run's ``completed_at``, or its ``paused_at`` when it waits
        for tool outputs, and the ``done`` event's ``ended_at``."""
        ended_at = now()
        reason = run_values.get("error_code")
        closing = self._closing(turn, status, *extra, ended_at=ended_at, reason=reason)
        entries = turn.log.take()
        run, message_id = turn.run, turn.message_id
        text, reasoning, layout = turn.answer.texts()
        provider_state = turn.answer.provider_state(self.providers.provider_of(run.model))
        usage = turn.answer.call_usage()
        items = turn.hosted.items()
        values = {
            **turn.run_totals(),
            "lease_owner": None,
            "lease_expires_at": None,
            "last_seq": entries[-1][0],
            "paused_at" if status == RunStatus.ACTION_REQUIRED else "completed_at": ended_at,
            **run_values,
        }

        @group_commit
        def write(conn: Connection) -> bool:
            if not states.move(conn, run.id, status, source=RunStatus.IN_PROGRESS, **values):
                return False
            if answers:  # tool errors for calls the client is not asked to run
                thread_store.add_tool_messages(
                    conn,
                    user_id=run.user_id,
                    thread_id=run.thread_id,
                    run_id=run.id,
                    results=answers,
                    items=items,
                )
            send_ahead(conn)
            thread_store.save_message_text(
                conn,
                message_id=message_id,
                content=text,
                reasoning=reasoning,
                layout=layout,
                tool_calls=tool_calls,
                provider_state=provider_state,
                usage=usage,
            )
            if actions:
                run_store.create_actions(conn, run_id=run.id, calls=actions, approvals=approvals)
            run_store.append_events(conn, run_id=run.id, events=entries)
            return True

        try:  # its client has the answer's text already: behind the turns about to start
            written = await self.db.write_later(write)
        except BaseException:
            written = False
            raise
        finally:
            if not written:  # not written, or stopped from elsewhere: take the closing back
                turn.log.put_back(entries[: len(entries) - len(closing)])
                turn.log.seq -= len(closing)
        if not written:
            raise TurnStopped
        turn.publish_closing(closing)
        self.metrics.turn_ended(status)

    async def _complete(self, turn: Turn) -> None:
        """The model's answer ended: the run is ``completed``, or ``incomplete`` when the
        model stopped at its output token limit (the text is kept) or the run's output
        token budget was used up before the call (``engine.budget``)."""
        if turn.answer.out_of_budget:
            await self._settle(
                turn,
                RunStatus.INCOMPLETE,
                error_code="max_output_tokens",
                error_message="The run used up its output token budget before this turn.",
            )
            return
        if turn.answer.acc.finish_reason == "length":
            await self._settle(
                turn,
                RunStatus.INCOMPLETE,
                error_code="max_output_tokens",
                error_message="The answer stopped at its output token limit.",
            )
            return
        await self._settle(turn, RunStatus.COMPLETED)

    async def _pause_for_tools(self, turn: Turn, calls: list[ToolCall]) -> None:
        """Hand the calls to the client; calls whose arguments could not be read are
        answered here with a tool error, and hosted calls the turn ran with their results:
        neither is in the manifest."""
        run_id, invalid = turn.run.id, turn.answer.acc.invalid
        ran = {r.call_id for r in turn.hosted.ran}
        runnable = [c for c in calls if c.id not in invalid and c.id not in ran]
        # Action ids are chosen here so the manifest and the rows agree; a call that waits
        # for an approval has its approval request's id.
        asked, box = turn.hosted.approvals, turn.hosted.box
        action_ids = [asked.get(c.id) or new_id("act") for c in runnable]
        manifest = ToolCallsEvent(
            run_id=run_id,
            message_id=turn.message_id,
            actions=[
                ActionItem(
                    action_id=aid,
                    tool_call_id=c.id,
                    name=c.name,
                    arguments=c.arguments,
                    approval=box.hosted_of(c.name) if box and c.id in asked else None,
                )
                for aid, c in zip(action_ids, runnable, strict=True)
            ],
        )
        await self._settle(
            turn,
            RunStatus.ACTION_REQUIRED,
            manifest,
            tool_calls=turn.hosted.stored_calls(calls),
            actions=[
                (aid, c.id, c.name, c.arguments)
                for aid, c in zip(action_ids, runnable, strict=True)
            ],
            answers=turn.tool_errors(calls),
            approvals=frozenset(asked.values()),
            expires_at=now() + self.settings.action_expiry_seconds,
        )

    async def _fail(self, turn: Turn, exc: ParleyError) -> None:
        error = ErrorEvent(run_id=turn.run.id, code=exc.code, message=exc.message)
        calls = turn.answer.unanswered
        await self._settle(
            turn,
            RunStatus.FAILED,
            error,
            tool_calls=turn.hosted.stored_calls(calls) if calls else None,
            answers=turn.tool_errors(calls),
            error_code=exc.code,
            error_message=exc.message,
        )

    async def _stop(self, turn: Turn) -> None:
        """The turn was stopped: by a cancel (the run is already ``cancelled``), by shutdown
        (the run becomes ``incomplete``), or from another replica. Keep the partial text."""
        run = turn.run
        if turn.stop_reason in (None, "shutdown"):
            try:
                await self._settle(turn, RunStatus.INCOMPLETE)
                return
            except TurnStopped:
                pass
        current = await self.db.read(run_store.get_run, run_id=run.id)
        # A sweep that took this turn for dead wrote the run's closing events already,
        # numbered past this turn's: keep the text and events, and pass those on.
        swept = current.last_seq > turn.log.seq
        status = RunStatus(current.status)
        closing = [] if swept else self._closing(turn, status, ended_at=current.completed_at)
        entries = turn.log.take()
        message_id = turn.message_id
        text, reasoning, layout = turn.answer.texts()
        values: dict[str, Any] = turn.run_totals()
        usage = turn.answer.call_usage()
        if entries and not swept:
            values["last_seq"] = entries[-1][0]

        def write(conn: Connection) -> list[Entry]:
            thread_store.save_message_text(
                conn,
                message_id=message_id,
                content=text,
                reasoning=reasoning,
                layout=layout,
                usage=usage,
            )
            if entries:
                run_store.append_events(conn, run_id=run.id, events=entries)
            run_store.update_run(conn, run_id=run.id, **values)
            if not swept:
                return closing
            stored = run_store.read_events(conn, run_id=run.id, after=turn.log.seq)
            return [(e.seq, e.type, e.data) for e in stored]

        turn.publish_closing(await self.db.write(write))
        self.metrics.turn_ended(status)

    async def _fail_bare(self, turn: Turn) -> None:
        """The end of the turn could not be written (the database refused it): fail the
        run with its closing events and nothing else. Followers get ``error`` and ``done``
        whatever happens; if even this cannot be written, the run stays ``in_progress``
        until its lease runs out and a sweep closes it ``incomplete``."""
        run = turn.run
        error = ErrorEvent(
            run_id=run.id,
            code="internal_error",
            message="The turn's answer could not be stored; the text so far is kept.",
        )
        ended_at = now()
        closing = self._closing(turn, RunStatus.FAILED, error, ended_at=ended_at)
        entries = turn.log.take()
        values = {
            "lease_owner": None,
            "lease_expires_at": None,
            "last_seq": entries[-1][0],
            "completed_at": ended_at,
            "error_code": error.code,
            "error_message": error.message,
        }

        def write(conn: Connection) -> None:
            if states.move(conn, run.id, RunStatus.FAILED, source=RunStatus.IN_PROGRESS, **values):
                run_store.append_events(conn, run_id=run.id, events=entries)

        try:
            await self.db.write(write)
        except Exception:
            log.exception("could not fail run %s; its lease will run out", run.id)
        turn.publish_closing(closing)
        self.metrics.turn_ended(RunStatus.FAILED)
