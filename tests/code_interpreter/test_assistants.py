"""The ``code_interpreter`` tool on the Assistants API, through the official ``openai``
SDK with real sandboxes: an assistant with the tool and a CSV among its
``tool_resources``, a thread whose message attaches a second CSV for the tool, and a run
(the demo model runs the code its message gives) in which pandas reads both. The run's
steps show a ``code_interpreter`` call (its input, its logs, its figure as an image file),
the answer shows the figure as an ``image_file`` part, and the figure's bytes are a file of
the user's. Streamed, the call's code comes in pieces and its outputs after it, the figure
as the answer's first part and its text as the second, so the SDK's handlers fire as with
OpenAI."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.code_interpreter.conftest import LIMITS, needs_sandbox, needs_stack
from tests.harness import FreshDatabase, ParleyServer
from tests.openai_sdk.assistants import Recorder, streamed_message

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CODE = (
    "python import pandas as pd\n"
    "import matplotlib.pyplot as plt\n"
    "sales = pd.read_csv('/mnt/data/sales.csv')\n"
    "costs = pd.read_csv('/mnt/data/costs.csv')\n"
    "print('total', int(sales['amount'].sum()), 'net', int(sales['amount'].sum() - costs['amount'].sum()))\n"
    "sales.plot(x='month', y='amount')\n"
    "sales.describe().to_csv('/mnt/data/summary.csv')"
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    needs_sandbox()
    needs_stack()
    tmp = tmp_path_factory.mktemp("ci-assistants")
    db = FreshDatabase(tmp)
    server = ParleyServer(database_url=db.url, workdir=tmp, env=LIMITS)
    try:
        server.start()
        key = server.new_user("analyst")
        with openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=key, max_retries=0) as sdk:
            yield sdk
    finally:
        server.stop()
        server.assert_clean_log()
        db.drop()


def upload(client: openai.OpenAI, name: str, text: str) -> str:
    return client.files.create(file=(name, io.BytesIO(text.encode())), purpose="assistants").id


def finished(client: openai.OpenAI, thread_id: str, run_id: str) -> Any:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
        if run.status not in ("queued", "in_progress"):
            return run
        time.sleep(0.1)
    raise AssertionError("the run did not end")


def test_an_uploaded_csv_is_analysed_with_pandas(client: openai.OpenAI) -> None:
    sales = upload(client, "sales.csv", "month,amount\n1,100\n2,150\n3,250\n")
    costs = upload(client, "costs.csv", "month,amount\n1,40\n2,60\n")
    bot = client.beta.assistants.create(
        model="demo/parley",
        tools=[{"type": "code_interpreter"}],
        tool_resources={"code_interpreter": {"file_ids": [sales]}},
    )
    assert [t.type for t in bot.tools] == ["code_interpreter"]
    assert bot.tool_resources.code_interpreter.file_ids == [sales]  # type: ignore[union-attr]
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": CODE,
                "attachments": [{"file_id": costs, "tools": [{"type": "code_interpreter"}]}],
            }
        ]
    )
    shown = client.beta.threads.retrieve(thread.id)
    assert shown.tool_resources.code_interpreter.file_ids == [costs]  # type: ignore[union-attr]
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=bot.id)
    run = finished(client, thread.id, run.id)
    assert run.status == "completed", run.last_error
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    calls = [c for s in steps if s.type == "tool_calls" for c in s.step_details.tool_calls]  # type: ignore[union-attr]
    (call,) = calls
    assert call.type == "code_interpreter"
    assert call.code_interpreter.input == CODE.removeprefix("python ")  # type: ignore[union-attr]
    outputs = call.code_interpreter.outputs  # type: ignore[union-attr]
    logs = [o.logs for o in outputs if o.type == "logs"]
    assert logs and "total 500 net 400" in logs[0]
    (image,) = [o for o in outputs if o.type == "image"]
    figure = client.files.retrieve(image.image.file_id)
    assert figure.purpose == "assistants_output" and figure.filename.endswith(".png")
    assert client.files.content(figure.id).read().startswith(b"\x89PNG")
    messages = client.beta.threads.messages.list(thread.id, order="asc").data
    answer = messages[-1]
    assert answer.role == "assistant"
    kinds = [part.type for part in answer.content]
    assert kinds == ["image_file", "text"], answer.content
    assert answer.content[0].image_file.file_id == figure.id  # type: ignore[union-attr]
    # A second run of the thread uses the same container: the variables are still there.
    notes = upload(client, "notes.txt", "attached later")
    client.beta.threads.messages.create(
        thread.id,
        role="user",
        content="python print(len(sales), open('/mnt/data/notes.txt').read())",
        attachments=[{"file_id": notes, "tools": [{"type": "code_interpreter"}]}],
    )
    again = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=bot.id)
    again = finished(client, thread.id, again.id)
    steps = client.beta.threads.runs.steps.list(again.id, thread_id=thread.id).data
    (call,) = [c for s in steps if s.type == "tool_calls" for c in s.step_details.tool_calls]  # type: ignore[union-attr]
    assert [o.logs for o in call.code_interpreter.outputs] == ["3 attached later\n"]  # type: ignore[union-attr]


def test_a_streamed_run_shows_the_call_as_a_step(client: openai.OpenAI) -> None:
    bot = client.beta.assistants.create(model="demo/parley", tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "python 6 * 7"}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=bot.id) as stream:
        events = list(stream)
    names = [e.event for e in events]
    assert names[-1] == "thread.run.completed", names
    deltas = [
        e.data.delta.step_details.tool_calls[0]  # type: ignore[union-attr]
        for e in events
        if e.event == "thread.run.step.delta" and e.data.delta.step_details.type == "tool_calls"  # type: ignore[union-attr]
    ]
    # Named with its input empty, then the input in pieces, then the outputs.
    first, *pieces, ran = deltas
    assert first.type == "code_interpreter" and first.id is not None
    assert (first.code_interpreter.input, first.code_interpreter.outputs) == ("", [])  # type: ignore[union-attr]
    assert "".join(p.code_interpreter.input for p in pieces) == "6 * 7"  # type: ignore[union-attr,misc]
    assert all(p.id is None and p.code_interpreter.outputs is None for p in pieces)  # type: ignore[union-attr]
    assert ran.code_interpreter.input is None  # type: ignore[union-attr]
    assert ran.code_interpreter.outputs[0].logs == "42\n"  # type: ignore[union-attr]
    completed = [e.data for e in events if e.event == "thread.message.completed"]
    assert "42" in completed[-1].content[0].text.value  # type: ignore[union-attr]


#: Code the demo model runs: a line of logs, and a figure.
FIGURE = "python import matplotlib.pyplot as plt\nprint('drawn')\nlines = plt.plot([1, 4, 9])"


def test_a_streamed_run_fires_the_handlers_of_the_call_and_of_the_text_after_its_figure(
    client: openai.OpenAI,
) -> None:
    """What OpenAI's quickstart prints: the code as it is written (``on_tool_call_delta``),
    its logs and figure, then the answer, whose text (after the figure, at index 1) ends
    with ``on_text_done``."""
    bot = client.beta.assistants.create(model="demo/parley", tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": FIGURE}])
    handler = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=bot.id, event_handler=handler
    ) as stream:
        stream.until_done()
    assert handler.get_final_run().status == "completed"
    code = FIGURE.removeprefix("python ")
    [(call_id, kind, opened)] = handler.named("tool_call_created")
    assert (kind, opened) == ("code_interpreter", ("", []))
    deltas = handler.named("tool_call_delta")
    inputs = [given[2][0] for _, given in deltas[:-1]]
    assert len(inputs) > 1 and "".join(inputs) == code, deltas
    assert all(index == 0 and given[:2] == (None, kind) for index, given in deltas)
    _, (_, _, (no_input, outputs)) = deltas[-1]
    assert no_input is None
    figure = outputs[1]["image"]["file_id"]
    assert outputs == [
        {"index": 0, "type": "logs", "logs": "drawn\n"},
        {"index": 1, "type": "image", "image": {"file_id": figure}},
    ]
    # Done with the whole call (the SDK says so again at each step's and the run's end).
    for done in handler.named("tool_call_done"):
        assert done[:2] == (call_id, kind) and done[2][0] == code, done
        assert [o["type"] for o in done[2][1]] == ["logs", "image"]

    names = handler.content()
    assert names == streamed_message(len(names), figure=True), names
    [answer] = client.beta.threads.messages.list(thread.id, order="desc", limit=1).data
    image, text = answer.content
    assert image.image_file.file_id == figure  # type: ignore[union-attr]
    assert handler.named("image_file_done") == [figure]
    assert "".join(handler.named("text_delta")) == text.text.value  # type: ignore[union-attr]
    assert handler.named("text_done") == [text.text.value]  # type: ignore[union-attr]
    assert handler.named("message_done") == [(answer.id, ["image_file", "text"])]


def test_a_figure_drawn_before_a_function_call_streams_first_in_the_answer_after_it(
    client: openai.OpenAI,
) -> None:
    """The code draws a figure, the model calls a function of the client's in the same
    step, and the answer comes in the stream of the tool outputs: that stream shows the
    figure first (index 0) and the text at index 1, as the finished message has them."""
    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    bot = client.beta.assistants.create(
        model="demo/parley",
        tools=[{"type": "code_interpreter"}, weather],  # type: ignore[list-item]
    )
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": f"{FIGURE}\nget_weather Paris"}]
    )
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=bot.id) as stream:
        stream.until_done()
        run = stream.get_final_run()
    assert run.status == "requires_action", run
    calls = run.required_action.submit_tool_outputs.tool_calls  # type: ignore[union-attr]
    assert [c.function.name for c in calls] == ["get_weather"]
    handler = Recorder()
    with client.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=thread.id,
        run_id=run.id,
        tool_outputs=[{"tool_call_id": calls[0].id, "output": "22 C"}],
        event_handler=handler,
    ) as stream:
        stream.until_done()
    assert handler.get_final_run().status == "completed"
    [answer] = client.beta.threads.messages.list(thread.id, order="desc", limit=1).data
    image, text = answer.content
    assert handler.named("image_file_done") == [image.image_file.file_id]  # type: ignore[union-attr]
    assert handler.named("text_done") == [text.text.value]  # type: ignore[union-attr]
    assert handler.named("message_done") == [(answer.id, ["image_file", "text"])]


def test_bad_resources_are_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.create(
            model="demo/parley",
            tools=[{"type": "code_interpreter"}],
            tool_resources={"code_interpreter": {"file_ids": ["file-nothing"]}},
        )
    with pytest.raises(openai.BadRequestError) as refused:
        client.beta.assistants.create(
            model="demo/parley",
            tool_resources={"code_interpreter": {"file_ids": [f"file-{n}" for n in range(21)]}},
        )
    assert refused.value.body["param"] == "tool_resources.code_interpreter.file_ids"  # type: ignore[index]
