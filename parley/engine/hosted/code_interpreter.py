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
from typing import Any

from parley.store.db import new_id
from parley.types import FunctionSpec, ToolSpec

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
#: Characters of a path shown (escaped) before it is cut.
MOST_SHOWN = 200

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


@dataclass(frozen=True, slots=True)
class Interpreter:
    """One ``code_interpreter`` entry of a run, ready to run code."""

    #: The container the entry names, or None: the thread's auto container.
    container_id: str | None
    #: Files an auto container starts with, and its memory limit (None: the default).
    file_ids: tuple[str, ...]
    memory_limit: str | None
    #: Whether the faces show the call's outputs (the request's ``include``).
    show_outputs: bool
    #: Whether each figure is kept as a file of purpose ``assistants_output`` too (the
    #: Assistants API names a figure by file id).
    image_files: bool = False

    @classmethod
    def of(cls, entry: Mapping[str, Any]) -> Interpreter:
        """The interpreter of a stored entry (checked when it was made)."""
        container = entry.get("container")
        show, files = bool(entry.get("include_outputs")), bool(entry.get("image_files"))
        if isinstance(container, str):
            return cls(container, (), None, show, files)
        auto = container if isinstance(container, Mapping) else {}
        return cls(None, tuple(auto.get("file_ids") or ()), auto.get("memory_limit"), show, files)

    def spec(self, name: str) -> ToolSpec:
        return ToolSpec(
            function=FunctionSpec(name=name, description=DESCRIPTION, parameters=PARAMETERS)
        )


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


@dataclass(frozen=True, slots=True)
class Written:
    """A file a call wrote into its container (``/v1/containers/{id}/files/{file_id}``)."""

    file_id: str
    path: str
    bytes: int
    #: A figure's copy among the user's files (purpose ``assistants_output``), when kept.
    image_file_id: str | None = None

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def shown(path: str) -> str:
    """A path as it may be shown to a client or a model and stored: each character that
    does not print (a control character, a lone surrogate standing for a byte that was not
    UTF-8, an invisible format mark) written as its Python escape, e.g. ``\\x1b``; cut
    after ``MOST_SHOWN`` characters."""
    cut = path[:MOST_SHOWN]
    text = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in cut)
    return text + ("..." if len(path) > len(cut) else "")


@dataclass(frozen=True, slots=True)
class Skipped:
    """A file a call left in ``/mnt/data`` that is not kept among the container's files:
    its path (``shown``) and why, said plainly."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class Removed:
    """What was removed from ``/mnt/data`` after the call passed its bounds (its bytes or
    its entries): how many entries, and the first paths (``shown``)."""

    count: int
    paths: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Result:
    """What a call did: its logs, its images (PNG bytes, each kept as a file too), the files
    it wrote, and why it failed (None: it ran to its end)."""

    logs: str
    images: list[tuple[Written, bytes]]
    files: list[Written]
    error: str | None = None
    #: The sandbox's Python was started again: the container's variables are gone.
    restarted: bool = False
    #: Seconds the sandbox took.
    took: float = 0.0
    #: ``ok``, ``error``, ``timeout``, ``limit``, ``crashed``, or ``refused`` (no call made).
    ended: str = "ok"
    #: Files the call wrote that were not kept, and why.
    skipped: tuple[Skipped, ...] = ()
    #: What was removed from ``/mnt/data`` to bring it back within its bounds, if anything.
    removed: Removed | None = None
    #: The bound the call met (``memory``, ``processes``, ``disk``, ``files``, ``cpu``,
    #: ``time``), when it met one: its error names it too.
    limit: str | None = None


# --------------------------------------------------------------------------- items


def call_item(
    code: str,
    *,
    item_id: str,
    container_id: str | None,
    call_id: str | None = None,
    result: Result | None = None,
    show: bool = False,
) -> dict[str, Any]:
    """The ``code_interpreter_call`` item of a call: running (no ``result`` yet), or ended.
    It keeps the outputs whatever ``show`` says (``show_outputs`` tells the faces whether
    the request asked to see them), the files the code wrote (``files``), and ``call_id``,
    the model's call (the Assistants API names a run step's call by it)."""
    item: dict[str, Any] = {
        "type": "code_interpreter_call",
        "id": item_id,
        "status": "in_progress" if result is None else "interpreting",
        "code": code,
        "container_id": container_id,
        "outputs": None,
        "show_outputs": show,
        "call_id": call_id,
        "files": [],
    }
    if result is None:
        return item
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
    item["outputs"] = outputs
    item["status"] = "failed" if result.ended == "refused" else "completed"
    item["files"] = [
        {"file_id": w.file_id, "path": w.path, "filename": w.filename, "bytes": w.bytes}
        for w in [*(w for w, _ in result.images), *result.files]
    ]
    if result.error:
        item["error"] = result.error
    if result.limit is not None:
        item["limit"] = result.limit
    if result.restarted:
        item["restarted"] = True
    if result.skipped:
        listed = result.skipped[:MOST_LISTED]
        item["skipped"] = [{"path": s.path, "reason": s.reason} for s in listed]
        if len(result.skipped) > len(listed):
            item["skipped_total"] = len(result.skipped)
    if result.removed is not None:
        paths = list(result.removed.paths[:MOST_REMOVED_LISTED])
        item["removed"] = {"count": result.removed.count, "paths": paths}
    return item


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
