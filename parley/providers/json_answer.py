"""Read a constrained answer (``providers.constrained``) as it streams.

The model writes one JSON object: ``{"answer": ...}``, ``{"tool": ..., "arguments": ...}``
or ``{"calls": [...]}``. Whether it is an answer shows at its first key; from then on the
answer's value is given out piece by piece as the chunks come: a string decoded (its
escapes, ``\\uXXXX`` surrogate pairs included, may be cut anywhere by the chunks), any
other JSON value (an answer in the caller's own JSON format) as its raw text. Nothing else
is read here: the whole object is parsed once, at its end (``AnswerScanner.text``), by the
caller.
"""

from __future__ import annotations

from parley.errors import UpstreamError

__all__ = ["AnswerScanner", "not_json"]

_SIMPLE_ESCAPES = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
_WHITESPACE = " \t\r\n"
_HEX = frozenset("0123456789abcdefABCDEF")


def not_json(what: str) -> UpstreamError:
    """The error for a constrained answer that cannot be read: the model wrote ``what``."""
    return UpstreamError(
        f"The model was asked for a JSON answer (a reply or a tool call) and sent {what}; "
        "the answer could not be read.",
        code="upstream_malformed",
    )


class _StringDecoder:
    """A JSON string's characters after its opening quote, decoded as they come."""

    __slots__ = ("_escape", "_hex", "_high", "done")

    def __init__(self) -> None:
        self._escape = False
        #: The hex digits of a ``\\u`` escape read so far (None: not in one).
        self._hex: str | None = None
        #: A high surrogate waiting for its low half.
        self._high: int | None = None
        #: The closing quote was read.
        self.done = False

    def feed(self, text: str, start: int) -> tuple[str, int]:
        """Decode ``text`` from ``start``; the text decoded and where reading stopped (past
        the closing quote, or the end of ``text``)."""
        out: list[str] = []
        i = start
        while i < len(text) and not self.done:
            char = text[i]
            i += 1
            if self._hex is not None:
                self._unicode_digit(char, out)
            elif self._escape:
                self._escape = False
                self._escaped(char, out)
            elif char == "\\":
                self._escape = True
            elif char == '"':
                self._flush_high(out)
                self.done = True
            else:
                self._flush_high(out)
                out.append(char)
        return "".join(out), i

    def _escaped(self, char: str, out: list[str]) -> None:
        if char == "u":
            self._hex = ""
            return
        simple = _SIMPLE_ESCAPES.get(char)
        if simple is None:
            raise not_json(f"a string with the escape \\{char}, which JSON does not have")
        self._flush_high(out)
        out.append(simple)

    def _unicode_digit(self, char: str, out: list[str]) -> None:
        if char not in _HEX:
            raise not_json("a \\u escape that is not four hexadecimal digits")
        assert self._hex is not None
        self._hex += char
        if len(self._hex) < 4:
            return
        code, self._hex = int(self._hex, 16), None
        if 0xDC00 <= code <= 0xDFFF and self._high is not None:
            out.append(chr(0x10000 + ((self._high - 0xD800) << 10) + (code - 0xDC00)))
            self._high = None
            return
        self._flush_high(out)
        if 0xD800 <= code <= 0xDBFF:
            self._high = code
        else:
            out.append(chr(code) if not 0xDC00 <= code <= 0xDFFF else "\ufffd")

    def _flush_high(self, out: list[str]) -> None:
        """A high surrogate not followed by its low half stands for no character."""
        if self._high is not None:
            out.append("\ufffd")
            self._high = None


class _RawValue:
    """A JSON value other than a string, as its text, up to where it ends: the bracket
    that closes it, or (a number, ``true``...) the first character that cannot be in it."""

    __slots__ = ("_depth", "_escape", "_in_string", "done")

    def __init__(self) -> None:
        self._depth = 0
        self._in_string = False
        self._escape = False
        self.done = False

    def feed(self, text: str, start: int) -> tuple[str, int]:
        i = start
        while i < len(text) and not self.done:
            char = text[i]
            if self._in_string:
                if self._escape:
                    self._escape = False
                elif char == "\\":
                    self._escape = True
                elif char == '"':
                    self._in_string = False
            elif char == '"':
                self._in_string = True
            elif char in "{[":
                self._depth += 1
            elif char in "}]":
                if self._depth == 0:  # the end of the object around a scalar
                    self.done = True
                    break
                self._depth -= 1
                self.done = self._depth == 0
            elif self._depth == 0 and (char == "," or char in _WHITESPACE):
                self.done = True
                break
            i += 1
        return text[start:i], i


class AnswerScanner:
    """The JSON text of a constrained answer, fed in chunks: keeps all of it (``text``),
    and gives out the value of its ``answer`` key as it comes (``feed``) when that is the
    first key. Only the object's start is checked here; what it holds, once it is whole."""

    __slots__ = ("_buffer", "_key", "_pos", "_state", "_value")

    def __init__(self) -> None:
        self._buffer: list[str] = []
        self._pos = 0
        #: ``open`` (before ``{``), ``key`` (before the first key's quote), ``key_text``,
        #: ``colon``, ``value`` (before the answer's value), ``answer`` (in it), ``rest``.
        self._state = "open"
        self._key: list[str] = []
        self._value: _StringDecoder | _RawValue | None = None

    @property
    def text(self) -> str:
        """Everything fed so far."""
        if len(self._buffer) > 1:
            self._buffer[:] = ["".join(self._buffer)]
        return self._buffer[0] if self._buffer else ""

    @property
    def answering(self) -> bool:
        """Whether the object's first key is ``answer``."""
        return self._state in ("value", "answer") or (
            self._state == "rest" and self._value is not None
        )

    def feed(self, chunk: str) -> str:
        """Take the next chunk; the answer's text it completes (often ``""``)."""
        self._buffer.append(chunk)
        if self._state == "rest":
            return ""
        text = self.text
        out: list[str] = []
        while self._pos < len(text) and self._state != "rest":
            self._step(text, out)
        return "".join(out)

    def _step(self, text: str, out: list[str]) -> None:
        char = text[self._pos]
        state = self._state
        if state == "answer":
            assert self._value is not None
            piece, self._pos = self._value.feed(text, self._pos)
            out.append(piece)
            if self._value.done:
                self._state = "rest"
            return
        if state == "key_text":
            self._pos += 1
            if char == '"':
                self._state = "colon" if "".join(self._key) == "answer" else "rest"
            else:
                self._key.append(char)
            return
        self._pos += 1
        if char in _WHITESPACE:
            return
        if state == "open":
            self._expect(char, "{", "key", "something that is not a JSON object")
        elif state == "key":
            self._expect(char, '"', "key_text", "an object that does not start with a key")
        elif state == "colon":
            self._expect(char, ":", "value", "an object whose first key has no value")
        elif state == "value":
            self._value = _StringDecoder() if char == '"' else _RawValue()
            self._state = "answer"
            if char != '"':
                self._pos -= 1  # the value's first character is part of its text

    def _expect(self, char: str, wanted: str, then: str, problem: str) -> None:
        if char != wanted:
            raise not_json(problem)
        self._state = then
