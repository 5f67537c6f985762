"""The code interpreter as a hosted tool: a run's ``{"type": "code_interpreter", ...}`` entry.

The entry names a container (``container``: the id of one the user made through
``/v1/containers``) or asks for one made for the thread (``{"type": "auto", "file_ids":
[...], "memory_limit": ...}``: the thread's auto container while it lives, else a new one
holding those files). The model sees one function, ``python``, taking ``{"code": string}``.
When it calls it, the turn runs the code in the container's sandbox
(``hosted.containers``: a long-lived Python per container, ``parley.sandbox``), stores a
``code_interpreter_call`` item (the code, the container, its outputs: logs and images, and
the files the code wrote), and tells the model what was printed, the error if any, and the
paths of the files written. The answer's ``container_file_citation`` annotations are found
afterwards where its text names a file a call wrote (``citations``).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from parley.engine.hosted.kind import Kind, Ran, Tool, Toolset, TurnView
from parley.engine.hosted.records import CodeInterpreterCall
from parley.engine.hosted.sandbox_calls import (
    Interpreter,
    Removed,
    Result,
    Skipped,
    Written,
    shown,
)
from parley.errors import ParleyError
from parley.store.db import new_id
from parley.types import FunctionSpec, ToolCall, ToolSpec

if TYPE_CHECKING:
    from parley.engine.hosted.services import Services

__all__ = ["Interpreter", "Removed", "Result", "Skipped", "Written", "shown"]

#: The function the model sees (another name when a client function has it).
NAME = "python"
OTHER_NAME = "parley_python"
#: Characters of a call's logs the model is told (the item keeps what the sandbox kept).
MAX_TOLD = 20_000
#: The most code one call may run, in characters.
MAX_CODE = 256 * 1024
#: Files not kept that a call's item lists (and the model is told of), and the paths of
#: what was removed from ``/mnt/data`` after a call past its bounds.
MOST_LISTED = 20
MOST_REMOVED_LISTED = 10

DESCRIPTION = (
    "Run Python 3 code in a stateful sandbox, like a Jupyter notebook cell: variables, "
    "imports and files persist between calls. The working directory is /mnt/data, which holds "
    "the user's files; save files there to hand them to the user, and name them by their path "
    "in your answer. Figures left open (matplotlib) are shown to the user. The value of the "
    "last expression is printed. There is no internet access. numpy, pandas and matplotlib "
    "are available when the server installed them."
)
PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "code": {"type": "string", "description": "The Python code to run."},
    },
    "required": ["code"],
}


def code_of(arguments: Mapping[str, Any] | str) -> str:
    """The code of a call: its ``code`` (or ``input``, ``source``), or the arguments
    themselves when a model sent the code bare; "" when there is none."""
    if isinstance(arguments, str):
        return arguments
    for key in ("code", "input", "source"):
        value = arguments.get(key)
        if isinstance(value, str):
            return value
    return ""


def new_item_id() -> str:
    return new_id("ci")


# --------------------------------------------------------------------------- items


def call_record(
    code: str,
    *,
    item_id: str,
    container_id: str | None,
    call_id: str | None = None,
    result: Result | None = None,
    show: bool = False,
) -> CodeInterpreterCall:
    """The ``code_interpreter_call`` record of a call: running (no ``result`` yet), or
    ended. It keeps the outputs whatever ``show`` says (``show_outputs`` tells the faces
    whether the request asked to see them), the files the code wrote (``files``), and
    ``call_id``, the model's call (the Assistants API names a run step's call by it)."""
    record = CodeInterpreterCall(
        id=item_id,
        status="in_progress" if result is None else "interpreting",
        code=code,
        container_id=container_id,
        show_outputs=show,
        call_id=call_id,
    )
    if result is None:
        return record
    outputs: list[dict[str, Any]] = []
    if result.logs or result.error:
        logs = result.logs
        if result.error:
            logs = f"{logs}\n{result.error}" if logs else result.error
        outputs.append({"type": "logs", "logs": logs})
    for written, png in result.images:
        url = "data:image/png;base64," + base64.b64encode(png).decode()
        image: dict[str, Any] = {"type": "image", "url": url, "file_id": written.file_id}
        if written.image_file_id:
            image["image_file_id"] = written.image_file_id
        outputs.append(image)
    record.outputs = outputs
    record.status = "failed" if result.ended == "refused" else "completed"
    record.files = [
        {"file_id": w.file_id, "path": w.path, "filename": w.filename, "bytes": w.bytes}
        for w in [*(w for w, _ in result.images), *result.files]
    ]
    record.error = result.error or None
    record.limit = result.limit
    record.restarted = result.restarted
    if result.skipped:
        listed = result.skipped[:MOST_LISTED]
        record.skipped = [{"path": s.path, "reason": s.reason} for s in listed]
        if len(result.skipped) > len(listed):
            record.skipped_total = len(result.skipped)
    if result.removed is not None:
        paths = list(result.removed.paths[:MOST_REMOVED_LISTED])
        record.removed = {"count": result.removed.count, "paths": paths}
    return record


#: What a call cut short by its server's death says (``cut_short``).
CUT_SHORT = "The Parley server running this response stopped while the code ran."


def cut_short(item: dict[str, Any]) -> dict[str, Any]:
    """The ``code_interpreter_call`` item of a call still running when the turn died with
    its server: ``incomplete``, no outputs, its error saying so."""
    return {**item, "status": "incomplete", "outputs": None, "error": CUT_SHORT}


def told(item: Mapping[str, Any]) -> str:
    """What the model is told of a call (its ``code_interpreter_call`` item)."""
    if item.get("status") == "failed":
        why = str(item.get("error") or "unknown error").rstrip(".")
        return f"Error: the code was not run: {why}."
    parts: list[str] = []
    logs = "".join(
        str(o.get("logs") or "") for o in item.get("outputs") or () if o.get("type") == "logs"
    )
    if len(logs) > MAX_TOLD:
        cut = len(logs) - MAX_TOLD
        logs = (
            logs[: MAX_TOLD // 2] + f"\n[... {cut} characters cut ...]\n" + logs[-MAX_TOLD // 2 :]
        )
    parts.append(logs if logs.strip() else "(the code ran and printed nothing)")
    images = sum(1 for o in item.get("outputs") or () if o.get("type") == "image")
    if images:
        parts.append(f"[{images} figure{'s' if images > 1 else ''} shown to the user]")
    files = [f for f in item.get("files") or () if isinstance(f, Mapping)]
    if files:
        listed = ", ".join(str(f.get("path")) for f in files)
        parts.append(f"[files written: {listed}]")
    skipped = [s for s in item.get("skipped") or () if isinstance(s, Mapping)]
    if skipped:
        listed = ", ".join(f"'{s.get('path')}' ({s.get('reason')})" for s in skipped)
        more = int(item.get("skipped_total") or 0) - len(skipped)
        parts.append(f"[files not kept: {listed}{f' and {more:,} more' if more > 0 else ''}]")
    removed = item.get("removed")
    if isinstance(removed, Mapping):
        parts.append(told_removed(removed))
    if item.get("restarted"):
        parts.append("[the Python process was restarted: earlier variables are gone]")
    return "\n".join(parts)


def told_removed(removed: Mapping[str, Any]) -> str:
    """What the model is told of the entries removed from ``/mnt/data`` after its call
    passed the container's bounds (an item's ``removed``)."""
    count = int(removed.get("count") or 0)
    paths = [str(p) for p in removed.get("paths") or ()]
    listed = ", ".join(f"'{p}'" for p in paths)
    entries = f"{count:,} entr{'y' if count == 1 else 'ies'}"
    return (
        f"[/mnt/data passed the container's bounds: {entries} not kept among its files "
        f"{'was' if count == 1 else 'were'} removed to bring it back within them"
        f"{' (among them ' + listed + ')' if listed else ''}]"
    )


# ------------------------------------------------------------------------ citations


@dataclass(frozen=True, slots=True)
class Citation:
    """A place in an answer's text that names a file a call wrote: ``text[start:end]``."""

    file_id: str
    container_id: str
    filename: str
    start: int
    end: int


def written_files(items: Sequence[Mapping[str, Any]]) -> dict[str, tuple[str, str]]:
    """The files the ``code_interpreter_call`` items among ``items`` wrote: (container id,
    file id) by path and by file name (a later call's file wins)."""
    files: dict[str, tuple[str, str]] = {}
    for item in items:
        if item.get("type") != "code_interpreter_call":
            continue
        container = item.get("container_id")
        for written in item.get("files") or ():
            path, file_id = written.get("path"), written.get("file_id")
            if not (isinstance(path, str) and isinstance(file_id, str) and container):
                continue
            files[path] = (str(container), file_id)
            files[path.rsplit("/", 1)[-1]] = (str(container), file_id)
    return files


def citations(text: str, files: Mapping[str, tuple[str, str]]) -> list[Citation]:
    """Every place ``text`` names one of ``files`` (by path, ``sandbox:`` link or name), in
    order; a longer mention wins where two overlap."""
    if not files or not text:
        return []
    names = sorted(files, key=len, reverse=True)
    pattern = "|".join(re.escape(n) for n in names)
    found = []
    for match in re.finditer(rf"(?:sandbox:)?(?<![\w.-])(?:{pattern})(?![\w-])", text):
        mention = match.group().removeprefix("sandbox:")
        container_id, file_id = files[mention]
        found.append(
            Citation(file_id, container_id, mention.rsplit("/", 1)[-1], match.start(), match.end())
        )
    return found


# ----------------------------------------------------------------------------- kind


class CodeInterpreterTool(Tool):
    """The turn's code interpreter, as the model sees it."""

    name, fallback = NAME, OTHER_NAME

    def __init__(self, interpreter: Interpreter, services: Services) -> None:
        self.interpreter, self.services = interpreter, services

    def spec(self, name: str) -> ToolSpec:
        return ToolSpec(
            function=FunctionSpec(name=name, description=DESCRIPTION, parameters=PARAMETERS)
        )

    def about(self) -> dict[str, Any]:
        return {"type": "code_interpreter"}

    async def call(self, call: ToolCall, turn: TurnView, approval_id: str | None = None) -> Ran:
        """Run a call's code in its container: the entry's, or the thread's own."""
        code, interpreter = code_of(call.arguments), self.interpreter
        containers, run = self.services.containers, turn.run
        why = containers.unavailable()
        if why is None and not code.strip():
            why = 'no code was given: call the tool with {"code": "..."}'
        elif why is None and len(code) > MAX_CODE:
            why = f"the code is longer than {MAX_CODE} characters"
        container = None
        if why is None:
            source = turn.source
            try:
                container = await containers.container_for(
                    interpreter,
                    user_id=run.user_id,
                    thread_id=run.thread_id,
                    key_hash=None if source is None else source.key_hash,
                )
            except ParleyError as exc:
                why = exc.message
        container_id = container.id if container is not None else interpreter.container_id
        item_id, show = new_item_id(), interpreter.show_outputs
        turn.started(
            call_record(
                code, item_id=item_id, container_id=container_id, call_id=call.id, show=show
            )
        )
        if container is None:
            result = Result("", [], [], error=why, ended="refused")
        else:
            result = await containers.run(container, code, image_files=interpreter.image_files)
        self.services.metrics.hosted_call(
            "code_interpreter", "python", "call", result.took, result.ended != "ok"
        )
        record = call_record(
            code,
            item_id=item_id,
            container_id=container_id,
            call_id=call.id,
            result=result,
            show=show,
        )
        turn.done(record)
        return Ran(call.id, told(record.to_stored()), record)


class CodeInterpreterKind(Kind):
    """Python run in a container's sandbox (``code_interpreter`` entries: the first one)."""

    name = "code_interpreter"
    types = frozenset({"code_interpreter"})
    function, fallback = NAME, OTHER_NAME

    async def open(
        self, entries: list[Mapping[str, Any]], turn: TurnView, services: Services
    ) -> Toolset:
        return Toolset(tools=[CodeInterpreterTool(Interpreter.of(entries[0]), services)])

    def told(self, item: Mapping[str, Any]) -> str:
        return told(item)


KIND = CodeInterpreterKind()
