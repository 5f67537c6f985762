"""The routes of the web app (``docs/web.md``): thin, each a few SDK calls through ``Backend``.

Bodies are checked here (a ``ProblemError`` answers 400 or 422); SDK errors go to the app's
error handler, which maps them with ``problem_of``.
"""

from __future__ import annotations

import io
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request, send_file

from parley.errors import Conflict
from parley.sdk.models import Message
from parley.web.attachments import citations_of
from parley.web.backend import EXTENSION, Backend, Problem, thread_public, title_of
from parley.web.exchange import Answer, ApprovalExchange, Ask, Exchange, approvals_asked
from parley.web.limits import SLOTS, ExchangeSlots, busy_response
from parley.web.security import PAGE_POLICY, csrf_token, owner_tag

__all__ = ["ProblemError", "bp"]

bp = Blueprint("parley_web", __name__)

#: Longest ``model`` / ``thread_id`` / ``title`` accepted.
_MAX_NAME = 200


class ProblemError(Exception):
    """A request the app refuses: answered as ``problem``."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def _backend() -> Backend:
    backend: Backend = current_app.extensions[EXTENSION]
    return backend


def _invalid(message: str) -> ProblemError:
    return ProblemError(Problem(422, "validation_error", message))


def _body(*, optional: bool = False) -> dict[str, Any]:
    """The request's JSON object (``{}`` for an empty optional body)."""
    if optional and not request.get_data(cache=True):
        return {}
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise ProblemError(Problem(400, "invalid_request", "The body must be a JSON object."))
    return body


def _text(body: dict[str, Any], name: str) -> str | None:
    """An optional string field (a name or an id): absent or null gives None; never empty
    nor longer than ``_MAX_NAME``."""
    value = body.get(name)
    if value is None:
        return None
    value = _non_empty(value, name)
    if len(value) > _MAX_NAME:
        raise _invalid(f"{name} must be at most {_MAX_NAME} characters.")
    return value


def _non_empty(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid(f"{name} must be a non-empty string.")
    return value


# ---------------------------------------------------------------------------- page

#: The example prompts of an empty conversation: (what it shows, the message it sends).
#: With the demo model: an answer with its reasoning, a ``current_time`` call, a
#: ``calculator`` call (the demo calls a tool its message names, with the text after it).
EXAMPLES = (
    ("A streamed answer with its reasoning", "Tell me about Parley"),
    ("A tool call", "What time is it? current_time Europe/Lisbon"),
    ("The calculator", "Work it out with the calculator (2 + 3) * 4"),
)


#: The example of a page that offers the code interpreter (the demo model runs the code after
#: "python").
CODE_EXAMPLE = (
    "Python on the server",
    "python import matplotlib.pyplot as plt; plt.plot([1, 3, 2]); print(6 * 7)",
)


@bp.get("/")
def index() -> str:
    shown = [*EXAMPLES, CODE_EXAMPLE] if _backend().code_interpreter else EXAMPLES
    examples = [{"what": what, "prompt": prompt} for what, prompt in shown]
    return render_template(
        "index.html",
        csrf_token=csrf_token(),
        page_policy=PAGE_POLICY,
        examples=examples,
        max_upload_bytes=_backend().max_upload_bytes,
    )


# ------------------------------------------------------------------------- lookups


@bp.get("/api/models")
def models() -> dict[str, Any]:
    backend = _backend()
    listed = backend.client.models.list()
    chat = [m for m in listed.get("data", []) if "id" in m and not m.get("embedding")]
    return {
        "default": backend.default_model,
        "models": [str(m["id"]) for m in chat],
        # What a model is, where its provider says (the local model: a 135M one).
        "descriptions": {str(m["id"]): str(m["description"]) for m in chat if m.get("description")},
        "providers": [
            {"name": p.get("name"), "ready": bool(p.get("ready")), "problem": p.get("problem")}
            for p in listed.get("providers", [])
        ],
    }


@bp.get("/api/tools")
def tools() -> dict[str, Any]:
    return {"data": _backend().tools.definitions()}


# ------------------------------------------------------------------------- threads


@bp.get("/api/threads")
def list_threads() -> dict[str, Any]:
    return {"data": [thread_public(t) for t in _backend().threads_of(owner_tag())]}


@bp.post("/api/threads")
def create_thread() -> tuple[dict[str, Any], int]:
    title = _text(_body(optional=True), "title")
    thread = _backend().create_thread(owner_tag(), title_of(title or ""))
    return thread_public(thread), 201


@bp.delete("/api/threads/<thread_id>")
def delete_thread(thread_id: str) -> dict[str, Any]:
    backend = _backend()
    thread = backend.owned_thread(thread_id, owner_tag())
    backend.client.threads.delete(thread_id)
    backend.attachments.forget(thread)
    return {"id": thread_id, "deleted": True}


@bp.get("/api/threads/<thread_id>/messages")
def thread_messages(thread_id: str) -> dict[str, Any]:
    backend = _backend()
    backend.owned_thread(thread_id, owner_tag())
    page = backend.client.messages.list(thread_id=thread_id, limit=100, order="asc")
    out: dict[str, Any] = {"data": [_message_public(m) for m in page.iter_all()]}
    waiting = backend.pending_approvals(thread_id)
    if waiting is not None:  # a reload while calls wait: the page shows them again
        run, actions = waiting
        out["pending"] = {
            "run_id": run.id,
            "approvals": [a.model_dump() for a in approvals_asked(run.id, actions)],
        }
    return out


#: The items of the calls the server ran that a reload shows again.
_SHOWN_ITEMS = ("file_search_call", "code_interpreter_call")


def _message_public(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"id": message.id, "role": message.role, "content": message.text}
    if message.reasoning:
        out["reasoning"] = message.reasoning
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in message.tool_calls
        ]
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    if message.run_id:
        out["run_id"] = message.run_id
    if message.item is not None and message.item.get("type") in _SHOWN_ITEMS:
        out["item"] = message.item
    citations = citations_of(message)
    if citations:
        out["citations"] = citations
    return out


# --------------------------------------------------------------------------- files


@bp.post("/api/files")
def attach_file() -> tuple[dict[str, Any], int]:
    """Attach a file to a conversation (``multipart/form-data``: ``file``, and
    ``thread_id`` unless a new conversation starts with it): ``{"thread", "file"}``."""
    backend = _backend()
    request.max_content_length = backend.max_upload_bytes + _FORM_OVERHEAD
    sent = request.files.get("file")
    if sent is None or not sent.filename:
        raise _invalid("file (a multipart/form-data file field) is required.")
    content = sent.read(backend.max_upload_bytes + 1)
    if len(content) > backend.max_upload_bytes:
        raise ProblemError(Problem(413, "file_too_large", too_large(backend.max_upload_bytes)))
    if not content:
        raise _invalid("The file is empty.")
    thread_id = _text(dict(request.form), "thread_id")
    owner = owner_tag()
    if thread_id:
        thread = backend.owned_thread(thread_id, owner)
    else:
        thread = backend.create_thread(owner, title_of(sent.filename))
    attached = backend.attachments.attach(thread, filename=sent.filename, content=content)
    return {"thread": thread_public(thread), "file": attached}, 201


@bp.get("/api/threads/<thread_id>/files")
def thread_files(thread_id: str) -> dict[str, Any]:
    backend = _backend()
    thread = backend.owned_thread(thread_id, owner_tag())
    return {"data": backend.attachments.files_of(thread)}


@bp.get("/api/threads/<thread_id>/code-files/<container_id>/<file_id>")
def code_file(thread_id: str, container_id: str, file_id: str) -> Response:
    """A file a code interpreter call of the session's conversation wrote, as a download
    (fetched from the Parley server's container; 404 for another session's)."""
    name, content = _backend().code_file(
        thread_id, owner_tag(), container_id=container_id, file_id=file_id
    )
    response = send_file(
        io.BytesIO(content),
        mimetype="application/octet-stream",
        as_attachment=True,
        download_name=name,
        max_age=0,
    )
    response.headers["Cache-Control"] = "private, no-store"
    return response


#: Room for the multipart framing and the ``thread_id`` field around the file itself.
_FORM_OVERHEAD = 64 * 1024


def too_large(limit: int) -> str:
    return f"The file is larger than {limit / 2**20:g} MiB, the most this page takes."


# ---------------------------------------------------------------------------- runs


@bp.post("/api/messages/process")
def process() -> Response:
    body = _body()
    content = _non_empty(body.get("content"), "content")
    model = _text(body, "model")
    thread_id = _text(body, "thread_id")
    backend = _backend()
    owner = owner_tag()
    thread = backend.owned_thread(thread_id, owner) if thread_id else None
    ask = Ask(content=content, model=model or backend.default_model, owner=owner, thread=thread)
    return _stream(Exchange(backend, ask))


@bp.post("/api/runs/<run_id>/approval")
def answer_approval(run_id: str) -> Response:
    """Approve or deny a call that waits (``{"action_id", "approve": true|false}``), then
    stream the rest of the answer as ``/api/messages/process`` does."""
    body = _body()
    action_id = _text(body, "action_id")
    approve = body.get("approve")
    if action_id is None or not isinstance(approve, bool):
        raise _invalid("action_id (a string) and approve (true or false) are required.")
    backend = _backend()
    owner = owner_tag()
    run = backend.owned_run(run_id, owner)
    waiting = run.required_action.actions if run.required_action else []
    if not any(a.action_id == action_id and a.approval is not None for a in waiting):
        raise ProblemError(Problem(409, "not_waiting", "This call no longer waits for an answer."))
    return _stream(ApprovalExchange(backend, Answer(run, action_id, approve), owner))


def _stream(exchange: Exchange) -> Response:
    """The exchange as an event stream, in one of the app's exchange slots (503 ``busy``
    when none is free)."""
    slots: ExchangeSlots = current_app.extensions[SLOTS]
    slot = slots.take()
    if slot is None:
        return busy_response(slots.limit)
    response = Response(
        exchange.sse(),
        mimetype="text/event-stream",
        headers={"X-Accel-Buffering": "no"},  # Cache-Control: set for every stream
    )
    # The server closes the response when the exchange is over or its browser has left.
    response.call_on_close(slot.release)
    return response


@bp.post("/api/runs/<run_id>/cancel")
def cancel_run(run_id: str) -> dict[str, Any]:
    backend = _backend()
    run = backend.owned_run(run_id, owner_tag())
    try:
        run = backend.client.runs.cancel(run_id)
    except Conflict as exc:
        if exc.code != "run_finished":
            raise
        run = backend.client.runs.retrieve(run_id)  # it ended first: tell how
    return {"id": run.id, "status": str(run.status)}
