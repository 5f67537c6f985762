"""What the live region shows of a growing answer: its last lines, cheaply.

``AnswerTail`` keeps the deltas as they come and gives the last lines at any time, scanning
only what was added since the last frame, and reopening the code block a cut falls in, so a
frame costs the same at the first paragraph and at the hundredth. ``LastLines`` renders the
last lines of a renderable at the console's width.
"""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.segment import Segment

from parley.terminal.rendering import FENCE_LINE

__all__ = ["AnswerTail", "LastLines"]


class AnswerTail:
    """A growing list of deltas whose end is cheap to take, however long the list grows.

    The producer appends to ``parts``; the frame clock calls ``tail``, which scans only the
    parts added since its last call (for code fences) and walks back from the end only as
    far as the lines it needs."""

    __slots__ = ("_blocks", "_fence", "_line", "_seen", "_size", "parts")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self._seen = 0  # parts scanned so far
        self._size = 0  # characters in those parts
        self._line = ""  # their unfinished last line
        self._fence = ""  # the marker of the code block open at the end of them, if any
        self._blocks: list[tuple[int, int, str]] = []  # (opening, closing or -1, opening line)

    def tail(self, lines: int, chars: int, *, reopen: bool = True) -> str:
        """The last ``lines`` lines (at most about ``chars`` characters), starting at a line
        boundary; with ``reopen``, prefixed with the opening fence of the code block the
        cut falls in."""
        self._scan()
        parts, i = self.parts, self._seen
        picked: list[str] = []
        size = newlines = 0
        while i > 0 and size < chars and newlines <= lines + 1:
            i -= 1
            part = parts[i]
            picked.append(part)
            size += len(part)
            newlines += part.count("\n")
        picked.reverse()
        text = "".join(picked)
        rows = text.split("\n")
        if i > 0 and len(rows) > 1:
            rows = rows[1:]  # the first row is cut: start at a line boundary
        keep = lines + 1 if rows[-1] == "" else lines  # a final newline opens no line
        if len(rows) > keep:
            rows = rows[-keep:]
        text = "\n".join(rows)
        if reopen:
            opener = self._open_block_at(self._size - len(text))
            if opener is not None:
                text = f"{opener}\n{text}"
        return text

    def _scan(self) -> None:
        n = len(self.parts)
        if n == self._seen:
            return
        new = "".join(self.parts[self._seen : n])
        offset = self._size - len(self._line)
        text = self._line + new
        self._seen, self._size = n, self._size + len(new)
        if "```" not in text and "~~~" not in text:
            self._line = text[text.rfind("\n") + 1 :]
            return
        rows = text.split("\n")
        self._line = rows.pop()
        for row in rows:
            self._fence_row(row, offset)
            offset += len(row) + 1

    def _fence_row(self, row: str, offset: int) -> None:
        match = FENCE_LINE.match(row)
        if match is None:
            return
        marker = match[1]
        if not self._fence:
            self._fence = marker
            self._blocks.append((offset, -1, row))
        elif (
            marker[0] == self._fence[0] and len(marker) >= len(self._fence) and not match[2].strip()
        ):
            self._fence = ""
            opening, _, opener = self._blocks[-1]
            self._blocks[-1] = (opening, offset, opener)

    def _open_block_at(self, start: int) -> str | None:
        """The opening line of the code block that ``start`` falls in, unless that line is
        itself at or after ``start``."""
        for opening, closing, opener in reversed(self._blocks):
            if opening < start:
                return opener if closing == -1 or closing >= start else None
        return None


class LastLines:
    """The last ``count`` lines of a renderable, as rendered at the current width."""

    def __init__(self, renderable: RenderableType, count: int) -> None:
        self.renderable = renderable
        self.count = count

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = console.render_lines(self.renderable, options, pad=False)
        while lines and not "".join(segment.text for segment in lines[-1]).strip():
            lines.pop()
        new_line = Segment.line()
        for line in lines[-self.count :]:
            yield from line
            yield new_line
