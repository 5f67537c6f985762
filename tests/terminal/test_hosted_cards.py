"""The terminal's cards of the calls the server runs (``terminal.hosted_cards``): each known
kind of hosted item shows as it always has, and a kind the terminal does not know shows its
type and status through the fallback card, never an error. On a plain ``StreamView`` (and
through ``TerminalOutput``), its side lines on a capture console."""

from __future__ import annotations

import io
from typing import Any, Literal

import pytest
from rich.console import Console

from parley.events import HostedToolEvent
from parley.terminal import hosted_cards
from parley.terminal.display import StreamView
from parley.terminal.output import TerminalOutput

Steps = list[tuple[Literal["started", "done"], dict[str, Any]]]

MCP_CALL = {"type": "mcp_call", "id": "mcp_1", "server_label": "docs", "name": "echo"}
SEARCH = {"type": "file_search_call", "id": "fs_1", "queries": ["tides", "moon"]}
PASSAGE = {"file_id": "file_1", "filename": "notes.md", "text": "\nThe moon pulls.\nMore"}
CODE = {"type": "code_interpreter_call", "id": "ci_1", "code": "print(1)"}
WEB = {"type": "web_search_call", "id": "ws_1", "action": {"type": "search", "query": "tides"}}
PAGE = {"url": "https://example.com/t", "title": "Tides", "snippet": "High and low.\nMore"}

#: Each kind's events, the lines they show and the spinner's words after each event.
KNOWN: dict[str, tuple[Steps, list[str], list[str]]] = {
    "listing": (
        [
            ("started", {"type": "mcp_list_tools", "server_label": "docs"}),
            ("done", {"type": "mcp_list_tools", "server_label": "docs", "tools": [{}, {}]}),
        ],
        ["listed 2 tools of docs"],
        ["Thinking…", "Thinking…"],
    ),
    "listing failed": (
        [("done", {"type": "mcp_list_tools", "server_label": "docs", "error": "refused"})],
        ["✗ docs tools  refused"],
        ["Thinking…"],
    ),
    "mcp call": (
        [
            ("started", {**MCP_CALL, "arguments": '{"text": "hi"}', "status": "in_progress"}),
            ("done", {**MCP_CALL, "arguments": '{"text": "hi"}', "output": "hi"}),
        ],
        ['⚙ docs · echo {"text": "hi"}', "✓ echo  hi"],
        ["Running tools…", "Thinking…"],
    ),
    "mcp call failed": (
        [("done", {**MCP_CALL, "error": {"content": [{"type": "text", "text": "boom"}]}})],
        ["✗ echo  boom"],
        ["Thinking…"],
    ),
    "file search": (
        [
            ("started", {**SEARCH, "status": "in_progress"}),
            ("done", {**SEARCH, "status": "completed", "results": [PASSAGE]}),
        ],
        [
            '⚙ file_search "tides" · "moon"',
            "✓ file_search  1 passage",
            "    notes.md  The moon pulls.",
        ],
        ["Searching the files…", "Thinking…"],
    ),
    "file search failed": (
        [("done", {**SEARCH, "status": "failed", "error": "no index"})],
        ["✗ file_search  no index"],
        ["Thinking…"],
    ),
    "web search": (
        [
            ("started", {**WEB, "status": "in_progress"}),
            ("done", {**WEB, "status": "completed", "pages": [PAGE]}),
        ],
        ['⚙ web_search "tides"', "✓ web_search  1 page", "    Tides  High and low."],
        ["Searching the web…", "Thinking…"],
    ),
    "code": (
        [
            ("started", {**CODE, "status": "in_progress"}),
            ("done", {**CODE, "status": "completed", "outputs": [{"type": "logs", "logs": "1\n"}]}),
        ],
        ["⚙ python · code interpreter", "    print(1)", "✓ python  1 line of output", "    1"],
        ["Running the code…", "Thinking…"],
    ),
    "approval request": (
        [("done", {"type": "mcp_approval_request", "server_label": "docs", "name": "echo"})],
        [],
        ["Thinking…"],
    ),
    "compaction": (
        [("done", {"type": "compaction", "id": "cmp_1", "encrypted_content": "x"})],
        [],
        ["Thinking…"],
    ),
}


def _shown(steps: Steps) -> tuple[list[str], list[str]]:
    """The side lines ``steps`` show on a plain view (the footer left out) and the
    spinner's words after each step."""
    out, err = io.StringIO(), io.StringIO()
    view = StreamView(
        Console(file=out, width=80, color_system=None),
        err_console=Console(file=err, width=80, color_system=None),
        plain=True,
    )
    view.start()
    status, statuses = "Thinking…", []
    for phase, item in steps:
        status = hosted_cards.show(view, item, done=phase == "done") or status
        statuses.append(status)
    view.finish()
    assert out.getvalue() == ""  # plain mode: the side lines go to stderr
    return err.getvalue().splitlines()[:-1], statuses  # the last line is the footer's time


@pytest.mark.parametrize("kind", list(KNOWN))
def test_each_known_kind_shows_as_before(kind: str) -> None:
    steps, lines, statuses = KNOWN[kind]
    assert _shown(steps) == (lines, statuses)


def test_every_kind_a_client_receives_has_its_own_card() -> None:
    assert set(hosted_cards.CARDS) >= {
        "mcp_list_tools",
        "mcp_call",
        "mcp_approval_request",
        "file_search_call",
        "code_interpreter_call",
        "web_search_call",
    }


def test_the_terminal_output_shows_hosted_events_through_the_cards() -> None:
    err = io.StringIO()
    output = TerminalOutput(
        Console(file=io.StringIO(), width=80, color_system=None),
        err_console=Console(file=err, width=80, color_system=None),
        plain=True,
    )
    output.begin()
    for phase, item in KNOWN["mcp call"][0]:
        output.event(HostedToolEvent(run_id="run_1", phase=phase, item=item))
    output.event(HostedToolEvent(run_id="run_1", phase="done", item={"type": "echo_call"}))
    assert output.view is not None
    output.view.finish()
    assert err.getvalue().splitlines()[:-1] == [*KNOWN["mcp call"][1], "✓ echo_call  completed"]


def test_an_unknown_kind_shows_its_type_and_status_through_the_fallback() -> None:
    echo = {"type": "echo_call", "id": "echo_1", "text": "hi"}
    assert hosted_cards.card_of(echo) is hosted_cards.UNKNOWN
    lines, statuses = _shown(
        [("started", {**echo, "status": "in_progress"}), ("done", {**echo, "status": "completed"})]
    )
    assert lines == ["⚙ echo_call  in_progress", "✓ echo_call  completed"]
    assert statuses == ["Running echo_call…", "Thinking…"]


def test_an_unknown_kind_that_failed_shows_its_error() -> None:
    failed = {"type": "echo_call", "status": "failed", "error": {"message": "no echo"}}
    assert _shown([("done", failed)])[0] == ["✗ echo_call  failed: no echo"]


def test_an_item_without_a_type_shows_as_a_hosted_tool() -> None:
    assert _shown([("done", {"status": "completed"})])[0] == ["✓ hosted tool  completed"]
