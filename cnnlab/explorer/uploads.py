"""Uploaded images: checked to be an image within the pixel cap before any decoding, then read
by the same functions the command line uses (through a private temporary file)."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import ApiError


def check_image(data: bytes, max_pixels: int) -> tuple[int, int]:
    """``(width, height)`` of an encoded image, read from its header only; 400 for a file that
    is not an image, 413 for one with more than ``max_pixels`` pixels."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ApiError("expected an image file, received an empty upload.")
    try:
        with Image.open(io.BytesIO(data)) as image:           # reads the header, not the pixels
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ApiError("expected an image file (PNG, JPEG, BMP, GIF, TIFF, WebP...), received "
                       f"{len(data):,} bytes that are not an image.", 415) from None
    if width * height > max_pixels:
        raise ApiError(f"the image is {width}×{height} = {width * height:,} pixels; the limit "
                       f"is {max_pixels:,} pixels.", 413)
    return width, height


@contextlib.contextmanager
def as_file(data: bytes) -> Iterator[Path]:
    """The upload as a temporary file (a name the server makes, never one the client sends)."""
    fd, name = tempfile.mkstemp(prefix="cnnlab-upload-")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        yield Path(name)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)


async def image_field(request, max_bytes: int, max_pixels: int, field: str = "image"
                      ) -> tuple[bytes, dict[str, str]]:
    """The image of a multipart upload (field ``field``) and the form's other text fields."""
    from .security import read_body

    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(f"expected a multipart/form-data upload with a field {field!r}, "
                       f"received Content-Type {request.headers.get('content-type', '(none)')!r}.",
                       415)
    request._body = await read_body(request, max_bytes)      # Starlette parses it from memory
    try:
        form = await request.form(max_files=1, max_fields=32)
    except Exception as error:                                # a malformed multipart body
        raise ApiError(f"could not read the multipart upload: {error}") from None
    upload = form.get(field)
    if upload is None or isinstance(upload, str):
        raise ApiError(f"expected a file in the multipart field {field!r}, received "
                       f"{'none' if upload is None else 'text'}.")
    data = await upload.read()
    check_image(data, max_pixels)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    return data, fields
