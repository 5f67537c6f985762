"""Parley's own SDK: ``client.containers`` and ``client.containers.files``, the same on
``Client`` and ``AsyncClient`` (the same methods, and the same answers from a real server)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from parley.errors import InvalidRequest, NotFound
from parley.sdk import AsyncClient, Client
from parley.sdk._async_container_resources import ContainerFiles as AsyncContainerFiles
from parley.sdk._async_container_resources import Containers as AsyncContainers
from parley.sdk._container_resources import ContainerFiles, Containers
from tests.containers.conftest import ContainersServer


def _methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(cls).items()
        if callable(member) and not name.startswith("_")
    }


@pytest.mark.parametrize(
    ("sync", "asynchronous"),
    [(Containers, AsyncContainers), (ContainerFiles, AsyncContainerFiles)],
)
def test_the_async_resources_have_the_sync_methods(sync: type, asynchronous: type) -> None:
    ours, theirs = _methods(sync), _methods(asynchronous)
    assert ours.keys() == theirs.keys()
    assert set(ours) >= {"create", "list", "retrieve", "delete"}
    for name, signature in ours.items():
        assert str(signature) == str(theirs[name]), name
        assert inspect.iscoroutinefunction(vars(asynchronous)[name]), name


def _scenario_sync(client: Client, tag: str) -> list[Any]:
    box = client.containers.create(
        name=f"sdk {tag}",
        memory_limit="4g",
        expires_after={"anchor": "last_active_at", "minutes": 9},
    )
    up = client.containers.files.create(box.id, file=b"a,b\n1,2\n", filename="t.csv")
    listed = client.containers.files.list(box.id)
    got = client.containers.files.retrieve(up.id, container_id=box.id)
    content = client.containers.files.content(up.id, container_id=box.id)
    names = [c.name for c in client.containers.list(name=f"sdk {tag}").data]
    gone = client.containers.files.delete(up.id, container_id=box.id)
    with pytest.raises(NotFound):
        client.containers.files.content(up.id, container_id=box.id)
    with pytest.raises(InvalidRequest) as refused:
        client.containers.create(name="x", network_policy={"type": "allowlist"})
    deleted = client.containers.delete(box.id)
    return _shape(box, up, listed.data, got, content, names, gone, refused.value.code, deleted)


async def _scenario_async(client: AsyncClient, tag: str) -> list[Any]:
    box = await client.containers.create(
        name=f"sdk {tag}",
        memory_limit="4g",
        expires_after={"anchor": "last_active_at", "minutes": 9},
    )
    up = await client.containers.files.create(box.id, file=b"a,b\n1,2\n", filename="t.csv")
    listed = await client.containers.files.list(box.id)
    got = await client.containers.files.retrieve(up.id, container_id=box.id)
    content = await client.containers.files.content(up.id, container_id=box.id)
    names = [c.name for c in (await client.containers.list(name=f"sdk {tag}")).data]
    gone = await client.containers.files.delete(up.id, container_id=box.id)
    with pytest.raises(NotFound):
        await client.containers.files.content(up.id, container_id=box.id)
    with pytest.raises(InvalidRequest) as refused:
        await client.containers.create(name="x", network_policy={"type": "allowlist"})
    deleted = await client.containers.delete(box.id)
    return _shape(box, up, listed.data, got, content, names, gone, refused.value.code, deleted)


def _shape(box: Any, up: Any, listed: Any, got: Any, *rest: Any) -> list[Any]:
    """What both clients must agree on: everything but ids and times."""
    assert [f.id for f in listed] == [up.id] and got.id == up.id and got.container_id == box.id
    keep = {"object", "status", "expires_after", "memory_limit", "network_policy"}
    container = {k: v for k, v in box.model_dump().items() if k in keep}
    file = {k: v for k, v in up.model_dump().items() if k in {"object", "bytes", "path", "source"}}
    others = [
        {k: v for k, v in r.model_dump().items() if k != "id"} if hasattr(r, "model_dump") else r
        for r in rest
    ]
    return [container, file, *others]


def test_both_clients_work_containers_alike(containers_server: ContainersServer, key: str) -> None:
    base = containers_server.server.base_url
    with Client(base, key) as client:
        sync = _scenario_sync(client, "sync")

    async def run() -> list[Any]:
        async with AsyncClient(base, key) as client:
            return await _scenario_async(client, "async")

    assert asyncio.run(run()) == [*sync[:3], ["sdk async"], *sync[4:]]
    assert sync[:5] == [
        {
            "object": "container",
            "status": "running",
            "expires_after": {"anchor": "last_active_at", "minutes": 9},
            "memory_limit": "4g",
            "network_policy": {"type": "disabled"},
        },
        {"object": "container.file", "bytes": 8, "path": "/mnt/data/t.csv", "source": "user"},
        b"a,b\n1,2\n",
        ["sdk sync"],
        {"object": "container.file.deleted", "deleted": True},
    ]
    assert sync[5:] == [
        "unsupported_network_policy",
        {"object": "container.deleted", "deleted": True},
    ]
