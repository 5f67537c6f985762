"""What a face hands the engine to start a turn from items it was given: the messages to add
to a thread (``NewMessage``), where they go (``ThreadTarget``) and how the run's model is
called (``RunConfig``). Plain data, protocol-neutral: the OpenAI faces translate their
items and request fields into these."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from parley.types import Role


@dataclass(frozen=True, slots=True)
class Approval:
    """A client's answer to the approval request ``request_id`` of a hosted call
    (``engine.hosted.approvals``)."""

    request_id: str
    approve: bool
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to store at the end of a thread before the turn: a user, system or
    assistant message (with tool calls, ``[{"id", "name", "arguments"}]``), a tool result
    (``role`` tool with ``tool_call_id``), or an approval (``approval``, role user)."""

    role: Role
    content: str = ""
    images: list[dict[str, Any]] | None = None
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    phase: str | None = None
    #: The order of an assistant message's reasoning and text, as ``messages.layout``
    #: keeps it (None: its reasoning, then its text).
    layout: list[list[Any]] | None = None
    #: The client's own key-value pairs for the message.
    metadata: dict[str, Any] | None = None
    #: What the provider keeps with an assistant message (``Message.provider_state``),
    #: given back by a client that holds it (a stateless Responses client).
    provider_state: dict[str, Any] | None = None
    #: An answer to an approval request (a message of no text, kept as an
    #: ``mcp_approval_response`` item and never shown to the model).
    approval: Approval | None = None
    #: A hosted tool's item given back by a client that holds its history (a tool list on
    #: an assistant message; a call's on the ``tool`` message of its result): kept as
    #: ``messages.item``.
    item: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ThreadTarget:
    """Where a turn's messages go: a new thread (``thread_id`` None, with ``metadata``); the
    end of an existing thread; or, with ``fork_after``, a new thread that starts as a copy
    of ``thread_id``'s messages up to that sequence number (a branch from an earlier point).
    With ``scratch`` (a response that is not to be kept), the thread the messages go to is
    a scratch one (``store.threads``), held for the face until it lets go
    (``Engine.release_scratch``). With ``held``, ``thread_id`` may name a scratch thread:
    one the face holds. A ``scratch`` turn never writes into a thread the face does not
    hold: named such a thread (and no ``fork_after``), it goes into a scratch copy of the
    thread as it stands.

    ``after_run`` (``after_run_id``) names a run instead of a thread: the turn goes on after
    its answer, in its thread or in a branch of it (see ``after_run``). Such a target, and
    a scratch copy, is placed (``Engine.place``) before the turn's claim."""

    thread_id: str | None = None
    fork_after: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    scratch: bool = False
    held: bool = False
    after_run_id: str | None = None

    @classmethod
    def after_run(
        cls,
        run_id: str,
        *,
        scratch: bool = False,
        held: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> ThreadTarget:
        """After the answer of the run ``run_id`` (the caller's, ended): the messages go on
        at the end of its thread when its answer ends that thread and they are kept as
        that thread is (a kept turn after a kept one; a ``scratch`` one after one of a
        scratch thread the face holds); else into a new thread copied from its thread up
        to its answer (a branch, with ``metadata``). ``held``: the face holds the run's
        thread, which may then be a scratch one; a run of a scratch thread the face does
        not hold cannot be continued.

        Placing it raises ``NotFound`` (``previous_run_not_found``) for a run the caller
        cannot continue (none, another user's, one of a scratch thread not held, one that
        wrote no message) and ``InvalidRequest`` (``previous_run_in_progress``) for one
        not ended yet; neither names a request field."""
        return cls(after_run_id=run_id, scratch=scratch, held=held, metadata=metadata or {})

    @property
    def placed(self) -> bool:
        """Whether the target names where its messages go as it is (else ``Engine.place``
        finds that out first)."""
        if self.after_run_id is not None:
            return False
        copies = self.scratch and not self.held and self.fork_after is None
        return self.thread_id is None or not copies


@dataclass(frozen=True, slots=True)
class RunConfig:
    """How the run calls its model. ``options`` are ``ModelOptions`` fields, which the
    engine hands to the provider, and the run's own limits, which it applies: ``truncation``
    (``engine.context``) and ``output_budget`` (``engine.budget``). ``request`` is what the
    face keeps of its request to answer it back later; the engine only adds ``input_seqs``
    to it: the first and last sequence numbers of the messages the turn added.
    ``assistant_id`` names the assistant the run is of, if any."""

    model: str
    instructions: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    request: Mapping[str, Any] | None = None
    assistant_id: str | None = None
