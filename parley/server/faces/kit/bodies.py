"""What the faces' request bodies share: the base of every body (unknown fields refused,
every string storable), counts, sampling parameters, tools, images, messages, tool outputs,
and the list and deletion answers."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from parley.engine import Decision, SubmittedAnswer
from parley.errors import InvalidRequest
from parley.server.faces.kit.readers import (
    ASSISTANTS,
    HOSTED_KINDS,
    MAX_IMAGES,
    FileRef,
    check_image_url,
    read_content,
    read_tools,
    stored_tools,
)
from parley.server.faces.kit.tool_resources import read_attachments, read_tool_resources
from parley.types import ToolSpec

Metadata = dict[str, Any]


#: The largest integer (and, negated, the smallest) a request may bring anywhere in its
#: body: what a 64-bit column and the stores' JSON (orjson) hold. Past it, a number is
#: refused at the edge, never stored (a stored one would come back as a float).
MAX_INTEGER = 2**63 - 1


#: A count a request brings (of tokens, of messages): a JSON integer, never ``"10"``,
#: ``10.0`` or ``true``, from 1 to ``MAX_INTEGER``.
Count = Annotated[int, Strict(), Field(ge=1, le=MAX_INTEGER)]


class _Sampling(BaseModel):
    """The model parameters every provider knows, checked as Chat Completions checks them;
    others pass as given (their integers bounded by ``_storable``)."""

    model_config = ConfigDict(extra="allow")

    temperature: Annotated[float, Strict(), Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Strict(), Field(ge=0, le=1)] | None = None
    presence_penalty: Annotated[float, Strict(), Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Strict(), Field(ge=-2, le=2)] | None = None
    max_tokens: Count | None = None
    top_k: Count | None = None
    seed: Annotated[int, Strict()] | None = None
    stop: str | list[str] | None = Field(default=None, max_length=16)


def _sampling(value: dict[str, Any]) -> dict[str, Any]:
    _Sampling.model_validate(value)  # its errors are located under the field: parameters.x
    return value


#: An assistant's or a native run's ``parameters``: ``_Sampling``'s checked, kept as given.
Parameters = Annotated[dict[str, Any], AfterValidator(_sampling)]


def _storable(value: Any, depth: int = 0, where: tuple[str | int, ...] = ()) -> None:
    """Refuse what no database can store the same way: text with NUL characters
    (PostgreSQL has no room for them) or unpaired UTF-16 surrogates (not Unicode at all),
    and integers past ``MAX_INTEGER`` (refused where they are, ``where``: ``metadata.n``)."""
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(
                    "text contains an unpaired surrogate (not valid Unicode)"
                ) from None
        if "\x00" in value:
            raise ValueError("text contains a NUL character (\\u0000), which cannot be stored")
    elif isinstance(value, int) and not isinstance(value, bool):
        if not -MAX_INTEGER <= value <= MAX_INTEGER:
            raise _out_of_range(value, where)
    elif isinstance(value, dict):
        if depth > 64:
            raise ValueError("JSON nested too deeply")
        for key, item in value.items():
            _storable(key, depth + 1)
            _storable(item, depth + 1, (*where, key))
    elif isinstance(value, list):
        if depth > 64:
            raise ValueError("JSON nested too deeply")
        for i, item in enumerate(value):
            _storable(item, depth + 1, (*where, i))


def _out_of_range(value: int, where: tuple[str | int, ...]) -> ValidationError:
    """The validation error of an integer past ``MAX_INTEGER``, located at ``where`` (so
    that the answer names the field, as the field's own check would)."""
    error = PydanticCustomError(
        "integer_out_of_range",
        "integers may be at most {most} in size",
        {"most": MAX_INTEGER},
    )
    return ValidationError.from_exception_data(
        "body", [InitErrorDetails(type=error, loc=where, input=value)]
    )


class Body(BaseModel):
    """A request body: unknown fields refused, every string storable."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _only_storable_text(cls, data: Any) -> Any:
        _storable(data)
        return data


class HostedTool(BaseModel):
    """A tool the server runs (``{"type": "mcp", ...}``, ``{"type": "file_search", ...}``,
    ``{"type": "code_interpreter", ...}``),
    read in full by the route (``kit.hosted.kept_tools``: who may use which server is the
    caller's, which stores too)."""

    model_config = ConfigDict(extra="allow")

    type: str

    @field_validator("type")
    @classmethod
    def _hosted_kind(cls, value: str) -> str:
        if value not in HOSTED_KINDS:
            raise ValueError(f"expected one of {', '.join(sorted(HOSTED_KINDS))}")
        return value


class Tools(Body):
    """Tools given OpenAI-shaped, or flat: ``{"name", "description", "parameters"}``; and
    the tools the server runs (``mcp``)."""

    tools: list[ToolSpec | HostedTool] | None = None

    @field_validator("tools", mode="before")
    @classmethod
    def _openai_shape(cls, value: Any) -> Any:
        """Read by the faces' one reader of tools (other hosted tools refused by name,
        ``strict`` taken and not kept, names unique), kept in the stored shape, in order."""
        if not isinstance(value, list):
            return value
        try:
            functions = iter(stored_tools(read_tools(value, ASSISTANTS)[0]))
        except InvalidRequest as exc:
            if exc.code != "invalid_value" or exc.param is None:
                raise  # a hosted tool: refused by name, with its own code
            raise _located(exc) from None
        return [t if _hosted(t) else next(functions) for t in value]


def _hosted(tool: Any) -> bool:
    return isinstance(tool, dict) and tool.get("type") in HOSTED_KINDS


def _located(exc: InvalidRequest) -> ValidationError:
    """A bad value a reader found inside a field (``tools[1].function.name``), as the
    validation error of that place, as the field's own checks report theirs."""
    where = re.findall(r"\w+", exc.param or "")[1:]  # the field itself is the validator's
    problem = exc.message.partition(": ")[2] or exc.message
    error = PydanticCustomError("invalid_value", "{problem}", {"problem": problem})
    loc = tuple(int(part) if part.isdigit() else part for part in where)
    return ValidationError.from_exception_data(
        "body", [InitErrorDetails(type=error, loc=loc, input=None)]
    )


ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]


def _resources(value: dict[str, Any] | None) -> dict[str, Any] | None:
    return read_tool_resources(value)


#: An assistant's, thread's or run's ``tool_resources``: ``file_search`` stores, checked
#: (``kit.tool_resources.read_tool_resources``).
ToolResources = Annotated[dict[str, Any] | None, AfterValidator(_resources)]


ImageAddress = Annotated[str, Field(min_length=1), AfterValidator(check_image_url)]


class Image(Body):
    """An image of a user message: ``data:image/png;base64,...`` (PNG, JPEG, GIF or WebP)
    or an ``http(s)://`` address the provider fetches itself."""

    url: ImageAddress


class TextPart(Body):
    type: Literal["text"]
    text: str


class ImageURL(Body):
    url: ImageAddress
    detail: Literal["auto", "low", "high"] | None = None


class ImageURLPart(Body):
    type: Literal["image_url"]
    image_url: ImageURL


class ImageFile(Body):
    file_id: str
    detail: Literal["auto", "low", "high"] | None = None


class ImageFilePart(Body):
    """An image by one of the user's files (read into the message when it is added:
    ``kit.file_inputs.settle``)."""

    type: Literal["image_file"]
    image_file: ImageFile


class MessageCreate(Body):
    """A message, as the Assistants API takes it: text, or parts (``text``, ``image_url``
    and ``image_file``); Parley also takes ``images`` beside a text."""

    content: str | list[TextPart | ImageURLPart | ImageFilePart] = Field(examples=["Hello!"])
    role: Literal["user", "assistant"] = "user"
    images: list[Image] = Field(default_factory=list, max_length=MAX_IMAGES)
    attachments: list[dict[str, Any]] | None = None
    metadata: Metadata | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _parts(cls, value: Any) -> Any:
        """Parts read by the faces' one reader of content parts."""
        if isinstance(value, list):
            read_content(value, "content", ASSISTANTS, images=True, files=True)
        return value

    @field_validator("attachments")
    @classmethod
    def _no_attachments(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        return read_attachments(value)  # files for file_search (``kit.hosted``)

    @model_validator(mode="after")
    def _few_images(self) -> MessageCreate:
        if len(self.image_urls()) > MAX_IMAGES:
            raise ValueError(f"a message may hold at most {MAX_IMAGES} images")
        return self

    def text(self) -> str:
        """The message's text: its text parts, one after the other, with nothing between
        them (as every face joins them)."""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, TextPart))

    def image_urls(self) -> list[dict[str, Any]]:
        """Its images, as stored: ``[{"url": ...}]``; an image by file still to be read
        (``{"pending": FileRef}``: ``kit.file_inputs.settle``)."""
        parts = [] if isinstance(self.content, str) else self.content
        urls = [p.image_url.url for p in parts if isinstance(p, ImageURLPart)]
        urls += [i.url for i in self.images]
        files = [
            FileRef(
                param=f"content[{j}].image_file.file_id", file_id=p.image_file.file_id, image=True
            )
            for j, p in enumerate(parts)
            if isinstance(p, ImageFilePart)
        ]
        return [{"url": url} for url in urls] + [{"pending": ref} for ref in files]


class ThreadCreate(Body):
    messages: list[MessageCreate] = Field(default_factory=list, max_length=32)
    metadata: Metadata = Field(default_factory=dict)
    tool_resources: ToolResources = None


class ToolAnswer(Body):
    """A tool's output; or, for a call the server runs once approved (an action with an
    ``approval``), the approval: ``approve`` true or false, with the client's ``reason``
    (told to the model of a denied call, as an ``mcp_approval_response`` item's is)."""

    output: str | None = None
    approve: bool | None = None
    reason: str | None = None

    @model_validator(mode="after")
    def _one(self) -> ToolAnswer:
        if (self.output is None) == (self.approve is None):
            raise ValueError("give output, or approve for a call that waits for approval")
        if self.reason is not None and self.approve is None:
            raise ValueError("reason goes with approve, not with an output")
        return self

    def answer(self) -> SubmittedAnswer:
        """The output, or the approval (a ``Decision``)."""
        if self.output is not None:
            return self.output
        return Decision(approve=bool(self.approve), reason=self.reason)


class ToolOutput(ToolAnswer):
    """The answer to one call, named by its id."""

    tool_call_id: str = Field(min_length=1)


def timestamp(value: float | None) -> int | None:
    return None if value is None else int(value)


class Deleted(BaseModel):
    id: str
    object: str
    deleted: bool = True


MAX_ITEMS = 2_048


MAX_METADATA_PAIRS = 16


def check_metadata(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """OpenAI's metadata: up to 16 string pairs, keys up to 64 characters, values up to 512."""
    if value is None:
        return None
    if len(value) > MAX_METADATA_PAIRS:
        raise ValueError(f"metadata holds at most {MAX_METADATA_PAIRS} pairs")
    for key, item in value.items():
        if len(key) > 64:
            raise ValueError("a metadata key has at most 64 characters")
        if not isinstance(item, str):
            raise ValueError("metadata values are strings")
        if len(item) > 512:
            raise ValueError("a metadata value has at most 512 characters")
    return value
