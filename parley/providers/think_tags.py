"""Reasoning inside ``<think>…</think>`` tags in the answer text, as some servers of reasoning
models send it (llama.cpp, vLLM and others without a reasoning parser), split out into
reasoning events: a per-provider setting (``think_tags``), off by default.

The splitter works on a stream: a tag may arrive cut anywhere across chunks, so text that
could be the start of a tag is held back until the next chunk tells.
"""

from __future__ import annotations

from parley.events import FinishPart, ModelEvent, ReasoningPart, TextPart

OPEN, CLOSE = "<think>", "</think>"


class ThinkTagSplitter:
    __slots__ = ("_held", "_inside", "_seen_text")

    def __init__(self) -> None:
        self._inside = False
        self._held = ""
        #: Leading whitespace before a first ``<think>`` is not answer text.
        self._seen_text = False

    def feed(self, text: str) -> list[TextPart | ReasoningPart]:
        """The parts of this chunk of answer text (some may wait for the next chunk)."""
        out: list[TextPart | ReasoningPart] = []
        data = self._held + text
        self._held = ""
        while data:
            tag = CLOSE if self._inside else OPEN
            at = data.find(tag)
            if at >= 0:
                self._emit(out, data[:at])
                self._inside = not self._inside
                data = data[at + len(tag) :]
                continue
            keep = _partial_tag_at_end(data, tag)
            self._emit(out, data[: len(data) - keep])
            self._held = data[len(data) - keep :]
            break
        return out

    def apply(self, events: list[ModelEvent]) -> list[ModelEvent]:
        """The events of one chunk with their text split; held text is let out before the
        model's finish."""
        out: list[ModelEvent] = []
        for event in events:
            if type(event) is TextPart:
                out += self.feed(event.text)
                continue
            if type(event) is FinishPart:
                out += self.flush()
            out.append(event)
        return out

    def flush(self) -> list[TextPart | ReasoningPart]:
        """What is held back, once the stream has ended."""
        out: list[TextPart | ReasoningPart] = []
        held, self._held = self._held, ""
        self._emit(out, held)
        return out

    def _emit(self, out: list[TextPart | ReasoningPart], text: str) -> None:
        if not text:
            return
        if self._inside:
            out.append(ReasoningPart(text))
            return
        if not self._seen_text:
            text = text.lstrip()  # the newlines between </think> and the answer
            if not text:
                return
            self._seen_text = True
        out.append(TextPart(text))


def _partial_tag_at_end(data: str, tag: str) -> int:
    """How many characters at the end of ``data`` could begin ``tag``."""
    for size in range(min(len(tag) - 1, len(data)), 0, -1):
        if data.endswith(tag[:size]):
            return size
    return 0
