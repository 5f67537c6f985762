"""What an MCP tool call returned, as the text sent back to the model.

Text blocks and text resources as they are; binary resources of a textual type decoded;
images, audio, links and other binary resources as a one-line description with their size.
Text longer than a limit is cut, and the cut says how much went.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json

from mcp import types

__all__ = ["cut_text", "result_text"]


def result_text(result: types.CallToolResult) -> str:
    """A tool result as the text sent to the model: its blocks one per line, or its
    structured content as compact JSON when it has no text."""
    parts = [_block_text(block) for block in result.content]
    has_text = any(isinstance(block, types.TextContent) for block in result.content)
    if not has_text and result.structured_content is not None:
        compact = json.dumps(
            result.structured_content, separators=(",", ":"), ensure_ascii=False, default=str
        )
        parts.insert(0, compact)
    return "\n".join(parts)


def cut_text(text: str, limit: int) -> tuple[str, bool]:
    """``text`` kept to its first ``limit`` characters, with a last line saying how many were
    cut; and whether it was cut."""
    if len(text) <= limit:
        return text, False
    cut = len(text) - limit
    return f"{text[:limit]}\n[output cut: {cut} more characters]", True


def _block_text(block: types.ContentBlock) -> str:
    if isinstance(block, types.TextContent):
        return block.text
    if isinstance(block, types.ImageContent):
        return f"[image: {block.mime_type}, {_decoded_size(block.data)} bytes]"
    if isinstance(block, types.AudioContent):
        return f"[audio: {block.mime_type}, {_decoded_size(block.data)} bytes]"
    if isinstance(block, types.ResourceLink):
        mime = f", {block.mime_type}" if block.mime_type else ""
        return f"[resource link: {block.name} <{block.uri}>{mime}]"
    resource = block.resource
    if isinstance(resource, types.TextResourceContents):
        return resource.text
    if _is_textual(resource.mime_type):
        with contextlib.suppress(binascii.Error, UnicodeDecodeError):
            return base64.b64decode(resource.blob, validate=True).decode("utf-8")
    mime = resource.mime_type or "unknown type"
    return f"[resource: {resource.uri}, {mime}, {_decoded_size(resource.blob)} bytes]"


def _decoded_size(data: str) -> int:
    stripped = data.strip().rstrip("=")
    return len(stripped) * 3 // 4


def _is_textual(mime: str | None) -> bool:
    if not mime:
        return False
    mime = mime.split(";")[0].strip().lower()
    return mime.startswith("text/") or mime.endswith(("json", "xml", "yaml", "javascript"))
