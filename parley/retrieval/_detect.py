"""What a file is, told from its bytes first, and text decoded by one policy.

The name and the claimed content type only choose between the kinds of *text* (Markdown,
JSON, CSV, source code, HTML, plain); whether a file is text, a PDF, a DOCX or something
else is read from its bytes:

- ``%PDF-`` at the start: a PDF; also further in the first 1 KiB (readers accept a little
  junk before the header) when the file ends with ``%%EOF``;
- a zip archive (``PK\\x03\\x04``): looked into by the parser (a DOCX holds
  ``word/document.xml``; any other zip is named and refused);
- a known binary signature (images, archives, executables, legacy Office, ...): refused,
  with its name;
- a NUL byte anywhere (without a UTF-16 byte order mark): binary of an unknown kind,
  refused;
- anything else is text, decoded as ``decode_text`` says.

The file name is used only for its suffix, taken from its last component (``/`` and ``\\``
both separate), so ``../../etc/passwd.txt`` is just a ``.txt``: nothing here touches the
filesystem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["text", "markdown", "html", "json", "csv", "code", "pdf", "docx"]

#: Kinds parsed in a worker process (heavy or hostile-prone); the rest are read in-process.
HEAVY: frozenset[str] = frozenset({"pdf", "docx", "html", "zip"})

#: The share of a text's bytes that may be invalid UTF-8 and be replaced by U+FFFD.
MAX_INVALID_SHARE = 0.01
#: The share of control bytes (C0 other than tab, newlines and form feed, and DEL) above
#: which bytes that are not UTF-8 are taken for binary rather than a legacy encoding.
MAX_CONTROL_SHARE = 0.001

_MARKDOWN = {"md", "markdown", "mdown", "mkd", "mdx"}
_HTML = {"html", "htm", "xhtml"}
_JSON = {"json", "jsonl", "ndjson", "geojson", "ipynb"}
_CSV = {"csv", "tsv"}
_CODE = {
    # the usual languages
    *("py", "pyi", "js", "mjs", "cjs", "jsx", "ts", "tsx", "go", "rs", "java", "kt", "kts"),
    *("scala", "c", "h", "cc", "cpp", "cxx", "hpp", "hh", "hxx", "cs", "rb", "php", "swift"),
    *("m", "mm", "r", "lua", "pl", "pm", "dart", "ex", "exs", "erl", "hrl", "hs", "ml"),
    *("mli", "clj", "cljs", "fs", "jl", "zig", "nim", "vue", "svelte", "groovy", "gradle"),
    # shells, queries, styles and markup that is code
    *("sh", "bash", "zsh", "fish", "ps1", "bat", "cmd", "sql", "css", "scss", "sass", "less"),
    *("tex", "proto", "graphql", "gql", "xml", "xsd", "svg"),
    # configuration
    *("yaml", "yml", "toml", "ini", "cfg", "conf", "env", "properties", "tf", "hcl", "nix"),
}
_CODE_NAMES = {"dockerfile", "makefile", "rakefile", "gemfile", "justfile", "cmakelists.txt"}

_TYPES: dict[str, Kind] = {
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/json": "json",
    "application/x-ndjson": "json",
    "text/csv": "csv",
    "text/tab-separated-values": "csv",
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
}

#: Signatures of binary formats we do not read, and what to call them in an error.
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (0, b"\xff\xd8\xff", "a JPEG image"),
    (0, b"GIF87a", "a GIF image"),
    (0, b"GIF89a", "a GIF image"),
    (8, b"WEBP", "a WebP image"),
    (0, b"II*\x00", "a TIFF image"),
    (0, b"MM\x00*", "a TIFF image"),
    (0, b"\x1f\x8b", "a gzip archive"),
    (0, b"\xfd7zXZ\x00", "an xz archive"),
    (0, b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (0, b"Rar!\x1a\x07", "a RAR archive"),
    (0, b"PK\x05\x06", "an empty zip archive"),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Office file (doc, xls or ppt)"),
    (0, b"\x7fELF", "an executable (ELF)"),
    (0, b"\xcf\xfa\xed\xfe", "an executable (Mach-O)"),
    (0, b"\x00asm", "a WebAssembly module"),
    (0, b"SQLite format 3\x00", "an SQLite database"),
    (0, b"OggS", "an Ogg file"),
    (0, b"fLaC", "a FLAC file"),
    (4, b"ftyp", "an MP4 or QuickTime file"),
    (0, b"\x1aE\xdf\xa3", "a Matroska or WebM file"),
)

#: Short signatures that text could start with: trusted only beside a NUL byte.
_SHORT_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"MZ", "an executable (Windows)"),
    (b"ID3", "an MP3 file"),
)

_BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
#: Every byte but the C0 controls (tab, line feed, vertical tab, form feed and carriage
#: return are text) and DEL: ``bytes.translate(None, _NOT_CONTROL)`` leaves the controls.
_NOT_CONTROL = bytes(
    b for b in range(256) if not (b < 0x20 and b not in b"\t\n\v\f\r") and b != 0x7F
)
_CONTROLS_RE = re.compile("[\x00-\x08\x0e-\x1f\x7f]")
_HTML_START = re.compile(rb"\s*<(!doctype\s+html|html[\s>])", re.IGNORECASE)


class NotText(Exception):
    """Bytes that are neither a known format nor text in an encoding we read."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Sniffed:
    """What a file is: a ``Kind``, ``zip`` (looked into by the parser), or ``None`` with
    ``refused`` naming what it is."""

    kind: Kind | Literal["zip"] | None
    refused: str | None = None


def suffix(filename: str) -> str:
    """The lower-case extension of the file name's last component (no dot), or the whole
    name for the extension-less names of code (``Makefile``)."""
    base = re.split(r"[/\\]", filename)[-1].strip().lower()
    if base in _CODE_NAMES:
        return base
    stem, dot, ext = base.rpartition(".")
    return ext if dot and stem else ""


def sniff(data: bytes, filename: str, content_type: str | None) -> Sniffed:
    """The kind of ``data``, told from its bytes, then its name and claimed type."""
    head = data[:1024]
    if head.startswith(b"%PDF-") or (b"%PDF-" in head and data[-1024:].rstrip().endswith(b"%%EOF")):
        return Sniffed("pdf")
    if head.startswith(b"PK\x03\x04"):
        return Sniffed("zip")
    for offset, signature, name in _SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            return Sniffed(None, refused=name)
    if b"\x00" in data and not any(data.startswith(bom) for bom, _ in _BOMS[1:]):
        for signature, name in _SHORT_SIGNATURES:
            if head.startswith(signature):
                return Sniffed(None, refused=name)
        return Sniffed(None, refused="binary data of an unknown kind (it holds NUL bytes)")
    return Sniffed(text_kind(head, filename, content_type))


def text_kind(head: bytes, filename: str, content_type: str | None) -> Kind:
    """Which kind of text: the name's extension, else the claimed type, else HTML when the
    bytes start like an HTML page, else plain text."""
    ext = suffix(filename)
    for names, kind in (
        (_MARKDOWN, "markdown"),
        (_HTML, "html"),
        (_JSON, "json"),
        (_CSV, "csv"),
        (_CODE, "code"),
        (_CODE_NAMES, "code"),
    ):
        if ext in names:
            return kind  # type: ignore[return-value]
    claimed = _TYPES.get((content_type or "").split(";")[0].strip().lower())
    if claimed is not None and claimed not in ("pdf", "docx"):
        return claimed
    if _HTML_START.match(head):
        return "html"
    return "text"


def decode_text(data: bytes) -> tuple[str, str]:
    """The text of ``data`` and the encoding it was read with.

    The policy: a byte order mark (UTF-8, UTF-16, UTF-32) is obeyed. Otherwise the bytes
    are UTF-8; when some are not valid UTF-8, up to ``MAX_INVALID_SHARE`` (1 %) of them
    are replaced by U+FFFD and the rest is kept. Past that the file is taken for a legacy
    8-bit encoding and read as Windows-1252 (which also reads ISO-8859-1), unless it holds
    control bytes (over ``MAX_CONTROL_SHARE``), which text in such an encoding does not:
    then it is refused (``NotText``). Line ends become ``\\n``, and the control characters
    left (other than tab and form feed) are dropped.
    """
    encoding = "utf-8"
    for bom, name in _BOMS:
        if data.startswith(bom):
            data, encoding = data[len(bom) :], name
            break
    if encoding != "utf-8":
        text = data.decode(encoding, errors="replace")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text, encoding = _decode_invalid(data)
    return clean(text), encoding


def clean(text: str) -> str:
    """``text`` with its line ends made ``\n`` and its control characters (but tab and
    form feed) dropped."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if _CONTROLS_RE.search(text):
        text = _CONTROLS_RE.sub("", text)
    return text


def _decode_invalid(data: bytes) -> tuple[str, str]:
    text = data.decode("utf-8", errors="replace")
    invalid = text.count("\ufffd")
    if invalid <= max(1, len(data) * MAX_INVALID_SHARE):
        return text, "utf-8"
    controls = len(data.translate(None, _NOT_CONTROL))
    if controls <= len(data) * MAX_CONTROL_SHARE:
        return data.decode("cp1252", errors="replace"), "cp1252"
    share = invalid / len(data)
    raise NotText(
        f"the file is not text: {share:.0%} of it is not valid UTF-8, and its control "
        "bytes say it is not text in another encoding either"
    )
