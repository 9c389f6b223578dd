"""An OpenAI chat request as a turn for the bridge: pure functions, the server does the I/O.

Why here and not in the server: what a request means (which messages are earlier turns, where a system message
goes, which file is which field) is the part worth testing without a network, and the app and
``python -m phi4_bridge serve`` must read requests alike.

- Each request carries the whole conversation, so the messages before the last run of user messages become the
  bridge's ``history`` (in the shape ``messages.parts`` reads: per user message its files, then its text), which
  the bridge replays through the Space's own user step (issue 8); the last run of user messages is the new turn.
- A system (or developer) message has no place on this Space: its text goes before the first user text.
- Files arrive as ``image_url`` (a ``data:`` URL, or an http(s) URL the server may fetch) and ``input_audio``
  (base64 ``wav``/``mp3``). Each gets a file name that is its request field (``messages[1].content[0].png``), so
  the bridge's sentence about a bad file names the field too.
- ``temperature``, ``top_p`` and ``max_tokens``/``max_completion_tokens`` map onto the Space's own controls;
  what the Space cannot honour is refused by name (``check_request``).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import bad_request
from .schema import AudioPart, ChatRequest, ImagePart, Message, OtherPart, RefusalPart, TextPart

# Fields the Space cannot honour, refused when set to anything but their "off" value.
UNSUPPORTED: dict[str, str] = {
    "tools": "tool calls", "functions": "function calls", "tool_choice": "tool calls",
    "function_call": "function calls", "response_format": "response formats", "logprobs": "log probabilities",
    "top_logprobs": "log probabilities", "stop": "stop sequences", "seed": "a seed",
    "presence_penalty": "presence penalties", "frequency_penalty": "frequency penalties",
    "logit_bias": "logit bias", "audio": "audio output", "prediction": "predicted outputs",
    "reasoning_effort": "reasoning effort", "verbosity": "verbosity", "web_search_options": "web search",
}
_OFF_VALUES: tuple[Any, ...] = (None, [], {}, False, 0, 0.0, "none", "", {"type": "text"})
# The Space's own control each OpenAI field maps onto (``chain.option_name`` of the slider's label).
OPTION_OF = {"temperature": "temperature", "top_p": "top_p", "max_tokens": "max_new_tokens",
             "max_completion_tokens": "max_new_tokens"}
_DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[^;,]*)*?),(?P<data>.*)", re.S)
_EXT = {"image/jpeg": "jpg", "image/jpg": "jpg", "audio/mpeg": "mp3", "audio/mp3": "mp3", "audio/x-wav": "wav",
        "audio/wave": "wav", "audio/vnd.wave": "wav", "image/svg+xml": "svg"}
_DEFAULT_MIME = {"image": "image/png", "audio": "audio/wav"}  # a data: URL that names no type
ATTACHMENT = "attachment:"
_FIELD_NAME = re.compile(r"messages\[\d+\]\.content\[\d+\]")


@dataclass
class Attachment:
    """A file of the request: its bytes (decoded) or a URL for the server to fetch, and where it will live."""

    param: str  # the request field it came from, e.g. ``messages[1].content[0].image_url.url``
    name: str  # its file name, the field's path plus an extension
    data: bytes | None = None
    url: str | None = None
    kind: str = "image"  # or "audio": which size limit a fetched URL gets


@dataclass
class ApiTurn:
    """An OpenAI request as the bridge gets it: the new turn's text and files, the earlier turns as a history, every
    attachment. (``phi4_bridge.messages.Turn`` is one exchange of a history; this is a whole request.)"""

    prompt: str
    files: list[Attachment]
    history: list[dict[str, Any]]
    attachments: list[Attachment] = field(default_factory=list)
    prompt_chars: int = 0  # every text of the request, for the usage estimate


def check_request(req: ChatRequest) -> None:
    """Refuse, by name, every field whose effect the Space cannot give."""
    if req.n not in (None, 1):
        raise bad_request(f"n={req.n}: the Space gives one answer a request; send n=1 or leave it out.", "n",
                          "unsupported_parameter")
    for name in UNSUPPORTED:
        value = getattr(req, name)
        offs = (None,) if name == "seed" else _OFF_VALUES  # seed 0 is a seed like any other
        if not any(value == off and type(value) is type(off) for off in offs):
            raise bad_request(f"{name}: this Space cannot do {UNSUPPORTED[name]}; leave {name!r} out.", name,
                              "unsupported_parameter")
    if req.modalities not in (None, ["text"]):
        raise bad_request("modalities: this Space answers with text only; send [\"text\"] or leave it out.",
                          "modalities", "unsupported_parameter")
    for name in req.model_extra or {}:
        raise bad_request(f"{name}: not a field of the chat completions API this server knows; leave it out.",
                          name, "unknown_parameter")
    if req.max_tokens is not None and req.max_completion_tokens is not None \
            and req.max_tokens != req.max_completion_tokens:
        raise bad_request("max_tokens and max_completion_tokens differ; send one of them.", "max_tokens")


def requested_options(req: ChatRequest) -> dict[str, tuple[str, Any]]:
    """``{the Space's option name: (the request field, value)}`` for the settings the request gives."""
    out: dict[str, tuple[str, Any]] = {}
    for param in ("temperature", "top_p", "max_completion_tokens", "max_tokens"):
        value = getattr(req, param)
        if value is not None and OPTION_OF[param] not in out:
            out[OPTION_OF[param]] = (param, value)
    return out


def _text_of(message: Message, index: int) -> str:
    """A system, developer or assistant message's text (text and refusal parts only)."""
    if message.content is None or isinstance(message.content, str):
        return message.content or ""
    texts = []
    for j, part in enumerate(message.content):
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif isinstance(part, RefusalPart) and message.role == "assistant":
            texts.append(part.refusal)
        else:
            raise bad_request(f"A {message.role} message can carry only text here, not {part.type!r}.",
                              f"messages[{index}].content[{j}].type", "unsupported_content")
    return "\n".join(texts)


def _decode(b64: str, param: str, what: str) -> bytes:
    try:
        return base64.b64decode(b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"{param}: the {what} is not valid base64.", param) from None


def extension_of(mime: str) -> str:
    """A file extension for a MIME type (``image/jpeg`` -> ``jpg``), at most 8 letters."""
    mime = mime.lower()
    return _EXT.get(mime) or re.sub(r"[^a-z0-9]+", "", mime.split("/", 1)[-1])[:8] or "bin"


def _attachment(part: ImagePart | AudioPart, i: int, j: int, fetch_urls: bool) -> Attachment:
    where = f"messages[{i}].content[{j}]"
    if isinstance(part, AudioPart):
        param = f"{where}.input_audio.data"
        return Attachment(param, f"{where}.{part.input_audio.format}",
                          data=_decode(part.input_audio.data, param, "audio"), kind="audio")
    return url_attachment(part.image_url.url, f"{where}.image_url.url", where, fetch_urls)


def url_attachment(url: str, param: str, where: str, fetch_urls: bool, kind: str = "image") -> Attachment:
    """A file given as a URL (``kind`` "image" or "audio"): a base64 ``data:`` URL, decoded here, or an http(s)
    URL for the server to fetch when ``fetch_urls`` (else refused). ``param`` names the field in sentences;
    the file is called ``where`` plus an extension. Shared by ``/v1`` and the MCP tools."""
    url = url.strip()
    found = _DATA_URL.fullmatch(url) if url[:5].lower() == "data:" else None
    if found is not None:
        if "base64" not in found["params"].lower().split(";"):
            raise bad_request(f"{param}: a data: URL must be base64 (data:{_DEFAULT_MIME[kind]};base64,...).",
                              param)
        return Attachment(param, f"{where}.{extension_of(found['mime'] or _DEFAULT_MIME[kind])}",
                          data=_decode(found["data"], param, kind), kind=kind)
    if url.lower().startswith(("http://", "https://")):
        if not fetch_urls:
            raise bad_request(f"{param}: this server does not fetch {kind} URLs (its host can turn that on with "
                              f"--fetch-image-urls); send the {kind} as a data: URL.", param, "image_url_not_allowed")
        return Attachment(param, where, url=url, kind=kind)
    raise bad_request(f"{param}: {'an image' if kind == 'image' else 'audio'} must be a data: URL (or an http(s) "
                      "URL where the server fetches them).", param)


def _user_parts(message: Message, i: int, fetch_urls: bool) -> tuple[list[str], list[Attachment]]:
    if message.content is None:
        return [], []
    if isinstance(message.content, str):
        return [message.content], []
    texts, files = [], []
    for j, part in enumerate(message.content):
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif isinstance(part, ImagePart | AudioPart):
            files.append(_attachment(part, i, j, fetch_urls))
        else:
            kind = part.type if isinstance(part, OtherPart | RefusalPart) else "?"
            raise bad_request(f"messages[{i}].content[{j}]: parts of type {kind!r} are not supported; send text, "
                              "image_url or input_audio.", f"messages[{i}].content[{j}].type", "unsupported_content")
    return texts, files


def to_turn(req: ChatRequest, fetch_urls: bool = False) -> ApiTurn:
    """The request's messages as the bridge's turn. A file in the history is named ``ATTACHMENT<index>`` until
    ``with_paths`` puts in where the server wrote it (a fetched image's extension is known only then)."""
    system: list[str] = []
    turns: list[tuple[list[str], list[Attachment], list[str]]] = []  # (user texts, files, assistant texts)
    chars = 0
    for i, message in enumerate(req.messages):
        if message.role in ("tool", "function"):
            raise bad_request(f"messages[{i}]: this Space cannot use tools, so there are no {message.role} "
                              "messages.", f"messages[{i}].role", "unsupported_content")
        if message.tool_calls or message.function_call or message.audio:
            raise bad_request(f"messages[{i}]: this Space cannot use tools or answer with audio.",
                              f"messages[{i}].tool_calls" if message.tool_calls else f"messages[{i}]",
                              "unsupported_content")
        if message.role in ("system", "developer"):
            text = _text_of(message, i)
            system.append(text)
            chars += len(text)
        elif message.role == "user":
            texts, files = _user_parts(message, i, fetch_urls)
            chars += sum(map(len, texts))
            if not turns or turns[-1][2]:
                turns.append(([], [], []))
            turns[-1][0].extend(texts)
            turns[-1][1].extend(files)
        else:
            if not turns:
                raise bad_request(f"messages[{i}]: the conversation must start with a user message (after any "
                                  "system message).", f"messages[{i}].role")
            text = _text_of(message, i)
            chars += len(text)
            turns[-1][2].append(text)
    if not turns or turns[-1][2]:
        raise bad_request("The last message must be the user's: it is what the Space answers.", "messages")
    if system:
        first = turns[0][0]
        joined = "\n\n".join(t for t in system if t.strip())
        turns[0] = ([joined, *first] if joined else first, turns[0][1], turns[0][2])
    attachments = [a for t in turns for a in t[1]]
    history: list[dict[str, Any]] = []
    index = 0  # attachments are numbered in order: one pass, never a search (a search per file was quadratic)
    for texts, files, replies in turns[:-1]:
        content: list[dict[str, Any]] = []
        for _ in files:
            content.append({"type": "file", "file": {"path": f"{ATTACHMENT}{index}"}})
            index += 1
        text = "\n".join(texts)
        if text:
            content.append({"type": "text", "text": text})
        history.append({"role": "user", "content": content})
        history.append({"role": "assistant", "content": [{"type": "text", "text": "".join(replies)}]})
    texts, files, _ = turns[-1]
    return ApiTurn("\n".join(texts), files, history, attachments, chars)


def with_paths(history: list[dict[str, Any]], paths: list[str]) -> list[dict[str, Any]]:
    """The history with each ``ATTACHMENT<index>`` replaced by the path of that attachment."""
    out = []
    for message in history:
        content = []
        for part in message["content"]:
            path = part.get("file", {}).get("path", "") if part.get("type") == "file" else ""
            if path.startswith(ATTACHMENT):
                part = {"type": "file", "file": {"path": paths[int(path[len(ATTACHMENT):])]}}
            content.append(part)
        out.append({**message, "content": content})
    return out


def param_for(message: str, turn: ApiTurn, last_index: int) -> str | None:
    """Which request field a bridge sentence is about: the file it names, else the last message."""
    found = _FIELD_NAME.search(message)
    if found is not None:
        for attachment in turn.attachments:
            if attachment.name.startswith(found.group(0) + "."):
                return attachment.param
        return found.group(0)
    if "history" in message.lower():
        return "messages"
    return f"messages[{last_index}].content"
