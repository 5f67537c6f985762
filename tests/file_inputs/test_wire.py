"""What the OpenAI-compatible Chat Completions body holds of a message's files: OpenAI's own
API takes a PDF as a ``file`` part; a server elsewhere, or another kind of file, gets the
file's text (the other kinds are checked end to end in ``test_responses_files``)."""

from __future__ import annotations

import base64

from parley.providers.base import ChatMessage, FileInput, ModelRequest
from parley.providers.file_parts import reads_natively
from parley.providers.openai_chat import request_body
from parley.types import Role

REPORT = b"%PDF-1.4 a tiny stand-in"


def test_which_files_go_as_bytes() -> None:
    pdf, text = "application/pdf", "text/plain"
    assert reads_natively("openai-chat", pdf)  # OpenAI's own API, the default address
    assert reads_natively("openai-chat", pdf, base_url="https://api.openai.com/v1")
    assert not reads_natively("openai-chat", pdf, base_url="https://api.deepseek.com")
    assert not reads_natively("openai-chat", text)
    assert reads_natively("openai-responses", text) and reads_natively("openai-responses", pdf)
    assert reads_natively("anthropic", pdf) and not reads_natively("anthropic", text)
    assert reads_natively("gemini", pdf) and not reads_natively("gemini", text)
    assert not reads_natively("ollama", pdf) and not reads_natively("demo", pdf)


def test_a_pdf_goes_to_openai_as_a_file_part_and_text_as_text() -> None:
    files = [
        FileInput(filename="report.pdf", data=REPORT, media_type="application/pdf"),
        FileInput(filename="notes.md", data=b"# Notes", media_type="text/markdown", text="# Notes"),
    ]
    message = ChatMessage(role=Role.USER, content="Read these.", files=files)
    body = request_body(ModelRequest(model="gpt-test", messages=[message]))
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Read these."},
                {
                    "type": "file",
                    "file": {
                        "filename": "report.pdf",
                        "file_data": "data:application/pdf;base64,"
                        + base64.b64encode(REPORT).decode(),
                    },
                },
                {"type": "text", "text": "Contents of file notes.md:\n# Notes"},
            ],
        }
    ]
    gone = FileInput(filename="old.txt", file_id="file-x", missing="No such File object")
    body = request_body(ModelRequest(model="m", messages=[ChatMessage(Role.USER, files=[gone])]))
    assert body["messages"] == [
        {"role": "user", "content": "[The file old.txt is not available: No such File object]"}
    ]
