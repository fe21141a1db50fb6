"""What ``local-echo-vl`` says of an image: ``640x480 PNG`` for inline bytes it can read the
size of (PNG, GIF, JPEG, WEBP VP8X, BMP headers), the URL for a URL."""

from __future__ import annotations

import base64
import binascii
import struct


def describe(image: str) -> str:
    if not image.startswith("data:"):
        return image
    header, _, payload = image.partition(",")
    mime = header[len("data:") :].partition(";")[0] or "application/octet-stream"
    try:
        data = base64.b64decode(payload, validate=True) if header.endswith(";base64") else payload.encode()
    except (binascii.Error, ValueError):
        return f"an undecodable {mime} data URL"
    size = _size(data)
    kind = mime.rpartition("/")[2].upper()
    return f"{size[0]}x{size[1]} {kind}" if size else f"a {kind} of {len(data)} bytes I cannot read"


def _size(data: bytes) -> tuple[int, int] | None:
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            return struct.unpack(">II", data[16:24])
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", data[6:10])
        if data.startswith(b"BM"):
            width, height = struct.unpack("<ii", data[18:26])
            return width, abs(height)
        if data.startswith(b"RIFF") and data[12:16] == b"VP8X":
            width = int.from_bytes(data[24:27], "little") + 1
            height = int.from_bytes(data[27:30], "little") + 1
            return width, height
        if data.startswith(b"\xff\xd8"):
            return _jpeg_size(data)
    except struct.error:
        return None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    offset = 2
    while offset + 9 < len(data):
        if data[offset] != 0xFF:
            return None
        marker = data[offset + 1]
        length = struct.unpack(">H", data[offset + 2 : offset + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start of frame
            height, width = struct.unpack(">HH", data[offset + 5 : offset + 9])
            return width, height
        offset += 2 + length
    return None
