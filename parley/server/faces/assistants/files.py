"""The Assistants API's files for ``file_search``: the vector stores of an assistant's and a
thread's ``tool_resources``, and the files of a message's ``attachments`` (their data
functions are in ``reads``).

- An assistant's ``tool_resources.file_search.vector_store_ids`` (one store) is kept in its
  ``options`` (``tool_resources``); ``vector_stores: [{file_ids, ...}]`` makes that store
  in passing, its files attached (indexed by the ingestion worker).
- A thread has one store of its own: the store whose ``thread_id`` is the thread's. Its
  ``tool_resources`` name it (or make it), and a message's attachments go into it, made
  with the first attachment.
- A run searches the stores of its assistant and of its thread (``reads.run_tools``): the
  ``file_search`` entry of the run's tools gets their ids when the run is made.
- A run step shows a search as a ``file_search`` call (``with_searches``), and an answer's
  text cites the files its run's searches found (``cited``). A run waits for the files of
  its thread's stores to be indexed before it searches (``engine.hosted.file_search``);
  the files it could not search are in its step's ``unindexed_files``.
- A run's code interpreter calls show as ``code_interpreter`` calls (``code_call``): the
  code as ``input``, its logs, and its figures as ``image`` outputs naming files of purpose
  ``assistants_output``; the message that follows shows those figures as ``image_file``
  parts before its text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from parley.engine import CodeInterpreterCall, FileSearchCall, Record, file_citations, record_of
from parley.server.faces.kit.resources import MessagePublic
from parley.server.faces.kit.run_steps import RunStepPublic


def resource_ids(resources: Mapping[str, Any] | None) -> list[str]:
    """The store ids ``tool_resources`` (as kept) names."""
    search = (resources or {}).get("file_search") or {}
    return list(search.get("vector_store_ids") or [])


def tool_shown(tool: dict[str, Any]) -> dict[str, Any]:
    """A kept tool as an assistant shows it: a ``file_search`` entry in the Assistants API's
    shape (its options under ``file_search``; the stores it names, when it names some, in
    Parley's ``vector_store_ids`` beside them)."""
    if tool.get("type") == "code_interpreter":
        return {"type": "code_interpreter"}
    if tool.get("type") != "file_search":
        return tool
    options = {k: tool[k] for k in ("max_num_results", "ranking_options") if k in tool}
    shown: dict[str, Any] = {"type": "file_search", "file_search": options}
    if tool.get("vector_store_ids"):
        shown["vector_store_ids"] = tool["vector_store_ids"]
    return shown


# ------------------------------------------------------------------ steps and citations


#: The ``include[]`` value that shows the text of a search's results in its run step.
RESULTS_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"


#: The rankers OpenAI's run steps name.
_STEP_RANKERS = ("auto", "default_2024_08_21")


def with_searches(
    step: RunStepPublic,
    searches: Mapping[str, Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]],
    contents: bool,
) -> RunStepPublic:
    """A ``tool_calls`` step whose hosted calls (``searches``: their items by call id) show
    in their own shape (``STEPS``): a file search as a ``file_search`` call, its ranking
    options and results (their text with ``contents``); a code call as a
    ``code_interpreter`` call."""
    calls = step.step_details.get("tool_calls")
    if not calls or not any(c.get("id") in searches for c in calls):
        return step
    shown = []
    for call in calls:
        item = searches.get(call.get("id", ""))
        shown.append(call if item is None else step_call(call["id"], item, tools, contents))
    details = {**step.step_details, "tool_calls": shown}
    return step.model_copy(update={"step_details": details})


def step_call(
    call_id: str, item: Mapping[str, Any], tools: Sequence[Mapping[str, Any]], contents: bool
) -> dict[str, Any]:
    """A stored hosted item (of a type ``STEPS`` has) as a run step's call, by its record."""
    record = record_of(item)
    assert record is not None, item.get("type")
    return STEPS[record.type](call_id, record, tools, contents)


def search_call(
    call_id: str, record: Record, tools: Sequence[Mapping[str, Any]], contents: bool
) -> dict[str, Any]:
    """A search (its ``FileSearchCall``) as a run step's ``file_search`` call: the run's
    ranking options, and the results (their text with ``contents``)."""
    assert isinstance(record, FileSearchCall)
    entry = next((t for t in tools if t.get("type") == "file_search"), {})
    ranking = entry.get("ranking_options") or {}
    ranker = ranking.get("ranker", "auto")
    options = {
        "ranker": ranker if ranker in _STEP_RANKERS else "auto",
        "score_threshold": float(ranking.get("score_threshold", 0.0)),
    }
    results = []
    for r in record.results or ():
        result = {"file_id": r["file_id"], "file_name": r["filename"], "score": r["score"]}
        if contents:
            result["content"] = [{"type": "text", "text": r["text"]}]
        results.append(result)
    search: dict[str, Any] = {"ranking_options": options, "results": results}
    unindexed = unindexed_files(record.unindexed or ())
    if unindexed:
        search["unindexed_files"] = unindexed
    return {"id": call_id, "type": "file_search", "file_search": search}


def unindexed_files(files: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Parley's own in a step's ``file_search``: the files of the thread's stores the
    search could not find (still being indexed when the run's wait ended, or failed), as
    a vector store file names its status and ``last_error``."""
    return [
        {
            "file_id": f["file_id"],
            "file_name": f["filename"],
            "status": f["status"],
            "last_error": f.get("error"),
        }
        for f in files
    ]


def code_call(
    call_id: str, record: Record, tools: Sequence[Mapping[str, Any]], contents: bool
) -> dict[str, Any]:
    """A code interpreter call (its ``CodeInterpreterCall``) as a run step's
    ``code_interpreter`` call: its code, then its logs and figures."""
    assert isinstance(record, CodeInterpreterCall)
    outputs: list[dict[str, Any]] = []
    for output in record.outputs or ():
        if output.get("type") == "logs":
            outputs.append({"type": "logs", "logs": output.get("logs") or ""})
        elif output.get("type") == "image" and output.get("image_file_id"):
            outputs.append({"type": "image", "image": {"file_id": output["image_file_id"]}})
    if record.status == "failed" and record.error and not outputs:
        outputs.append({"type": "logs", "logs": str(record.error)})
    details = {"input": record.code or "", "outputs": outputs}
    return {"id": call_id, "type": "code_interpreter", "code_interpreter": details}


#: The face's table of hosted records shown as a run step's call of their own type, by
#: record type (the others show as the function call the model made). A new kind adds its
#: entry.
STEPS: dict[str, Callable[[str, Record, Sequence[Mapping[str, Any]], bool], dict[str, Any]]] = {
    FileSearchCall.type: search_call,
    CodeInterpreterCall.type: code_call,
}


def figures(items: Sequence[Mapping[str, Any]]) -> list[str]:
    """The files (purpose ``assistants_output``) of the figures ``items``' code drew."""
    return [
        str(o["image_file_id"])
        for item in items
        if item.get("type") == "code_interpreter_call"
        for o in item.get("outputs") or ()
        if o.get("type") == "image" and o.get("image_file_id")
    ]


def with_figures(message: MessagePublic, file_ids: Sequence[str]) -> MessagePublic:
    """An assistant message with the figures its run's code drew (``figures``) as
    ``image_file`` parts before its text."""
    if not file_ids or message.role != "assistant":
        return message
    parts = [figure_part(f) for f in file_ids]
    return message.model_copy(update={"content": [*parts, *message.content]})


def figure_part(file_id: str) -> dict[str, Any]:
    """A figure as a message's ``image_file`` content part."""
    return {"type": "image_file", "image_file": {"file_id": file_id}}


def cited(message: MessagePublic, files_found: Mapping[str, str]) -> MessagePublic:
    """An assistant message whose text names files its run's searches found, with its
    ``file_citation`` annotations (the mention, its place, the file)."""
    if not files_found or message.role != "assistant":
        return message
    content = []
    for part in message.content:
        if part.get("type") == "text":
            value = part["text"]["value"]
            annotations = [
                {
                    "type": "file_citation",
                    "text": value[c.start : c.end],
                    "file_citation": {"file_id": c.file_id},
                    "start_index": c.start,
                    "end_index": c.end,
                }
                for c in file_citations(value, files_found)
            ]
            part = {**part, "text": {**part["text"], "annotations": annotations}}
        content.append(part)
    return message.model_copy(update={"content": content})
