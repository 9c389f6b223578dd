"""Pure helpers on the gradio 6 ``gr.Chatbot`` value (a list of messages with typed content parts).

A user turn is one message: its files first (as file parts, so the chat shows them as media), then its text.
Status notes (queue position, errors, "stopped") are assistant messages with ``metadata.title``: the chat shows
them, and the bridge leaves them out of the history it sends to the Space.
"""

from __future__ import annotations

import mimetypes
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from phi4_bridge import Done, Event, Queued, Started, TextDelta

Message = dict[str, Any]

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
RETRY_HINT = "Your message is kept: press Retry (↻) once the cause is gone."


def file_part(path: str, name: str | None = None) -> dict[str, Any]:
    mime, _ = mimetypes.guess_type(name or path)
    return {"type": "file", "file": {"path": path, "orig_name": name or os.path.basename(path), "mime_type": mime}}


def user_message(text: str, files: Sequence[str | Mapping[str, Any]]) -> Message:
    content: list[dict[str, Any]] = []
    for f in files:
        if isinstance(f, Mapping):  # a FileData dict (undo/retry hand these back)
            content.append(file_part(str(f.get("path")), f.get("orig_name")))
        else:
            content.append(file_part(str(f)))
    if text:
        content.append({"type": "text", "text": text})
    return {"role": "user", "content": content}


def bot_message(text: str) -> Message:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def note(title: str, text: str, pending: bool = False) -> Message:
    """A status note: shown in the chat, skipped by the bridge (it has a metadata title). The chat does not
    show a note without content, so ``text`` must not be empty."""
    return {"role": "assistant", "content": [{"type": "text", "text": text}],
            "metadata": {"title": title, "status": "pending" if pending else "done"}}


def is_note(msg: Mapping[str, Any]) -> bool:
    meta = msg.get("metadata") or {}
    return bool(isinstance(meta, Mapping) and meta.get("title"))


def queue_note(ev: Queued | None) -> Message:
    if ev is None:
        return note("⏳ Sending your message to the Space…", "Uploading and joining the queue.", pending=True)
    return note(f"⏳ In the Space's queue: {queue_words(ev)}", "Waiting for a GPU on the Space.", pending=True)


def queue_words(ev: Queued) -> str:
    """Where a turn waits, in words: "position 2 of 5, about 30 s" (the chat's note, the MCP tools' progress)."""
    parts = []
    if ev.rank is not None:
        parts.append(f"position {ev.rank + 1}" + (f" of {ev.queue_size}" if ev.queue_size else ""))
    if ev.eta is not None:
        parts.append(f"about {max(1, round(ev.eta))} s")
    return ", ".join(parts) if parts else "waiting for a GPU"


def reply_after(event: Event, reply: str) -> str:
    """The reply's text after ``event``: a delta adds to it; the end's text is the whole reply (the Space may have
    rewritten earlier text)."""
    if isinstance(event, TextDelta):
        return reply + event.text
    if isinstance(event, Done):
        return event.text
    return reply


def after_event(event: Event, reply: str, shown: list[Message] | None) -> tuple[str, list[Message] | None]:
    """The reply so far and what the chat shows below the user's turn after ``event`` (``shown`` unchanged when
    the event changes nothing on screen): queue news and "answering" until the first words, then the text."""
    if isinstance(event, Queued) and not reply:
        return reply, [queue_note(event)]
    if isinstance(event, Started) and not reply:
        return reply, [note("✍️ Phi-4 is answering…", "The first words are on their way.", pending=True)]
    if isinstance(event, TextDelta):
        reply = reply_after(event, reply)
        return reply, [bot_message(reply)]
    if isinstance(event, Done) and (event.text != reply or not reply):
        reply = reply_after(event, reply)  # the Space rewrote earlier text, or sent no text at all
        return reply, [bot_message(reply) if reply else note("The model sent an empty reply.", RETRY_HINT)]
    return reply, shown


def last_user_index(history: Sequence[Mapping[str, Any]]) -> int | None:
    for i in range(len(history) - 1, -1, -1):
        if history[i].get("role") == "user" and not is_note(history[i]):
            return i
    return None


def _items(msg: Mapping[str, Any]) -> list[Any]:
    content = msg.get("content")
    return content if isinstance(content, list) else [content]


def split_user(msg: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The text and the file dicts (``path``, ``orig_name``...) of a user message."""
    texts: list[str] = []
    files: list[dict[str, Any]] = []
    for part in _items(msg):
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, Mapping) and part.get("type") == "text":
            texts.append(str(part.get("text") or ""))
        elif isinstance(part, Mapping) and part.get("type") == "file" and isinstance(part.get("file"), Mapping):
            files.append(dict(part["file"]))
    return "\n".join(t for t in texts if t), files


def without_pending(history: Sequence[Message]) -> list[Message]:
    return [m for m in history if (m.get("metadata") or {}).get("status") != "pending"]


_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean(text: Any) -> str:
    """Text that can be encoded: a lone UTF-16 surrogate (JSON allows ``"\\ud800"``) becomes U+FFFD."""
    return _SURROGATE.sub("\ufffd", str(text))


def _allowed_file(path: str, roots: Sequence[Path]) -> bool:
    try:
        real = Path(path).resolve()
    except (OSError, ValueError):
        return False
    return real.is_file() and any(real.is_relative_to(root) for root in roots)


def upload_roots() -> list[Path]:
    from gradio.utils import get_upload_folder

    return [Path(get_upload_folder()).resolve(), EXAMPLES_DIR]


def safe_history(history: Any, roots: Sequence[Path] | None = None) -> list[Message]:
    """A chatbot value from an untrusted place (browser storage, API callers) made safe to show and send:
    well-formed messages only, and file parts only for files this app received (its upload folder or the
    shipped examples); other files become a text mention. Never lets a caller point the app at a server file."""
    roots = upload_roots() if roots is None else roots
    out: list[Message] = []
    if not isinstance(history, list):
        return out
    for msg in history:
        if not isinstance(msg, Mapping) or msg.get("role") not in ("user", "assistant"):
            continue
        content: list[dict[str, Any]] = []
        for part in _items(msg):
            if isinstance(part, str):
                content.append({"type": "text", "text": _clean(part)})
            elif isinstance(part, Mapping) and part.get("type") == "text":
                content.append({"type": "text", "text": _clean(part.get("text") or "")})
            elif isinstance(part, Mapping) and part.get("type") == "file" and isinstance(part.get("file"), Mapping):
                f = part["file"]
                path = str(f.get("path") or "")
                if path and not _SURROGATE.search(path) and _allowed_file(path, roots):
                    name = f.get("orig_name")
                    content.append(file_part(path, _clean(name) if name else None))
                else:
                    name = os.path.basename(_clean(f.get("orig_name") or path or "file"))
                    content.append({"type": "text", "text": f"📎 {name} (no longer available)"})
        clean: Message = {"role": msg["role"], "content": content}
        meta = msg.get("metadata")
        if isinstance(meta, Mapping) and meta.get("title") and meta.get("status") != "pending":
            clean["metadata"] = {"title": _clean(meta["title"]), "status": "done"}
        out.append(clean)
    return out
