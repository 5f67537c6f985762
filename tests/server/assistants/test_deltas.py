"""The pieces an Assistants stream sends a call's text in (a function's arguments, the code
interpreter's input): they join back to the text exactly, come token-sized as a model's
would, and stay few for a long text."""

from __future__ import annotations

import pytest

from parley.server.faces.assistants.deltas import MAX_PIECES, call_deltas, pieces


@pytest.mark.parametrize(
    "text",
    [
        '{"city":"Paris 0"}',
        "import pandas as pd\n\nprint(pd.__version__)  # é, 日本\n",
        "   ",
        "x",
        "a\tb\r\n",
        "🦉" * 30 + " hoot",
    ],
)
def test_the_pieces_join_back_to_the_text(text: str) -> None:
    cut = pieces(text)
    assert "".join(cut) == text and all(cut)


def test_json_comes_in_token_sized_pieces() -> None:
    assert pieces('{"city":"Paris 0"}') == ['{"', "city", '":"', "Paris", " 0", '"}']
    assert pieces("") == []


def test_a_long_text_comes_in_at_most_so_many_pieces() -> None:
    text = "value = compute(value)\n" * 5000
    cut = pieces(text)
    assert "".join(cut) == text and MAX_PIECES // 2 < len(cut) <= MAX_PIECES


def test_a_call_is_named_first_with_its_text_empty() -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}', "output": None},
    }
    first, *rest = call_deltas(2, call)
    assert first == {
        "index": 2,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": "", "output": None},
    }
    assert [r["function"]["arguments"] for r in rest] == ['{"', "city", '":"', "Paris", '"}']
    assert all(r.keys() == {"index", "type", "function"} and r["index"] == 2 for r in rest)
