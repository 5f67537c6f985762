"""From the Assistants API's objects to Parley's rows, with no I/O: an assistant, a run, and
a thread's messages in order, the tool calls of its runs' steps placed among them.

Every Parley id is derived from the target user, the source's origin and the source's id
(``parley_id``), so that a second import finds what the first wrote. What cannot come is
counted in a ``Report`` by reason.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from parley.store.records import Message, Run
from parley.store.tables import TOOL_FIELD_LENGTH
from parley.types import ACTIVE_STATUSES, FunctionSpec, Role

#: The run statuses of the Assistants API, as Parley's runs keep them; the others
#: (``queued``, ``in_progress``, ``requires_action``, ``cancelling``) are still going.
_ENDED = {
    "completed": "completed",
    "failed": "failed",
    "cancelled": "cancelled",
    "expired": "expired",
    "incomplete": "incomplete",
}


@dataclass
class Report:
    """What an import brought, and what it left out and why."""

    assistants: int = 0
    assistants_present: int = 0
    threads: int = 0
    threads_present: int = 0
    messages: int = 0
    tool_calls: int = 0
    runs: int = 0
    failed_threads: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

    def skip(self, reason: str, count: int = 1) -> None:
        self.skipped[reason] += count


def parley_id(prefix: str, user_id: str, origin: str, *parts: str) -> str:
    """``prefix_`` and 24 hex digits of a digest of the target user, the source's origin
    and the source's ids: the same object of the same source gets the same id (as long
    as Parley's own, which fits the 40 characters of the id columns)."""
    digest = hashlib.sha256("\x1f".join((user_id, origin, *parts)).encode()).hexdigest()
    return f"{prefix}_{digest[:24]}"


@dataclass(frozen=True)
class Ids:
    """The Parley ids of one source's objects, for one user."""

    user_id: str
    origin: str

    def of(self, prefix: str, *parts: str) -> str:
        return parley_id(prefix, self.user_id, self.origin, *parts)


def _stamp(value: Any, fallback: float) -> float:
    return float(value) if isinstance(value, int | float) and value > 0 else fallback


def spread(stamps: list[float]) -> list[float]:
    """Times of objects listed oldest first, the same whole second told apart: the API
    gives whole seconds, and Parley lists some objects by time, so the second of a
    second gets a millisecond more, and so on (each stays within its second)."""
    spread_out: list[float] = []
    for n, stamp in enumerate(stamps):
        if n and int(stamp) == int(stamps[n - 1]) and stamp == int(stamp):
            stamp = min(spread_out[-1] + 0.001, int(stamp) + 0.999)
        spread_out.append(stamp)
    return spread_out


def _names_files(resources: Any) -> bool:
    """Whether ``tool_resources`` name any file or vector store."""
    return any(
        _dict(entry).get(key)
        for entry in _dict(resources).values()
        for key in ("file_ids", "vector_store_ids")
    )


def _metadata(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# ----------------------------------------------------------------------- assistants


def tools_of(given: Any, report: Report, where: str) -> list[dict[str, Any]]:
    """An assistant's or run's tools as Parley keeps them: function tools; ``file_search``
    (with no vector stores: they do not come) and ``code_interpreter`` as entries; any
    other kind left out (counted in ``report``)."""
    kept: list[dict[str, Any]] = []
    for tool in given if isinstance(given, list) else ():
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "function":
            function = tool.get("function") if isinstance(tool.get("function"), dict) else tool
            try:
                spec = FunctionSpec.model_validate(
                    {
                        k: v
                        for k, v in function.items()
                        if k in ("name", "description", "parameters")
                    }
                )
            except ValidationError:
                report.skip(f"{where}: function tool Parley cannot take (its name or schema)")
                continue
            kept.append({"type": "function", "function": spec.model_dump()})
        elif kind == "file_search":
            options = tool.get("file_search") if isinstance(tool.get("file_search"), dict) else {}
            entry: dict[str, Any] = {"type": "file_search", "vector_store_ids": []}
            for key in ("max_num_results", "ranking_options"):
                if options.get(key) is not None:
                    entry[key] = options[key]
            kept.append(entry)
            report.skip(f"{where}: file_search kept without its vector stores (files do not come)")
        elif kind == "code_interpreter":
            kept.append({"type": "code_interpreter", "container": {"type": "auto"}})
        else:
            report.skip(f"{where}: tool of type {kind!r}")
    return kept


def assistant_values(source: dict[str, Any], ids: Ids, report: Report, at: float) -> dict[str, Any]:
    """The ``assistants`` row of a source assistant. Its model is kept as given: a name
    without ``provider/`` is a model of the server's default provider, resolved on use."""
    parameters = {
        name: source[name]
        for name in ("temperature", "top_p")
        if isinstance(source.get(name), int | float)
    }
    if _names_files(source.get("tool_resources")):
        report.skip("assistant: tool_resources (files and vector stores do not come)")
    return {
        "id": ids.of("asst", "assistant", str(source["id"])),
        "user_id": ids.user_id,
        "name": str(source.get("name") or "")[:256],
        "model": str(source.get("model") or "")[:256],
        "instructions": _text(source.get("instructions")),
        "description": _text(source.get("description")),
        "tools": tools_of(source.get("tools"), report, "assistant"),
        "parameters": parameters,
        "metadata": _metadata(source.get("metadata")),
        "created_at": _stamp(source.get("created_at"), at),
        "options": None,
    }


# --------------------------------------------------------------------------- threads


@dataclass
class ThreadPlan:
    """What one source thread becomes: its row's values, its ended runs and its messages
    in order (with their final ids; sequence numbers are given when written)."""

    id: str
    source_id: str
    metadata: dict[str, Any]
    created_at: float
    runs: list[Run]
    messages: list[Message]
    #: Each run's source assistant id, mapped (written only when that assistant is there).
    run_assistants: dict[str, str]
    #: The ``actions`` rows of the runs' function calls, answered: what a run's steps and
    #: its response's output show them from.
    actions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Entry:
    """A message to be, with where it goes."""

    message: Message
    created_at: float


def plan_thread(
    thread: dict[str, Any],
    messages: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    steps: dict[str, list[dict[str, Any]]],
    *,
    ids: Ids,
    report: Report,
    at: float,
) -> ThreadPlan:
    """The thread's plan: ``messages`` oldest first, ``steps`` by source run id."""
    source_id = str(thread["id"])
    thread_id = ids.of("thread", "thread", source_id)
    if _names_files(thread.get("tool_resources")):
        report.skip("thread: tool_resources (files and vector stores do not come)")
    kept_runs, run_assistants = _kept_runs(runs, thread_id, ids, report, at)
    backbone: list[_Entry] = []
    by_source: dict[str, int] = {}
    for source in messages:
        entry = _message(source, thread_id, kept_runs, ids, report, at)
        if entry is not None:
            by_source[str(source["id"])] = len(backbone)
            backbone.append(entry)
    before: dict[int, list[_Entry]] = {}
    after: dict[int, list[_Entry]] = {}
    loose: list[_Entry] = []
    actions: list[dict[str, Any]] = []
    for source_run in runs:
        run_id = str(source_run["id"])
        run_steps = steps.get(run_id, [])
        placed = _step_calls(run_steps, thread_id, kept_runs.get(run_id), ids, report, at)
        actions += _actions(placed, kept_runs.get(run_id), ids)
        # Each calls step goes before the message of the run's next message step, else
        # after that of its last one, else by time.
        made = [
            (n, m) for n, step in enumerate(run_steps) if (m := _made(step, by_source)) is not None
        ]
        for n, entries in placed:
            following = next((m for k, m in made if k > n), None)
            preceding = next((m for k, m in reversed(made) if k < n), None)
            if following is not None:
                before.setdefault(following, []).extend(entries)
            elif preceding is not None:
                after.setdefault(preceding, []).extend(entries)
            else:
                loose.extend(entries)
    ordered: list[_Entry] = []
    for n, entry in enumerate(backbone):
        ordered += [*before.get(n, []), entry, *after.get(n, [])]
    for entry in loose:  # after the last message made at or before it
        place = len(ordered)
        while place > 0 and ordered[place - 1].created_at > entry.created_at:
            place -= 1
        ordered.insert(place, entry)
    return ThreadPlan(
        id=thread_id,
        source_id=source_id,
        metadata=_metadata(thread.get("metadata")),
        created_at=_stamp(thread.get("created_at"), at),
        runs=list(kept_runs.values()),
        messages=[e.message for e in ordered],
        run_assistants=run_assistants,
        actions=actions,
    )


def _actions(
    placed: list[tuple[int, list[_Entry]]], run: Run | None, ids: Ids
) -> list[dict[str, Any]]:
    """The ``actions`` rows of a kept run's answered function calls (one per call id)."""
    if run is None:
        return []
    rows: dict[str, dict[str, Any]] = {}
    for _, entries in placed:
        asked, *answers = (e.message for e in entries)
        outputs = {m.tool_call_id: m for m in answers}
        for position, call in enumerate(asked.tool_calls or ()):
            answer = outputs[call["id"]]
            rows.setdefault(
                call["id"],
                {
                    "id": ids.of("act", "action", run.id, call["id"]),
                    "run_id": run.id,
                    "tool_call_id": call["id"],
                    "position": position,
                    "name": call["name"],
                    "arguments": call["arguments"],
                    "status": "completed",
                    "output": answer.content,
                    "created_at": asked.created_at,
                    "completed_at": answer.created_at,
                    "kind": None,
                },
            )
    return list(rows.values())


def _kept_runs(
    runs: list[dict[str, Any]], thread_id: str, ids: Ids, report: Report, at: float
) -> tuple[dict[str, Run], dict[str, str]]:
    """The ended runs, by source id, their times told apart within a second; and each
    one's assistant, by Parley run id."""
    kept: dict[str, Run] = {}
    assistants: dict[str, str] = {}
    for source in runs:
        run = _run(source, thread_id, ids, report, at)
        if run is None:
            continue
        if kept:
            run.created_at = spread([list(kept.values())[-1].created_at, run.created_at])[1]
        kept[str(source["id"])] = run
        if isinstance(source.get("assistant_id"), str):
            assistants[run.id] = ids.of("asst", "assistant", source["assistant_id"])
    return kept, assistants


def _made(step: dict[str, Any], by_source: dict[str, int]) -> int | None:
    """The place among the thread's messages of the message a ``message_creation`` step
    made (None for another step, or a message not brought)."""
    details = _dict(step.get("step_details"))
    if details.get("type") != "message_creation":
        return None
    found = _dict(details.get("message_creation")).get("message_id")
    return by_source.get(found) if isinstance(found, str) else None


def _run(source: dict[str, Any], thread_id: str, ids: Ids, report: Report, at: float) -> Run | None:
    status = _ENDED.get(str(source.get("status")))
    if status is None or status in ACTIVE_STATUSES:
        report.skip(
            f"run still going (status {source.get('status')!r}): not brought; its messages "
            "come without it (import again once it ends)"
        )
        return None
    usage = _dict(source.get("usage"))
    error = _dict(source.get("last_error"))
    created = _stamp(source.get("created_at"), at)
    ended = next(
        (
            source[k]
            for k in ("completed_at", "failed_at", "cancelled_at", "expired_at")
            if isinstance(source.get(k), int | float)
        ),
        None,
    )
    return Run(
        id=ids.of("run", "run", thread_id, str(source["id"])),
        user_id=ids.user_id,
        thread_id=thread_id,
        assistant_id=None,
        model=str(source.get("model") or "")[:256],
        instructions=_text(source.get("instructions")),
        tools=tools_of(source.get("tools"), Report(), "run"),
        parameters={
            name: source[name]
            for name in ("temperature", "top_p")
            if isinstance(source.get(name), int | float)
        },
        status=status,
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        reasoning_tokens=0,
        cached_tokens=0,
        error_code=str(error["code"])[:64] if error.get("code") else None,
        error_message=str(error["message"]) if error.get("message") else None,
        last_seq=0,
        created_at=created,
        started_at=_stamp(source.get("started_at"), created),
        completed_at=_stamp(ended, created),
        expires_at=None,
        metadata=_metadata(source.get("metadata")) or None,
    )


def _message(
    source: dict[str, Any],
    thread_id: str,
    runs: dict[str, Run],
    ids: Ids,
    report: Report,
    at: float,
) -> _Entry | None:
    role = source.get("role")
    if role not in ("user", "assistant"):
        report.skip(f"message with role {role!r}")
        return None
    if source.get("status") == "in_progress":
        report.skip("message still being written (import again once its run ends)")
        return None
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    content = source.get("content")
    if isinstance(content, str):
        texts.append(content)
    for part in content if isinstance(content, list) else ():
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            text = part.get("text")
            value = text.get("value") if isinstance(text, dict) else text
            texts.append(value if isinstance(value, str) else "")
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            texts.append(part["refusal"])
        elif kind == "image_url" and role == "user" and isinstance(part.get("image_url"), dict):
            url = part["image_url"].get("url")
            if isinstance(url, str) and url.startswith(("http://", "https://", "data:")):
                images.append({"url": url})
            else:
                report.skip("message content: image_url part without a usable URL")
        else:
            report.skip(f"message content: {kind} part (files do not come)")
    if source.get("attachments"):
        report.skip("message attachments (files do not come)", len(source["attachments"]))
    run = runs.get(str(source.get("run_id")))
    created = _stamp(source.get("created_at"), at)
    message = Message(
        id=ids.of("msg", "message", thread_id, str(source["id"])),
        thread_id=thread_id,
        seq=0,
        role=Role(role).value,
        content="\n\n".join(texts),
        reasoning=None,
        tool_calls=None,
        tool_call_id=None,
        run_id=run.id if run is not None else None,
        created_at=created,
        images=images or None,
        metadata=_metadata(source.get("metadata")) or None,
    )
    return _Entry(message, created)


def _step_calls(
    steps: list[dict[str, Any]],
    thread_id: str,
    run: Run | None,
    ids: Ids,
    report: Report,
    at: float,
) -> list[tuple[int, list[_Entry]]]:
    """The messages of each ``tool_calls`` step (by its place among the run's steps): an
    assistant message with the function calls that have an output, then one ``tool``
    message per output."""
    placed = []
    for n, step in enumerate(steps):
        details = step.get("step_details")
        if not isinstance(details, dict) or details.get("type") != "tool_calls":
            continue
        calls = []
        outputs = []
        for call in details.get("tool_calls") or ():
            kind = call.get("type") if isinstance(call, dict) else None
            if kind != "function":
                report.skip(f"tool call of type {kind!r} (only function calls come)")
                continue
            function = call.get("function") if isinstance(call.get("function"), dict) else {}
            call_id, name = call.get("id"), function.get("name")
            output = function.get("output")
            if not isinstance(call_id, str) or not isinstance(name, str) or not call_id:
                report.skip("tool call without an id or a name")
                continue
            if not isinstance(output, str):
                report.skip("tool call without an output (its run ended before it got one)")
                continue
            if len(call_id) > TOOL_FIELD_LENGTH or len(name) > TOOL_FIELD_LENGTH:
                report.skip(f"tool call whose id or name is over {TOOL_FIELD_LENGTH} characters")
                continue
            calls.append({"id": call_id, "name": name, "arguments": _arguments(function, report)})
            outputs.append((call_id, output))
        if not calls:
            continue
        step_id = str(step.get("id") or f"{run.id if run else ''}-{n}")
        created = _stamp(step.get("created_at"), at)
        done = _stamp(step.get("completed_at"), created)
        run_id = run.id if run is not None else None
        asked = Message(
            id=ids.of("msg", "step", thread_id, step_id),
            thread_id=thread_id,
            seq=0,
            role=Role.ASSISTANT.value,
            content="",
            reasoning=None,
            tool_calls=calls,
            tool_call_id=None,
            run_id=run_id,
            created_at=created,
        )
        entries = [_Entry(asked, created)]
        for call_id, output in outputs:
            answered = Message(
                id=ids.of("msg", "output", thread_id, step_id, call_id),
                thread_id=thread_id,
                seq=0,
                role=Role.TOOL.value,
                content=output,
                reasoning=None,
                tool_calls=None,
                tool_call_id=call_id,
                run_id=run_id,
                created_at=done,
            )
            entries.append(_Entry(answered, created))
        placed.append((n, entries))
    return placed


def _arguments(function: dict[str, Any], report: Report) -> dict[str, Any]:
    """A call's arguments as Parley keeps them: the JSON object its text holds; text that
    is not one is kept whole under ``"input"``."""
    text = function.get("arguments")
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(text) if isinstance(text, str) and text.strip() else {}
    except json.JSONDecodeError:
        value = None
    if isinstance(value, dict):
        return value
    report.skip('tool call arguments that are not a JSON object: kept under "input"')
    return {"input": text}
