"""Files given with a user message, as each kind of provider receives them.

A provider that has a file input of its own gets the file's bytes in it:

| kind | what it receives |
|---|---|
| ``openai-responses`` | every file as an ``input_file`` part: ``file_data`` (a base64 data URL) and ``filename`` |
| ``openai-chat`` (OpenAI's own API) | a PDF as a ``file`` part (``file_data``, ``filename``); other files as text |
| ``anthropic`` | a PDF as a ``document`` block (base64, ``application/pdf``); other files as a ``document`` block of their text |
| ``gemini`` | a PDF as ``inlineData`` (``application/pdf``); other files as ``inlineData`` of their text (``text/plain``) |
| ``ollama``, ``demo``, ``openai-chat`` elsewhere (DeepSeek, vLLM, ...) | the file's text, in a text part (``as_text``) |

A file read as text is its extracted text (``parley.retrieval``: text, Markdown, HTML,
JSON, CSV, source code, PDF and DOCX), at most ``MAX_TEXT_CHARS`` characters; a longer
one, or one with no text, is refused before the call.
"""

from __future__ import annotations

import base64

from parley.providers.base import ChatMessage, FileInput

#: The most characters of a file's text sent to a model that reads files as text.
MAX_TEXT_CHARS = 200_000
#: The largest file sent to a model, in bytes (32 MiB: Anthropic's whole request).
MAX_FILE_BYTES = 32 * 1024 * 1024

PDF = "application/pdf"
#: Hosts of OpenAI's own API, whose Chat Completions take PDF ``file`` parts.
_OPENAI_HOSTS = ("api.openai.com",)


def reads_natively(kind: str, media_type: str, *, base_url: str | None = None) -> bool:
    """Whether a provider of ``kind`` (at ``base_url``) gets a file of ``media_type`` as
    its own file input (its bytes) rather than as text."""
    if kind == "openai-responses":
        return True
    if kind in ("anthropic", "gemini"):
        return media_type == PDF
    if kind == "openai-chat":
        official = base_url is None or any(host in base_url for host in _OPENAI_HOSTS)
        return official and media_type == PDF
    return False


def data_url(file: FileInput) -> str:
    """The file's bytes as a ``data:`` URL of its media type."""
    encoded = base64.b64encode(file.data or b"").decode()
    return f"data:{file.media_type or 'application/octet-stream'};base64,{encoded}"


def base64_data(file: FileInput) -> str:
    """The file's bytes in base64."""
    return base64.b64encode(file.data or b"").decode()


def text_base64(file: FileInput) -> str:
    """The file's text (``as_text``), UTF-8 in base64."""
    return base64.b64encode(body_text(file).encode()).decode()


def body_text(file: FileInput) -> str:
    """What a model reads of a file: its text (less the white space that ends it), or why
    it has none."""
    if file.missing is not None:
        return f"[The file {file.filename} is not available: {file.missing}]"
    return (file.text or "").rstrip()


def as_text(file: FileInput) -> str:
    """A file for a model that reads files as text: its name, then its text."""
    if file.missing is not None:
        return body_text(file)
    return f"Contents of file {file.filename}:\n{body_text(file)}"


def native(file: FileInput) -> bool:
    """Whether the file goes as bytes (it was read for that: it has no ``text``)."""
    return file.missing is None and file.text is None and file.data is not None


def with_file_texts(message: ChatMessage) -> str:
    """A message's text with its files' texts after it (``as_text``), a blank line apart:
    for an API whose message content is one string."""
    texts = [as_text(f) for f in message.files]
    return "\n\n".join([message.content, *texts] if message.content else texts)
