"""The examples of ``docs/sdk.md`` parse, and use only methods the clients have."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from parley.sdk import AsyncClient, Client

DOC = Path(__file__).parents[2] / "docs" / "sdk.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def client_chains(tree: ast.AST) -> set[tuple[str, ...]]:
    """Attribute chains that start at a name called ``client``: ("runs", "create_run")."""
    chains: set[tuple[str, ...]] = set()
    for node in ast.walk(tree):
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id == "client" and parts:
            chains.add(tuple(reversed(parts)))
    return chains


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
async def test_doc_example(block: str) -> None:
    tree = ast.parse(block)
    async with AsyncClient("http://doc.test", "k") as async_client:
        with Client("http://doc.test", "k") as sync_client:
            client = async_client if "AsyncClient" in block else sync_client
            for chain in client_chains(tree):
                target: object = client
                for name in chain:
                    assert hasattr(target, name), (type(client).__name__, chain)
                    target = getattr(target, name)
