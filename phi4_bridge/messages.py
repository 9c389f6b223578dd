"""Chat messages, typed, and the one place that reads them: pure functions, the bridge does the I/O.

Two shapes meet here:

- the Space's chatbot value (gradio 5 "messages"): ``{"role", "content", "metadata"?, "options"?}`` with
  ``content`` a string or ``{"file": FileData, "alt_text"?}``. The bridge never builds this shape itself: it
  sends back the value the Space returned (see ``chain``), and only reads it here for the reply;
- a caller's history (a local gradio 6 ``gr.Chatbot`` value, the Space's shape, or plain strings): content a
  list of parts ``{"type": "text", "text"}`` / ``{"type": "file", "file": {"path"...}}``. It is read as
  ``Turn`` s (a user's text and files, then the reply), which the bridge matches against what it already did
  in the conversation, or replays through the Space's own user step.

A caller's history is checked before anything is sent, against the same kind of limits as a turn.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

from .config import Limits
from .errors import InputRejected, ProtocolError

FILE_META = {"_type": "gradio.FileData"}
# Characters that hide or reorder text (bidi overrides and isolates, zero-width space, BOM, line separators):
# refused like control characters. Zero-width joiners stay: emoji sequences and several scripts need them.
# One compiled class, with control characters (Unicode's category Cc but tab, line feed and carriage return) and
# surrogates (Cs): a history at its limits is 200,000 characters, checked on every turn, and a regular expression
# scans it in C where a per-character Python test took ~40 ms a turn at 200 messages.
_HIDDEN = "\u200b\ufeff\u2028\u2029\u202a-\u202e\u2066-\u2069"
_REFUSED = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff{_HIDDEN}]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class FileData(TypedDict):
    path: str
    url: NotRequired[str | None]
    orig_name: NotRequired[str | None]
    size: NotRequired[int | None]
    mime_type: NotRequired[str | None]
    meta: NotRequired[dict[str, str]]


class TextboxValue(TypedDict):
    """The multimodal textbox's value, as the page sends it."""

    text: str
    files: list[FileData]


def has_hidden_characters(text: str) -> bool:
    return _REFUSED.search(text) is not None


def has_lone_surrogate(text: str) -> bool:
    """Half of a UTF-16 pair (JSON allows ``"\\ud800"`` alone): not a character at all, so not "a control
    character" either; it is named for what it is."""
    return _SURROGATE.search(text) is not None


LONE_SURROGATE = ("contains a lone surrogate (half of a UTF-16 pair, such as \\ud800, with no other half), which "
                  "is not a character; remove it or send the whole character, and send again.")


def check_prompt(prompt: str, has_files: bool, limits: Limits) -> None:
    """Refuse a turn the Space should never see: empty, too long, or carrying control or hidden characters."""
    if not prompt.strip() and not has_files:
        raise InputRejected("Write a message or attach a file first.", reason="empty")
    if len(prompt) > limits.max_prompt_chars:
        raise InputRejected(f"The message is {len(prompt):,} characters; the limit is "
                            f"{limits.max_prompt_chars:,}.", reason="too_long")
    if has_lone_surrogate(prompt):
        raise InputRejected(f"The message {LONE_SURROGATE}", reason="control_characters")
    if has_hidden_characters(prompt):
        raise InputRejected("The message contains control characters; remove them and send again.",
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
    if isinstance(item, tuple) and item and isinstance(item[0], str):
        return Part(role, file={"path": item[0]})  # gradio's tuple form of a file: (path, alt text)
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


def parts(history: Iterable[Any]) -> list[Part]:
    """Every text and file of ``history``, in order, whatever shape each message has.

    A message with a ``metadata.title`` is a status note (queue position, an error) unless it holds a file:
    the Space's own user step may title the file entries it writes ("image", "audio")."""
    out: list[Part] = []
    for message in chat_messages(history):
        if not isinstance(message, Mapping):
            raise ProtocolError(f"A chat message is not a message: {str(message)[:80]!r}")
        role = str(message.get("role", "user"))
        if role not in ("user", "assistant"):
            continue  # system messages are not part of what the Space's chatbot holds
        metadata = message.get("metadata") or {}
        titled = isinstance(metadata, Mapping) and bool(metadata.get("title"))
        for item in _content_items(message.get("content")):
            part = _part(role, item)
            if part is not None and not (titled and part.file is None):
                out.append(part)
    return out


def chat_messages(value: Iterable[Any]) -> list[Any]:
    """A chatbot value as messages: a ``tuples`` chatbot's ``[user, bot]`` pairs (gradio 4 and 5) become a user
    and an assistant message each (a ``None`` side is no message); messages pass unchanged.

    A value is in one format or the other, as a chatbot holds it: only a value made of pairs alone is read as pairs,
    so a stray list among messages is reported as what it is, not taken for a turn."""
    items = list(value)
    if not items or not all(isinstance(item, list | tuple) and len(item) == 2 for item in items):
        return items
    out: list[Any] = []
    for user, bot in items:
        out += [{"role": "user", "content": user}] if user is not None else []
        out += [{"role": "assistant", "content": bot}] if bot is not None else []
    return out


@dataclass(frozen=True)
class Turn:
    """One exchange of a caller's history: what the user sent (text, local file paths), then the reply."""

    text: str
    files: tuple[str, ...] = ()
    reply: str = ""


def turns(history: Iterable[Any]) -> list[Turn]:
    """A history as turns: each run of user parts (its files, then the text that ends it), then the assistant
    text that follows it."""
    return _turns_of(parts(history))


def _turns_of(found: Iterable[Part]) -> list[Turn]:
    out: list[Turn] = []
    texts: list[str] = []
    files: list[str] = []
    reply: list[str] = []
    open_turn = False
    for part in found:
        if part.role == "user":
            if reply or texts or not open_turn:  # a reply, or the text that ends a turn, came before
                if open_turn:
                    out.append(Turn("\n".join(texts), tuple(files), "".join(reply)))
                texts, files, reply, open_turn = [], [], [], True
            if part.file is not None:
                files.append(str(part.path))
            elif part.text:
                texts.append(part.text)
        elif open_turn and part.text:
            reply.append(part.text)
    if open_turn:
        out.append(Turn("\n".join(texts), tuple(files), "".join(reply)))
    return out


def check_history(history: Sequence[Any], limits: Limits) -> list[Turn]:
    """A caller's history as turns, refused before anything is sent when it is larger than the limits (counted
    cheaply first, so a huge one costs nothing) or carries control characters."""
    if not isinstance(history, Sequence) or isinstance(history, str | bytes):
        raise InputRejected("The history must be a list of chat messages.", reason="bad_history")
    if len(history) > limits.max_history_messages:
        raise InputRejected(f"The history has {len(history):,} messages; the limit is "
                            f"{limits.max_history_messages:,}. Start a new conversation.", reason="history_too_long")
    found = parts(history)
    texts = [p.text for p in found if p.text]
    chars = sum(map(len, texts))
    if chars > limits.max_history_chars:
        raise InputRejected(f"The history is {chars:,} characters; the limit is {limits.max_history_chars:,}. "
                            "Start a new conversation.", reason="history_too_long")
    files = {p.path for p in found if p.file is not None}
    if len(files) > limits.max_history_files:
        raise InputRejected(f"The history carries {len(files):,} files; the limit is {limits.max_history_files}. "
                            "Start a new conversation.", reason="too_many_files")
    if any(has_lone_surrogate(text) for text in texts):
        raise InputRejected(f"The history {LONE_SURROGATE}", reason="control_characters")
    if any(has_hidden_characters(text) for text in texts):
        raise InputRejected("The history contains control characters; remove them and send again.",
                            reason="control_characters")
    return _turns_of(found)


def file_data(routes: str, server_path: str, orig_name: str, size: int, mime_type: str) -> FileData:
    """The FileData the Space expects for a file it stored at ``server_path``, as the page's upload makes it
    (``routes``: the Space's URL and its ``api_prefix``, where ``file=`` is served)."""
    return {
        "path": server_path,
        "url": f"{routes}/file={server_path}",
        "orig_name": orig_name,
        "size": size,
        "mime_type": mime_type,
        "meta": dict(FILE_META),
    }


def reply_text(value: Any, start: int = 0) -> str:
    """What a turn added to the chatbot: the text of the assistant messages after the last user message, among
    the messages past ``start`` (how many the chatbot held when the turn began; all of them when the Space
    rewrote its chat shorter). Titled messages (status notes, thoughts) are not the reply."""
    if value is None:
        return ""
    if not isinstance(value, list):
        raise ProtocolError("The Space's reply holds no chat history.")
    messages = chat_messages(value)
    new = messages[start:] if len(messages) >= start else messages
    for message in new:
        if not isinstance(message, Mapping):
            raise ProtocolError(f"The Space's reply has a message of an unknown shape: {str(message)[:80]!r}")
    users = [i for i, m in enumerate(new) if m.get("role", "assistant") == "user"]
    tail = new[users[-1] + 1:] if users else new
    return "".join(p.text or "" for p in parts(tail) if p.role == "assistant" and p.text is not None)


def chat_length(value: Any) -> int:
    """How many messages a chatbot value holds (a tuples pair counts as its messages)."""
    return len(chat_messages(value)) if isinstance(value, list) else 0


def with_reply(chat: list[Any], text: str, tuples: bool) -> list[Any]:
    """``chat`` with an earlier reply added in the Space's own shape (a replayed turn, see ``job``)."""
    if tuples:
        last = chat[-1] if chat else None
        if isinstance(last, list | tuple) and len(last) == 2 and last[1] is None:
            return [*chat[:-1], [last[0], text]]
        return [*chat, [None, text]]
    like = last_assistant(chat) or next((m for m in reversed(chat) if isinstance(m, Mapping)), None)
    return [*chat, assistant_message(text, like, _parts_shape(chat))]


def _parts_shape(chat: Any) -> bool:
    """Whether the Space's chatbot holds content as a list of parts (gradio 6) rather than a string (gradio 5):
    as its own latest message does."""
    for message in reversed(chat if isinstance(chat, list) else []):
        if isinstance(message, Mapping) and message.get("content") is not None:
            return isinstance(message["content"], list)
    return False


def assistant_message(text: str, like: Mapping[str, Any] | None, parts_shape: bool) -> dict[str, Any]:
    """An earlier reply in the shape the Space's chatbot returned its own: a copy of one of its messages (``like``,
    its last assistant message, else its last user message) with the role and text swapped in; without one,
    gradio 5's shape (gradio 6's with parts). A title (a status note, a titled file entry) is dropped, leaving
    an empty ``metadata`` dict: gradio 4 refuses ``None`` there, gradio 5 takes either."""
    content: Any = [{"type": "text", "text": text}] if parts_shape else text
    if like is None:
        return {"role": "assistant", "metadata": None, "content": content, "options": None} if not parts_shape \
            else {"role": "assistant", "content": content}
    message = {key: value for key, value in like.items() if key not in ("content",)}
    old = like.get("content")
    message["role"] = "assistant"
    message["content"] = [{"type": "text", "text": text}] if isinstance(old, list) else text
    if isinstance(message.get("metadata"), Mapping) and message["metadata"].get("title"):
        message["metadata"] = {}
    return message


def last_assistant(value: Any) -> Mapping[str, Any] | None:
    """The Space's last assistant message in a chatbot value, as a model for replayed replies."""
    if not isinstance(value, list):
        return None
    return next((m for m in reversed(value) if isinstance(m, Mapping) and m.get("role") == "assistant"), None)
