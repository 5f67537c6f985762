"""What a hostile or careless client gets from the Files and Uploads APIs, over raw HTTP:
a clear 4xx, nothing half stored, another user's ids not found, and a server that stays
up with a clean log."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from email.message import Message
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from tests.files.conftest import MAX_BYTES, QUOTA, FilesServer


@pytest.fixture
def http(files_server: FilesServer, key: str) -> Iterator[httpx.Client]:
    with files_server.server.client(key) as client:
        yield client


def _upload(http: httpx.Client, name: str, data: bytes, **fields: str) -> httpx.Response:
    return http.post(
        "/files", files={"file": (name, data)}, data={"purpose": "assistants", **fields}
    )


def _error(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_a_file_over_the_limit_is_413(http: httpx.Client, files_server: FilesServer) -> None:
    before = files_server.stored_bytes()
    error = _error(_upload(http, "big.bin", b"x" * (MAX_BYTES + 1)), 413)
    assert error["code"] == "file_too_large"
    # Sent chunked (no Content-Length), a body past the limit is cut off as it comes.
    body = b"x" * (MAX_BYTES + 128 * 1024)
    multipart = httpx.Request(
        "POST", "http://x/", files={"file": ("big.bin", body)}, data={"purpose": "assistants"}
    )
    payload = multipart.read()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(payload), 65536):
            yield payload[i : i + 65536]

    answer = http.post(
        "/files", content=chunks(), headers={"content-type": multipart.headers["content-type"]}
    )
    assert answer.status_code == 413, answer.text
    too_big = {"bytes": MAX_BYTES + 1, "filename": "a", "mime_type": "text/plain"}
    _error(http.post("/uploads", json={**too_big, "purpose": "assistants"}), 413)
    assert files_server.stored_bytes() == before


def test_a_user_over_the_quota_gets_400(http: httpx.Client) -> None:
    chunk = b"q" * (QUOTA // 2)
    assert _upload(http, "one.bin", chunk).status_code == 200
    assert _upload(http, "two.bin", chunk).status_code == 200
    error = _error(_upload(http, "three.bin", b"q" * 1024), 400)
    assert error["code"] == "quota_exceeded"
    declared = {"bytes": 1024, "filename": "u.bin", "mime_type": "text/plain"}
    error = _error(http.post("/uploads", json={**declared, "purpose": "assistants"}), 400)
    assert error["code"] == "quota_exceeded"
    # Deleting makes room again.
    first = http.get("/files").json()["data"][0]["id"]
    assert http.delete(f"/files/{first}").json()["deleted"] is True
    assert _upload(http, "three.bin", b"q" * 1024).status_code == 200


def test_another_users_ids_are_not_found_on_every_route(
    http: httpx.Client, files_server: FilesServer
) -> None:
    file_id = _upload(http, "mine.txt", b"mine").json()["id"]
    declared = {"bytes": 4, "filename": "u.txt", "mime_type": "text/plain"}
    upload_id = http.post("/uploads", json={**declared, "purpose": "assistants"}).json()["id"]
    part = http.post(f"/uploads/{upload_id}/parts", files={"data": ("d", b"mine")}).json()
    with files_server.server.client(files_server.server.new_user("other")) as other:
        for method, path, kwargs in [
            ("GET", f"/files/{file_id}", {}),
            ("GET", f"/files/{file_id}/content", {}),
            ("DELETE", f"/files/{file_id}", {}),
            ("POST", f"/uploads/{upload_id}/parts", {"files": {"data": ("d", b"x")}}),
            ("POST", f"/uploads/{upload_id}/complete", {"json": {"part_ids": [part["id"]]}}),
            ("POST", f"/uploads/{upload_id}/cancel", {}),
        ]:
            answer = other.request(method, path, **kwargs)
            assert answer.status_code == 404, (method, path, answer.text)
        assert other.get("/files").json()["data"] == []
        _error(other.get("/files", params={"after": file_id}), 400)  # not a cursor of theirs
    assert http.get(f"/files/{file_id}/content").content == b"mine"
    done = http.post(f"/uploads/{upload_id}/complete", json={"part_ids": [part["id"]]})
    assert done.json()["status"] == "completed"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"purpose": "homework"}, "purpose"),
        ({"purpose": ""}, "purpose"),
        ({"expires_after[anchor]": "created_at", "expires_after[seconds]": "60"}, None),
        ({"expires_after[anchor]": "last_active_at", "expires_after[seconds]": "3600"}, None),
        ({"expires_after[seconds]": "3600"}, None),
        ({"expires_after[anchor]": "created_at", "expires_after[seconds]": "1e9"}, None),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_fields_are_400(http: httpx.Client, fields: dict[str, str], param: str | None) -> None:
    error = _error(_upload(http, "a.txt", b"a", **fields), 400)
    assert error["type"] == "invalid_request"
    if param is not None:
        assert error["param"] == param
    else:
        assert error["param"].startswith("expires_after")
    assert http.get("/files").json()["data"] == []


@pytest.mark.parametrize("mime_type", ["0", "text/plain\r\nX-Evil: 1", "", "text", "a/b/c"])
def test_an_upload_whose_mime_type_is_no_media_type_is_400(
    http: httpx.Client, mime_type: str
) -> None:
    """A mime_type that is no media type was kept and served as the file's Content-Type:
    "0" as it was, and a CR LF made every later GET of the content drop the connection."""
    declared = {"bytes": 1, "filename": "a.txt", "mime_type": mime_type, "purpose": "assistants"}
    error = _error(http.post("/uploads", json=declared), 400)
    assert (error["param"], error["code"]) == ("mime_type", "invalid_mime_type")
    kept = {**declared, "mime_type": "text/csv; charset=utf-8"}
    upload = http.post("/uploads", json=kept)
    assert upload.status_code == 200, upload.text
    part = http.post(f"/uploads/{upload.json()['id']}/parts", files={"data": ("d", b"x")})
    done = http.post(
        f"/uploads/{upload.json()['id']}/complete", json={"part_ids": [part.json()["id"]]}
    )
    assert done.status_code == 200, done.text
    content = http.get(f"/files/{done.json()['file']['id']}/content")
    assert (content.status_code, content.content) == (200, b"x")
    assert content.headers["content-type"].startswith("text/csv")
    http.delete(f"/files/{done.json()['file']['id']}")


def test_wrong_bodies_are_400(http: httpx.Client) -> None:
    not_multipart = http.post("/files", data={"purpose": "assistants"})
    assert _error(not_multipart, 400)["code"] == "invalid_content_type"
    no_file = http.post("/files", files={"purpose": (None, "assistants")})
    assert _error(no_file, 400)["param"] == "file"
    as_text = http.post("/files", files={"purpose": (None, "assistants"), "file": (None, "text")})
    assert _error(as_text, 400)["param"] == "file"
    no_purpose = http.post("/files", files={"file": ("a.txt", b"a")})
    assert _error(no_purpose, 400)["param"] == "purpose"
    _error(http.post("/files", json={"file": "a", "purpose": "assistants"}), 400)
    broken = http.post(
        "/files",
        content=b'--zz\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc',
        headers={"content-type": "multipart/form-data; boundary=zz"},
    )
    _error(broken, 400)
    no_boundary = http.post(
        "/files", content=b"abc", headers={"content-type": "multipart/form-data"}
    )
    _error(no_boundary, 400)
    two = http.post(
        "/files",
        files=[("file", ("a", b"a")), ("file", ("b", b"b"))],
        data={"purpose": "assistants"},
    )
    _error(two, 400)
    assert http.get("/files").json()["data"] == []


def test_names_are_kept_without_directories_and_never_a_path(
    http: httpx.Client, files_server: FilesServer
) -> None:
    for given, kept in [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("dir/sub/report.pdf", "report.pdf"),
        ("semi;colon%20 'é' 文.txt", "semi;colon%20 'é' 文.txt"),
    ]:
        answer = _upload(http, given, b"data")
        assert answer.status_code == 200, (given, answer.text)
        assert answer.json()["filename"] == kept
        content = http.get(f"/files/{answer.json()['id']}/content")
        assert content.content == b"data"
        header = Message()
        header["content-disposition"] = content.headers["content-disposition"]
        fallback = header.get_filename()  # the plain one: printable ASCII, nothing to escape
        assert fallback is not None and len(fallback) == len(kept)
        assert fallback.isascii() and fallback.isprintable() and not set('"\\;%') & set(fallback)
        encoded = content.headers["content-disposition"].split("filename*=UTF-8''")[1]
        assert unquote(encoded) == kept
        assert content.headers["x-content-type-options"] == "nosniff"
    raw = (
        b'--zz\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
        b'--zz\r\nContent-Disposition: form-data; name="file"; filename="n\x00ul\x01.txt"'
        b"\r\n\r\ndata\r\n--zz--\r\n"
    )
    answer = http.post(
        "/files", content=raw, headers={"content-type": "multipart/form-data; boundary=zz"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["filename"] == "nul.txt"  # control characters dropped
    for nameless in ("../", "..", "a/.", "dir/"):
        assert _error(_upload(http, nameless, b"data"), 400)["code"] == "invalid_filename"
    _error(_upload(http, "n" * 256, b"data"), 400)
    # Bytes live under random keys only: no stored file is named after a client's name.
    for stored in files_server.stored_bytes():
        name = stored.rsplit("/", 1)[-1].removeprefix("db:")
        assert len(name) == 32 and all(c in "0123456789abcdef" for c in name), stored


def _send_half(files_server: FilesServer, key: str, path: str, field: str) -> None:
    """A multipart POST that declares its whole length, sends half the body and closes."""
    form = httpx.Request(
        "POST",
        "http://x/",
        files={field: ("cut.bin", b"c" * 2_000_000)},
        data={"purpose": "assistants"} if field == "file" else {},
    )
    body = form.read()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: {form.headers['content-type']}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", files_server.server.port)) as sock:
        sock.sendall(head + body[: len(body) // 2])
        time.sleep(0.2)


def test_an_upload_cut_off_midway_leaves_nothing(
    http: httpx.Client, files_server: FilesServer, key: str
) -> None:
    before = files_server.stored_bytes()
    _send_half(files_server, key, "/v1/files", "file")
    declared = {"bytes": 2_000_000, "filename": "u.bin", "mime_type": "text/plain"}
    upload_id = http.post("/uploads", json={**declared, "purpose": "assistants"}).json()["id"]
    _send_half(files_server, key, f"/v1/uploads/{upload_id}/parts", "data")
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # the server notices the closed connection
        time.sleep(0.1)
        tmp = files_server.files_dir / "tmp"
        if not (tmp.exists() and any(tmp.iterdir())):
            break
    assert http.get("/files").json()["data"] == []
    assert files_server.stored_bytes() == before
    # The upload took no part: its first whole part is the first it has.
    part = http.post(f"/uploads/{upload_id}/parts", files={"data": ("d", b"x" * 2_000_000)})
    done = http.post(f"/uploads/{upload_id}/complete", json={"part_ids": [part.json()["id"]]})
    assert done.json()["status"] == "completed", done.text


def test_a_file_whose_bytes_went_missing_is_404_not_a_broken_stream(
    http: httpx.Client, files_server: FilesServer
) -> None:
    before = set(files_server.stored_bytes())
    file_id = _upload(http, "lost.txt", b"lost").json()["id"]
    (key,) = set(files_server.stored_bytes()) - before
    if key.startswith("db:"):
        pytest.skip("the bytes are in the database, which a test does not reach into")
    (files_server.files_dir / key).unlink()  # as an operator's mistake would
    assert _error(http.get(f"/files/{file_id}/content"), 404)["code"] == "file_not_found"
