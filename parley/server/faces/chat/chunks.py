"""A model call's events as Chat Completions: ``chat.completion.chunk`` server-sent events
as OpenAI sends them, or one ``chat.completion`` object.

A stream opens with the role chunk (``{"role": "assistant", "content": ""}``) and then
carries the text as ``content`` deltas, the reasoning as ``reasoning_content`` deltas
(the name DeepSeek, vLLM and others use; OpenAI's API sends no reasoning), and each tool
call as a first delta with its ``index``, ``id``, ``type`` and ``function.name`` and then
fragments of ``function.arguments``. Then a chunk with an empty delta and the
``finish_reason``; with ``stream_options.include_usage``, every chunk has ``"usage": null``
and a last chunk with no choices carries the usage; ``data: [DONE]`` ends the stream.

Tool-call arguments are passed on as the model wrote them, fragment by fragment; a
fragment that comes before its call's name is held back until the name is known.

What a provider wants back with an answer's tool calls (Anthropic's signed thinking,
Gemini's thought signatures, the Responses API's reasoning items: its ``StatePart``) cannot
travel in a Chat Completions message. When the provider may give one, each call's id
carries a ``token`` (``<the provider's id>~<token>``), under which the route keeps the state
(``store.call_states``); the client sends the ids back with the calls, and the state goes
to the provider with them (``requests.ChatCall``).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from parley.events import (
    ModelEvent,
    ReasoningPart,
    TextPart,
    ToolCallPart,
)
from parley.providers.accumulator import AnswerAccumulator, PendingCall
from parley.server.faces.kit import sse

#: Finish reasons as OpenAI names them; a provider's other reasons read as ``stop``.
_FINISH = {
    "stop": "stop",
    "length": "length",
    "max_tokens": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "safety": "content_filter",
    "recitation": "content_filter",
    "blocklist": "content_filter",
    "prohibited_content": "content_filter",
    "spii": "content_filter",
    "refusal": "content_filter",
}


class Completion:
    """One call's answer as it comes (``add``): its chunks (``frames``), and the whole
    answer at the end (``completion``)."""

    def __init__(
        self, model: str, *, include_usage: bool = False, token: str | None = None
    ) -> None:
        self.id = f"chatcmpl-{secrets.token_hex(12)}"
        #: The state token the calls' ids carry (None: the provider gives no state).
        self.token = token
        self.created = int(time.time())
        self.model = model
        #: The answer so far: text, reasoning, calls, usage, finish reason, state.
        self.acc = AnswerAccumulator()
        self.calls = self.acc.calls.calls
        #: By call: how many of its argument fragments have gone out (-1: not its head).
        self._shown: list[int] = []
        self.include_usage = include_usage
        head = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": model,
            "system_fingerprint": None,
        }
        #: A chunk's bytes before its delta, and after it up to the finish reason.
        self._open = sse.head() + orjson.dumps(head)[:-1] + b',"choices":[{"index":0,"delta":'
        self._close = b',"logprobs":null,"finish_reason":'
        self._end = b"}]" + (b',"usage":null' if include_usage else b"") + b"}" + sse.END
        #: A chunk's bytes after its delta, when it has no finish reason.
        self._tail = self._close + b"null" + self._end
        #: A text or reasoning chunk's bytes before its JSON string, and after it.
        self._text = self._open + b'{"content":'
        self._reasoning = self._open + b'{"reasoning_content":'
        self._text_tail = b"}" + self._tail

    # ------------------------------------------------------------------------ stream

    def start(self) -> bytes:
        """The role chunk that opens a stream."""
        return self._frame(b'{"role":"assistant","content":"","refusal":null}')

    def add(self, event: ModelEvent) -> bytes:
        """Take one model event; answers its chunks (empty when it shows nothing yet)."""
        if type(event) is ToolCallPart:
            return self._call(event)
        self.acc.add(event)
        if type(event) is TextPart and event.text:  # the bulk of a stream: bytes ready
            return self._text + orjson.dumps(event.text) + self._text_tail
        if type(event) is ReasoningPart and event.text:
            return self._reasoning + orjson.dumps(event.text) + self._text_tail
        return b""

    def call_id(self, call: PendingCall) -> str:
        """The id the client sees: the provider's (or a new one), with the state token."""
        if call.id is None:
            call.id = f"call_{secrets.token_hex(12)}"
        return call.id if self.token is None else f"{call.id}~{self.token}"

    @property
    def kept_state(self) -> dict[str, Any] | None:
        """The state to keep under the token: only when the calls carry it."""
        return self.acc.state if self.calls and self.token is not None else None

    def closing(self) -> bytes:
        """The closing chunks: calls still held back, the finish reason, the usage."""
        shown = self._shown
        frames = [self._call_frame(call) for call in self.calls if shown[call.index] < 0]
        for call in self.calls:  # a call without arguments has the empty object's
            if not any(call.arguments):
                call.arguments, shown[call.index] = ["{}"], 0
                frames.append(self._call_frame(call))
        reason = orjson.dumps(self.reason())
        frames.append(self._open + b"{}" + self._close + reason + self._end)
        if self.include_usage:
            head = {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": None,
                "choices": [],
                "usage": self.usage_object(),
            }
            frames.append(sse.frame(orjson.dumps(head)))
        return b"".join(frames)

    def _frame(self, delta: bytes) -> bytes:
        return self._open + delta + self._tail

    # ------------------------------------------------------------------------- calls

    def _call(self, part: ToolCallPart) -> bytes:
        call = self.acc.calls.add(part)
        if call.index == len(self._shown):
            self._shown.append(-1)
        return self._call_frame(call) if call.name is not None else b""

    def _call_frame(self, call: PendingCall) -> bytes:
        """What of ``call`` has not gone out yet: its head (with the arguments so far, and
        its name, empty if it never came), or its newest argument fragments."""
        shown = self._shown[call.index]
        self._shown[call.index] = len(call.arguments)
        if shown < 0:
            function = {"name": call.name or "", "arguments": "".join(call.arguments)}
            delta = {
                "index": call.index,
                "id": self.call_id(call),
                "type": "function",
                "function": function,
            }
            return self._frame(b'{"tool_calls":[' + orjson.dumps(delta) + b"]}")
        fresh = call.arguments[shown:]
        if not fresh or not any(fresh):
            return b""
        fragment = orjson.dumps({"index": call.index, "function": {"arguments": "".join(fresh)}})
        return self._frame(b'{"tool_calls":[' + fragment + b"]}")

    # ------------------------------------------------------------------------- whole

    def reason(self) -> str:
        """Why the model stopped, as OpenAI says it: ``tool_calls`` when it called tools."""
        given = _FINISH.get((self.acc.finish_reason or "stop").lower(), "stop")
        return "tool_calls" if self.calls and given == "stop" else given

    def usage_object(self) -> dict[str, Any]:
        """The tokens of the call in OpenAI's ``usage`` shape."""
        used = self.acc
        prompt, completion = used.input_tokens, used.output_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {
                "cached_tokens": min(used.cached_tokens, prompt),
                "audio_tokens": 0,
            },
            "completion_tokens_details": {
                "reasoning_tokens": min(used.reasoning_tokens, completion),
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def completion(self) -> dict[str, Any]:
        """The whole answer as one ``chat.completion`` object."""
        text = self.acc.text
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text if text or not self.calls else None,
            "refusal": None,
            "annotations": [],
        }
        if reasoning := self.acc.reasoning:
            message["reasoning_content"] = reasoning
        if self.calls:
            message["tool_calls"] = [
                {
                    "id": self.call_id(call),
                    "type": "function",
                    "function": {
                        "name": call.name or "",
                        "arguments": "".join(call.arguments) or "{}",
                    },
                }
                for call in self.calls
            ]
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": self.reason()}
            ],
            "usage": self.usage_object(),
            "service_tier": "default",
            "system_fingerprint": None,
        }


def error_frame(body: dict[str, Any]) -> bytes:
    """An error in the middle of a stream, as OpenAI's API sends one: ``{"error": {...}}``
    as a plain data line (then ``data: [DONE]``)."""
    return sse.frame(orjson.dumps(body))
