"""Images for user messages: turn a file or bytes into a ``data:`` URL."""

from __future__ import annotations

import base64
import os

from parley.types import image_type


def image_data_url(source: str | os.PathLike[str] | bytes, media_type: str | None = None) -> str:
    """A ``data:image/...;base64,...`` URL of an image file (a path) or its bytes, for the
    ``images`` of ``create_message`` and ``process``. The type is read from the data
    (PNG, JPEG, GIF or WebP) unless ``media_type`` is given."""
    if isinstance(source, bytes):
        data = source
    else:
        with open(source, "rb") as f:
            data = f.read()
    media_type = media_type or image_type(data)
    if media_type is None:
        raise ValueError("not a PNG, JPEG, GIF or WebP image; give media_type= to say what it is")
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"
