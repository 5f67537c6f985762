"""Files and vector stores through the SDK against a real ``parley serve`` on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from parley import Client, NotFound


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
