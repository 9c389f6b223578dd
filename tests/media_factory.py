"""Small real media files for tests, made on the spot (nothing binary is committed for tests)."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

from PIL import Image


def png(path: Path, width: int = 37, height: int = 23, color: str = "red") -> Path:
    Image.new("RGB", (width, height), color).save(path, "PNG")
    return path


def jpeg(path: Path, width: int = 40, height: int = 30) -> Path:
    Image.new("RGB", (width, height), "blue").save(path, "JPEG")
    return path


def wav(path: Path, seconds: float = 2.5, rate: int = 8000) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(struct.pack("<h", 0) * int(seconds * rate))
    return path
