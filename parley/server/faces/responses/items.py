"""Items, both ways: the items of a request into the messages the engine stores
(``parse_input``), and stored messages into items (``message_items``).

A thread's messages and the protocol's items do not map one to one: an assistant message
holds its reasoning, its text and its tool calls, which are three kinds of item. Item ids
are derived from the message's id, so the same message always shows the same items:

    message (user, system, assistant text)    msg_<t>          the message's own id
    reasoning of message msg_<t>              rs_<t>
    function call C of message msg_<t>        fc_<t>_<hash of C>
    tool result (function_call_output)        fco_<t>          of tool message msg_<t>

An assistant message whose reasoning and text alternate (reasoning, text, reasoning again)
keeps their order in its ``layout``; its second text is item ``msg_<t>_2``, its second
reasoning ``rs_<t>_2``, and so on, numbered by kind in the message, which is how the
response's stream named them too (``stream.py``). Reasoning the provider gave as a
summary is a reasoning item with ``summary`` parts instead of ``content``.

What the provider keeps with an answer (``provider_state``: Anthropic's signed thinking,
Gemini's thought signatures, the Responses API's encrypted reasoning) is shown only to a
request whose ``include`` asks for ``reasoning.encrypted_content``: in the
``encrypted_content`` of the answer's last reasoning item when nothing but calls follows
it, else of a reasoning item of its own (``rs_<t>_<n>``, nothing to read) after the
message's text, before its calls (``state_item``). Its envelope (``state_blob``) is opaque
to clients but not encrypted: a client that changes it changes only what its own request
sends its provider. A reasoning item that carries it back gives the state back to the
assistant message it joins (``parse_input``).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Collection, Iterator, Mapping
from typing import Any, NamedTuple

import orjson

from parley.engine import (
    SUMMARY_HEAD,
    NewMessage,
    decode_summary,
)
from parley.server.faces.kit.readers import RESPONSES, read_content, read_parts
from parley.server.faces.responses import client_tools, hosted_input
from parley.server.faces.responses.hosted_input import arguments_of, bad
from parley.server.faces.responses.hosted_items import approval_request_item, hosted_item
from parley.store.records import Message
from parley.types import Role

_ROLES = {
    "user": Role.USER,
    "assistant": Role.ASSISTANT,
    "system": Role.SYSTEM,
    "developer": Role.SYSTEM,
}
#: The prefix of the ``encrypted_content`` of a reasoning item that carries an answer's
#: provider state (``state_blob``).
STATE_PREFIX = "parley.state.v1:"


def reasoning_id(message_id: str, ordinal: int = 1) -> str:
    """The id of reasoning item ``ordinal`` (from 1) of a message."""
    item_id = "rs_" + message_id.partition("_")[2]
    return item_id if ordinal == 1 else f"{item_id}_{ordinal}"


def text_id(message_id: str, ordinal: int = 1) -> str:
    """The id of text item ``ordinal`` (from 1) of an assistant message."""
    return message_id if ordinal == 1 else f"{message_id}_{ordinal}"


def call_item_id(message_id: str, call_id: str, prefix: str = "fc") -> str:
    """The item id of call ``call_id`` of message ``message_id``: the message's token, and a
    digest of the call's id (any string a model chose), so the id leads to the message
    (``fc_`` a function call, ``ctc_`` a custom tool's, ``tsc_`` a tool search's)."""
    digest = hashlib.sha256(call_id.encode()).hexdigest()[:12]
    return f"{prefix}_{message_id.partition('_')[2]}_{digest}"


def output_item_id(message_id: str) -> str:
    return "fco_" + message_id.partition("_")[2]


def message_id_of(item_id: str) -> str | None:
    """The id of the message an item id belongs to (None when it names none)."""
    prefix, _, token = item_id.partition("_")
    if prefix in ("fc", "ctc", "tsc"):
        token = token.rpartition("_")[0]
    elif prefix in ("msg", "rs"):
        token = token.partition("_")[0]  # msg_<t>_2: the message's second text item
    if not token or prefix not in ("msg", "rs", "fco", "fc", "ctc", "tsc"):
        return None
    return "msg_" + token


# --------------------------------------------------------------------------- input


def text_of_parts(parts: Any, index: int | None, *, output: bool) -> tuple[str, list[str]]:
    """The text and image URLs of a ``content`` value (of item ``index``): a string, or a
    list of parts, read by the faces' one reader (``kit.readers.read_parts``); an
    ``output`` (an assistant's, a reasoning's) holds no images."""
    where = "input.content" if index is None else f"input[{index}].content"
    return read_parts(parts, where, RESPONSES, images=not output, refusals=True)


def _user_parts(parts: Any, index: int, *, files: bool) -> tuple[str, list[dict[str, Any]] | None]:
    """The text of a user's (or system's) ``content``, and what it keeps besides: its
    images and, where ``files`` are taken, its files, still to be read (``{"pending":
    FileRef}``: ``kit.file_inputs.settle``)."""
    read = read_content(
        parts, f"input[{index}].content", RESPONSES, images=True, refusals=True, files=files
    )
    kept = [{"url": u} for u in read.images] + [{"pending": ref} for ref in read.files]
    return read.text, kept or None


def _call_id(item: dict[str, Any], index: int) -> str:
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id or len(call_id) > 128:
        raise bad(index, "call_id", "expected a string of 1 to 128 characters.")
    return call_id


class _Assistant:
    """An assistant message being assembled from consecutive items."""

    __slots__ = ("calls", "phase", "reasoning", "state", "text")

    def __init__(self) -> None:
        #: ``(kind, text)`` of each reasoning item: ``reasoning``, or ``summary`` for one
        #: that carried only a summary.
        self.reasoning: list[tuple[str, str]] = []
        self.text: str | None = None
        self.phase: str | None = None
        self.calls: list[dict[str, Any]] = []
        #: The provider state its reasoning items carried back (``state_blob``).
        self.state: dict[str, Any] | None = None

    def message(self) -> NewMessage:
        runs = [[kind, len(text)] for kind, text in self.reasoning if text]
        if self.text:
            runs.append(["text", len(self.text)])
        return NewMessage(
            role=Role.ASSISTANT,
            content=self.text or "",
            reasoning="".join(text for _, text in self.reasoning) or None,
            tool_calls=self.calls or None,
            phase=self.phase,
            layout=stored_layout(runs),
            provider_state=self.state,
        )


def parse_input(
    value: str | list[dict[str, Any]] | None, *, files: bool = False
) -> list[NewMessage]:
    """The messages of a request's ``input``: a string is one user message; a list of
    items becomes messages in order, consecutive reasoning, assistant text and function
    calls joining into one assistant message. ``item_reference`` items must have been
    replaced by the items they name (``resolve_references``). With ``files``, a message
    may hold files, still to be read (``_user_parts``)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [NewMessage(role=Role.USER, content=value)]
    out: list[NewMessage] = []
    current: _Assistant | None = None

    def flush() -> None:
        nonlocal current
        if current is not None:
            out.append(current.message())
            current = None

    answers = hosted_input.Answers.of(value)
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise bad(index, "", "expected an item object.")
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            role = _ROLES.get(item.get("role"))  # type: ignore[arg-type]
            if role is None:
                raise bad(index, "role", "expected user, assistant, system or developer.")
            if role != Role.ASSISTANT:
                text, kept = _user_parts(item.get("content"), index, files=files)
                flush()
                out.append(NewMessage(role=role, content=text, images=kept))
                continue
            text, _ = text_of_parts(item.get("content"), index, output=True)
            phase = item.get("phase")
            if phase is not None and phase not in ("commentary", "final_answer"):
                raise bad(index, "phase", "expected commentary or final_answer.")
            if current is None or current.text is not None or current.calls:
                flush()
                current = _Assistant()
            current.text, current.phase = text, phase
        elif kind == "reasoning":
            thought = _reasoning_text(item, index)
            state = _state_of(item, index)
            if current is None or not _joins(current, thought[1], state):
                flush()
                current = _Assistant()
            current.reasoning.append(thought)
            if state is not None:
                current.state = {**(current.state or {}), **state}
        elif kind in ("function_call", "custom_tool_call", "tool_search_call"):
            if current is None:
                current = _Assistant()
            current.calls.append(_client_call(item, index))
        elif kind in ("function_call_output", "custom_tool_call_output"):
            flush()
            output, _ = text_of_parts(item.get("output"), index, output=False)
            out.append(
                NewMessage(role=Role.TOOL, content=output, tool_call_id=_call_id(item, index))
            )
        elif kind == "tool_search_output":
            flush()
            out.append(
                NewMessage(
                    role=Role.TOOL,
                    content=_found_tools(item, index),
                    tool_call_id=_call_id(item, index),
                )
            )
        elif kind == "compaction":
            flush()
            out.append(NewMessage(role=Role.SYSTEM, content=_compaction_text(item, index)))
        elif kind in hosted_input.GIVEN:
            given = hosted_input.GIVEN[kind](item, index, answers)
            if given is None:
                continue
            if given.call is not None:
                if current is None:
                    current = _Assistant()
                current.calls.append(given.call)
            if given.messages:
                flush()
                out += given.messages
        elif kind == "item_reference":
            raise bad(index, "id", "names no item of yours.")
        else:
            raise bad(index, "type", f"unknown or unsupported item type {kind!r}.")
    flush()
    return out


def _client_call(item: dict[str, Any], index: int) -> dict[str, Any]:
    """The model's call behind a ``function_call`` (of a namespace's function, too), a
    ``custom_tool_call`` (its ``input`` the one argument) or a client's
    ``tool_search_call`` given back (``client_tools``)."""
    kind = item["type"]
    if kind == "tool_search_call":
        searched = item.get("arguments")
        if searched is not None and not isinstance(searched, dict):
            raise bad(index, "arguments", "expected an object.")
        return {"id": _call_id(item, index), "name": "tool_search", "arguments": searched or {}}
    name, namespace = item.get("name"), item.get("namespace")
    if not isinstance(name, str) or not name:
        raise bad(index, "name", "expected the tool's name.")
    if namespace is not None and (not isinstance(namespace, str) or not namespace):
        raise bad(index, "namespace", "expected the namespace's name.")
    if kind == "custom_tool_call":
        given = item.get("input")
        if not isinstance(given, str):
            raise bad(index, "input", "expected the custom tool's input, a string.")
        arguments: dict[str, Any] = {"input": given}
    else:
        arguments = arguments_of(item.get("arguments"), index)
    return {
        "id": _call_id(item, index),
        "name": client_tools.flat_name(name, namespace),
        "arguments": arguments,
    }


def _found_tools(item: dict[str, Any], index: int) -> str:
    """What a client's tool search found, as the model is told it: each tool's name (its
    namespace's) and description."""
    tools = item.get("tools")
    if not isinstance(tools, list):
        raise bad(index, "tools", "expected the tools the search found.")
    lines = []
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        if tool.get("type") == "namespace":
            for member in tool.get("tools") or ():
                if isinstance(member, dict):
                    name = client_tools.flat_name(str(member.get("name")), str(tool.get("name")))
                    lines.append(f"- {name}: {member.get('description') or ''}".rstrip())
            continue
        lines.append(f"- {tool.get('name')}: {tool.get('description') or ''}".rstrip())
    if not lines:
        return "The tool search found no tool."
    return "The tool search found these tools, which you may call now:\n" + "\n".join(lines)


def _joins(current: _Assistant, text: str, state: dict[str, Any] | None) -> bool:
    """Whether a reasoning item joins the assistant message being assembled: when nothing
    else came yet, or when it carries only state (``state_item``: after the text,
    before the calls) and the message has neither calls nor state yet."""
    if current.text is None and not current.calls:
        return True
    return state is not None and not text and not current.calls and current.state is None


#: A reasoning item's lists of parts, and the one part type each holds (the spec's
#: ``ReasoningItem``: ``summary`` required, ``content`` optional).
_REASONING_PARTS = {"summary": "summary_text", "content": "reasoning_text"}


def _check_reasoning(item: dict[str, Any], index: int) -> None:
    """Refuse a reasoning item the specification does not allow: one without its
    ``summary`` list, with parts of another type, or with an ``encrypted_content`` that
    is not text."""
    for where, part_type in _REASONING_PARTS.items():
        parts = item.get(where)
        if parts is None and where == "content":
            continue
        if not isinstance(parts, list):
            need = "required" if parts is None else "expected"
            raise bad(index, where, f"{need}: a list of {part_type} parts.")
        for j, part in enumerate(parts):
            if not isinstance(part, dict) or part.get("type") != part_type:
                raise bad(index, f"{where}[{j}].type", f"expected a {part_type} part.")
    encrypted = item.get("encrypted_content")
    if encrypted is not None and not isinstance(encrypted, str):
        raise bad(index, "encrypted_content", "expected a string.")


def _reasoning_text(item: dict[str, Any], index: int) -> tuple[str, str]:
    """``(kind, text)`` of a reasoning item: its raw reasoning when given (``reasoning``),
    else its summary (``summary``)."""
    _check_reasoning(item, index)
    for where, kind in (("content", "reasoning"), ("summary", "summary")):
        parts = item.get(where)
        if parts:
            text, _ = text_of_parts(parts, index, output=True)
            return kind, text
    return "reasoning", ""


def state_blob(state: dict[str, Any]) -> str:
    """The ``encrypted_content`` that carries a provider's ``state``: ``STATE_PREFIX``, then
    the state's JSON in base64url (no padding)."""
    encoded = base64.urlsafe_b64encode(orjson.dumps(state)).rstrip(b"=").decode()
    return STATE_PREFIX + encoded


def _state_of(item: dict[str, Any], index: int) -> dict[str, Any] | None:
    """The provider state a reasoning item carries back in ``encrypted_content``: None for
    none, and for one not made here (OpenAI's own, passed through), which is ignored."""
    blob = item.get("encrypted_content")
    if not isinstance(blob, str) or not blob.startswith(STATE_PREFIX):
        return None
    encoded = blob[len(STATE_PREFIX) :]
    try:
        state = orjson.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except ValueError:  # binascii.Error and orjson.JSONDecodeError are ValueErrors
        state = None
    if not isinstance(state, dict) or not isinstance(state.get("provider"), str):
        raise bad(index, "encrypted_content", "not a reasoning state made by this server.")
    return state


def input_content(text: str, images: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """A user's (or system's) message as input content parts: its text (even empty, when it
    has no images or files), then its images (``input_image``: by ``file_id`` when given
    so) and files (``input_file``: ``file_id`` or ``file_data``, and ``filename``)."""
    content: list[dict[str, Any]] = []
    if text or not images:
        content.append({"type": "input_text", "text": text})
    for kept in images or ():
        if kept.get("type") == "file":
            fields = ("file_id", "filename", "file_data")
            content.append({"type": "input_file", **{k: kept[k] for k in fields if k in kept}})
        elif "file_id" in kept:
            part = {"type": "input_image", "file_id": kept["file_id"], "image_url": None}
            content.append({**part, "detail": "auto"})
        else:
            content.append({"type": "input_image", "image_url": kept["url"], "detail": "auto"})
    return content


def _compaction_text(item: dict[str, Any], index: int) -> str:
    if not isinstance(item.get("encrypted_content"), str):
        raise bad(index, "encrypted_content", "expected the compaction's encrypted_content.")
    summary = decode_summary(item["encrypted_content"])
    if summary is None:
        raise bad(index, "encrypted_content", "not a compaction made by this server.")
    return SUMMARY_HEAD + summary


# -------------------------------------------------------------------------- output


def message_items(
    message: Message,
    *,
    calls: set[str] | None = None,
    status: str = "completed",
    state: bool = False,
    include: Collection[str] = (),
    kinds: Mapping[str, Mapping[str, Any]] | None = None,
    outputs: Mapping[str, str] | None = None,
) -> Iterator[dict[str, Any]]:
    """The items of a stored message, in order. For an assistant message, ``calls`` (when
    given) are the call ids to show: the calls handed to the client, not those the server
    answered itself; with ``state``, its provider state (see the module's docstring); with
    ``include`` (a later read's), a file search's results and a code interpreter call's
    outputs whatever its own request asked, when it names them. A tool result is a
    ``function_call_output``, or the type ``outputs`` gives its call id
    (``custom_tool_call_output``: ``reads.output_types``)."""
    role = message.role
    if message.item is not None:  # a hosted tool's item: a tool list, a call the server ran
        yield hosted_item(message.item, include=include)
        return
    if role == Role.TOOL:
        yield {
            "type": (outputs or {}).get(message.tool_call_id or "", "function_call_output"),
            "id": output_item_id(message.id),
            "call_id": message.tool_call_id or "",
            "output": message.content,
            "status": "completed",
        }
        return
    if role != Role.ASSISTANT:
        yield {
            "type": "message",
            "id": message.id,
            "status": "completed",
            "role": "system" if role == Role.SYSTEM else "user",
            "content": input_content(message.content, message.images),
        }
        return
    found = segments(message)
    blob = state_blob(message.provider_state) if state and message.provider_state else None
    for n, segment in enumerate(found, 1):
        if segment.kind == "text":
            yield text_item(segment.item_id, segment.text, status, phase=message.phase)
            continue
        item = reasoning_item(
            segment.item_id, segment.text, status, summary=segment.kind == "summary"
        )
        if blob is not None and n == len(found):  # nothing but calls after it
            item["encrypted_content"], blob = blob, None
        yield item
    if blob is not None:
        thoughts = sum(1 for segment in found if segment.kind != "text")
        yield state_item(reasoning_id(message.id, thoughts + 1), blob, status)
    for call in message.tool_calls or ():
        hosted = call.get("hosted")
        if hosted is not None:  # the server ran it (its result shows it), or asks first
            if hosted.get("approval_request_id"):
                yield approval_request_item(hosted, call["arguments"])
        elif calls is None or call["id"] in calls:
            yield call_item(message.id, call["id"], call["name"], call["arguments"], kinds)


class Segment(NamedTuple):
    """A run of one kind of an assistant message's output: ``reasoning``, ``summary``
    (reasoning as a summary) or ``text``; ``item_id`` is the item it shows as."""

    kind: str
    item_id: str
    text: str


def segments(message: Message) -> list[Segment]:
    """An assistant message's reasoning and text, in the order the model gave them."""
    reasoning, content = message.reasoning or "", message.content
    layout = message.layout or [["reasoning", len(reasoning)], ["text", len(content)]]
    starts = {"text": 0, "thought": 0}
    ordinals = {"text": 0, "thought": 0}
    found: list[Segment] = []
    for kind, length in layout:
        family = "text" if kind == "text" else "thought"
        source = content if family == "text" else reasoning
        start = starts[family]
        text = source[start : start + length]
        starts[family] = start + length
        if not text:
            continue
        ordinals[family] += 1
        n = ordinals[family]
        item_id = text_id(message.id, n) if family == "text" else reasoning_id(message.id, n)
        found.append(Segment(kind, item_id, text))
    return found


def without_segment(message: Message, item_id: str) -> tuple[str, str | None, Any]:
    """The content, reasoning and layout of ``message`` without the segment shown as item
    ``item_id``."""
    kept = [s for s in segments(message) if s.item_id != item_id]
    content = "".join(s.text for s in kept if s.kind == "text")
    reasoning = "".join(s.text for s in kept if s.kind != "text")
    return content, reasoning or None, stored_layout([[s.kind, len(s.text)] for s in kept])


def stored_layout(runs: list[list[Any]]) -> list[list[Any]] | None:
    """An assistant message's ``[kind, length]`` runs as ``messages.layout`` keeps them:
    None when they are the plain order (its reasoning, then its text)."""
    kinds = [kind for kind, _ in runs]
    return None if kinds in ([], ["text"], ["reasoning"], ["reasoning", "text"]) else runs


def reasoning_item(
    item_id: str, text: str, status: str, *, summary: bool = False
) -> dict[str, Any]:
    """A reasoning item: the reasoning in ``content``, or, for a summary, in ``summary``."""
    part = {"type": "summary_text" if summary else "reasoning_text", "text": text}
    return {
        "type": "reasoning",
        "id": item_id,
        "status": status,
        "summary": [part] if summary else [],
        "content": [] if summary else [part],
    }


def state_item(item_id: str, blob: str, status: str) -> dict[str, Any]:
    """A reasoning item with nothing to read that carries an answer's state (``blob``)."""
    return {
        "type": "reasoning",
        "id": item_id,
        "status": status,
        "summary": [],
        "content": [],
        "encrypted_content": blob,
    }


def text_item(item_id: str, text: str, status: str, *, phase: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }
    if phase:
        item["phase"] = phase
    return item


def call_item(
    message_id: str,
    call_id: str,
    name: str,
    arguments: dict[str, Any] | str,
    kinds: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A call handed to the client: a ``function_call``, or the item of the kind of tool its
    function stands for (``client_tools.handed_item``)."""
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments).decode()
    kind = (kinds or {}).get(name, {}).get("type")
    prefix = {"custom": "ctc", "tool_search": "tsc"}.get(str(kind), "fc")
    item_id = call_item_id(message_id, call_id, prefix)
    return client_tools.handed_item(item_id, call_id, name, arguments, kinds)
