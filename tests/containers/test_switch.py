"""With the code interpreter switched off, every containers route answers a 400 saying so
(after authentication: a bad key is still a 401)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.containers.conftest import ContainersServer, serve

ROUTES = [
    ("POST", "/containers", {"name": "x"}),
    ("GET", "/containers", None),
    ("GET", "/containers/cntr_1", None),
    ("DELETE", "/containers/cntr_1", None),
    ("POST", "/containers/cntr_1/files", {"file_id": "file-1"}),
    ("GET", "/containers/cntr_1/files", None),
    ("GET", "/containers/cntr_1/files/cfile_1", None),
    ("DELETE", "/containers/cntr_1/files/cfile_1", None),
    ("GET", "/containers/cntr_1/files/cfile_1/content", None),
]


@pytest.fixture(scope="module")
def switched_off(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContainersServer]:
    tmp = tmp_path_factory.mktemp("containers-off")
    yield from serve(tmp, {"PARLEY_CODE_INTERPRETER_ENABLED": "false"})


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_every_route_says_the_code_interpreter_is_off(
    switched_off: ContainersServer, method: str, path: str, body: dict[str, str] | None
) -> None:
    key = switched_off.server.new_user()
    with switched_off.server.client(key) as http:
        answer = http.request(method, path, json=body)
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["code"] == "code_interpreter_disabled"
        assert "switched off" in error["message"]
    with switched_off.server.client("sk-wrong") as http:
        assert http.request(method, path, json=body).status_code == 401
