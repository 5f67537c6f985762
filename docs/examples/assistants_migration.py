"""A typical Assistants v2 application: an assistant with a function tool, a thread, and a
streamed run whose tool calls the application answers, streaming the rest of the answer.

Written against OpenAI's Assistants API, it runs on Parley unchanged: point the ``openai``
SDK at Parley with its environment, and name a Parley model::

    OPENAI_BASE_URL=http://127.0.0.1:8700/v1 OPENAI_API_KEY=pk_... \\
    ASSISTANT_MODEL=demo/parley python docs/examples/assistants_migration.py
"""

from __future__ import annotations

import json
import os
import warnings

from openai import AssistantEventHandler, OpenAI

# The SDK marks the Assistants API deprecated (OpenAI shut it down); Parley serves it.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=__name__)

MODEL = os.environ.get("ASSISTANT_MODEL", "openai/gpt-4o-mini")
QUESTION = "get_weather Lisbon"  # the demo model calls a tool whose name it sees

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "The city"}},
                "required": ["city"],
            },
        },
    }
]


def get_weather(city: str) -> str:
    return f"18 C and sunny in {city}"


FUNCTIONS = {"get_weather": get_weather}


class Printer(AssistantEventHandler):
    """Prints the answer as it streams, and answers the run's tool calls."""

    def __init__(self, client: OpenAI, calls: list[str]) -> None:
        super().__init__()
        self.client = client
        self.calls = calls

    def on_text_delta(self, delta, snapshot) -> None:  # type: ignore[no-untyped-def]
        print(delta.value, end="", flush=True)

    def on_tool_call_created(self, tool_call) -> None:  # type: ignore[no-untyped-def]
        self.calls.append(tool_call.function.name)

    def on_event(self, event) -> None:  # type: ignore[no-untyped-def]
        if event.event != "thread.run.requires_action":
            return
        run = event.data
        outputs = []
        for call in run.required_action.submit_tool_outputs.tool_calls:
            arguments = json.loads(call.function.arguments)
            outputs.append(
                {"tool_call_id": call.id, "output": FUNCTIONS[call.function.name](**arguments)}
            )
        # A stream needs a handler of its own.
        with self.client.beta.threads.runs.submit_tool_outputs_stream(
            thread_id=run.thread_id,
            run_id=run.id,
            tool_outputs=outputs,
            event_handler=Printer(self.client, self.calls),
        ) as stream:
            stream.until_done()


def main() -> str:
    client = OpenAI()  # OPENAI_BASE_URL and OPENAI_API_KEY
    assistant = client.beta.assistants.create(
        name="Weather",
        model=MODEL,
        instructions="Answer questions about the weather; call get_weather for facts.",
        tools=TOOLS,
    )
    thread = client.beta.threads.create()
    client.beta.threads.messages.create(thread_id=thread.id, role="user", content=QUESTION)
    calls: list[str] = []
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=Printer(client, calls)
    ) as stream:
        stream.until_done()
    print()
    print("tools called:", ", ".join(calls))
    messages = client.beta.threads.messages.list(thread_id=thread.id, order="asc")
    answer = messages.data[-1].content[0].text.value
    client.beta.assistants.delete(assistant.id)
    client.close()
    return answer


if __name__ == "__main__":
    main()
