"""Conversion between the message shapes on either side of the bridge, in one place.

- The Space (gradio 5 era) speaks the "messages" shape with one part per message:
  ``{"role": "user", "content": "text"}`` or ``{"role": "user", "content": {"file": FileData}}``.
- A local gradio 6 ``gr.Chatbot`` gives and takes a list of parts per message:
  ``{"role": "user", "content": [{"type": "text", "text": ...}, {"type": "file", "file": {...}}]}``.

A caller may pass history in either shape (or plain strings as content); ``parts`` reads them all.
Pure functions; the bridge does the uploads and the I/O.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .config import Limits
from .errors import ProtocolError, UploadRejected

FILE_META = {"_type": "gradio.FileData"}
# Characters that hide or reorder text (bidi overrides and isolates, zero-width space, BOM, line separators):
# refused like control characters. Zero-width joiners stay: emoji sequences and several scripts need them.
_HIDDEN = frozenset("\u200b\ufeff\u2028\u2029" + "".join(map(chr, range(0x202A, 0x202F)))
                    + "".join(map(chr, range(0x2066, 0x206A))))


def check_prompt(prompt: str, has_files: bool, limits: Limits) -> None:
    """Refuse a turn the Space should never see: empty, too long, or carrying control or hidden characters."""
    if not prompt.strip() and not has_files:
        raise UploadRejected("Write a message or attach a file first.", reason="empty")
    if len(prompt) > limits.max_prompt_chars:
        raise UploadRejected(f"The message is {len(prompt):,} characters; the limit is "
                             f"{limits.max_prompt_chars:,}.", reason="too_long")
    if any(ch in _HIDDEN or (unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\n\t\r") for ch in prompt):
        raise UploadRejected("The message contains control characters; remove them and send again.",
                             reason="control_characters")


@dataclass(frozen=True)
class Part:
    """One piece of a message: text, or a file (``file`` is the FileData-like dict as given)."""

    role: str
    text: str | None = None
    file: Mapping[str, Any] | None = None

    @property
    def path(self) -> str | None:
        return None if self.file is None else self.file.get("path")


def _content_items(content: Any) -> list[Any]:
    return list(content) if isinstance(content, list) else [content]


def _part(role: str, item: Any) -> Part | None:
    if item is None:
        return None
    if isinstance(item, str):
        return Part(role, text=item)
    if isinstance(item, Mapping):
        kind = item.get("type")
        if kind == "text" or (kind is None and "text" in item and "file" not in item):
            return Part(role, text=str(item.get("text", "")))
        file = item["file"] if isinstance(item.get("file"), Mapping) else item if "path" in item else None
        if file is not None:
            if not isinstance(file.get("path"), str):
                raise ProtocolError(f"A file in the chat has no usable path: {str(item)[:80]!r}")
            return Part(role, file=file)
        if kind == "component":
            return None  # a rendered component (plot, gallery) carries nothing the model can read
    raise ProtocolError(f"A chat message has content the bridge cannot read: {str(item)[:80]!r}")


def parts(history: Iterable[Mapping[str, Any]]) -> list[Part]:
    """Every text and file of ``history``, in order, whatever shape each message has."""
    out: list[Part] = []
    for message in history:
        if not isinstance(message, Mapping):
            raise ProtocolError(f"A chat message is not a message: {str(message)[:80]!r}")
        role = str(message.get("role", "user"))
        if role not in ("user", "assistant"):
            continue  # system messages and thoughts are not part of what the Space's chatbot holds
        metadata = message.get("metadata") or {}
        if isinstance(metadata, Mapping) and metadata.get("title"):
            continue  # a "thought" bubble (our own status notes), not a real turn
        for item in _content_items(message.get("content")):
            part = _part(role, item)
            if part is not None:
                out.append(part)
    return out


def file_data(space_url: str, server_path: str, orig_name: str, size: int, mime_type: str) -> dict[str, Any]:
    """The FileData the Space expects for a file it stored at ``server_path``."""
    return {
        "path": server_path,
        "url": f"{space_url}/gradio_api/file={server_path}",
        "orig_name": orig_name,
        "size": size,
        "mime_type": mime_type,
        "meta": dict(FILE_META),
    }


def to_space(history: Sequence[Part], remote: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The Space's history: one message per part; ``remote`` maps a local path to its uploaded FileData."""
    out: list[dict[str, Any]] = []
    for part in history:
        if part.file is not None:
            path = part.path or ""
            if path not in remote:
                raise ProtocolError(f"The file {part.file.get('orig_name') or path!r} was not uploaded.")
            out.append({"role": part.role, "content": {"file": dict(remote[path])}})
        elif part.text:
            out.append({"role": part.role, "content": part.text})
    return out


def user_turn(text: str, files: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A new user turn in the Space's shape: its files first, then its text, as gradio's chat demos add them."""
    turn: list[dict[str, Any]] = [{"role": "user", "content": {"file": dict(f)}} for f in files]
    if text:
        turn.append({"role": "user", "content": text})
    return turn


def reply_text(value: Any) -> str:
    """The assistant's text in output 0 of the bot step: the content of its last message."""
    if not isinstance(value, list) or not value:
        raise ProtocolError("The Space's reply holds no chat history.")
    last = value[-1]
    if not isinstance(last, Mapping):
        raise ProtocolError(f"The Space's reply has a message of an unknown shape: {str(last)[:80]!r}")
    if last.get("role", "assistant") != "assistant":
        return ""
    texts = [p.text or "" for p in parts([last]) if p.text is not None]
    return "".join(texts)


def to_local(space_history: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The Space's history as a local gradio 6 chatbot value (one part list per message)."""
    out: list[dict[str, Any]] = []
    for part in parts(space_history):
        item = {"type": "text", "text": part.text} if part.file is None else {"type": "file", "file": dict(part.file)}
        if out and out[-1]["role"] == part.role and part.file is None and out[-1]["content"][-1]["type"] == "file":
            out[-1]["content"].append(item)
        else:
            out.append({"role": part.role, "content": [item]})
    return out
