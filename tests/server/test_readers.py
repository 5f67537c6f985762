"""The faces' one reader each of tools, tool choice, output format and content parts
(``kit.readers``): the same rule on every face, each fault named by the face's own field."""

from __future__ import annotations

from typing import Any

import pytest

from parley.errors import InvalidRequest
from parley.server.faces.kit.readers import (
    ASSISTANTS,
    CHAT,
    RESPONSES,
    Dialect,
    read_output_format,
    read_parts,
    read_tool_choice,
    read_tools,
)

WEATHER = {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}
NESTED = {"type": "function", "function": WEATHER}
FLAT = {"type": "function", **WEATHER}
PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="


def fault(call: Any, *args: Any, **kwargs: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as refused:
        call(*args, **kwargs)
    return refused.value


@pytest.mark.parametrize(
    ("dialect", "tool", "param"),
    [
        (CHAT, {"type": "function", "function": {"name": "bad name"}}, "tools[1].function.name"),
        (RESPONSES, {"type": "function", "name": "bad name"}, "tools[1].name"),
        (
            ASSISTANTS,
            {"type": "function", "function": {"name": "bad name"}},
            "tools[1].function.name",
        ),
        (ASSISTANTS, {"name": "bad name"}, "tools[1].name"),
        (CHAT, NESTED, "tools[1].function.name"),  # given twice
        (RESPONSES, FLAT, "tools[1].name"),
    ],
)
def test_a_bad_tool_is_named_by_the_faces_own_field(
    dialect: Dialect, tool: dict[str, Any], param: str
) -> None:
    first = FLAT if dialect is RESPONSES else NESTED
    error = fault(read_tools, [first, tool], dialect)
    assert (error.param, error.code) == (param, "invalid_value")


def test_tools_read_alike_on_every_face() -> None:
    chat, _ = read_tools([NESTED], CHAT)
    responses, strict = read_tools([{**FLAT, "strict": True}], RESPONSES)
    assistants, _ = read_tools([FLAT], ASSISTANTS)
    assert chat == responses == assistants
    assert strict == ["get_weather"]


@pytest.mark.parametrize(
    ("dialect", "code"),
    [(CHAT, "invalid_value"), (RESPONSES, "unsupported_tool"), (ASSISTANTS, "unsupported_tool")],
)
def test_a_hosted_tool_is_refused_by_its_type(dialect: Dialect, code: str) -> None:
    error = fault(read_tools, [{"type": "web_search"}], dialect)
    assert (error.param, error.code) == ("tools[0].type", code)


@pytest.mark.parametrize(
    ("dialect", "choice", "neutral"),
    [
        (
            CHAT,
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "function", "name": "get_weather"},
        ),
        (
            RESPONSES,
            {"type": "function", "name": "get_weather"},
            {"type": "function", "name": "get_weather"},
        ),
        (
            CHAT,
            {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "required",
                    "tools": [{"type": "function", "function": {"name": "get_weather"}}],
                },
            },
            {
                "type": "allowed_tools",
                "mode": "required",
                "tools": [{"type": "function", "name": "get_weather"}],
            },
        ),
        (
            RESPONSES,
            {
                "type": "allowed_tools",
                "mode": "required",
                "tools": [{"type": "function", "name": "get_weather"}],
            },
            {
                "type": "allowed_tools",
                "mode": "required",
                "tools": [{"type": "function", "name": "get_weather"}],
            },
        ),
        (RESPONSES, "required", "required"),
    ],
)
def test_a_tool_choice_in_each_faces_spelling(dialect: Dialect, choice: Any, neutral: Any) -> None:
    assert read_tool_choice(choice, {"get_weather"}, dialect) == neutral


@pytest.mark.parametrize(
    ("dialect", "choice", "param"),
    [
        (CHAT, {"type": "function", "function": {"name": "other"}}, "tool_choice.function.name"),
        (RESPONSES, {"type": "function", "name": "other"}, "tool_choice.name"),
        (RESPONSES, {"type": "function", "name": {"a": 1}}, "tool_choice.name"),
        (CHAT, "sometimes", "tool_choice"),
    ],
)
def test_a_tool_choice_naming_no_tool_is_named(dialect: Dialect, choice: Any, param: str) -> None:
    assert fault(read_tool_choice, choice, {"get_weather"}, dialect).param == param


def test_an_output_format_nested_or_flat_is_one_neutral_format() -> None:
    schema = {"type": "object"}
    nested = {"type": "json_schema", "json_schema": {"name": "w", "schema": schema}}
    flat = {"type": "json_schema", "name": "w", "schema": schema}
    neutral = {"type": "json_schema", "name": "w", "schema": schema}
    assert read_output_format(nested, CHAT) == read_output_format(flat, RESPONSES) == neutral
    error = fault(read_output_format, {"type": "json_schema", "name": ""}, RESPONSES, "text.format")
    assert error.param == "text.format.name"
    error = fault(read_output_format, {"type": "json_schema", "json_schema": {}}, CHAT)
    assert error.param == "response_format.json_schema.name"


@pytest.mark.parametrize(
    ("dialect", "parts"),
    [
        (
            CHAT,
            [
                {"type": "text", "text": "a"},
                {"type": "image_url", "image_url": {"url": PNG}},
                {"type": "text", "text": "b"},
            ],
        ),
        (
            RESPONSES,
            [
                {"type": "input_text", "text": "a"},
                {"type": "input_image", "image_url": PNG},
                {"type": "input_text", "text": "b"},
            ],
        ),
        (
            ASSISTANTS,
            [
                {"type": "text", "text": "a"},
                {"type": "image_url", "image_url": {"url": PNG}},
                {"type": "text", "text": "b"},
            ],
        ),
    ],
)
def test_text_parts_are_joined_with_nothing_between_on_every_face(
    dialect: Dialect, parts: list[dict[str, Any]]
) -> None:
    assert read_parts(parts, "content", dialect, images=True) == ("ab", [PNG])


@pytest.mark.parametrize(
    ("dialect", "part", "param"),
    [
        (
            CHAT,
            {"type": "image_url", "image_url": {"url": "ftp://x"}},
            "m.content[0].image_url.url",
        ),
        (RESPONSES, {"type": "input_image", "image_url": "ftp://x"}, "m.content[0].image_url"),
        (CHAT, {"type": {"a": 1}}, "m.content[0].type"),
        (RESPONSES, {"type": ["x"]}, "m.content[0].type"),
    ],
)
def test_a_bad_part_is_named_by_its_place(
    dialect: Dialect, part: dict[str, Any], param: str
) -> None:
    error = fault(read_parts, [part], "m.content", dialect, images=True)
    assert error.param == param and "Value error" not in error.message


@pytest.mark.parametrize(
    ("dialect", "kind", "code"),
    [
        (CHAT, "input_audio", "unsupported_parameter"),
        (RESPONSES, "input_file", "invalid_value"),
        (ASSISTANTS, "image_file", "unsupported_content"),
    ],
)
def test_a_part_type_parley_does_not_take_is_refused_by_name(
    dialect: Dialect, kind: str, code: str
) -> None:
    error = fault(read_parts, [{"type": kind}], "content", dialect, images=True)
    assert (error.param, error.code) == ("content[0].type", code)
