"""The text of a tool result, and cutting it to size (the result kinds themselves are
covered against a real server in tests/terminal/test_mcp_tools.py)."""

from __future__ import annotations

from mcp import types

from parley.mcp.results import cut_text, result_text


def test_text_at_the_limit_is_kept_whole() -> None:
    assert cut_text("abc", 3) == ("abc", False)
    assert cut_text("", 0) == ("", False)


def test_longer_text_is_cut_and_says_how_much() -> None:
    assert cut_text("abcdef", 4) == ("abcd\n[output cut: 2 more characters]", True)
    assert cut_text("abc", 0) == ("\n[output cut: 3 more characters]", True)


def test_blocks_one_per_line_and_structured_content_without_text() -> None:
    two = types.CallToolResult(
        content=[types.TextContent(type="text", text="a"), types.TextContent(type="text", text="b")]
    )
    assert result_text(two) == "a\nb"
    structured = types.CallToolResult(content=[], structured_content={"n": 1})
    assert result_text(structured) == '{"n":1}'
