"""A kernel's reply to a call, checked field by field: nothing the sandbox sends is
trusted. ``outcome_of`` turns it into an ``Outcome`` (the call's logs cut at their bound,
its error, its figures as PNG bytes, how it ended and which bound it met), or raises
``Malformed``, and the sandbox is then killed."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Literal

from parley.sandbox.limits import Limits, size_text
from parley.sandbox.watch import Bound

Ended = Literal["ok", "error", "timeout", "limit", "crashed"]

#: Figures a call may return, and the largest PNG kept.
IMAGES = 8
IMAGE_BYTES = 8 << 20

_PNG = b"\x89PNG\r\n\x1a\n"
_ENDED = {"ok": "ok", "error": "error", "interrupted": "timeout", "memory": "limit"}


@dataclass(frozen=True, slots=True)
class Outcome:
    #: stdout and stderr as printed, in order, cut at output_bytes with a note.
    logs: str
    #: None when the code ran to its end; else what went wrong, plainly.
    error: str | None
    #: PNGs of the matplotlib figures the code left open (each then closed).
    images: list[bytes]
    ended: Ended
    #: The kernel process died or was killed: the variables are lost.
    restarted: bool
    #: Seconds.
    took: float
    #: The bound the call met (its error names it), when it met one.
    bound: Bound | None = None


class Malformed(Exception):
    """The sandbox sent something that is not a reply."""


def outcome_of(reply: Any, limits: Limits, *, interrupted: bool) -> Outcome:
    """The kernel's reply to a call, checked field by field (Malformed when it is no
    reply); ``interrupted``: the host interrupted the call at its time limit."""
    if not isinstance(reply, dict):
        raise Malformed("not an object")
    logs, cut, error = reply.get("logs"), reply.get("cut"), reply.get("error")
    kind, encoded = reply.get("kind"), reply.get("images")
    if not isinstance(logs, str) or not isinstance(cut, int) or cut < 0:
        raise Malformed("logs")
    if error is not None and not isinstance(error, str):
        raise Malformed("error")
    if kind not in _ENDED or not isinstance(encoded, list) or len(encoded) > IMAGES:
        raise Malformed("kind or images")
    images: list[bytes] = []
    for item in encoded:
        if not isinstance(item, str):
            raise Malformed("image")
        try:
            data = base64.b64decode(item, validate=True)
        except binascii.Error:
            raise Malformed("image") from None
        if len(data) > IMAGE_BYTES or not data.startswith(_PNG):
            raise Malformed("image")
        images.append(data)
    logs = _cut(logs, limits.output_bytes, cut)
    if error is not None:
        error = _clean(error)[: limits.output_bytes * 2]
    ended: Ended = _ENDED[kind]  # type: ignore[assignment]
    if kind == "ok":
        error = None
    elif kind == "interrupted":
        if interrupted:
            error = f"the call ran past its {limits.call_timeout:g} s limit and was interrupted"
        else:
            ended = "error"  # the code raised KeyboardInterrupt itself
    elif kind == "memory":
        size = size_text(limits.memory_bytes)
        error = f"{error}\n\nThe code used more than the container's {size} of memory."
    elif error is None:
        raise Malformed("an error without its text")
    bound: Bound | None = None
    if kind == "memory":
        bound = "memory"
    elif ended == "timeout":
        bound = "time"
    return Outcome(logs, error, images, ended, False, 0.0, bound)


def _cut(logs: str, most: int, cut: int) -> str:
    data = _clean(logs).encode("utf-8")
    if len(data) > most:
        cut += len(data) - most
        logs = data[:most].decode("utf-8", "ignore")
    else:
        logs = data.decode("utf-8")
    if cut:
        logs += f"\n[output cut: {cut:,} more bytes not shown]"
    return logs


def _clean(text: str) -> str:
    """Text with any lone surrogate replaced: safe to encode as UTF-8."""
    return text.encode("utf-8", "replace").decode("utf-8")
