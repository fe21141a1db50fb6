"""Multimodal models: which models go to the multimodal endpoint, and the image parts of a
message, checked before any upstream work.

DashScope serves multimodal models (the qwen-vl, qwen-omni and qvq families...) on
``/services/aigc/multimodal-generation/generation``, where a message's content is a list of
``{"text": ...}`` / ``{"image": ...}`` parts: the format of the vendor SDK's
``MultiModalConversation``. A request goes there when its model starts with one of the
configured prefixes (``VOXGATE_MULTIMODAL_MODEL_PREFIXES``) or when it carries an image (a
text model cannot take one, so the upstream's own error names the model).

Inline image bytes travel as a ``data:`` URL, which the service accepts in place of an image
URL. They are checked here: at most :data:`MAX_IMAGE_BYTES`, and one of the image formats the
service reads, recognised by their first bytes (the caller declares no content type).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

from voxgate.generation.protocol import ImagePart, Part, TextPart
from voxgate.generation.v1 import generation_pb2
from voxgate.speech.validation import InvalidRequest

DEFAULT_MULTIMODAL_PREFIXES = (
    "qwen-vl",
    "qwen2-vl",
    "qwen2.5-vl",
    "qwen3-vl",
    "qwen-omni",
    "qwen2.5-omni",
    "qwen3-omni",
    "qvq",
    "qwen3.6",
    "local-echo-vl",
)
"""Model name prefixes routed to the multimodal endpoint; ``local-echo-vl`` is the embedded
upstream's multimodal model. qwen3.6 models are multimodal (DashScope's guide routes
qwen3.6-plus to ``MultiModalConversation``)."""
MAX_IMAGE_BYTES = 3 * 1024 * 1024
"""Inline image limit: inside gRPC's default 4 MiB message, and its base64 (4/3 larger) inside
the service's 10 MB data-URL limit."""
IMAGE_URL_SCHEMES = ("http://", "https://", "oss://", "data:image/")

_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"BM", 0, "image/bmp"),
    (b"WEBP", 8, "image/webp"),  # after "RIFF" and the size
)


def parse_prefixes(text: str) -> tuple[str, ...]:
    """``VOXGATE_MULTIMODAL_MODEL_PREFIXES``: comma-separated, blanks ignored, at least one."""
    prefixes = tuple(part.strip() for part in text.split(",") if part.strip())
    if not prefixes:
        raise ValueError("must name at least one model prefix, comma-separated")
    return prefixes


def is_multimodal(model: str, prefixes: Iterable[str]) -> bool:
    return any(model.startswith(prefix) for prefix in prefixes if prefix)


def image_type(data: bytes) -> str | None:
    """The MIME type of ``data`` from its first bytes, if it is an image format the service reads."""
    for signature, offset, mime in _SIGNATURES:
        if data[offset : offset + len(signature)] == signature:
            if mime == "image/webp" and not data.startswith(b"RIFF"):
                continue
            return mime
    return None


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def check_parts(field: str, role: str, parts: Iterable[generation_pb2.ContentPart]) -> tuple[Part, ...]:
    """A message's parts; raises :class:`InvalidRequest` naming the part at fault."""
    checked: list[Part] = []
    for index, part in enumerate(parts):
        where = f"{field}.parts[{index}]"
        kind = part.WhichOneof("kind")
        if kind is None:
            raise InvalidRequest(where, "set one of text, image_url, image")
        if kind == "text":
            checked.append(TextPart(part.text))
            continue
        if role != "user":
            raise InvalidRequest(f"{where}.{kind}", f"images are allowed in user messages only, not {role}")
        if kind == "image_url":
            if not part.image_url.startswith(IMAGE_URL_SCHEMES):
                raise InvalidRequest(
                    f"{where}.image_url", "must be an http(s):// or oss:// URL, or a data:image/... URL"
                )
            checked.append(ImagePart(part.image_url))
            continue
        if len(part.image) > MAX_IMAGE_BYTES:
            raise InvalidRequest(
                f"{where}.image", f"{len(part.image)} bytes is over the limit of {MAX_IMAGE_BYTES}"
            )
        mime = image_type(part.image)
        if mime is None:
            raise InvalidRequest(f"{where}.image", "not a PNG, JPEG, WEBP, GIF or BMP image")
        checked.append(ImagePart(data_url(part.image, mime)))
    return tuple(checked)
