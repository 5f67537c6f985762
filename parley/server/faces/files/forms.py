"""What the Files and Uploads APIs read from a request beyond what every face that takes
a file does (``kit.forms``, whose names are here too): the purpose, ``expires_after`` in the
form's bracket notation, and the media type."""

from __future__ import annotations

import re

from starlette.datastructures import FormData

from parley.errors import InvalidRequest
from parley.server.faces.files.schemas import MAX_EXPIRY, MIN_EXPIRY, PURPOSES
from parley.server.faces.kit.forms import (
    FORM_OVERHEAD,
    MAX_FILENAME,
    MAX_PART_BYTES,
    body_limits,
    chunks_of,
    content_disposition,
    form_file,
    form_text,
    read_form,
    stored_filename,
    too_large,
)

__all__ = [
    "FORM_OVERHEAD",
    "MAX_FILENAME",
    "MAX_PART_BYTES",
    "body_limits",
    "check_purpose",
    "chunks_of",
    "content_disposition",
    "form_expiry",
    "form_file",
    "form_text",
    "media_type",
    "read_form",
    "stored_filename",
    "too_large",
]

_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*")


def check_purpose(value: str | None) -> str:
    if value is None:
        raise InvalidRequest(
            "Missing required parameter: 'purpose'.",
            code="missing_required_parameter",
            param="purpose",
        )
    if value not in PURPOSES:
        raise InvalidRequest(
            f"Invalid 'purpose': {value[:64]!r}. Expected one of {', '.join(PURPOSES)}.",
            code="invalid_value",
            param="purpose",
        )
    return value


def form_expiry(form: FormData) -> int | None:
    """``expires_after[anchor]`` and ``expires_after[seconds]`` (as the OpenAI SDKs send
    ``expires_after``): the seconds, or None when neither is given."""
    anchor = form_text(form, "expires_after[anchor]")
    seconds = form_text(form, "expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at":
        raise InvalidRequest(
            "Invalid 'expires_after.anchor': expected 'created_at'.",
            code="invalid_value",
            param="expires_after.anchor",
        )
    number = int(seconds) if seconds is not None and seconds.strip().isdigit() else None
    if number is None or not MIN_EXPIRY <= number <= MAX_EXPIRY:
        raise InvalidRequest(
            f"Invalid 'expires_after.seconds': expected a whole number from {MIN_EXPIRY} to "
            f"{MAX_EXPIRY}.",
            code="invalid_value",
            param="expires_after.seconds",
        )
    return number


def media_type(given: str | None) -> str | None:
    """A media type worth keeping (``type/subtype``, without parameters), else None."""
    if not given:
        return None
    bare = given.split(";", 1)[0].strip().lower()
    return bare if len(bare) <= 255 and _MEDIA_TYPE.fullmatch(bare) else None
