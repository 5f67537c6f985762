"""Files as inputs of ``POST /v1/responses``, through the official ``openai`` SDK against a
real ``parley serve``: a file uploaded with ``files.create`` and named by ``file_id`` in an
``input_file`` part reaches each kind of provider in its own terms (the fakes record what
they receive over real sockets): as its bytes where the API has a file input, as its
extracted text where it has none; the demo model says it saw it; the stored response shows
the part as it was given, and the next turn sends the file again. Another user's file is a
404, a file with no text for a model that reads text a 400, each naming the field."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
import pytest_asyncio

from tests.e2e.responses_providers_helpers import (
    AnthropicUpstream,
    ChatUpstream,
    GeminiUpstream,
    OllamaUpstream,
    ResponsesUpstream,
    TextTurn,
    Upstream,
    serving,
)
from tests.harness import ParleyServer
from tests.retrieval.documents import pdf

pytestmark = pytest.mark.asyncio(loop_scope="module")

NOTES = b"Quarterly numbers are up twelve percent, led by the northern stores.\n"
REPORT = pdf(["The harbour report: forty ships came in during March."])
QUESTION = "Summarise these."
#: A real 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


@dataclass
class Parley:
    server: ParleyServer
    http: httpx.AsyncClient
    sdk: openai.AsyncOpenAI
    upstreams: dict[str, Upstream]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def parley(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Parley]:
    tmp = tmp_path_factory.mktemp("file-inputs")
    upstreams: dict[str, Upstream] = {
        "responses": ResponsesUpstream(tmp, 1),
        "anthropic": AnthropicUpstream(tmp, 1),
        "gemini": GeminiUpstream(tmp, 1),
        "ollama": OllamaUpstream(tmp, 1),
        "chat": ChatUpstream(tmp, 1),
    }
    async with serving(tmp, upstreams) as (server, http):
        key = http.headers["Authorization"].removeprefix("Bearer ")
        sdk = openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key=key, max_retries=0)
        async with sdk:
            yield Parley(server, http, sdk, upstreams)


def asking(*files: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": [{"type": "input_text", "text": QUESTION}, *files]},
    ]


def by_id(file_id: str) -> dict[str, Any]:
    return {"type": "input_file", "file_id": file_id}


async def test_the_demo_model_reads_an_uploaded_file(parley: Parley) -> None:
    sdk = parley.sdk
    notes = await sdk.files.create(file=("notes.txt", NOTES), purpose="user_data")
    first = await sdk.responses.create(model="demo/parley", input=asking(by_id(notes.id)))
    assert first.status == "completed"
    assert 'I see the file notes.txt, which begins: "Quarterly numbers' in first.output_text

    # The stored response shows the part as OpenAI does, the file by its id.
    items = [i async for i in sdk.responses.input_items.list(first.id)]
    (message,) = items
    shown = [part.model_dump(exclude_none=True) for part in message.content]  # type: ignore[union-attr]
    assert shown == [
        {"type": "input_text", "text": QUESTION},
        {"type": "input_file", "file_id": notes.id, "filename": "notes.txt"},
    ]

    # The next turn rebuilds the thread from the database: the file goes again.
    second = await sdk.responses.create(
        model="demo/parley", input="And now?", previous_response_id=first.id
    )
    assert second.status == "completed" and "notes.txt" not in second.output_text
    upstream = parley.upstreams["ollama"]
    (model,) = upstream.script(0, TextTurn())
    third = await sdk.responses.create(
        model=model, input="Once more.", previous_response_id=second.id
    )
    assert third.status == "completed"
    sent = upstream.requests(0)[-1]["messages"]
    assert sent[0] == {
        "role": "user",
        "content": f"{QUESTION}\n\nContents of file notes.txt:\n{NOTES.decode().strip()}",
    }

    # A file deleted since: the model is told so, and the turn goes on.
    await sdk.files.delete(notes.id)
    (model,) = upstream.script(0, TextTurn())
    fourth = await sdk.responses.create(model=model, input="Still?", previous_response_id=third.id)
    assert fourth.status == "completed"
    sent = upstream.requests(0)[-1]["messages"]
    assert sent[0]["content"] == (
        f"{QUESTION}\n\n[The file notes.txt is not available: No such File object: {notes.id}]"
    )


async def test_each_kind_of_provider_gets_the_files_its_way(parley: Parley) -> None:
    sdk, ups = parley.sdk, parley.upstreams
    report = await sdk.files.create(file=("report.pdf", REPORT), purpose="user_data")
    notes = await sdk.files.create(file=("notes.txt", NOTES), purpose="user_data")
    given = asking(by_id(report.id), by_id(notes.id))
    pdf64 = base64.b64encode(REPORT).decode()
    notes_text = NOTES.decode().strip()

    async def sent(kind: str) -> dict[str, Any]:
        (model,) = ups[kind].script(0, TextTurn())
        answer = await sdk.responses.create(model=model, input=given)
        assert answer.status == "completed", answer.error
        return ups[kind].requests(0)[-1]

    body = await sent("responses")  # every file as an input_file with its bytes
    assert body["input"][0]["content"] == [
        {"type": "input_text", "text": QUESTION},
        {
            "type": "input_file",
            "filename": "report.pdf",
            "file_data": f"data:application/pdf;base64,{pdf64}",
        },
        {
            "type": "input_file",
            "filename": "notes.txt",
            "file_data": "data:text/plain;base64," + base64.b64encode(NOTES).decode(),
        },
    ]
    body = await sent("anthropic")  # documents: the PDF's bytes, the text file's text
    assert body["messages"][0]["content"] == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": pdf64},
            "title": "report.pdf",
        },
        {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": notes_text},
            "title": "notes.txt",
        },
        {"type": "text", "text": QUESTION},
    ]
    body = await sent("gemini")  # inline data: the PDF's bytes, the text file's text
    assert body["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "application/pdf", "data": pdf64}},
        {
            "inlineData": {
                "mimeType": "text/plain",
                "data": base64.b64encode(notes_text.encode()).decode(),
            }
        },
        {"text": QUESTION},
    ]
    body = await sent("ollama")  # no file input: the text the PDF holds, and the notes
    assert body["messages"][0]["content"] == (
        f"{QUESTION}\n\nContents of file report.pdf:\n"
        "The harbour report: forty ships came in during March."
        f"\n\nContents of file notes.txt:\n{notes_text}"
    )


async def test_an_image_given_by_file_id(parley: Parley) -> None:
    sdk, upstream = parley.sdk, parley.upstreams["responses"]
    image = await sdk.files.create(file=("dot.png", PNG), purpose="vision")
    (model,) = upstream.script(0, TextTurn())
    part = {"type": "input_image", "file_id": image.id, "detail": "auto"}
    answer = await sdk.responses.create(model=model, input=asking(part))
    assert answer.status == "completed"
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert upstream.requests(0)[-1]["input"][0]["content"][1] == {
        "type": "input_image",
        "image_url": url,
        "detail": "auto",
    }
    (message,) = [i async for i in sdk.responses.input_items.list(answer.id)]
    shown = message.content[1].model_dump(exclude_none=True)  # type: ignore[union-attr]
    assert shown == {"type": "input_image", "file_id": image.id, "detail": "auto"}

    notes = await sdk.files.create(file=("notes.txt", NOTES), purpose="user_data")
    with pytest.raises(openai.BadRequestError) as refused:
        part = {"type": "input_image", "file_id": notes.id, "detail": "auto"}
        await sdk.responses.create(model=model, input=asking(part))
    assert refused.value.body["param"] == "input[0].content[1].file_id"  # type: ignore[index]


async def test_a_conversation_keeps_a_file_for_its_responses(parley: Parley) -> None:
    sdk, upstream = parley.sdk, parley.upstreams["ollama"]
    notes = await sdk.files.create(file=("notes.txt", NOTES), purpose="user_data")
    conversation = await sdk.conversations.create(items=asking(by_id(notes.id)))  # type: ignore[arg-type]
    items = await sdk.conversations.items.list(conversation.id)
    shown = [p.model_dump(exclude_none=True) for p in items.data[0].content]  # type: ignore[union-attr]
    assert shown[1] == {"type": "input_file", "file_id": notes.id, "filename": "notes.txt"}
    (model,) = upstream.script(0, TextTurn())
    answer = await sdk.responses.create(model=model, input="Go.", conversation=conversation.id)
    assert answer.status == "completed"
    assert upstream.requests(0)[-1]["messages"][0]["content"].endswith(
        f"Contents of file notes.txt:\n{NOTES.decode().strip()}"
    )
    with pytest.raises(openai.NotFoundError) as found:
        await sdk.conversations.items.create(conversation.id, items=asking(by_id("file-nope")))  # type: ignore[arg-type]
    assert found.value.body["param"] == "items[0].content[1].file_id"  # type: ignore[index]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK's word on Assistants
async def test_an_assistants_message_takes_an_image_file(parley: Parley) -> None:
    sdk, upstream = parley.sdk, parley.upstreams["chat"]
    image = await sdk.files.create(file=("dot.png", PNG), purpose="vision")
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_file", "image_file": {"file_id": image.id}},
    ]
    thread = await sdk.beta.threads.create(messages=[{"role": "user", "content": content}])  # type: ignore[list-item]
    (message,) = (await sdk.beta.threads.messages.list(thread.id)).data
    assert message.content[1].model_dump() == {
        "type": "image_file",
        "image_file": {"file_id": image.id, "detail": "auto"},
    }
    (model,) = upstream.script(0, TextTurn())
    assistant = await sdk.beta.assistants.create(model=model)
    run = await sdk.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert run.status == "completed"
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert upstream.requests(0)[-1]["messages"][-1]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    with pytest.raises(openai.NotFoundError) as found:
        await sdk.beta.threads.messages.create(
            thread.id,
            role="user",
            content=[{"type": "image_file", "image_file": {"file_id": "file-nope"}}],
        )
    assert found.value.body["param"] == "content[0].image_file.file_id"  # type: ignore[index]


async def test_files_that_cannot_be_given(parley: Parley) -> None:
    sdk, server = parley.sdk, parley.server
    other = openai.AsyncOpenAI(
        base_url=f"{server.base_url}/v1", api_key=server.new_user("other"), max_retries=0
    )
    async with other:
        theirs = await other.files.create(file=("theirs.txt", NOTES), purpose="user_data")
    with pytest.raises(openai.NotFoundError) as found:
        await sdk.responses.create(model="demo/parley", input=asking(by_id(theirs.id)))
    assert found.value.body["param"] == "input[0].content[1].file_id"  # type: ignore[index]

    # Bytes that hold no text, for a model that reads files as text: a 400 naming the file.
    blob = await sdk.files.create(file=("blob.bin", bytes(range(256)) * 8), purpose="user_data")
    before = len(parley.upstreams["ollama"].requests(0))
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.responses.create(model="ollama0/gpt-oss:20b", input=asking(by_id(blob.id)))
    error = refused.value.body
    assert error["param"] == "input[0].content[1].file_id"  # type: ignore[index]
    assert "blob.bin cannot be read as text" in error["message"]  # type: ignore[index]
    assert len(parley.upstreams["ollama"].requests(0)) == before  # no model call was made

    # An address is not fetched; inline bytes need their file name.
    link = {"type": "input_file", "file_url": "https://example.com/a.pdf"}
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.responses.create(model="demo/parley", input=asking(link))
    assert refused.value.body["param"] == "input[0].content[1].file_url"  # type: ignore[index]
    nameless = {"type": "input_file", "file_data": base64.b64encode(NOTES).decode()}
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.responses.create(model="demo/parley", input=asking(nameless))
    assert refused.value.body["param"] == "input[0].content[1].filename"  # type: ignore[index]


async def test_chat_completions_take_file_parts(parley: Parley) -> None:
    sdk, ups = parley.sdk, parley.upstreams
    notes = await sdk.files.create(file=("notes.txt", NOTES), purpose="user_data")
    inline = "data:text/plain;base64," + base64.b64encode(NOTES).decode()
    answer = await sdk.chat.completions.create(
        model="demo/parley",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": QUESTION},
                    {"type": "file", "file": {"file_data": inline, "filename": "inline.txt"}},
                ],
            }
        ],
    )
    assert 'I see the file inline.txt, which begins: "Quarterly' in (
        answer.choices[0].message.content or ""
    )

    # A Chat Completions server other than OpenAI's reads the file's text.
    (model,) = ups["chat"].script(0, TextTurn())
    await sdk.chat.completions.create(
        model=model,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": QUESTION},
                    {"type": "file", "file": {"file_id": notes.id}},
                ],
            }
        ],
    )
    (sent,) = [m for m in ups["chat"].requests(0)[-1]["messages"] if m["role"] == "user"]
    assert sent["content"] == f"{QUESTION}\n\nContents of file notes.txt:\n{NOTES.decode().strip()}"

    with pytest.raises(openai.NotFoundError) as found:
        await sdk.chat.completions.create(
            model="demo/parley",
            messages=[
                {"role": "user", "content": [{"type": "file", "file": {"file_id": "file-nope"}}]}
            ],
        )
    assert found.value.body["param"] == "messages[0].content[0].file.file_id"  # type: ignore[index]
