"""The typed hosted-item records (``engine.hosted.records``) store what rows already hold:
each record's stored form is the item the engine wrote before records existed, key for key
and in order, and an item read back (``record_of``) stores as it was."""

from __future__ import annotations

import json
from typing import Any

import pytest

from parley.engine.hosted import code_interpreter, file_search, mcp, web_search
from parley.engine.hosted.records import McpApprovalResponse, record_of
from parley.engine.hosted.sandbox_calls import Result, Skipped, Written
from parley.mcp.shapes import CallResult, ListedTool, Listing
from parley.retrieval.websearch import Page

#: Items as rows hold them, written by the engine before its records existed.
STORED: list[dict[str, Any]] = [
    {
        "type": "mcp_list_tools",
        "id": "mcpl_1",
        "server_label": "s",
        "tools": [{"name": "t", "input_schema": {"type": "object"}}],
        "status": "completed",
    },
    {
        "type": "mcp_list_tools",
        "id": "mcpl_2",
        "server_label": "s",
        "tools": [],
        "status": "failed",
        "error": "down",
    },
    {
        "type": "mcp_call",
        "id": "mcp_1",
        "server_label": "s",
        "name": "t",
        "arguments": '{"a":1}',
        "output": None,
        "error": {"type": "mcp_protocol_error", "code": -32603, "message": "no"},
        "status": "failed",
        "approval_request_id": None,
    },
    {
        "type": "mcp_approval_response",
        "id": "mcpa_1",
        "approval_request_id": "mcpr_1",
        "approve": False,
        "reason": "not now",
    },
    {
        "type": "file_search_call",
        "id": "fs_1",
        "queries": ["q"],
        "status": "completed",
        "results": [],
        "show_results": False,
        "call_id": "call_1",
        "unindexed": [{"file_id": "f", "filename": "a.txt", "status": "failed", "error": None}],
        "unindexed_more": 3,
    },
    {
        "type": "code_interpreter_call",
        "id": "ci_1",
        "status": "completed",
        "code": "print(1)",
        "container_id": "cntr_1",
        "outputs": [{"type": "logs", "logs": "1\n"}],
        "show_outputs": True,
        "call_id": "call_2",
        "files": [],
        "restarted": True,
        "skipped": [{"path": "/mnt/data/x", "reason": "too big"}],
    },
    {
        "type": "web_search_call",
        "id": "ws_1",
        "status": "completed",
        "action": {"type": "search", "query": "q", "queries": ["q"], "sources": []},
        "show_sources": False,
        "call_id": "call_3",
        "pages": [],
    },
]


@pytest.mark.parametrize("item", STORED, ids=[i["id"] for i in STORED])
def test_a_stored_item_reads_and_stores_as_it_was(item: dict[str, Any]) -> None:
    record = record_of(item)
    assert record is not None and record.type == item["type"]
    assert json.dumps(record.to_stored()) == json.dumps(item)


def test_keys_a_record_does_not_know_are_kept() -> None:
    given = {**STORED[0], "given_by": "a client"}
    assert json.dumps(record_of(given).to_stored()) == json.dumps(given)  # type: ignore[union-attr]


def test_an_item_of_no_hosted_tool_has_no_record() -> None:
    assert record_of({"type": "compaction", "id": "cmp_1"}) is None


def test_the_kinds_build_the_items_rows_hold() -> None:
    tool = ListedTool("t", None, {"type": "object"}, None)
    listed = mcp.listing_record("s", Listing([tool]), "mcpl_1").to_stored()
    assert json.dumps(listed) == json.dumps(STORED[0])
    failed = CallResult(None, "no", failure="protocol")
    call = mcp.call_record("s", "t", {"a": 1}, item_id="mcp_1", result=failed)
    assert json.dumps(call.to_stored()) == json.dumps(STORED[2])
    answer = McpApprovalResponse(
        id="mcpa_1", approval_request_id="mcpr_1", approve=False, reason="not now"
    )
    assert json.dumps(answer.to_stored()) == json.dumps(STORED[3])
    found = file_search.Found([])
    search = file_search.call_record(["q"], item_id="fs_1", found=found, call_id="call_1")
    assert list(search.to_stored()) == [k for k in STORED[4] if not k.startswith("unindexed")]
    ran = Result("1\n", [], [], restarted=True, skipped=(Skipped("/mnt/data/x", "too big"),))
    code = code_interpreter.call_record(
        "print(1)", item_id="ci_1", container_id="cntr_1", call_id="call_2", result=ran, show=True
    )
    assert json.dumps(code.to_stored()) == json.dumps(STORED[5])
    web = web_search.call_record("q", item_id="ws_1", found=web_search.Found([]), call_id="call_3")
    assert json.dumps(web.to_stored()) == json.dumps(STORED[6])
    assert Written("f", "/mnt/data/a.png", 1).filename == "a.png"


def test_a_web_search_keeps_its_pages_as_sources() -> None:
    page = Page(url="https://a.example/", title="A", snippet="s")
    found = web_search.Found([page])
    item = web_search.call_record("q", item_id="ws_2", found=found).to_stored()
    assert item["action"]["sources"] == [{"type": "url", "url": "https://a.example/"}]
    assert item["pages"] == [{"url": "https://a.example/", "title": "A", "snippet": "s"}]
