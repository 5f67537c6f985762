"""What a code interpreter call is and did: the entry it runs under (``Interpreter``), and
its result (``Result``: logs, images, the files it wrote and those it did not keep), as the
containers' sandboxes make them (``hosted.containers``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Characters of a path shown (escaped) before it is cut.
MOST_SHOWN = 200


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
