"""Checks a file before it leaves the machine: its real type from its bytes, its size, its pixel count.

The Space only understands images and speech; anything else, or a broken file, would cost the user a queue
wait and GPU quota to learn that. Every refusal names the file and the problem. Blocking file work runs in a
thread (``inspect_file`` is called through ``asyncio.to_thread`` by the uploader).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .config import Limits
from .errors import UploadRejected

MB = 1024 * 1024  # the limits (config.Limits) are in these units: "25 MB" is 25 * 1024 * 1024 bytes
IMAGE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif",
                 "BMP": "image/bmp"}
AUDIO_MIME = {"WAV": "audio/wav", "MP3": "audio/mpeg", "FLAC": "audio/flac", "OGG": "audio/ogg",
              "M4A": "audio/mp4", "WEBM": "audio/webm"}
_EXT_FORMAT = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".webp": "WEBP", ".gif": "GIF",
               ".bmp": "BMP", ".wav": "WAV", ".wave": "WAV", ".mp3": "MP3", ".flac": "FLAC", ".ogg": "OGG",
               ".oga": "OGG", ".opus": "OGG", ".m4a": "M4A", ".mp4": "M4A", ".webm": "WEBM"}


@dataclass(frozen=True)
class MediaFile:
    path: str
    name: str
    kind: str  # "image" or "audio"
    format: str
    mime_type: str
    size: int
    sha256: str
    width: int | None = None
    height: int | None = None


def safe_name(path: str) -> str:
    """The file's own name, without folders or control characters, as the Space should see it."""
    name = re.split(r"[\\/]", str(path))[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip().lstrip(".")
    if len(name) > 120:  # shortened, keeping the extension: a Space may judge the type by it
        stem, dot, ext = name.rpartition(".")
        name = stem[: 119 - len(ext)] + dot + ext if dot and len(ext) <= 10 else name[:120]
    return name or "file"


def sniff_audio(head: bytes) -> str | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "WAV"
    if head[:4] == b"fLaC":
        return "FLAC"
    if head[:4] == b"OggS":
        return "OGG"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "WEBM"
    if head[4:8] == b"ftyp" and head[8:12] in (b"M4A ", b"M4B ", b"mp42", b"isom", b"dash", b"iso5", b"mp41"):
        return "M4A"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "MP3"
    return None


def _image_info(path: str, name: str, limits: Limits) -> tuple[str, int, int] | None:
    try:
        with Image.open(path) as img:
            fmt = (img.format or "").upper()
            width, height = img.size
            if fmt not in IMAGE_FORMATS:
                raise UploadRejected(f"{name}: {fmt or 'this'} images are not supported; use PNG, JPEG, WebP, "
                                     "GIF or BMP.", reason="unsupported")
            if width * height > limits.max_image_pixels:
                raise UploadRejected(f"{name}: {width}x{height} pixels is more than the {limits.max_image_pixels:,}"
                                     " allowed; scale it down first.", reason="too_many_pixels")
            img.load()
    except UploadRejected:
        raise
    except Image.DecompressionBombError as exc:
        raise UploadRejected(f"{name}: the image's dimensions are too large to open safely.",
                             reason="too_many_pixels") from exc
    except UnidentifiedImageError:
        return None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UploadRejected(f"{name}: the image is damaged or truncated ({exc}).", reason="damaged") from exc
    return fmt, width, height


def inspect_file(path: str | os.PathLike[str], limits: Limits, display_name: str | None = None) -> MediaFile:
    """Identify and check one file; raises ``UploadRejected`` with the reason. Blocking: run in a thread."""
    path = str(path)
    name = safe_name(display_name or path)
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise UploadRejected(f"{name}: the file cannot be read.", reason="unreadable") from exc
    if size == 0:
        raise UploadRejected(f"{name}: the file is empty.", reason="empty")
    biggest = max(limits.max_image_bytes, limits.max_audio_bytes)
    if size > biggest:
        raise UploadRejected(f"{name}: {size / MB:.1f} MB is over the {biggest / MB:.0f} MB limit.",
                             reason="too_large")
    with open(path, "rb") as fh:
        head = fh.read(64)
    audio = sniff_audio(head)
    image = None if audio else _image_info(path, name, limits)
    if image is None and audio is None:
        raise UploadRejected(f"{name}: its contents are not an image or audio format the model can read. Use "
                             "PNG, JPEG, WebP, GIF, BMP images or WAV, MP3, FLAC, OGG, M4A, WebM audio.",
                             reason="unsupported")
    fmt = image[0] if image else audio
    assert fmt is not None
    claimed = _EXT_FORMAT.get(Path(name).suffix.lower())
    if claimed is not None and claimed != fmt:
        raise UploadRejected(f"{name}: the name says {claimed} but the contents are {fmt}; rename it to match.",
                             reason="extension_mismatch")
    kind = "image" if image else "audio"
    cap = limits.max_image_bytes if kind == "image" else limits.max_audio_bytes
    if size > cap:
        raise UploadRejected(f"{name}: {size / MB:.1f} MB is over the {cap / MB:.0f} MB limit for {kind} files.",
                             reason="too_large")
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    mime = IMAGE_FORMATS.get(fmt) or AUDIO_MIME[fmt]
    return MediaFile(path=path, name=name, kind=kind, format=fmt, mime_type=mime, size=size,
                     sha256=digest.hexdigest(), width=image[1] if image else None,
                     height=image[2] if image else None)
