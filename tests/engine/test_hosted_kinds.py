"""What the faces read of the hosted kinds through the engine's names, not the kinds'
modules: the entry types a kind serves (``entry_types``), the function a ``tool_choice``
naming a kind forces (``chosen_functions``), and a kind by its name with what its calls
told the model (``kind_named``)."""

from __future__ import annotations

import pytest

from parley.engine import chosen_functions, entry_types, kind_named
from tests.engine.echo_kind import KIND, EchoCall, registered

WEB_SEARCH = ("web_search", "parley_web_search")


def test_web_search_serves_openai_s_four_entry_types() -> None:
    assert entry_types("web_search") == {
        "web_search",
        "web_search_preview",
        "web_search_2025_08_26",
        "web_search_preview_2025_03_11",
    }
    assert entry_types("file_search") == {"file_search"}


def test_a_tool_choice_forces_the_function_of_a_kind_of_one() -> None:
    assert chosen_functions() == {
        "file_search": ("file_search", "parley_file_search"),
        "code_interpreter": ("python", "parley_python"),
        **dict.fromkeys(entry_types("web_search"), WEB_SEARCH),
    }  # an MCP server's many functions: none


def test_a_registered_kind_is_named_and_chosen_as_the_others() -> None:
    with registered():
        assert kind_named("echo") is KIND
        assert chosen_functions()["echo"] == ("echo", "parley_echo")
        stored = EchoCall(id="echo_1", status="completed", text="hi", call_id="c1")
        assert kind_named("echo").told(stored.to_stored()) == "echo: hi"
    assert "echo" not in chosen_functions()
    with pytest.raises(KeyError):
        kind_named("echo")


def test_a_search_given_back_is_told_as_the_kind_tells_it() -> None:
    item = {
        "type": "file_search_call",
        "id": "fs_1",
        "status": "completed",
        "queries": ["notes"],
        "results": [{"file_id": "file-a", "filename": "notes.txt", "text": "the notes"}],
    }
    told = kind_named("file_search").told(item)
    assert told.startswith('File search for "notes": 1 passage.')
    assert "[1] From the file notes.txt:\nthe notes" in told
