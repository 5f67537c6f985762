"""One turn of a run: call the model, stream its events, and finish the turn.

The turn runs in its own task, owned by the engine, never by an HTTP connection.
``TurnRunner.run`` is its whole life: the model call (``engine.streaming``), again after
tool calls none of which could be run, and the end it comes to, written in one
transaction before its closing events are published (``engine.settling``). Its state is a
``Turn`` (``engine.turn``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from parley.config import Settings
from parley.engine import compaction
from parley.engine.calls import complete
from parley.engine.checkpoints import Checkpointer
from parley.engine.context import CHARS_PER_TOKEN, always_sent
from parley.engine.file_inputs import FileInputs
from parley.engine.history import view
from parley.engine.hosted import HostedTools
from parley.engine.hosted.kind import TurnView
from parley.engine.hosted.toolbox import Ahead
from parley.engine.profile import ModelProfile, profile_of
from parley.engine.settling import Settler
from parley.engine.streaming import stream_answer
from parley.engine.turn import Turn, TurnStopped
from parley.errors import InternalError, ParleyError, UpstreamError
from parley.events import HostedToolEvent, RunStatusEvent
from parley.metrics import Metrics
from parley.providers.base import ModelOptions
from parley.providers.options import ToolRule, tool_rule
from parley.providers.registry import ProviderRegistry
from parley.store.db import Database, new_id
from parley.store.tables import TOOL_FIELD_LENGTH, without_nul
from parley.types import Role, RunStatus, ToolCall

log = logging.getLogger("parley.engine")

#: Model calls a turn may make in a row when no tool call it asked for could be run (its
#: arguments unreadable, or its tool not allowed by ``tool_choice``): each is answered with a
#: tool error and the model called again.
MAX_CALL_ROUNDS = 3


def _finish_calls(turn: Turn) -> list[ToolCall]:
    """The answer's tool calls as the database can store them: a fresh id for an id
    already used in the thread (some models number their calls from 0 on every turn) or
    too long to store; a call whose name is too long for any tool, or that the run's
    ``tool_choice`` does not allow (``none``, another function, a tool outside
    ``allowed_tools``), answered with a tool error; names and arguments without NUL, so the
    manifest and the stored calls agree."""
    acc = turn.answer.acc
    if not acc.has_tool_calls:
        return []
    taken = (c.id for i in turn.context for c in i.chat.tool_calls)
    calls = acc.finish_tool_calls(taken=taken)
    rule = tool_rule(ModelOptions.of(turn.run.options).tool_choice)
    finished = []
    for call in calls:
        update: dict[str, Any] = {"arguments": without_nul(call.arguments)}
        if len(call.id) > TOOL_FIELD_LENGTH:
            update["id"] = new_id("call")
            if call.id in acc.invalid:
                acc.invalid[update["id"]] = acc.invalid.pop(call.id)
        name = without_nul(call.name)
        if len(name) > TOOL_FIELD_LENGTH:
            name = name[:TOOL_FIELD_LENGTH]
            acc.invalid[update.get("id", call.id)] = (
                f"Error: no tool was run: the tool name is longer than {TOOL_FIELD_LENGTH} "
                "characters, and no tool has such a name."
            )
        elif rule is not None and not rule.allows(name):
            acc.invalid.setdefault(
                update.get("id", call.id),
                f"Error: no tool was run: {name} may not be called in this turn "
                f"({_allowed(rule)}). Answer without it.",
            )
        update["name"] = name
        finished.append(call.model_copy(update=update))
    return finished


def _allowed(rule: ToolRule) -> str:
    if rule.mode == "none" or not rule.names:
        return "no tool may be called"
    return "the tools that may be called: " + ", ".join(rule.names)


class TurnRunner:
    """Runs turns, each from its claim to its settled end."""

    def __init__(
        self,
        db: Database,
        providers: ProviderRegistry,
        settings: Settings,
        checkpointer: Checkpointer,
        metrics: Metrics,
    ) -> None:
        self.providers = providers
        self.metrics = metrics
        self.settler = Settler(db, providers, settings, checkpointer, metrics)
        self.hosted = HostedTools(db, settings, metrics, providers)
        #: Reads the files of the turns' messages for their model calls.
        self.files = FileInputs(db, settings, providers)

    async def run(self, turn: Turn) -> None:
        """The whole turn; every exit leaves the run settled, with one ``done``."""
        self.metrics.turn_started(turn.run.id, turn.run.thread_id, turn.run.model)
        turn.emit(RunStatusEvent(run_id=turn.run.id, status=RunStatus.IN_PROGRESS))
        outcome: ParleyError | list[ToolCall] | None = None
        stopped = False
        try:
            await self._open_hosted(turn)
            profile = profile_of(self.providers, turn.run.model)  # once for every call
            while True:
                if turn.budget_left() == 0:  # no call: the run ends incomplete
                    turn.answer.out_of_budget, outcome = True, None
                    break
                await self._compact(turn, profile)
                await stream_answer(turn, profile, self.metrics, self.files)
                outcome = _finish_calls(turn)
                if (
                    outcome
                    and turn.hosted.box is not None
                    and await self._run_hosted(turn, outcome)
                ):
                    await self.settler.next_round(turn, outcome)
                    continue
                if not outcome or len(turn.answer.acc.invalid) < len(outcome):
                    break
                # No call can be run (unreadable, or not allowed): nothing for the client.
                if turn.answer.rounds >= MAX_CALL_ROUNDS:
                    turn.answer.unanswered = outcome
                    outcome = UpstreamError(
                        f"The model sent only tool calls that could not be run (unreadable "
                        f"arguments, or tools not allowed) {turn.answer.rounds} times in a row.",
                        code="malformed_tool_call",
                    )
                    break
                await self.settler.next_round(turn, outcome)
        except ParleyError as exc:
            outcome = exc
        except (TurnStopped, asyncio.CancelledError):
            clock = turn.clock
            if clock is not None and clock.error is not None and turn.stop_reason is None:
                outcome = clock.error  # the model went quiet: a failed turn, text kept
                asyncio.current_task().uncancel()  # type: ignore[union-attr]
            else:
                stopped = True
        except Exception:
            log.exception("turn of run %s failed", turn.run.id)
            outcome = InternalError("The turn failed because of an internal error.")
        # From here on the turn is not interrupted: it writes its end, whatever happens.
        # Whoever stops turns (a cancel, a stop from elsewhere, a model gone quiet, the
        # server's shutdown) leaves a settling one alone, so the end runs in this task.
        turn.settling = True
        try:
            await self.settler.finish(turn, outcome, stopped)
        finally:
            if turn.hosted.box is not None:
                await asyncio.shield(turn.hosted.box.aclose())

    async def _compact(self, turn: Turn, profile: ModelProfile) -> None:
        """Compact the turn's context before its model call when the run asks for it and
        the call's input is over its threshold (``engine.compaction``): the summary is
        stored as a marker ahead of the answer, shown as a ``compaction`` item, and the
        context starts from it. A summary call that fails leaves the context whole, and
        the turn does not try again."""
        run = turn.run
        if not (run.options or {}).get("compaction") or turn.answer.compaction_failed:
            return  # most runs: nothing to look up
        window = profile.window
        limit = compaction.threshold(run.options, window)
        if limit is None:
            return
        hosted = (
            [t.model_dump() for t in turn.hosted.box.functions]
            if turn.hosted.box is not None
            else []
        )
        fixed = len(always_sent(run.instructions, [*run.tools, *hosted])) // CHARS_PER_TOKEN
        if compaction.due(turn.context, fixed, limit) is None:
            return
        await self.settler.caught_up(turn)  # the last round's messages, as stored
        cut = compaction.due(turn.context, fixed, limit)
        if cut is None:
            return
        covered = turn.context[:cut]
        text = compaction.transcript(i.chat for i in covered)
        try:
            summary, used = await complete(
                self.providers,
                self.metrics,
                model=run.model,
                messages=compaction.ask(text, window),
                instructions=compaction.COMPACTION_INSTRUCTIONS,
            )
        except ParleyError as exc:
            log.warning("could not compact the context of run %s: %s", run.id, exc)
            turn.answer.compaction_failed = True
            return
        turn.answer.spent = turn.answer.spent + used
        covers = max(i.message.seq for i in covered)
        item = compaction.compaction_item(new_id("cmp"), summary.strip(), covers)
        if turn.early is not None:  # begun with the whole context: not the call to make
            early, turn.early = turn.early, None
            await early.discard()
        await self.settler.store_ahead(turn, [Ahead(Role.ASSISTANT, item)])
        turn.context = view(turn.context)
        turn.emit(HostedToolEvent(run_id=run.id, phase="done", item=item))

    async def _open_hosted(self, turn: Turn) -> None:
        """Make the run's hosted tools ready (``engine.hosted``) and run the calls the
        turn's messages approved; the tool lists and results made now go ahead of the
        answer."""
        view = TurnView(turn.run, turn.emit, turn.source, turn.hosted.secrets, turn.hosted.approved)
        box = turn.hosted.box = await self.hosted.open(view)
        if box is None:
            return
        rows = [Ahead(Role.ASSISTANT, item) for item in box.listed]
        if turn.hosted.approved:
            ran = await box.run_approved(turn.hosted.approved)
            rows += [Ahead(Role.TOOL, r.item, r.content, r.call_id) for r in ran]
        if rows:
            await self.settler.store_ahead(turn, rows)

    async def _run_hosted(self, turn: Turn, calls: list[ToolCall]) -> bool:
        """Run the answer's hosted calls that need no approval, up to the run's
        ``max_tool_calls``; True when that answers every call, so the model is called again.
        Calls that need the client's approval, or its own tools, pause the run with the
        results of those run kept (``Settler.finish``)."""
        box = turn.hosted.box
        assert box is not None
        readable = [c for c in calls if c.id not in turn.answer.acc.invalid]
        hosted = [c for c in readable if box.owns(c.name)]
        if not hosted:
            return False
        for call in hosted:
            if box.needs_approval(call.name):
                turn.hosted.approvals[call.id] = new_id("mcpr")
        ready = [c for c in hosted if c.id not in turn.hosted.approvals]
        left = box.calls_left()
        if left is not None and len(ready) > left:
            for call in ready[left:]:
                turn.answer.acc.invalid[call.id] = (
                    f"Error: not run: this response may make {box.max_calls} calls of the "
                    "tools the server runs, and has made them. Answer without it."
                )
            ready = ready[:left]
        turn.hosted.ran = await box.run(ready)
        answered = len(turn.hosted.ran) + len(turn.answer.acc.invalid)
        return answered == len(calls)
