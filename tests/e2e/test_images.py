"""Images on user messages, through a real ``parley serve``: stored with the message, shown
by ``GET /messages``, sent to the model as content parts (OpenAI-compatible) or refused
before any call (Ollama with an image address); bad images are a 422 (a 400 on the
Assistants paths) that stores nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from parley.testing.fake_upstream import expected_text
from tests.e2e.helpers import (
    WEATHER,
    assert_error,
    assert_invalid,
    create_assistant,
    create_run,
    create_thread,
    flat,
    get_run,
    guarded,
    list_all,
    marker,
    messages,
    runs_of,
    stream_completion,
    stream_process,
    upstream_requests,
)
from tests.harness import FreshDatabase, ParleyServer, free_port

#: A real 1x1 PNG (RGBA), as a data URL.
PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAC"
    "hwGA60e6kgAAAABJRU5ErkJggg=="
)
PHOTO = "https://images.example.test/cat.jpg"
QUESTION = "What is in this picture?"


def image_part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def _everything(http: httpx.Client) -> tuple[Any, ...]:
    """All the user's threads, runs and messages."""
    threads = list_all(http, "/threads")
    return threads, list_all(http, "/runs"), [messages(http, t["id"]) for t in threads]


# ------------------------------------------------------------------------------ flow A


def test_an_image_on_a_thread_message_reaches_the_model(http: httpx.Client, upstream: Any) -> None:
    word = marker()
    bot = create_assistant(http, "fake/text:3", instructions=f"Be brief. {word}")
    thread = create_thread(http)
    created = http.post(
        f"/threads/{thread['id']}/messages",
        json={"content": QUESTION, "images": [{"url": PNG}]},
    )
    assert created.status_code == 200, created.text
    assert flat(created.json())["images"] == [{"url": PNG}]

    run = create_run(http, thread["id"], bot["id"])
    turn = stream_completion(http, run["id"])
    assert turn.final_status == "completed" and turn.text == expected_text(3)

    # (a) the model got the text and the image as content parts
    (sent,) = upstream_requests(upstream, word)
    assert sent["messages"] == [
        {"role": "system", "content": f"Be brief. {word}"},
        {"role": "user", "content": [{"type": "text", "text": QUESTION}, image_part(PNG)]},
    ]
    # (b) the thread shows the image on the user message, and none on the answer
    stored = messages(http, thread["id"])
    assert [(m["role"], m["content"], m["images"]) for m in stored] == [
        ("user", QUESTION, [{"url": PNG}]),
        ("assistant", expected_text(3), []),
    ]
    one = http.get(f"/messages/{stored[0]['id']}")
    assert one.status_code == 200 and flat(one.json())["images"] == [{"url": PNG}]


def test_the_next_turn_sends_earlier_images_again_and_new_text_plain(
    http: httpx.Client, upstream: Any
) -> None:
    word = marker()
    bot = create_assistant(http, "fake/text:2", instructions=word)
    first = stream_process(
        http, assistant_id=bot["id"], content=QUESTION, images=[{"url": PHOTO}, {"url": PNG}]
    )
    thread_id = get_run(http, first.run_id)["thread_id"]
    second = stream_process(
        http, assistant_id=bot["id"], content="And the colour?", thread_id=thread_id
    )
    assert second.final_status == "completed"
    _, again = upstream_requests(upstream, word)
    assert again["messages"][1:] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": QUESTION}, image_part(PHOTO), image_part(PNG)],
        },
        {"role": "assistant", "content": expected_text(2)},
        {"role": "user", "content": "And the colour?"},  # no images: a plain string
    ]


def test_sixteen_images_are_taken(http: httpx.Client, upstream: Any) -> None:
    word = marker()
    bot = create_assistant(http, "fake/text:1")
    images = [{"url": f"{PHOTO}?n={i}"} for i in range(16)]
    turn = stream_process(http, assistant_id=bot["id"], content=word, images=images)
    assert turn.final_status == "completed"
    (sent,) = upstream_requests(upstream, word)
    assert sent["messages"][-1]["content"][1:] == [image_part(i["url"]) for i in images]


# ------------------------------------------------------------------------------ flow B


def test_process_with_an_image_reaches_the_model(http: httpx.Client, upstream: Any) -> None:
    word = marker()
    bot = create_assistant(http, "fake/text:2")
    turn = stream_process(
        http, assistant_id=bot["id"], content=f"{QUESTION} {word}", images=[{"url": PNG}]
    )
    assert turn.final_status == "completed" and turn.text == expected_text(2)
    (sent,) = upstream_requests(upstream, word)
    assert sent["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": f"{QUESTION} {word}"}, image_part(PNG)],
        }
    ]
    stored = messages(http, get_run(http, turn.run_id)["thread_id"])
    assert [m["images"] for m in stored] == [[{"url": PNG}], []]


# ----------------------------------------------------------------------------- refused

BAD_IMAGES = {
    "ftp address": ([{"url": "ftp://x"}], "http(s) address or a data URL"),
    "not an image": ([{"url": "data:text/plain;base64,aGk="}], "http(s) address or a data URL"),
    "broken base64": ([{"url": "data:image/png;base64,iVBOR%%w0K"}], "base64"),
    "text called a png": (
        [{"url": "data:image/png;base64,aGk="}],
        "not an image of type image/png",
    ),
    "a png called a jpeg": ([{"url": PNG.replace("image/png", "image/jpeg")}], "image/jpeg"),
    "an address without a host": ([{"url": "https://"}], "no host"),
    "seventeen images": ([{"url": PNG}] * 17, "16"),
    "no url": ([{"href": PNG}], "url"),
    "a string": ([PNG], "valid dictionary"),
}


@pytest.mark.parametrize("case", BAD_IMAGES)
def test_bad_images_on_a_thread_message_are_refused(http: httpx.Client, case: str) -> None:
    images, says = BAD_IMAGES[case]
    thread = create_thread(http)
    before = _everything(http)
    answer = http.post(
        f"/threads/{thread['id']}/messages", json={"content": QUESTION, "images": images}
    )
    error = assert_invalid(answer)  # an Assistants path: a 400 naming the image
    assert error["param"].startswith("images"), error
    assert f"'{error['param']}'" in error["message"], error
    assert says in error["message"]
    assert _everything(http) == before
    assert messages(http, thread["id"]) == []


@pytest.mark.parametrize("case", BAD_IMAGES)
def test_bad_images_on_process_are_refused(http: httpx.Client, upstream: Any, case: str) -> None:
    images, says = BAD_IMAGES[case]
    word = marker()
    bot = create_assistant(http, "fake/text:1")
    before = _everything(http)
    answer = http.post(
        "/process", json={"assistant_id": bot["id"], "content": word, "images": images}
    )
    error = assert_error(answer, 422)
    assert says in error["message"]
    assert _everything(http) == before
    assert upstream_requests(upstream, word) == []


def test_images_with_run_id_are_refused(http: httpx.Client, upstream: Any) -> None:
    word = marker()
    bot = create_assistant(http, "fake/tools:1", tools=[WEATHER])
    first = stream_process(http, assistant_id=bot["id"], content=f"weather {word}")
    assert first.final_status == "action_required"
    run = get_run(http, first.run_id)
    before = (_everything(http), runs_of(http, run["thread_id"]))
    answer = http.post("/process", json={"run_id": run["id"], "images": [{"url": PNG}]})
    error = assert_error(answer, 422)
    assert "run_id" in error["message"]
    assert (_everything(http), runs_of(http, run["thread_id"])) == before
    assert get_run(http, run["id"])["status"] == "requires_action"
    assert len(upstream_requests(upstream, word)) == 1  # turn 1 only


# ------------------------------------------------------------------------------ Ollama


@pytest.fixture(scope="module")
def ollama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    """A server whose ``llama`` provider is Ollama on a port where nothing listens: a turn
    that tried to call it would fail ``upstream_unreachable``."""
    db = FreshDatabase(tmp_path_factory.mktemp("images-db"))
    config = f'[providers.llama]\nkind = "ollama"\nbase_url = "http://127.0.0.1:{free_port()}"\n'
    srv = ParleyServer(
        database_url=db.url, workdir=tmp_path_factory.mktemp("images-server"), config=config
    )
    try:
        yield srv.start()
    finally:
        srv.stop()
        srv.assert_clean_log()
        db.drop()


def test_ollama_refuses_an_image_address_without_calling(ollama_server: ParleyServer) -> None:
    with guarded(ollama_server.client(ollama_server.new_user())) as http:
        bot = create_assistant(http, "llama/llava")
        turn = stream_process(
            http, assistant_id=bot["id"], content=QUESTION, images=[{"url": PHOTO}]
        )
        assert turn.final_status == "failed"
        (error,) = turn.of_type("error")
        assert error.data["code"] == "unsupported_image"
        assert "data: URL" in error.data["message"]
        run = get_run(http, turn.run_id)
        assert run["status"] == "failed"
        assert run["last_error"] == {"code": "unsupported_image", "message": error.data["message"]}
        stored = messages(http, run["thread_id"])
        assert stored[0]["images"] == [{"url": PHOTO}]
