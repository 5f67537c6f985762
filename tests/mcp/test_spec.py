"""``--hosted-mcp SPEC`` (``parley.mcp.spec``): the one grammar of ``parley chat``, ``parley
ask``, ``parley web`` and ``parley run`` for naming an MCP server the Parley server runs."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from parley.mcp.spec import HostedSpecError, hosted_mcp_tool


@pytest.mark.parametrize(
    ("spec", "tool"),
    [
        (
            "https://mcp.example.com/mcp",
            {
                "type": "mcp",
                "server_label": "mcp-example-com",
                "server_url": "https://mcp.example.com/mcp",
                "require_approval": "always",
            },
        ),
        (
            "docs=http://127.0.0.1:9/mcp?a=b#echo, add",
            {
                "type": "mcp",
                "server_label": "docs",
                "server_url": "http://127.0.0.1:9/mcp?a=b",
                "allowed_tools": ["echo", "add"],
                "require_approval": "always",
            },
        ),
        (
            "docs=http://127.0.0.1:9/mcp?approval=never&key=1#echo, add",
            {
                "type": "mcp",
                "server_label": "docs",
                "server_url": "http://127.0.0.1:9/mcp?key=1",
                "require_approval": "never",
                "allowed_tools": ["echo", "add"],
            },
        ),
        ("deepwiki", {"type": "mcp", "server_label": "deepwiki", "require_approval": "always"}),
        (
            "http://127.0.0.1:9/mcp#echo",
            {
                "type": "mcp",
                "server_label": "127-0-0-1",
                "server_url": "http://127.0.0.1:9/mcp",
                "require_approval": "always",
                "allowed_tools": ["echo"],
            },
        ),
        (
            "deepwiki?approval=never",
            {"type": "mcp", "server_label": "deepwiki", "require_approval": "never"},
        ),
        # The union of the two grammars the commands had: approval on any form, with tools.
        (
            "deepwiki?approval=never#ask_question",
            {
                "type": "mcp",
                "server_label": "deepwiki",
                "allowed_tools": ["ask_question"],
                "require_approval": "never",
            },
        ),
        (
            "https://mcp.example.com/mcp?approval=never",
            {
                "type": "mcp",
                "server_label": "mcp-example-com",
                "server_url": "https://mcp.example.com/mcp",
                "require_approval": "never",
            },
        ),
        (
            "docs=https://x.example/mcp?approval=always",
            {
                "type": "mcp",
                "server_label": "docs",
                "server_url": "https://x.example/mcp",
                "require_approval": "always",
            },
        ),
        # Other keys stay in the URL as written, in their order, around the one taken out.
        (
            "https://x.example/mcp?a=1&approval=never&b=%20c&a=2",
            {
                "type": "mcp",
                "server_label": "x-example",
                "server_url": "https://x.example/mcp?a=1&b=%20c&a=2",
                "require_approval": "never",
            },
        ),
        # An '=' in the URL's query names no label; spaces around the parts are trimmed.
        (
            "  https://x.example/mcp?token=abc  ",
            {
                "type": "mcp",
                "server_label": "x-example",
                "server_url": "https://x.example/mcp?token=abc",
                "require_approval": "always",
            },
        ),
        (
            "my_docs = https://x.example/mcp #a,,b ,",
            {
                "type": "mcp",
                "server_label": "my_docs",
                "server_url": "https://x.example/mcp",
                "allowed_tools": ["a", "b"],
                "require_approval": "always",
            },
        ),
        (
            "HTTPS://X.example:8443/mcp",
            {
                "type": "mcp",
                "server_label": "x-example",
                "server_url": "HTTPS://X.example:8443/mcp",
                "require_approval": "always",
            },
        ),
    ],
)
def test_a_spec_gives_the_tool(spec: str, tool: dict[str, Any]) -> None:
    assert hosted_mcp_tool(spec) == tool


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "give a URL"),
        ("   ", "give a URL"),
        ("#echo", "give a URL"),
        ("bad label", "not a server label"),
        ("a b", "not a server label"),
        ("x" * 65, "not a server label"),
        ("mcp.example.com/mcp", "nor an http"),
        ("=https://x.example/mcp", "'' is not a server label"),
        ("x=ftp://host/", "is not an http"),
        ("ftp://x/mcp", "is not an http"),
        ("label=notaurl", "is not an http"),
        ("http:///mcp", "has no host"),
        ("a=https://", "has no host"),
        ("http://x.example:port/mcp", "not a valid URL"),
        ("tests#", "no tool named"),
        ("https://x/mcp#", "no tool named"),
        ("https://x/mcp# , ", "no tool named"),
        ("x?approval=maybe", "approval must be always or never, not 'maybe'"),
        ("https://x/mcp?approval=", "approval must be always or never"),
        ("https://x/mcp?approval=never&approval=always", "more than once"),
        ("x?other=1", "takes no query but"),
        ("x?approval=never&other=1", "takes no query but"),
    ],
)
def test_a_bad_spec_says_why(spec: str, message: str) -> None:
    with pytest.raises(HostedSpecError, match=message) as refused:
        hosted_mcp_tool(spec)
    assert str(refused.value).startswith(f"--hosted-mcp {spec!r}: ")
    assert isinstance(refused.value, ValueError)


def test_reading_a_spec_loads_no_mcp_sdk() -> None:
    """``parley web`` reads its SPECs before anything starts, and ``parley serve`` loads the
    MCP SDK only for a turn that needs it: this module must not bring it in."""
    code = "import sys, parley.mcp.spec; print(sorted(m for m in sys.modules if m == 'mcp'))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
