"""Lists: ``limit``, ``after`` cursors and ``order`` (``desc`` by default, ``asc`` for
messages), with ``first_id``, ``last_id`` and ``has_more``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.helpers import (
    add_message,
    assert_error,
    create_assistant,
    create_run,
    create_thread,
    flat,
    openai_face,
)


def walk(http: httpx.Client, path: str, limit: int, **params: Any) -> list[list[str]]:
    """The ids of every page, following ``after`` = the previous page's ``last_id``."""
    pages: list[list[str]] = []
    after: str | None = None
    for _ in range(50):
        query = {"limit": limit, **params, **({"after": after} if after else {})}
        answer = http.get(path, params=query)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert page["object"] == "list"
        ids = [item["id"] for item in page["data"]]
        assert len(ids) <= limit
        assert page["first_id"] == (ids[0] if ids else None)
        assert page["last_id"] == (ids[-1] if ids else None)
        pages.append(ids)
        if not page["has_more"]:
            return pages
        assert ids, "has_more on an empty page"
        after = page["last_id"]
    raise AssertionError("the list never ends")


def test_threads_walk_in_both_orders(http: httpx.Client) -> None:
    created = [create_thread(http, metadata={"n": n})["id"] for n in range(5)]
    desc = walk(http, "/threads", 2)
    assert desc == [created[4:2:-1], created[2:0:-1], created[0:1]]
    asc = walk(http, "/threads", 2, order="asc")
    assert asc == [created[0:2], created[2:4], created[4:5]]
    assert walk(http, "/threads", 5) == [created[::-1]]
    assert walk(http, "/threads", 100, order="asc") == [created]
    # after the last item: an empty page
    tail = http.get("/threads", params={"after": created[0]}).json()
    assert tail == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }
    # after an item in the middle
    middle = http.get("/threads", params={"after": created[2], "order": "asc"}).json()
    assert [t["id"] for t in middle["data"]] == created[3:]


def test_default_limit_is_20(http: httpx.Client) -> None:
    created = [create_thread(http)["id"] for _ in range(21)]
    page = http.get("/threads").json()
    assert len(page["data"]) == 20 and page["has_more"] is True
    assert [t["id"] for t in page["data"]] == created[:0:-1]


def test_messages_are_newest_first_by_default_as_in_the_assistants_api(
    http: httpx.Client,
) -> None:
    thread = create_thread(http)
    created = [add_message(http, thread["id"], f"message {n}") for n in range(5)]
    path = f"/threads/{thread['id']}/messages"
    listed = http.get(path).json()["data"]
    assert [m["id"] for m in listed] == [m["id"] for m in reversed(created)]
    seqs = [m["seq"] for m in listed]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 5
    assert [flat(m)["content"] for m in listed] == [f"message {n}" for n in range(4, -1, -1)]
    ids = [m["id"] for m in created]
    assert walk(http, path, 2, order="asc") == [ids[0:2], ids[2:4], ids[4:5]]
    assert walk(http, path, 2) == [ids[4:2:-1], ids[2:0:-1], ids[0:1]]
    before = http.get(path, params={"before": ids[3], "limit": 2, "order": "asc"}).json()
    assert [m["id"] for m in before["data"]] == ids[1:3] and before["has_more"]


@pytest.mark.parametrize("kind", ["assistants", "runs"])
def test_other_lists_walk_the_same_way(http: httpx.Client, kind: str) -> None:
    if kind == "assistants":
        created = [create_assistant(http, "demo/x", name=f"a{n}")["id"] for n in range(5)]
    else:
        bot = create_assistant(http, "demo/x")
        created = [create_run(http, create_thread(http)["id"], bot["id"])["id"] for _ in range(5)]
    assert walk(http, f"/{kind}", 2) == [created[4:2:-1], created[2:0:-1], created[0:1]]
    assert walk(http, f"/{kind}", 3, order="asc") == [created[0:3], created[3:5]]


def test_runs_filtered_by_thread(http: httpx.Client) -> None:
    bot = create_assistant(http, "demo/x")
    one, two = create_thread(http), create_thread(http)
    first = create_run(http, one["id"], bot["id"])
    http.post(f"/runs/{first['id']}/cancel")
    second = create_run(http, one["id"], bot["id"])
    create_run(http, two["id"], bot["id"])
    assert walk(http, "/runs", 1, thread_id=one["id"]) == [[second["id"]], [first["id"]]]


def test_empty_lists(http: httpx.Client) -> None:
    for path in ("/threads", "/assistants", "/runs"):
        assert http.get(path).json() == {
            "object": "list",
            "data": [],
            "first_id": None,
            "last_id": None,
            "has_more": False,
        }


def test_a_cursor_that_names_no_item_is_the_same_400_on_every_list(http: httpx.Client) -> None:
    """Every list of every face (read from the store or cut from a list in hand) answers
    a cursor of no item of its list with one error: 400, ``invalid_value``, the cursor's
    name as ``param`` (on OpenAI's paths) and one wording."""
    bot = create_assistant(http, "demo/x")
    thread = create_thread(http)
    run = create_run(http, thread["id"], bot["id"])
    response = http.post("/responses", json={"model": "demo/x", "input": "hi"})
    assert response.status_code == 200, response.text
    conversation = http.post("/conversations", json={}).json()["id"]
    lists = {
        "/threads": ("after", "before"),
        "/assistants": ("after", "before"),
        "/runs": ("after", "before"),
        f"/threads/{thread['id']}/messages": ("after", "before"),
        f"/threads/{thread['id']}/runs": ("after", "before"),
        f"/threads/{thread['id']}/runs/{run['id']}/steps": ("after", "before"),
        f"/conversations/{conversation}/items": ("after",),
        f"/responses/{response.json()['id']}/input_items": ("after", "before"),
    }
    for path, cursors in lists.items():
        for name in cursors:
            answer = http.get(path, params={name: "msg_nowhere"})
            error = assert_error(answer, 400, "invalid_value")
            assert (
                error["message"] == f"Invalid '{name}': no item with id 'msg_nowhere' in this list."
            )
            if openai_face(answer):
                assert error["param"] == name, (path, error)
