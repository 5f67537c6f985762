"""``GET /v1/threads?metadata[key]=value``: threads whose metadata has every pair, paged
like any list, never another user's; a bad filter is a 400 naming ``metadata``. Through the
SDK too."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from parley import AsyncClient, Client, ValidationFailed
from tests.e2e.helpers import assert_invalid, create_thread
from tests.e2e.test_pagination import walk


def _ids(http: httpx.Client, **pairs: str) -> list[str]:
    params = {f"metadata[{key}]": value for key, value in pairs.items()}
    answer = http.get("/threads", params={"limit": 100, **params})
    assert answer.status_code == 200, answer.text
    return [thread["id"] for thread in answer.json()["data"]]


def test_threads_filtered_by_metadata(http: httpx.Client, other: httpx.Client) -> None:
    red = create_thread(http, {"colour": "red", "size": "big", "team": "a"})["id"]
    blue = create_thread(http, {"colour": "blue", "size": "big"})["id"]
    typed = create_thread(http, {"colour": 5, "size": True, "nested": {"colour": "red"}})["id"]
    odd = create_thread(http, {'ключ "з" \\ пробілом/&=': "значення ✓", "a.b": "dot"})["id"]
    theirs = create_thread(other, {"colour": "red", "size": "big"})["id"]

    assert _ids(http, colour="red") == [red]
    assert _ids(http, size="big") == [blue, red]  # newest first
    assert _ids(http, colour="red", size="big") == [red]  # every pair
    assert _ids(http, colour="red", size="small") == []
    assert _ids(http, colour="5") == [] and _ids(http, size="true") == []  # strings only
    assert _ids(http, colour="RED") == [] and _ids(http, missing="") == []
    assert _ids(http, **{'ключ "з" \\ пробілом/&=': "значення ✓"}) == [odd]
    assert _ids(http, **{"a.b": "dot"}) == [odd]  # a key, not a path
    assert _ids(other, colour="red") == [theirs]  # each user sees their own
    assert set(_ids(http)) == {red, blue, typed, odd}  # no filter: all


def test_a_filtered_list_pages_like_any_list(http: httpx.Client) -> None:
    tagged = [create_thread(http, {"tag": "x", "n": str(n)})["id"] for n in range(5)]
    create_thread(http, {"tag": "y"})
    assert walk(http, "/threads", 2, **{"metadata[tag]": "x"}) == [
        tagged[4:2:-1],
        tagged[2:0:-1],
        tagged[0:1],
    ]
    asc = walk(http, "/threads", 3, order="asc", **{"metadata[tag]": "x"})
    assert asc == [tagged[:3], tagged[3:]]


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("metadata=x", "metadata[key]=value"),
        ("metadata[]=x", "metadata[key]=value"),
        ("metadata[a=x", "metadata[key]=value"),
        ("metadata[" + "k" * 65 + "]=x", "1 to 64 characters"),
        ("metadata[a]=" + "v" * 513, "at most 512 characters"),
        ("metadata[a]=1&metadata[a]=2", "given twice"),
        ("&".join(f"metadata[k{n}]=v" for n in range(17)), "at most 16 pairs"),
    ],
)
def test_a_bad_filter_is_a_clear_400(http: httpx.Client, query: str, problem: str) -> None:
    """In OpenAI's shape, as every error of ``/v1/threads``: ``param`` is ``metadata``."""
    error = assert_invalid(http.get(f"/threads?{query}"), "metadata")
    assert error["code"] == "invalid_value" and problem in error["message"], error


async def test_the_sdk_filters_threads_by_metadata(server: Any, user_key: str) -> None:
    with Client(base_url=server.base_url, api_key=user_key) as client:
        mine = [client.threads.create(metadata={"owner": "me", "n": str(n)}) for n in range(3)]
        client.threads.create(metadata={"owner": "you"})
        page = client.threads.list(limit=2, metadata={"owner": "me"})
        assert [t.id for t in page.iter_all()] == [t.id for t in reversed(mine)]
        with pytest.raises(TypeError, match="values are strings"):
            client.threads.list(metadata={"n": 1})  # type: ignore[dict-item]
        with pytest.raises(ValidationFailed) as refused:  # the server's 400: the same class
            client.threads.list(metadata={"k" * 65: "v"})
        assert (refused.value.status_code, refused.value.param) == (400, "metadata")
    async with AsyncClient(base_url=server.base_url, api_key=user_key) as aclient:
        page = await aclient.threads.list(metadata={"owner": "me", "n": "1"})
        assert [t.id for t in page.data] == [mine[1].id]
