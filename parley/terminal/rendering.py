"""The final rendering of a whole answer in the terminal, chosen by what the answer is.

``render_answer`` pretty-prints JSON, shows one fenced code block (or text that reads as
code) as ``Syntax`` with the fence's language or a guessed one, text with Markdown features
as ``Markdown``, and anything else as plain ``Text``. The text is cleaned of control
characters first (``parley.controls``).
"""

from __future__ import annotations

import json
import re

from rich.console import RenderableType
from rich.json import JSON
from rich.markdown import Markdown
from rich.syntax import Syntax
from rich.text import Text

from parley.controls import clean, clean_data

__all__ = ["CODE_THEME", "FENCE_LINE", "render_answer"]

CODE_THEME = "monokai"

FENCE_LINE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
_SINGLE_BLOCK = re.compile(
    r"\A(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+#.-]*)[^\n]*\n(?P<body>.*?)\n?(?P=fence)[ \t]*\Z",
    re.DOTALL,
)
_MARKDOWN = re.compile(
    r"""
      ^ \ {0,3} \#{1,6} \s                      # heading
    | ^ \s* (?: [-*+] | \d{1,3}[.)] ) \s+ \S    # list item
    | ^ \s* > \s                                # quote
    | ^ \s* \| .* \| \s* $                      # table row
    | ^ \ {0,3} (?: ``` | ~~~ )                 # fence
    | \*\*[^*\n]+\*\* | __[^_\n]+__             # strong
    | `[^`\n]+`                                 # inline code
    | \[[^\]\n]+\]\([^)\s]+\)                   # link
    """,
    re.MULTILINE | re.VERBOSE,
)
_CODE_LINE = re.compile(
    r"""
      ^ \s* (?: def\s+\w+\s*\( | class\s+\w+ | import\s+[\w.]+ | from\s+[\w.]+\s+import\b
            | return\b | elif\b | async\s+def\b | await\s | (?:const|let|var)\s+\w+\s*[=:]
            | function\b.*\( | fn\s+\w+ | pub\s+(?:fn|struct|enum|mod|use)\b | use\s+[\w:]+;
            | package\s+\w+\s*$ | func\s | impl\b | \#include\b | \#! | @\w+
            | (?:SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP)\s )
    | [;{] \s* $                                  # statement or block opener
    | ^ \s* [}\])] [;,)]* \s* $                   # closer
    | \) \s* (?: ->\s*[^:]+ )? : \s* $            # python block header
    | ^ \s* [\w.\[\]]+ \s* (?: =|\+=|-=|:= ) \s* \S # assignment
    | ^ \s* [\w.]+ \(.*\) \s* ;? \s* $            # call
    """,
    re.MULTILINE | re.VERBOSE,
)
_LANGUAGES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("c", re.compile(r"^\s*#include\b", re.M)),
    ("go", re.compile(r"^\s*package\s+\w+\s*$|^\s*func\s", re.M)),
    ("rust", re.compile(r"\bfn\s+\w+\s*[(<]|\blet\s+mut\b|^\s*impl\b", re.M)),
    ("java", re.compile(r"\bpublic\s+(?:class|static)\b|System\.out\.")),
    ("sql", re.compile(r"^\s*(?:SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP)\s", re.M)),
    ("bash", re.compile(r"\A#!.*\b(?:ba|z)?sh\b")),
    (
        "python",
        re.compile(r"^\s*(?:def\s|class\s+\w+.*:|import\s|from\s+[\w.]+\s+import|elif\s)", re.M),
    ),
    ("javascript", re.compile(r"\b(?:const|let|var|function)\s|=>|console\.")),
    ("html", re.compile(r"\A\s*<[A-Za-z!]")),
)


def _looks_like_code(text: str) -> bool:
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return False
    strong = weak = 0
    for line in lines:
        stripped = line.lstrip()
        if _CODE_LINE.search(line):
            strong += 1
        elif line.startswith(("    ", "\t")) or stripped.startswith(("#", "//", "/*", "--")):
            weak += 1
        elif _is_prose(stripped):
            return False
    return strong > 0 and strong + weak >= 0.7 * len(lines)


def _is_prose(line: str) -> bool:
    words = line.split()
    if len(words) < 5 or any(c in line for c in "=(){};<>"):
        return False
    wordy = sum(1 for word in words if word.strip(".,;:!?'\"\u2019()").isalpha())
    return wordy >= 0.8 * len(words)


def _language(code: str) -> str:
    for name, pattern in _LANGUAGES:
        if pattern.search(code):
            return name
    return "text"


def _syntax(code: str, language: str) -> Syntax:
    return Syntax(code, language, theme=CODE_THEME, word_wrap=True, background_color="default")


def render_answer(text: str) -> RenderableType:
    """The final rendering of a whole answer, chosen by what it is: JSON (an object or an
    array) pretty-printed; one fenced code block, or text that reads as code, as
    ``Syntax`` (the fence's language, else a guess); text with Markdown features as
    ``Markdown``; anything else as plain ``Text`` (line breaks kept as written)."""
    body = clean(text).strip("\n")
    stripped = body.strip()
    if not stripped:
        return Text("")
    if stripped[0] in "{[" and stripped[-1] in "}]":
        try:
            data = json.loads(stripped)
        except ValueError:
            pass
        else:  # decoding undid the text's cleaning: "\u009b" is a control again
            return JSON.from_data(clean_data(data), indent=2)
    block = _SINGLE_BLOCK.match(stripped)
    if block is not None and _fence_lines(stripped) == 2:
        code = block["body"]
        return _syntax(code, block["lang"] or _language(code))
    if _looks_like_code(body):
        return _syntax(body, _language(body))
    if _MARKDOWN.search(body):
        return Markdown(body, code_theme=CODE_THEME)
    return Text(body)


def _fence_lines(text: str) -> int:
    return sum(1 for line in text.splitlines() if FENCE_LINE.match(line))
