"""The Containers API through the official ``openai`` SDK (raw HTTP for the bodies the SDK
will not send), against a real server on SQLite or, with ``PARLEY_TEST_DATABASE_URL``,
PostgreSQL; each with the database's default file storage, then the other."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from tests.containers.conftest import MAX_BYTES, MOST, ContainersServer

CSV = b"city,people\nLyon,522000\nNantes,320000\n"


def raw(server: ContainersServer, key: str) -> httpx.Client:
    return server.server.client(key)


def test_a_container_is_made_listed_retrieved_and_deleted(sdk: Any) -> None:
    made = sdk.containers.create(
        name="analysis",
        memory_limit="4g",
        expires_after={"anchor": "last_active_at", "minutes": 5},
        network_policy={"type": "disabled"},
    )
    assert made.id.startswith("cntr_") and len(made.id) == 5 + 48
    assert int(made.id[5:], 16) >= 0  # hex
    assert made.object == "container"
    assert made.status == "running"
    assert made.name == "analysis"
    assert made.memory_limit == "4g"
    assert made.expires_after.anchor == "last_active_at" and made.expires_after.minutes == 5
    assert made.network_policy.type == "disabled"
    assert abs(made.created_at - time.time()) < 60
    assert made.last_active_at == made.created_at

    other = sdk.containers.create(name="scratch")
    assert other.memory_limit == "1g"  # the server's default
    assert other.expires_after.minutes == 20

    listed = sdk.containers.list()
    assert [c.id for c in listed.data] == [other.id, made.id]  # newest first
    assert [c.id for c in sdk.containers.list(order="asc").data] == [made.id, other.id]
    assert [c.id for c in sdk.containers.list(extra_query={"name": "analysis"}).data] == [made.id]
    page = sdk.containers.list(limit=1)
    assert [c.id for c in page.data] == [other.id] and page.has_more
    after = sdk.containers.list(limit=1, after=other.id)
    assert [c.id for c in after.data] == [made.id] and not after.has_more

    got = sdk.containers.retrieve(made.id)
    assert got.model_dump() == made.model_dump()

    # The SDK's delete returns nothing; the answer is OpenAI's deletion object.
    answer = sdk.containers.with_raw_response.delete(made.id)
    assert answer.http_response.json() == {
        "id": made.id,
        "object": "container.deleted",
        "deleted": True,
    }
    with pytest.raises(openai.NotFoundError):
        sdk.containers.retrieve(made.id)
    with pytest.raises(openai.NotFoundError):
        sdk.containers.delete(made.id)
    assert [c.id for c in sdk.containers.list().data] == [other.id]


def test_files_are_uploaded_copied_read_and_deleted(
    sdk: Any, containers_server: ContainersServer
) -> None:
    uploaded = sdk.files.create(file=("cities.csv", CSV), purpose="assistants")
    box = sdk.containers.create(name="with files", file_ids=[uploaded.id])
    (copied,) = sdk.containers.files.list(box.id).data
    assert copied.id.startswith("cfile_") and len(copied.id) == 6 + 48
    assert copied.object == "container.file"
    assert copied.path == "/mnt/data/cities.csv"
    assert copied.source == "user"
    assert copied.bytes == len(CSV)
    assert copied.container_id == box.id

    notes = sdk.containers.files.create(box.id, file=("notes.md", b"# Notes\nLyon first.\n"))
    assert notes.path == "/mnt/data/notes.md" and notes.bytes == 20
    again = sdk.containers.files.create(box.id, file_id=uploaded.id)  # JSON: a copy by id
    assert again.path == "/mnt/data/cities.csv" and again.id != copied.id  # it replaced it

    listed = sdk.containers.files.list(box.id)
    assert sorted(f.path for f in listed.data) == ["/mnt/data/cities.csv", "/mnt/data/notes.md"]
    assert sdk.containers.files.retrieve(notes.id, container_id=box.id).path == notes.path
    content = sdk.containers.files.content.retrieve(again.id, container_id=box.id)
    assert content.read() == CSV
    assert content.response.headers["content-type"].startswith("text/csv")
    md = sdk.containers.files.content.retrieve(notes.id, container_id=box.id)
    assert md.read() == b"# Notes\nLyon first.\n"

    # The copies have bytes of their own: deleting the file leaves the container's.
    sdk.files.delete(uploaded.id)
    assert sdk.containers.files.content.retrieve(again.id, container_id=box.id).read() == CSV
    with pytest.raises(openai.NotFoundError):
        sdk.containers.files.retrieve(copied.id, container_id=box.id)  # replaced

    keys = containers_server.keys_of(box.id)
    assert len(keys) == 2 and all(containers_server.has_bytes(*k) for k in keys)
    answer = sdk.containers.files.with_raw_response.delete(notes.id, container_id=box.id)
    assert answer.http_response.json() == {
        "id": notes.id,
        "object": "container.file.deleted",
        "deleted": True,
    }
    assert [f.id for f in sdk.containers.files.list(box.id).data] == [again.id]
    gone = [k for k in keys if k not in containers_server.keys_of(box.id)]
    assert len(gone) == 1 and not containers_server.has_bytes(*gone[0])

    left = containers_server.keys_of(box.id)
    sdk.containers.delete(box.id)
    assert left and not any(containers_server.has_bytes(*k) for k in left)


def test_a_replaced_file_s_bytes_are_deleted(sdk: Any, containers_server: ContainersServer) -> None:
    box = sdk.containers.create(name="replace")
    sdk.containers.files.create(box.id, file=("a.txt", b"first"))
    (before,) = containers_server.keys_of(box.id)
    second = sdk.containers.files.create(box.id, file=("a.txt", b"second"))
    (after,) = containers_server.keys_of(box.id)
    assert after != before
    assert not containers_server.has_bytes(*before)
    assert sdk.containers.files.content.retrieve(second.id, container_id=box.id).read() == (
        b"second"
    )


def test_another_user_s_containers_and_files_are_not_found(
    sdk: Any, containers_server: ContainersServer
) -> None:
    box = sdk.containers.create(name="mine")
    mine = sdk.containers.files.create(box.id, file=("secret.txt", b"s3cret"))
    theirs = containers_server.sdk(containers_server.server.new_user("them"))
    calls: list[Callable[[], object]] = [
        lambda: theirs.containers.retrieve(box.id),
        lambda: theirs.containers.delete(box.id),
        lambda: theirs.containers.files.list(box.id),
        lambda: theirs.containers.files.create(box.id, file=("x.txt", b"x")),
        lambda: theirs.containers.files.retrieve(mine.id, container_id=box.id),
        lambda: theirs.containers.files.delete(mine.id, container_id=box.id),
        lambda: theirs.containers.files.content.retrieve(mine.id, container_id=box.id),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.body["code"] == "container_not_found"  # type: ignore[index]
    assert theirs.containers.list().data == []
    # Their own container does not hold my file either.
    own = theirs.containers.create(name="theirs")
    with pytest.raises(openai.NotFoundError) as caught:
        theirs.containers.files.retrieve(mine.id, container_id=own.id)
    assert caught.value.body["code"] == "container_file_not_found"  # type: ignore[index]
    # Nor can a container be made with my file.
    uploaded = sdk.files.create(file=("mine.txt", b"mine"), purpose="assistants")
    with pytest.raises(openai.NotFoundError) as caught:
        theirs.containers.create(name="x", file_ids=[uploaded.id])
    assert uploaded.id in caught.value.message
    with pytest.raises(openai.NotFoundError):
        theirs.containers.files.create(own.id, file_id=uploaded.id)
    assert sdk.containers.files.content.retrieve(mine.id, container_id=box.id).read() == b"s3cret"
    theirs.close()


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({}, "name", None),
        ({"name": 7}, "name", None),
        ({"name": "x", "memory_limit": "2g"}, "memory_limit", None),
        ({"name": "x", "expires_after": {"anchor": "last_active_at", "minutes": 0}}, None, None),
        ({"name": "x", "expires_after": {"anchor": "last_active_at", "minutes": "5"}}, None, None),
        ({"name": "x", "expires_after": {"anchor": "created_at", "minutes": 5}}, None, None),
        ({"name": "x", "file_ids": "file-1"}, "file_ids", None),
        ({"name": "x", "colour": "blue"}, "colour", None),
        (
            {"name": "x", "network_policy": {"type": "allowlist", "allowed_domains": ["a.b"]}},
            "network_policy",
            "unsupported_network_policy",
        ),
        (
            {"name": "x", "skills": [{"type": "skill_reference", "skill_id": "s"}]},
            "skills",
            "unsupported",
        ),
    ],
)
def test_bad_bodies_are_refused_saying_why(
    containers_server: ContainersServer, key: str, body: dict[str, Any], param: str, code: str
) -> None:
    with raw(containers_server, key) as http:
        answer = http.post("/containers", json=body)
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["type"] == "invalid_request_error" or error["type"] == "invalid_request"
        if param is not None:
            assert param in error["message"]
        if code is not None:
            assert error["code"] == code
            assert error["param"] == param
        assert http.get("/containers").json()["data"] == []


def test_bad_files_are_refused(sdk: Any, containers_server: ContainersServer, key: str) -> None:
    box = sdk.containers.create(name="files")
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.containers.create(name="x", file_ids=["file-nothere"])
    assert "file-nothere" in caught.value.message
    with pytest.raises(openai.NotFoundError):
        sdk.containers.files.create(box.id, file_id="file-nothere")
    with pytest.raises(openai.APIStatusError) as too_big:
        sdk.containers.files.create(box.id, file=("big.bin", b"x" * (MAX_BYTES + 1)))
    assert too_big.value.status_code == 413
    with raw(containers_server, key) as http:
        for name in ("..", "."):
            answer = http.post(f"/containers/{box.id}/files", files={"file": (name, b"x")})
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"]["code"] == "invalid_filename"
        answer = http.post(f"/containers/{box.id}/files", json={})
        assert answer.status_code == 400 and "file_id" in answer.json()["error"]["message"]
        answer = http.post(f"/containers/{box.id}/files", json={"file_id": 5})
        assert answer.status_code == 400, answer.text
        answer = http.post(f"/containers/{box.id}/files", content=b"{not json")
        assert answer.status_code == 400, answer.text
        answer = http.post(f"/containers/{box.id}/files", files={"other": ("a", b"x")})
        assert answer.status_code == 400 and "other" in answer.json()["error"]["message"]
        # A name with directories keeps its last part only: never a path of the client's.
        answer = http.post(
            f"/containers/{box.id}/files", files={"file": ("../../etc/passwd", b"x")}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["path"] == "/mnt/data/passwd"
    assert [f.path for f in sdk.containers.files.list(box.id).data] == ["/mnt/data/passwd"]


def test_a_user_has_at_most_the_configured_running_containers(sdk: Any) -> None:
    made = [sdk.containers.create(name=f"c{i}") for i in range(MOST)]
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.containers.create(name="one too many")
    assert caught.value.code == "too_many_containers"
    assert str(MOST) in caught.value.message
    uploaded = sdk.files.create(file=("big.csv", CSV), purpose="assistants")
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.containers.create(name="with a file", file_ids=[uploaded.id])
    assert caught.value.code == "too_many_containers"
    sdk.containers.delete(made[0].id)
    sdk.containers.create(name="room again")


def test_an_expired_container_loses_its_files_and_says_so(
    sdk: Any, containers_server: ContainersServer
) -> None:
    box = sdk.containers.create(
        name="brief", expires_after={"anchor": "last_active_at", "minutes": 1}
    )
    kept = sdk.containers.create(
        name="kept", expires_after={"anchor": "last_active_at", "minutes": 1}
    )
    early = sdk.containers.files.create(box.id, file=("data.csv", CSV))
    sdk.containers.files.create(kept.id, file=("data.csv", CSV))
    keys = containers_server.keys_of(box.id)
    assert keys and containers_server.has_bytes(*keys[0])

    containers_server.idle(box.id, 61)
    containers_server.idle(kept.id, 30)  # not yet
    # Read as expired at once, before any sweep: no files, and it takes no more.
    assert sdk.containers.retrieve(box.id).status == "expired"
    assert sdk.containers.files.list(box.id).data == []
    with pytest.raises(openai.NotFoundError):
        sdk.containers.files.content.retrieve(early.id, container_id=box.id)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.containers.files.create(box.id, file=("more.txt", b"more"))
    assert caught.value.code == "container_expired"

    assert containers_server.sweep() >= 1
    assert not containers_server.has_bytes(*keys[0])
    assert containers_server.keys_of(box.id) == []
    found = sdk.containers.retrieve(box.id)
    assert found.status == "expired"
    assert box.id in [c.id for c in sdk.containers.list().data]
    assert sdk.containers.files.list(box.id).data == []
    assert sdk.containers.retrieve(kept.id).status == "running"
    assert len(containers_server.keys_of(kept.id)) == 1
    assert containers_server.sweep() == 0
    # An expired container is no longer counted in the cap, and can still be deleted.
    sdk.containers.delete(box.id)


def test_using_a_container_s_files_keeps_it_alive(
    sdk: Any, containers_server: ContainersServer
) -> None:
    box = sdk.containers.create(
        name="alive", expires_after={"anchor": "last_active_at", "minutes": 1}
    )
    made = sdk.containers.files.create(box.id, file=("a.txt", b"a"))
    uses: list[Callable[[], object]] = [
        lambda: sdk.containers.files.list(box.id),
        lambda: sdk.containers.files.retrieve(made.id, container_id=box.id),
        lambda: sdk.containers.files.content.retrieve(made.id, container_id=box.id),
    ]
    for use in uses:
        containers_server.idle(box.id, 50)
        before = sdk.containers.retrieve(box.id).last_active_at  # a look is no use
        use()
        after = sdk.containers.retrieve(box.id).last_active_at
        assert after >= before + 45
    assert containers_server.sweep() == 0
    assert sdk.containers.retrieve(box.id).status == "running"


def test_each_container_made_counts_in_the_key_s_usage(
    sdk: Any, containers_server: ContainersServer, key: str
) -> None:
    sdk.containers.create(name="counted", memory_limit="16g")
    sdk.containers.create(name="counted too", memory_limit="16g")
    with raw(containers_server, key) as http:
        deadline = time.monotonic() + 15
        while True:
            report = http.get("/usage", params={"group_by": "face,model"}).json()
            lines = [line for line in report["data"] if line["face"] == "containers"]
            # Usage is written behind the answer: wait until both creations show.
            if sum(line["requests"] for line in lines) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert lines == [
        {
            **lines[0],
            "model": "container/16g",
            "requests": 2,
            "input_tokens": 0,
            "output_tokens": 0,
        }
    ]


def test_the_openapi_document_has_the_routes(containers_server: ContainersServer) -> None:
    document = httpx.get(f"{containers_server.server.base_url}/openapi.json").json()
    paths = document["paths"]
    assert set(paths["/v1/containers"]) == {"get", "post"}
    assert set(paths["/v1/containers/{container_id}/files"]) == {"get", "post"}
    body = paths["/v1/containers/{container_id}/files"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "multipart/form-data"}
    assert "get" in paths["/v1/containers/{container_id}/files/{file_id}/content"]


def _made(containers_server: ContainersServer) -> float:
    text = httpx.get(f"{containers_server.server.base_url}/metrics").text
    (line,) = [ln for ln in text.splitlines() if ln.startswith("parley_containers_created_total")]
    return float(line.split()[-1])


def test_each_container_made_is_counted_in_the_metrics(
    sdk: Any, containers_server: ContainersServer
) -> None:
    before = _made(containers_server)
    sdk.containers.create(name="counted")
    with pytest.raises(openai.BadRequestError):
        sdk.containers.create(name="refused", skills=[{"type": "skill_reference", "skill_id": "s"}])
    assert _made(containers_server) == before + 1
