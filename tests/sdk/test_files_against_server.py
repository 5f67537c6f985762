"""Files and vector stores through the SDK against a real ``parley serve`` on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from parley import AsyncClient, Client, NotFound


@pytest.fixture
def client(server: Any, user_key: str) -> Any:
    with Client(base_url=server.base_url, api_key=user_key) as c:
        yield c


def test_a_path_is_uploaded_under_its_name_and_only_its_owner_sees_it(
    client: Client, server: Any, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\nThe launch is on Tuesday.\n")
    made = client.files.create(notes)
    assert (made.filename, made.bytes, made.purpose) == (
        "notes.md",
        notes.stat().st_size,
        "assistants",
    )
    assert client.files.retrieve(made.id).id == made.id
    with (
        Client(base_url=server.base_url, api_key=server.new_user()) as other,
        pytest.raises(NotFound),
    ):
        other.files.retrieve(made.id)
    assert client.files.delete(made.id).deleted is True
    with pytest.raises(NotFound):
        client.files.retrieve(made.id)


async def test_upload_and_poll_waits_until_the_file_is_indexed(server: Any, user_key: str) -> None:
    async with AsyncClient(base_url=server.base_url, api_key=user_key) as client:
        store = await client.vector_stores.create(name="notes")
        indexed = await client.vector_stores.files.upload_and_poll(
            vector_store_id=store.id,
            file=b"The launch is on Tuesday, at the harbour.",
            filename="launch.txt",
            timeout=30.0,
            interval=0.05,
        )
        assert (indexed.status, indexed.last_error) == ("completed", None)
        again = await client.vector_stores.files.retrieve(indexed.id, vector_store_id=store.id)
        assert again.status == "completed"
        assert (await client.vector_stores.retrieve(store.id)).file_counts.completed == 1
