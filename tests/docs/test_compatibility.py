"""docs/compatibility.md is the options check's tables (``kit.options``) as written by
``python -m parley.server.faces.kit.compatibility``, and those tables rule on every field of
every face's request bodies, and only on those."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from parley.server.faces.assistants import requests as assistant_runs
from parley.server.faces.assistants import schemas as assistant_schemas
from parley.server.faces.chat.requests import ChatCompletionCreate
from parley.server.faces.kit import bodies
from parley.server.faces.kit.compatibility import page
from parley.server.faces.kit.options import FACES
from parley.server.faces.native import schemas as native
from parley.server.faces.responses.protocol import ResponseCreate

PAGE = Path(__file__).resolve().parents[2] / "docs/compatibility.md"

#: The bodies of each face whose fields ask something of the model or of its turn.
BODIES: dict[str, list[type[BaseModel]]] = {
    "chat": [ChatCompletionCreate],
    "responses": [ResponseCreate],
    "assistants": [
        assistant_schemas.AssistantCreate,
        assistant_schemas.AssistantUpdate,
        assistant_runs.RunCreate,
        assistant_runs.ThreadAndRunCreate,
        assistant_runs.ToolOutputsStream,
        bodies.ThreadCreate,
        bodies.MessageCreate,
    ],
    "native": [
        native.RunCreate,
        native.ProcessRequest,
        native.CompletionRequest,
        native.ToolOutputsSubmit,
        native.ToolOutputSubmit,
    ],
}


def test_the_page_is_written_from_the_tables() -> None:
    assert PAGE.read_text() == page(), (
        "docs/compatibility.md is stale: "
        "python -m parley.server.faces.kit.compatibility > docs/compatibility.md"
    )


def test_every_field_of_every_face_has_a_rule_and_every_rule_a_field() -> None:
    for face, models in BODIES.items():
        fields = {name for model in models for name in model.model_fields}
        assert set(FACES[face]) == fields, face
