"""Incremental parser for the Space's event stream (``GET /gradio_api/queue/data``).

Network reads split the stream anywhere, even inside a UTF-8 character, so the decoder keeps what it has not
yet seen the end of. Pure: bytes in, messages out; the bridge does the I/O.
"""

from __future__ import annotations

import codecs
import json
from typing import Any

from ..errors import ProtocolError


class SSEDecoder:
    """Feed it bytes as they arrive; it returns each complete ``data:`` payload as a dict."""

    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")(errors="strict")
        self._buffer = ""
        self._data: list[str] = []

    def _decode(self, chunk: bytes, final: bool = False) -> str:
        try:
            return self._text.decode(chunk, final)
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"The Space's event stream is not valid UTF-8 ({exc.reason}).") from exc

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        self._buffer += self._decode(chunk)
        messages: list[dict[str, Any]] = []
        while True:
            cut = self._buffer.find("\n")
            if cut < 0:
                break
            line = self._buffer[:cut].rstrip("\r")
            self._buffer = self._buffer[cut + 1:]
            message = self._line(line)
            if message is not None:
                messages.append(message)
        return messages

    def close(self) -> list[dict[str, Any]]:
        """End of stream: a last event may lack its blank line."""
        tail = self._buffer + self._decode(b"", final=True)
        self._buffer = ""
        out = []
        if tail.strip():
            message = self._line(tail.rstrip("\r"))
            if message is not None:
                out.append(message)
        message = self._line("")
        if message is not None:
            out.append(message)
        return out

    def _line(self, line: str) -> dict[str, Any] | None:
        if line == "":
            if not self._data:
                return None
            payload, self._data = "\n".join(self._data), []
            return parse_payload(payload)
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if name == "data":
            self._data.append(value[1:] if value.startswith(" ") else value)
        return None


def parse_payload(payload: str) -> dict[str, Any]:
    try:
        message = json.loads(payload)
    except ValueError as exc:
        raise ProtocolError(f"The Space sent an event that is not JSON: {payload[:80]!r}") from exc
    if not isinstance(message, dict) or not isinstance(message.get("msg"), str):
        raise ProtocolError(f"The Space sent an event without a 'msg' field: {payload[:80]!r}")
    return message
