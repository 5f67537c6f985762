"""The Python example of docs/web.md runs, and its tool works from the page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.web.conftest import Browser, serve

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_of_adding_a_tool(
    server: Any, user_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARLEY_WEB_SECRET", "docs-example-secret-0123456789abcdef")
    (block,) = re.findall(r"```python\n(.*?)```", (ROOT / "docs/web.md").read_text(), re.S)
    code = block.replace("http://127.0.0.1:8700", server.base_url).replace("pk_...", user_key)
    namespace: dict[str, Any] = {"GLOSSARY": {"parley": "a talk between enemies"}}
    exec(compile(code, "docs/web.md", "exec"), namespace)
    app = namespace["app"]
    assert isinstance(app, Flask)
    for web in serve(app):
        browser = Browser(web.url)
        browser.open_page()
        events = browser.process("glossary Parley")
        results = [data for name, data in events if name == "tool.result"]
        assert [(r["name"], r["output"], r["is_error"]) for r in results] == [
            ("glossary", "a talk between enemies", False)
        ]
        browser.close()
