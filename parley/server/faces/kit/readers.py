"""The faces' readers of what a request asks of the model: its tools, tool choice, output
format, the content parts of its messages and its sampling options, into the neutral shapes
the engine and the providers take (``ToolSpec``, ``ModelOptions``, parameters).

One reader each, for every face. A face gives its own spelling (a ``Dialect``: nested as
Chat Completions and Assistants write a function, ``{"function": {"name"}}``, or flat as the
Responses API does, ``{"name"}``), so that each fault is named by the face's own field:
``tools[0].function.name`` on Chat Completions, ``tools[0].name`` on Responses.

Text parts of one message are joined with nothing between them, on every face.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from parley.engine import chosen_functions
from parley.errors import InvalidRequest
from parley.providers.file_parts import MAX_FILE_BYTES
from parley.types import FunctionSpec, ToolSpec, image_type

#: The most images one message may hold.
MAX_IMAGES = 16
#: The most files one message may hold.
MAX_FILES = 10

_FILE_ID = re.compile(r"file-[A-Za-z0-9_-]{1,64}")
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*", re.IGNORECASE)

_DATA_URL = re.compile(r"data:(image/(?:png|jpeg|gif|webp));base64,(.*)", re.DOTALL)


def invalid(param: str, problem: str, code: str = "invalid_value") -> InvalidRequest:
    """The 400 of a field with a bad value, named as OpenAI names it (``param``)."""
    return InvalidRequest(f"Invalid '{param}': {problem}", code=code, param=param)


def unsupported(param: str, why: str, code: str = "unsupported_parameter") -> InvalidRequest:
    """The 400 of a field Parley does not take, named (``param``), and why."""
    return InvalidRequest(f"'{param}' is not supported: {why}", code=code, param=param)


@dataclass(frozen=True, slots=True)
class Dialect:
    """How a face spells what these readers read.

    - ``nested``: a function is ``{"type": "function", "function": {...}}`` (Chat
      Completions, Assistants) rather than flat (Responses); ``either``: both are taken
      (Assistants and the native API, which take OpenAI's shape or Parley's flat one).
    - ``tool_code``: the error code of a tool that is not a function.
    - ``text_parts``: the part types that hold text; ``image_part``: the one that holds an
      image (its URL a string, or ``{"url"}``); ``file_part``: the one that holds a file
      (``read_content``); ``refused_parts``: the types OpenAI knows that Parley does not
      take, and ``part_code`` the code they are refused with.
    """

    nested: bool
    tool_code: str = "invalid_value"
    either: bool = False
    text_parts: frozenset[str] = frozenset({"text"})
    image_part: str = "image_url"
    #: Its file part: ``file`` (``{"file": {"file_id" | "file_data", "filename"}}``) or
    #: ``input_file`` (those fields flat); None: it has none.
    file_part: str | None = None
    #: Its part of an image by file: ``image_file`` (``{"image_file": {"file_id"}}``).
    image_file_part: str | None = None
    refused_parts: frozenset[str] = frozenset()
    part_code: str = "unsupported_parameter"
    #: Whether the face takes tools the server runs (``kit.hosted``), which ``read_tools``
    #: then leaves to that reader.
    hosted: bool = False


CHAT = Dialect(nested=True, file_part="file", refused_parts=frozenset({"input_audio"}))
RESPONSES = Dialect(
    nested=False,
    tool_code="unsupported_tool",
    text_parts=frozenset({"input_text", "output_text", "text", "summary_text", "reasoning_text"}),
    image_part="input_image",
    file_part="input_file",
    refused_parts=frozenset({"input_audio", "input_video"}),
    part_code="invalid_value",
    hosted=True,
)
ASSISTANTS = Dialect(
    nested=True,
    either=True,
    tool_code="unsupported_tool",
    image_file_part="image_file",
    refused_parts=frozenset({"image_file"}),
    part_code="unsupported_content",
    hosted=True,
)

#: Tools the server runs itself (``kit.hosted.ENTRIES``: web search is the Responses
#: face's alone), on every face that takes them. A new kind adds its entry type.
HOSTED_KINDS: set[str] = {"mcp", "file_search", "code_interpreter"}
_HOSTED = "give function tools, which your code runs"
#: The kit's table of hosted tools a ``tool_choice`` may name, by entry type: the function
#: the model sees for it, and the one it sees when a client function has that name: what
#: the engine's kinds of one function name (an MCP server's many have none).
CHOSEN: dict[str, tuple[str, str]] = chosen_functions()


# ------------------------------------------------------------------------------- tools


def read_tools(given: list[Any] | None, dialect: Dialect) -> tuple[list[ToolSpec], list[str]]:
    """Function tools, in the order given, and the names of those marked ``strict`` (taken,
    not sent: no provider is asked for it). Names are unique. The tools the server runs
    are left to ``kit.hosted`` on a face that takes them. Raises ``InvalidRequest``."""
    tools: list[ToolSpec] = []
    strict: list[str] = []
    for i, tool in enumerate(given or ()):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise invalid(where, "expected a tool object.")
        kind = tool.get("type", "function")
        if dialect.hosted and isinstance(kind, str) and kind in HOSTED_KINDS:
            continue
        if kind != "function":
            takes = (
                "function, mcp, file_search and code_interpreter tools"
                if dialect.hosted
                else "function tools"
            )
            problem = f"only {takes} are supported (got {kind!r}): {_HOSTED}."
            raise invalid(f"{where}.type", problem, dialect.tool_code)
        nested = "function" in tool if dialect.either else dialect.nested
        function = tool.get("function") if nested else tool
        prefix = f"{where}.function" if nested else where
        if not isinstance(function, dict):
            raise invalid(prefix, "expected an object with the function's name.")
        spec = _function(function, prefix)
        if any(t.function.name == spec.name for t in tools):
            raise invalid(f"{prefix}.name", f"the tool {spec.name} is given twice.")
        tools.append(ToolSpec(function=spec))
        if function.get("strict"):
            strict.append(spec.name)
    return tools, strict


def _function(function: Mapping[str, Any], prefix: str) -> FunctionSpec:
    try:
        return FunctionSpec(
            name=function.get("name"),  # type: ignore[arg-type]
            description=function.get("description") or "",
            parameters=function.get("parameters") or {"type": "object", "properties": {}},
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error.get("loc", ()))
        raise invalid(f"{prefix}.{field}", str(error.get("msg", "invalid"))) from None


def stored_tools(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    """Tools as a run or an assistant keeps them: ``{"type": "function", "function"}``."""
    return [t.model_dump() for t in tools]


def tool_names(tools: list[ToolSpec] | list[dict[str, Any]]) -> set[str]:
    """The names of function tools, read or stored (the server's own tools have none)."""
    return {
        t.function.name if isinstance(t, ToolSpec) else t["function"]["name"]
        for t in tools
        if isinstance(t, ToolSpec) or t.get("type", "function") == "function"
    }


def hosted_kinds(tools: list[ToolSpec] | list[dict[str, Any]]) -> set[str]:
    """The kinds of the server's own tools among ``tools``, as given or kept (``mcp``,
    ``file_search``)."""
    return {
        str(t["type"])
        for t in tools
        if isinstance(t, dict) and t.get("type", "function") != "function"
    }


def read_tool_choice(
    choice: str | dict[str, Any],
    names: set[str],
    dialect: Dialect,
    hosted: set[str] | frozenset[str] = frozenset(),
) -> str | dict[str, Any]:
    """The neutral ``ModelOptions.tool_choice`` of a ``tool_choice``: a mode, one function
    that is given, ``allowed_tools`` (a mode and functions that are given), or the
    ``file_search`` tool when it is among the ``hosted`` kinds given (the function the
    model sees for it)."""
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise invalid("tool_choice", "expected auto, none, required or an object.")
        return choice
    kind = choice.get("type")
    if kind in CHOSEN:
        if kind not in hosted:
            raise invalid("tool_choice", f"no {kind} tool is given.")
        name, other = CHOSEN[kind]
        return {"type": "function", "name": name if name not in names else other}
    if kind == "function":
        name, param = _named(choice, "tool_choice", dialect.nested)
        if not isinstance(name, str) or name not in names:
            raise invalid(param, f"no function tool named {name!r} is given.")
        return {"type": "function", "name": name}
    if kind == "allowed_tools":
        where = "tool_choice.allowed_tools" if dialect.nested else "tool_choice"
        allowed = choice.get("allowed_tools") if dialect.nested else choice
        mode = allowed.get("mode", "auto") if isinstance(allowed, dict) else None
        listed = allowed.get("tools") if isinstance(allowed, dict) else None
        if mode not in ("auto", "required") or not isinstance(listed, list):
            raise invalid(where, "allowed_tools takes mode (auto or required) and tools.")
        picked = []
        for j, tool in enumerate(listed):
            name, _ = _named(tool, where, dialect.nested)
            if not isinstance(name, str) or name not in names:
                raise invalid(f"{where}.tools[{j}]", "each names a function tool that is given.")
            picked.append({"type": "function", "name": name})
        return {"type": "allowed_tools", "mode": mode, "tools": picked}
    raise invalid("tool_choice.type", f"{kind!r} is not supported.")


def _named(value: Any, where: str, nested: bool) -> tuple[Any, str]:
    """The function name a choice gives (``{"function": {"name"}}`` or ``{"name"}``), and
    where it is."""
    if not isinstance(value, dict):
        return None, where
    if nested:
        function = value.get("function")
        return (function.get("name") if isinstance(function, dict) else None), (
            f"{where}.function.name"
        )
    return value.get("name"), f"{where}.name"


# ------------------------------------------------------------------------ output format


def read_output_format(
    fmt: Mapping[str, Any] | None, dialect: Dialect, where: str = "response_format"
) -> dict[str, Any] | None:
    """The neutral (flat) ``ModelOptions.response_format`` of an output format: Chat
    Completions' and Assistants' ``response_format`` (a ``json_schema`` nested), or the
    Responses API's ``text.format`` (flat), named ``where``."""
    if fmt is None:
        return None
    kind = fmt.get("type")
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind != "json_schema":
        raise invalid(f"{where}.type", "expected text, json_object or json_schema.")
    spec = fmt.get("json_schema") if dialect.nested else fmt
    at = f"{where}.json_schema" if dialect.nested else where
    if not isinstance(spec, Mapping):
        raise invalid(at, "expected an object with name and schema.")
    name, schema = spec.get("name"), spec.get("schema", {})
    if not isinstance(name, str) or not 1 <= len(name) <= 64:
        raise invalid(f"{at}.name", "expected 1 to 64 characters.")
    if not isinstance(schema, dict):
        raise invalid(f"{at}.schema", "expected a JSON Schema object.")
    flat: dict[str, Any] = {"type": "json_schema", "name": name, "schema": schema}
    for key in ("strict", "description"):
        if spec.get(key) is not None:
            flat[key] = spec[key]
    return flat


def asks_for_json(fmt: Mapping[str, Any] | None) -> bool:
    """Whether an output format asks for JSON (a schema, or JSON mode)."""
    return fmt is not None and fmt.get("type") in ("json_object", "json_schema")


# ------------------------------------------------------------------------ content parts


@dataclass(frozen=True, slots=True)
class FileRef:
    """A file part of a message, as read (``read_content``): the user's ``file_id``, or the
    bytes given inline as a ``data_url``; its ``filename`` (None: the stored file's); where
    the request gives it (``param``); ``image``: an image part that names a file."""

    param: str
    filename: str | None = None
    file_id: str | None = None
    data_url: str | None = None
    image: bool = False


@dataclass(frozen=True, slots=True)
class Parts:
    """What a message's content holds: its text, its image URLs and its files."""

    text: str
    images: list[str]
    files: list[FileRef]


def read_parts(
    content: Any, where: str, dialect: Dialect, *, images: bool, refusals: bool = False
) -> tuple[str, list[str]]:
    """The text and image URLs of a message's ``content`` (``read_content``), which holds
    no files."""
    parts = read_content(content, where, dialect, images=images, refusals=refusals)
    return parts.text, parts.images


def read_content(
    content: Any,
    where: str,
    dialect: Dialect,
    *,
    images: bool,
    refusals: bool = False,
    files: bool = False,
) -> Parts:
    """The text, image URLs and files of a message's ``content`` (named ``where``): a
    string, or a list of parts. Text parts (and, with ``refusals``, refusal parts) are
    joined with nothing between them; image parts are taken where ``images`` are, file
    parts (and images by ``file_id``) where ``files`` are."""
    if isinstance(content, str):
        return Parts(content, [], [])
    if not isinstance(content, list):
        raise invalid(where, "expected a string or a list of content parts.")
    texts: list[str] = []
    urls: list[str] = []
    refs: list[FileRef] = []
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        if not isinstance(part, dict):
            raise invalid(at, "expected a content part object.")
        kind = part.get("type") if isinstance(part.get("type"), str) else None
        if kind in dialect.text_parts or (kind == "refusal" and refusals):
            field = "refusal" if kind == "refusal" else "text"
            text = part.get(field)
            if not isinstance(text, str):
                raise invalid(f"{at}.{field}", "expected a string.")
            texts.append(text)
        elif kind == dialect.image_part and images and files and part.get("file_id") is not None:
            refs.append(_image_file(part, at))
        elif kind == dialect.image_part and images:
            urls.append(_image(part, at, dialect))
        elif kind is not None and kind == dialect.file_part and files:
            refs.append(_file(part, at, dialect))
        elif kind is not None and kind == dialect.image_file_part and images and files:
            refs.append(_image_file_part(part, at))
        elif kind is not None and kind == dialect.file_part:
            raise unsupported(
                f"{at}.type",
                f"{kind} content is not available here: this message cannot hold files.",
                dialect.part_code,
            )
        elif kind == dialect.image_part or kind in dialect.refused_parts:
            raise unsupported(
                f"{at}.type",
                f"{kind} content is not available here; send text, or images as {dialect.image_part} parts.",
                dialect.part_code,
            )
        else:
            raise invalid(f"{at}.type", f"unknown content part type {kind!r}.")
    if len(urls) + sum(r.image for r in refs) > MAX_IMAGES:
        raise invalid(where, f"a message holds at most {MAX_IMAGES} images.")
    if sum(not r.image for r in refs) > MAX_FILES:
        raise invalid(where, f"a message holds at most {MAX_FILES} files.")
    return Parts("".join(texts), urls, refs)


def _file_id(value: Any, param: str) -> str:
    if not isinstance(value, str) or not _FILE_ID.fullmatch(value):
        raise invalid(param, "expected the id of a file (file-...).")
    return value


def _image_file(part: dict[str, Any], at: str) -> FileRef:
    """An image part that names one of the user's files (``input_image`` with ``file_id``)."""
    if part.get("image_url") is not None:
        raise invalid(f"{at}.file_id", "give image_url or file_id, not both.")
    param = f"{at}.file_id"
    return FileRef(param=param, file_id=_file_id(part["file_id"], param), image=True)


def _image_file_part(part: dict[str, Any], at: str) -> FileRef:
    """An Assistants ``image_file`` part: ``{"image_file": {"file_id", "detail"}}``."""
    image = part.get("image_file")
    if not isinstance(image, dict):
        raise invalid(f"{at}.image_file", "expected an object with file_id.")
    param = f"{at}.image_file.file_id"
    return FileRef(param=param, file_id=_file_id(image.get("file_id"), param), image=True)


def _file(part: dict[str, Any], at: str, dialect: Dialect) -> FileRef:
    """A file part: ``file_id`` (one of the user's files) or ``file_data`` (a data URL or
    base64, with ``filename``). ``file_url`` is refused: the server fetches no address a
    request gives."""
    nested = dialect.file_part == "file"
    fields = part.get("file") if nested else part
    base = f"{at}.file" if nested else at
    if not isinstance(fields, dict):
        raise invalid(base, "expected an object with file_id, or file_data and filename.")
    filename = fields.get("filename")
    if filename is not None and (not isinstance(filename, str) or not 0 < len(filename) <= 255):
        raise invalid(f"{base}.filename", "expected a file name of 1 to 255 characters.")
    given = [k for k in ("file_id", "file_data", "file_url") if fields.get(k) is not None]
    if len(given) != 1:
        raise invalid(base, "give one of file_id or file_data (with filename).")
    if given == ["file_url"]:
        raise unsupported(
            f"{base}.file_url",
            "files are not fetched from addresses; upload the file (POST /v1/files) and give "
            "its file_id, or give its bytes as file_data.",
            "invalid_value",
        )
    if given == ["file_id"]:
        file_id = _file_id(fields["file_id"], f"{base}.file_id")
        return FileRef(param=f"{base}.file_id", filename=filename, file_id=file_id)
    if filename is None:
        raise invalid(f"{base}.filename", "required with file_data.")
    return FileRef(
        param=f"{base}.file_data",
        filename=filename,
        data_url=_file_data(fields["file_data"], filename, f"{base}.file_data"),
    )


def _file_data(value: Any, filename: str, param: str) -> str:
    """``file_data`` as a data URL: one given (``data:TYPE;base64,...``), or base64 bytes,
    typed by the file's name."""
    if not isinstance(value, str) or not value:
        raise invalid(param, "expected the file's bytes: a data URL or base64.")
    if value.startswith("data:"):
        head, comma, data = value.partition(",")
        media_type = head[len("data:") :].removesuffix(";base64")
        if not comma or not head.endswith(";base64") or not _MEDIA_TYPE.fullmatch(media_type):
            raise invalid(param, "expected a data URL: data:<media type>;base64,<data>.")
    else:
        data = value
        media_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    if len(data) > (MAX_FILE_BYTES + 2) // 3 * 4:
        most = MAX_FILE_BYTES // 2**20
        raise invalid(param, f"a file given inline may have at most {most} MiB.")
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(param, "the file's base64 data is not valid.") from None
    if not decoded:
        raise invalid(param, "the file is empty.")
    return f"data:{media_type};base64,{data}"


def check_image_url(url: str) -> str:
    """An image's address, checked: ``data:image/png;base64,...`` (PNG, JPEG, GIF or
    WebP) or an ``http(s)://`` address the provider fetches itself. Raises ``ValueError``."""
    if url[:8].lower().startswith(("http://", "https://")):
        if len(url) > 8192:
            raise ValueError("an image address may have at most 8192 characters")
        if not urlsplit(url).hostname:
            raise ValueError("the image address has no host")
        return url
    found = _DATA_URL.fullmatch(url)
    if found is None:
        raise ValueError(
            "give an http(s) address or a data URL: data:image/png;base64,... "
            "(png, jpeg, gif or webp)"
        )
    media_type, data = found.groups()
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the data URL's base64 data is not valid") from None
    if image_type(decoded) != media_type:
        raise ValueError(f"the data URL's data is not an image of type {media_type}")
    return url


def _image(part: dict[str, Any], at: str, dialect: Dialect) -> str:
    """An image part's URL, checked (``check_image_url``)."""
    image = part.get("image_url")
    nested = isinstance(image, dict)
    url = image.get("url") if isinstance(image, dict) else image
    param = f"{at}.image_url.url" if nested or dialect.nested else f"{at}.image_url"
    if not isinstance(url, str):
        problem = "expected an http(s) or data: URL."
        if part.get("file_id"):
            problem = "file_id images are not supported; send image_url."
        raise invalid(param, problem)
    if not url:
        raise invalid(param, "expected an http(s) or data: URL.")
    try:
        return check_image_url(url)
    except ValueError as exc:
        raise invalid(param, str(exc)) from None


# ------------------------------------------------------------------------------ sampling

#: The sampling options a face may take, sent to the provider as parameters by these
#: names; the face's own name of the output cap is read apart (``read_sampling``).
SAMPLING = ("temperature", "top_p", "stop", "seed", "presence_penalty", "frequency_penalty")


def read_sampling(
    body: Any, base: Mapping[str, Any] | None = None, *, most: int | None = None
) -> dict[str, Any]:
    """Model parameters: ``base`` (an assistant's), then the sampling options ``body`` sets
    among ``SAMPLING`` (those it has), then ``most``, its cap on output tokens, as
    ``max_tokens``."""
    parameters = dict(base or {})
    for name in SAMPLING:
        value = getattr(body, name, None)
        if value is not None:
            parameters[name] = value
    if most is not None:
        parameters["max_tokens"] = most
    return parameters
