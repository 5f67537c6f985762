"""The Files and Uploads APIs through the official ``openai`` SDK, against a real server:
on SQLite the bytes are in a directory, on PostgreSQL in the database."""

from __future__ import annotations

import hashlib
from typing import Any

import openai
import pytest

from tests.files.conftest import FilesServer


def test_a_file_goes_in_and_comes_back_whole(sdk: Any, files_server: FilesServer) -> None:
    data = bytes(range(256)) * 5000  # 1.2 MB: more than one piece of storage
    made = sdk.files.create(file=("notes.bin", data), purpose="assistants")
    assert made.id.startswith("file-") and made.object == "file"
    assert (made.bytes, made.filename, made.purpose) == (len(data), "notes.bin", "assistants")
    assert made.expires_at is None and made.status == "processed"
    assert sdk.files.retrieve(made.id).model_dump() == made.model_dump()
    content = sdk.files.content(made.id)
    assert hashlib.sha256(content.read()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert content.response.headers["content-disposition"].startswith("attachment;")
    stored = files_server.stored_bytes()
    deleted = sdk.files.delete(made.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (made.id, "file", True)
    with pytest.raises(openai.NotFoundError):
        sdk.files.retrieve(made.id)
    with pytest.raises(openai.NotFoundError):
        sdk.files.delete(made.id)
    assert len(files_server.stored_bytes()) == len(stored) - 1  # its bytes are gone too


def test_an_empty_file_and_an_expiring_one(sdk: Any) -> None:
    empty = sdk.files.create(file=("empty.txt", b""), purpose="user_data")
    assert empty.bytes == 0 and sdk.files.content(empty.id).read() == b""
    expiring = sdk.files.create(
        file=("soon.txt", b"soon"),
        purpose="assistants",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert expiring.expires_at == expiring.created_at + 3600
    batch = sdk.files.create(file=("jobs.jsonl", b"{}\n"), purpose="batch")
    assert batch.expires_at == batch.created_at + 30 * 24 * 3600  # OpenAI's default


def test_lists_filter_by_purpose_and_page(sdk: Any) -> None:
    made = [
        sdk.files.create(file=(f"f{i}.txt", b"x" * i), purpose="assistants" if i % 2 else "vision")
        for i in range(5)
    ]
    newest_first = [f.id for f in reversed(made)]
    assert [f.id for f in sdk.files.list()] == newest_first
    first = sdk.files.list(limit=2)
    assert [f.id for f in first.data] == newest_first[:2] and first.has_more
    assert [f.id for f in sdk.files.list(limit=2)] == newest_first  # the SDK pages through
    after = sdk.files.list(limit=2, after=newest_first[1], order="asc")
    assert [f.id for f in after.data] == [made[4].id] and not after.has_more
    assert [f.id for f in sdk.files.list(purpose="vision")] == [made[4].id, made[2].id, made[0].id]
    assert list(sdk.files.list(purpose="fine-tune")) == []
    with pytest.raises(openai.BadRequestError):
        sdk.files.list(after="file-nothere")


def test_an_upload_in_parts_makes_a_file(sdk: Any) -> None:
    parts = [b"a" * 700_000, b"b" * 500_000, b"c" * 3]
    data = b"".join(parts)
    upload = sdk.uploads.create(
        bytes=len(data), filename="big.txt", mime_type="text/plain", purpose="assistants"
    )
    assert (upload.object, upload.status, upload.bytes) == ("upload", "pending", len(data))
    assert upload.id.startswith("upload_") and upload.expires_at == upload.created_at + 3600
    ids = [sdk.uploads.parts.create(upload.id, data=p) for p in parts]
    assert all(p.object == "upload.part" and p.upload_id == upload.id for p in ids)
    # Parts come back in the order the completion names, whatever order they came in.
    done = sdk.uploads.complete(
        upload.id, part_ids=[p.id for p in ids], md5=hashlib.md5(data).hexdigest()
    )
    assert done.status == "completed" and done.file is not None
    assert (done.file.bytes, done.file.filename) == (len(data), "big.txt")
    assert sdk.files.content(done.file.id).read() == data
    with pytest.raises(openai.BadRequestError):
        sdk.uploads.parts.create(upload.id, data=b"more")


def test_the_sdks_chunked_upload(sdk: Any) -> None:
    data = bytes(range(200)) * 1000
    done = sdk.uploads.upload_file_chunked(
        file=data,
        filename="chunked.bin",
        bytes=len(data),
        mime_type="application/octet-stream",
        purpose="assistants",
        part_size=64 * 1024,
    )
    assert done.status == "completed"
    assert sdk.files.content(done.file.id).read() == data


def test_an_upload_cancelled_or_refused(sdk: Any, files_server: FilesServer) -> None:
    before = files_server.stored_bytes()
    upload = sdk.uploads.create(
        bytes=6, filename="x.txt", mime_type="text/plain", purpose="assistants"
    )
    part = sdk.uploads.parts.create(upload.id, data=b"abc")
    with pytest.raises(openai.BadRequestError, match="add up"):
        sdk.uploads.complete(upload.id, part_ids=[part.id])
    second = sdk.uploads.parts.create(upload.id, data=b"def")
    with pytest.raises(openai.BadRequestError, match="md5"):
        sdk.uploads.complete(upload.id, part_ids=[part.id, second.id], md5="0" * 32)
    with pytest.raises(openai.BadRequestError):
        sdk.uploads.parts.create(upload.id, data=b"g")  # past the declared size
    cancelled = sdk.uploads.cancel(upload.id)
    assert cancelled.status == "cancelled" and cancelled.file is None
    with pytest.raises(openai.BadRequestError):
        sdk.uploads.complete(upload.id, part_ids=[part.id, second.id])
    assert files_server.stored_bytes() == before  # parts and failed completions: gone
