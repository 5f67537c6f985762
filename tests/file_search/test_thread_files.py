"""A run of the Assistants API started right after a message's ``file_search`` attachment
waits for its thread's store to index the file, up to ``PARLEY_FILE_SEARCH_WAIT_SECONDS``,
driven by the official ``openai`` SDK. The servers here embed with a model of the fake
upstream that answers slowly (``fake/slow:MS``), so that a file stays ``in_progress`` for
that long whatever the machine: the run's search then finds the file and its answer cites
it; a file that failed, or one still being indexed once the wait is over, is named in the
run's step (``unindexed_files``) and in the answer, and the run goes on."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest
import pytest_asyncio

from parley.engine.hosted.file_search import MAX_UNINDEXED
from tests.file_search.helpers import OWLS, OWLS_FILE
from tests.harness import FreshDatabase, ParleyServer, free_port, provider_config

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    # The SDK marks its Assistants API deprecated (OpenAI is retiring it).
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

#: How long the embedding of a file's chunks takes on the first server: the file stays
#: ``in_progress`` at least this long after its worker claims it, well within the wait.
INDEXING_MS = 2000
#: On the second server: indexing takes far longer than the wait it is given.
SLOW_INDEXING_MS = 15000
WAIT_SECONDS = 1
#: The searches rank by words alone: a query is not embedded with the slow model.
TOOL: Any = {
    "type": "file_search",
    "file_search": {
        "ranking_options": {
            "ranker": "auto",
            "score_threshold": 0.0,
            "hybrid_search": {"embedding_weight": 0, "text_weight": 1},
        }
    },
}
#: The start of a PNG image: a kind of file Parley does not index (``unsupported_file``).
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64)


@contextmanager
def serving(upstream: Any, tmp: Path, env: dict[str, str]) -> Iterator[ParleyServer]:
    """A server of its own, with the fake upstream's providers and ``env``."""
    db = FreshDatabase(tmp)
    config = provider_config(upstream.base_url, free_port())
    server = ParleyServer(database_url=db.url, workdir=tmp, config=config, env=env)
    try:
        server.start()
        yield server
        server.stop()
        server.assert_clean_log()
    finally:
        server.stop()
        db.drop()


@asynccontextmanager
async def user_sdk(upstream: Any, tmp: Path, env: dict[str, str]) -> AsyncIterator[Any]:
    """The SDK of a new user of a server of its own (``serving``)."""
    with serving(upstream, tmp, env) as server:
        client = openai.AsyncOpenAI(
            base_url=f"{server.base_url}/v1", api_key=server.new_user(), max_retries=0
        )
        try:
            yield client
        finally:
            await client.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sdk(upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    """The SDK of a user of a server whose files take ``INDEXING_MS`` to index."""
    env = {"PARLEY_EMBEDDING_MODEL": f"fake/slow:{INDEXING_MS}"}
    async with user_sdk(upstream, tmp_path_factory.mktemp("thread-files"), env) as client:
        yield client


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def impatient(upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    """The SDK of a user of a server whose runs wait ``WAIT_SECONDS`` for files that take
    ``SLOW_INDEXING_MS`` to index."""
    env = {
        "PARLEY_EMBEDDING_MODEL": f"fake/slow:{SLOW_INDEXING_MS}",
        "PARLEY_FILE_SEARCH_WAIT_SECONDS": str(WAIT_SECONDS),
    }
    async with user_sdk(upstream, tmp_path_factory.mktemp("thread-files-wait"), env) as client:
        yield client


async def thread_with(sdk: openai.AsyncOpenAI, *file_ids: str) -> Any:
    """A new thread whose first message asks to search, the files attached to it."""
    attachments: Any = [{"file_id": f, "tools": [{"type": "file_search"}]} for f in file_ids]
    return await sdk.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": "file_search how do owls hunt?",
                "attachments": attachments,
            }
        ]
    )


async def search_of(sdk: openai.AsyncOpenAI, run: Any) -> Any:
    """The run's one ``file_search`` call, as its steps show it (results' text included)."""
    steps = await sdk.beta.threads.runs.steps.list(
        run_id=run.id,
        thread_id=run.thread_id,
        include=["step_details.tool_calls[*].file_search.results[*].content"],
        order="asc",
    )
    calls = [c for s in steps.data if s.type == "tool_calls" for c in s.step_details.tool_calls]  # type: ignore[union-attr]
    (search,) = calls
    assert search.type == "file_search"
    return search.file_search


async def answer_of(sdk: openai.AsyncOpenAI, run: Any) -> Any:
    messages = await sdk.beta.threads.messages.list(thread_id=run.thread_id, run_id=run.id)
    (answer,) = messages.data
    return answer.content[0].text  # type: ignore[union-attr]


def unindexed(search: Any) -> Any:
    """Parley's own field of a step's ``file_search``: the files it could not search."""
    return (search.model_extra or {}).get("unindexed_files")


async def test_a_run_started_at_once_waits_for_the_attachment_and_cites_it(sdk: Any) -> None:
    made = await sdk.files.create(file=(OWLS_FILE, OWLS.encode()), purpose="assistants")
    assistant = await sdk.beta.assistants.create(model="demo/parley", tools=[TOOL])
    thread = await thread_with(sdk, made.id)
    (store_id,) = thread.tool_resources.file_search.vector_store_ids
    run = await sdk.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)

    # Read in this order: while the file is still being indexed, the run has not ended.
    meanwhile = await sdk.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    file = await sdk.vector_stores.files.retrieve(made.id, vector_store_id=store_id)
    assert file.status == "in_progress"
    assert meanwhile.status in ("queued", "in_progress"), meanwhile.status

    run = await sdk.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=100)
    assert run.status == "completed", run.last_error
    search = await search_of(sdk, run)
    (result,) = search.results
    assert (result.file_id, result.file_name) == (made.id, OWLS_FILE)
    assert unindexed(search) is None
    text = await answer_of(sdk, run)
    assert OWLS in text.value, text.value
    assert text.annotations, text
    assert {a.file_citation.file_id for a in text.annotations} == {made.id}


async def test_a_file_that_failed_is_named_in_the_step_and_the_answer(sdk: Any) -> None:
    made = await sdk.files.create(file=(OWLS_FILE, OWLS.encode()), purpose="assistants")
    image = await sdk.files.create(file=("chart.png", PNG), purpose="assistants")
    assistant = await sdk.beta.assistants.create(model="demo/parley", tools=[TOOL])
    thread = await thread_with(sdk, image.id, made.id)
    run = await sdk.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=100
    )

    assert run.status == "completed", run.last_error
    search = await search_of(sdk, run)
    assert [r.file_id for r in search.results] == [made.id]  # the run waited for it
    (failed,) = unindexed(search)
    assert failed["last_error"]["code"] == "unsupported_file", failed
    assert {k: failed[k] for k in ("file_id", "file_name", "status")} == {
        "file_id": image.id,
        "file_name": "chart.png",
        "status": "failed",
    }
    text = await answer_of(sdk, run)
    assert OWLS in text.value and "chart.png" in text.value, text.value
    assert failed["last_error"]["message"] in text.value


async def test_many_failed_files_are_counted_past_the_first_and_do_not_end_the_wait(
    sdk: Any,
) -> None:
    """A thread's store holding more failed files than a search names: the run still
    waits for the file attached last (the files being indexed are looked at first), its
    step names ``MAX_UNINDEXED`` of the failed ones, and the model is told how many more."""
    images = [
        await sdk.files.create(file=(f"chart-{n:02}.png", PNG), purpose="assistants")
        for n in range(MAX_UNINDEXED + 2)
    ]
    store = await sdk.vector_stores.create(file_ids=[i.id for i in images])
    thread = await sdk.beta.threads.create(
        tool_resources={"file_search": {"vector_store_ids": [store.id]}}
    )
    made = await sdk.files.create(file=(OWLS_FILE, OWLS.encode()), purpose="assistants")
    await sdk.beta.threads.messages.create(
        thread_id=thread.id,
        role="user",
        content="file_search how do owls hunt?",
        attachments=[{"file_id": made.id, "tools": [{"type": "file_search"}]}],
    )
    assistant = await sdk.beta.assistants.create(model="demo/parley", tools=[TOOL])
    run = await sdk.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=100
    )

    assert run.status == "completed", run.last_error
    search = await search_of(sdk, run)
    assert [r.file_id for r in search.results] == [made.id]  # the run waited for it
    named = unindexed(search)
    assert len(named) == MAX_UNINDEXED, named
    assert {f["status"] for f in named} == {"failed"}
    assert {f["file_id"] for f in named} < {i.id for i in images}
    text = await answer_of(sdk, run)
    assert "and 2 more files" in text.value, text.value


async def test_the_wait_is_bounded_and_the_step_names_the_file_not_indexed_yet(
    impatient: Any,
) -> None:
    sdk = impatient
    made = await sdk.files.create(file=(OWLS_FILE, OWLS.encode()), purpose="assistants")
    assistant = await sdk.beta.assistants.create(model="demo/parley", tools=[TOOL])
    thread = await thread_with(sdk, made.id)
    (store_id,) = thread.tool_resources.file_search.vector_store_ids
    run = await sdk.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=100
    )

    assert run.status == "completed", run.last_error
    # The run went on after its wait, while the file was (and is) still being indexed.
    file = await sdk.vector_stores.files.retrieve(made.id, vector_store_id=store_id)
    assert file.status == "in_progress"
    search = await search_of(sdk, run)
    assert search.results == []
    assert unindexed(search) == [
        {"file_id": made.id, "file_name": OWLS_FILE, "status": "in_progress", "last_error": None}
    ]
    text = await answer_of(sdk, run)
    assert f"{OWLS_FILE}: it was still being indexed" in text.value, text.value
