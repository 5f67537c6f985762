"""Context windows from the providers' model lists, over HTTP on a server of its own: a
fake upstream lists the model ``text:3`` with a window of ``WINDOW`` tokens in each kind's
model list (OpenAI-compatible, Anthropic, Gemini, Ollama). A long thread is fitted to it,
a new message larger than it fails before any upstream call, and so does a Chat
Completions request; the config wins over the list; a model list that fails or hangs holds
no turn up."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from parley.engine.context import CHARS_PER_TOKEN, answer_room
from parley.providers.windows import LOOKUP_TIMEOUT
from parley.testing.fake_upstream import FakeUpstream
from tests.e2e.helpers import guarded, upstream_requests, wait_until
from tests.e2e.test_assistants_api import assistant, thread
from tests.e2e.test_context_window import ask, estimated, fill_thread
from tests.harness import FreshDatabase, ParleyServer

#: The window the fake upstream's model lists give ``text:3``.
WINDOW = 2000
#: Providers of kinds whose answers the fake does not stream: only their lists are read.
LISTING_ONLY = ("claude", "gem", "llama", "responses")


def _upstream(
    *, windows: dict[str, int] | None = None, fault: str | None = None
) -> Iterator[FakeUpstream]:
    """A fake upstream whose model lists give ``windows``, or fail with ``fault``."""
    with FakeUpstream() as fake:
        fake.windows.update(windows or {})
        fake.listing_fault = fault
        yield fake


@pytest.fixture(scope="module")
def lists() -> Iterator[FakeUpstream]:
    yield from _upstream(windows={"text:3": WINDOW})


@pytest.fixture(scope="module")
def failing() -> Iterator[FakeUpstream]:
    yield from _upstream(fault="error")


@pytest.fixture(scope="module")
def stuck() -> Iterator[FakeUpstream]:
    yield from _upstream(fault="hang")


def _provider(name: str, kind: str, url: str) -> str:
    return (
        f'[providers.{name}]\nkind = "{kind}"\nbase_url = "{url}"\napi_key = "sk-fake"\n'
        "max_retries = 0\n"
    )


@pytest.fixture(scope="module")
def windows_server(
    lists: FakeUpstream,
    failing: FakeUpstream,
    stuck: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ParleyServer]:
    config = "".join(
        [
            _provider("vllm", "openai-chat", lists.base_url),
            _provider("fresh", "openai-chat", lists.base_url),
            _provider("pinned", "openai-chat", lists.base_url),
            '[providers.pinned.models."text:3"]\ncontext_window = 1000000\n',
            _provider("claude", "anthropic", lists.url),
            _provider("gem", "gemini", f"{lists.url}/v1beta"),
            _provider("llama", "ollama", lists.url),
            _provider("responses", "openai-responses", lists.base_url),
            _provider("broken", "openai-chat", failing.base_url),
            _provider("stuck", "openai-chat", stuck.base_url),
        ]
    )
    workdir: Path = tmp_path_factory.mktemp("windows")
    database = FreshDatabase(workdir)
    server = ParleyServer(database_url=database.url, workdir=workdir, config=config).start()
    yield server
    code = server.stop()
    server.assert_clean_log()
    assert code in (0, -15), server.log()
    database.drop()


@pytest.fixture
def client(windows_server: ParleyServer) -> Iterator[httpx.Client]:
    with guarded(windows_server.client(windows_server.new_user())) as http:
        yield http


def listed_window(http: httpx.Client, model: str) -> int | None:
    answer = http.get(f"/models/{model}")
    assert answer.status_code == 200, answer.text
    window = answer.json().get("context_window")
    return int(window) if window is not None else None


def test_a_long_thread_is_fitted_to_the_window_the_model_list_gives(
    client: httpx.Client, windows_server: ParleyServer, lists: FakeUpstream
) -> None:
    assert listed_window(client, "vllm/text:3") == WINDOW  # its list read, its window kept
    bot = assistant(client, "vllm/text:3", instructions="Answer in three words.")
    t = thread(client, "the very first question")
    fill_thread(windows_server.database_url, t["id"], 600)
    run = ask(client, t["id"], bot["id"], "zebralisted: what now?")
    assert run["status"] == "completed", run
    [sent] = upstream_requests(lists, "zebralisted")
    assert estimated(sent["messages"]) <= WINDOW - answer_room(WINDOW)
    assert sent["messages"][-1]["content"] == "zebralisted: what now?"
    assert 0 < run["dropped_messages"] < 600


def test_the_first_turn_of_a_model_has_its_list_read(
    client: httpx.Client, lists: FakeUpstream
) -> None:
    """Nothing lists the models first: the first turn has the list read (in the
    background: until it answers, the table's window, none for this model, is used), and
    later turns keep to its window."""
    bot = assistant(client, "fresh/text:3")
    first = ask(client, thread(client)["id"], bot["id"], "zebrafresh: hello")
    assert first["status"] == "completed", first
    huge = "x" * ((WINDOW + 500) * CHARS_PER_TOKEN)

    def refused() -> dict[str, Any] | None:
        word = f"zebrafresh{time.monotonic_ns()}"
        run = ask(client, thread(client)["id"], bot["id"], f"{word} {huge}")
        return run if run["status"] == "failed" else None

    run = wait_until(refused, what="the list's window to be known")
    assert run["last_error"]["code"] == "context_length_exceeded"
    assert f"context window of {WINDOW:,} tokens" in run["last_error"]["message"]


@pytest.mark.parametrize("provider", LISTING_ONLY)
def test_each_kinds_list_gives_the_window_a_turn_keeps_to(
    client: httpx.Client, provider: str
) -> None:
    model = f"{provider}/text:3"
    # Ollama says a model's window one model at a time: asked in the background.
    wait_until(lambda: listed_window(client, model) == WINDOW, what=f"{model}'s window")
    bot = assistant(client, model)
    huge = "x" * ((WINDOW + 500) * CHARS_PER_TOKEN)
    run = ask(client, thread(client)["id"], bot["id"], huge)
    # Refused before any call: the fake does not answer this kind's calls at all.
    assert run["status"] == "failed", run
    assert run["last_error"]["code"] == "context_length_exceeded", run["last_error"]
    assert f"context window of {WINDOW:,} tokens" in run["last_error"]["message"]


def test_the_config_wins_over_the_model_list(
    client: httpx.Client, windows_server: ParleyServer, lists: FakeUpstream
) -> None:
    assert listed_window(client, "pinned/text:3") == 1_000_000
    bot = assistant(client, "pinned/text:3")
    t = thread(client, "the very first question")
    fill_thread(windows_server.database_url, t["id"], 300)
    run = ask(client, t["id"], bot["id"], "zebrapinned: all of it?")
    assert run["status"] == "completed" and run["dropped_messages"] == 0, run
    [sent] = upstream_requests(lists, "zebrapinned")
    assert len(sent["messages"]) == 302


@pytest.mark.parametrize("provider", ["broken", "stuck"])
def test_a_model_list_that_fails_or_hangs_holds_no_turn_up(
    client: httpx.Client,
    windows_server: ParleyServer,
    provider: str,
    failing: FakeUpstream,
    stuck: FakeUpstream,
) -> None:
    upstream = failing if provider == "broken" else stuck
    bot = assistant(client, f"{provider}/text:3")
    t = thread(client, "the very first question")
    fill_thread(windows_server.database_url, t["id"], 300)
    for turn in range(2):
        started = time.monotonic()
        run = ask(client, t["id"], bot["id"], f"zebra{provider}{turn}: and now?")
        # The turn does not wait for the list, which a hung one would make it do for
        # LOOKUP_TIMEOUT seconds; the window stays unknown: the whole thread goes.
        assert time.monotonic() - started < LOOKUP_TIMEOUT / 2
        assert run["status"] == "completed" and run["dropped_messages"] == 0, run
        assert len(upstream_requests(upstream, f"zebra{provider}{turn}")) == 1
    assert upstream.listings == ["GET /v1/models"]  # asked once, not again at each turn


def test_chat_completions_keep_to_the_window_the_model_list_gives(
    windows_server: ParleyServer, lists: FakeUpstream
) -> None:
    key = windows_server.new_user()
    with guarded(windows_server.client(key)) as http:
        assert listed_window(http, "vllm/text:3") == WINDOW
    huge = "zebrachatlisted " + "x" * ((WINDOW + 500) * CHARS_PER_TOKEN)
    base_url = f"{windows_server.base_url}/v1"
    with openai.OpenAI(base_url=base_url, api_key=key, max_retries=0) as sdk:
        with pytest.raises(openai.BadRequestError) as caught:
            sdk.chat.completions.create(
                model="vllm/text:3", messages=[{"role": "user", "content": huge}]
            )
        assert caught.value.code == "context_length_exceeded"
        assert f"maximum context length is {WINDOW:,} tokens" in caught.value.message
        assert upstream_requests(lists, "zebrachatlisted") == []
        # The config's window wins: the same request goes to the upstream, whole.
        answer = sdk.chat.completions.create(
            model="pinned/text:3", messages=[{"role": "user", "content": huge}]
        )
        assert answer.choices[0].message.content
    assert len(upstream_requests(lists, "zebrachatlisted")) == 1
