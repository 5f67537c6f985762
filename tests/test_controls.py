"""The helpers that keep outside text from driving the terminal (``clean`` itself is tested
with the display)."""

from __future__ import annotations

import io
import json
import logging

from parley.controls import CleanFormatter, clean_data, escape_controls_in_json

HOSTILE = "a\x1b]0;title\x07b\x9b2Jc\x7f"


def test_clean_data_cleans_every_string_keys_too() -> None:
    data = {HOSTILE: [HOSTILE, 1, {"k": (HOSTILE, None)}]}
    assert clean_data(data) == {"abc": ["abc", 1, {"k": ["abc", None]}]}


def test_json_keeps_the_data_and_writes_no_control_raw() -> None:
    text = json.dumps({"text": HOSTILE, "ok": "déjà ✓"}, ensure_ascii=False)
    escaped = escape_controls_in_json(text)
    assert not any(0x7F <= ord(c) <= 0x9F or ord(c) < 0x20 for c in escaped)
    assert json.loads(escaped) == {"text": HOSTILE, "ok": "déjà ✓"}
    assert escape_controls_in_json('{"a": "b"}') == '{"a": "b"}'


def test_log_lines_are_cleaned() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(CleanFormatter("%(name)s: %(message)s"))
    logger = logging.getLogger("tests.controls")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("Unknown SSE event: %s", HOSTILE)
    finally:
        logger.removeHandler(handler)
    assert out.getvalue() == "tests.controls: Unknown SSE event: abc\n"
