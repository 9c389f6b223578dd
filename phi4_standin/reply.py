"""Deterministic replies of the stand-in "model", made only from what the bot step received.

Why: the tests and benchmarks must be able to see that every input arrived intact (the prompt verbatim, each
image's format and pixel size, each audio file's duration, how much history came along), so the reply states
exactly those facts, in a fixed wording, and is padded to a length that splits into the configured number of
streaming chunks. Everything here is pure (besides reading the given files) so it is unit-testable.

Wording (stable, tests depend on it)::

    You said: "<prompt>". Image 1: PNG, 37x23. Audio 1: 2.5 s. Audio 2: MP3, duration unknown.
    File 1: notes.txt, 12 bytes. Earlier turns: 2. Seen: <item>; <item>; ... Settings: <name>=<value>, ...
    <padding sentence repeated as needed>

* The prefix (up to ``Earlier turns: N.``) is about the current turn only: its text (``prompt``, the current
  turn's texts joined by newlines), its files in order, and how many user turns came before it.
* ``Seen:`` (when the bot step gives ``TurnInput.seen``) lists, in history order, everything the bot step saw
  over the WHOLE history, current turn included, one item per text or file, separated by ``"; "``, ended by
  ``"."``; ``Seen: nothing.`` when there is nothing. Items:

  - ``turn N text "<first words>"``: a user text; its first ``SEEN_WORDS`` (3) whitespace-separated words,
    verbatim, joined by one space (texts that are only whitespace are left out);
  - ``turn N image PNG 37x23`` / ``turn N audio 2.5 s`` / ``turn N audio MP3 duration unknown`` /
    ``turn N file notes.txt 12 bytes``: a file, described as in the prefix with the comma dropped.

  ``N`` counts user turns from 1 (a turn is a run of consecutive user messages). So an earlier turn's file or
  text that was lost, or put in the wrong turn or order, shows in the reply.
* ``Settings:`` (only when the bot step took sampling settings) lists them in the bot step's parameter order,
  each ``name=value`` with the value formatted by ``format(value, "g")`` (0.95, 50, 0.2, 512), separated by
  ``", "``, ended by ``"."``. The names are the bot step's parameter names, whatever the sliders' labels.

Example (official layout, second turn, first turn had an image)::

    You said: "And now?". Audio 1: 2.5 s. Earlier turns: 1. Seen: turn 1 image PNG 37x23; turn 1 text "What is
    in"; turn 2 audio 2.5 s; turn 2 text "And now?". Settings: top_p=0.95, top_k=50, temperature=0.8,
    repetition_penalty=1.05, max_new_tokens=512.

This module imports nothing from ``phi4_bridge`` (stand-in and bridge must not share code).
"""

from __future__ import annotations

import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PAD_SENTENCE = "This reply comes from the Phi-4 Mirror stand-in Space."
MIN_CHARS_PER_CHUNK = 6
SEEN_WORDS = 3

# Magic numbers for audio formats Pillow and the stdlib `wave` module cannot read.
_AUDIO_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"ID3", 0, "MP3"),
    (b"OggS", 0, "OGG"),
    (b"fLaC", 0, "FLAC"),
    (b"\x1a\x45\xdf\xa3", 0, "WEBM"),
    (b"ftyp", 4, "M4A"),
)


@dataclass(frozen=True)
class SeenItem:
    """One thing the bot step saw: a user text (``value`` its full text) or a file (``value`` its path)."""

    turn: int
    kind: str  # "text" or "file"
    value: str


@dataclass(frozen=True)
class TurnInput:
    """What one bot step was given: the last user turn's text and files, and the count of earlier turns;
    optionally everything it saw over the whole history (``seen``) and its sampling settings."""

    prompt: str
    files: tuple[str, ...] = field(default_factory=tuple)
    earlier_turns: int = 0
    seen: tuple[SeenItem, ...] | None = None
    settings: tuple[tuple[str, float], ...] = ()


def _content_text(content: Any) -> str | None:
    """Text of a message content in the Gradio 5 shape (a plain string) or a gradio 6 text part."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict) and content.get("type") == "text":
        return str(content.get("text", ""))
    return None


def _content_file(content: Any) -> str | None:
    """Server path of a file message content: ``{"file": FileData}``, a bare FileData, or a path tuple."""
    if isinstance(content, dict):
        inner = content.get("file", content)
        path = inner.get("path") if isinstance(inner, dict) else None
        if isinstance(path, str):
            return path
    if isinstance(content, (list, tuple)) and content and isinstance(content[0], str):
        return content[0]
    return None


def _parts(message: Any) -> list[Any]:
    """A message's content as a list of parts (gradio 6 lists, Gradio 5 single values)."""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list) and not (content and isinstance(content[0], str)):
        return list(content)
    return [content]


def parse_turn(history: list[Any] | None, extra: list[Any] | None = None) -> TurnInput:
    """Split a history (plus the known client's second data element) into the current turn and a count.

    A "turn" is a run of consecutive user messages; the current turn is the last such run. Files given in
    ``extra`` (the known client's ``[file messages...]``) belong to the current turn.
    """
    runs = user_runs(history)
    current = runs[-1] if runs else []
    texts: list[str] = []
    files: list[str] = []
    for message in current + [m for m in (extra or []) if isinstance(m, dict)]:
        for part in _parts(message):
            text = _content_text(part)
            if text is not None:
                texts.append(text)
                continue
            path = _content_file(part)
            if path is not None:
                files.append(path)
    return TurnInput(prompt="\n".join(texts), files=tuple(files), earlier_turns=max(len(runs) - 1, 0))


def user_runs(history: list[Any] | None) -> list[list[dict[str, Any]]]:
    """The history's user turns: runs of consecutive user messages, in order."""
    runs: list[list[dict[str, Any]]] = []
    previous_role = None
    for message in history or []:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role == "user":
            if previous_role != "user":
                runs.append([])
            runs[-1].append(message)
        previous_role = role
    return runs


def seen_in_history(history: list[Any] | None, extra: list[Any] | None = None) -> tuple[SeenItem, ...]:
    """Every user text and file of a history, by turn, in order (files in ``extra`` join the last turn).

    Used by the classic layout, whose bot step takes files wherever they are in the history.
    """
    runs = user_runs(history)
    extra_messages = [m for m in (extra or []) if isinstance(m, dict)]
    if extra_messages:
        if not runs:
            runs.append([])
        runs[-1] = runs[-1] + extra_messages
    items: list[SeenItem] = []
    for number, run in enumerate(runs, start=1):
        for message in run:
            for part in _parts(message):
                text = _content_text(part)
                if text is not None:
                    items.append(SeenItem(number, "text", text))
                    continue
                path = _content_file(part)
                if path is not None:
                    items.append(SeenItem(number, "file", path))
    return tuple(items)


def describe_seen(item: SeenItem) -> str | None:
    """One ``Seen:`` item (see the module docstring), or None for a blank text."""
    if item.kind == "text":
        words = item.value.split()[:SEEN_WORDS]
        return f'turn {item.turn} text "{" ".join(words)}"' if words else None
    kind, text = describe_file(item.value)
    return f"turn {item.turn} {kind} {text.replace(', ', ' ')}"


def _sniff_audio(head: bytes) -> str | None:
    """Name of a compressed audio format from its first bytes, or None."""
    for magic, offset, name in _AUDIO_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return name
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "MP3"
    return None


def describe_file(path: str) -> tuple[str, str]:
    """Classify one file and describe it: ("image", "PNG, 37x23"), ("audio", "2.5 s"), or ("file", ...)."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    try:
        with Image.open(p) as image:
            return "image", f"{image.format}, {image.width}x{image.height}"
    except (UnidentifiedImageError, OSError, ValueError):
        pass
    try:
        with wave.open(str(p), "rb") as wav:
            rate = wav.getframerate() or 1
            return "audio", f"{wav.getnframes() / rate:.1f} s"
    except (wave.Error, EOFError, OSError):
        pass
    try:
        head = p.read_bytes()[:16]
    except OSError:
        return "file", f"{p.name}, unreadable"
    audio = _sniff_audio(head)
    if audio:
        return "audio", f"{audio}, duration unknown"
    return "file", f"{p.name}, {p.stat().st_size} bytes"


def build_reply(turn: TurnInput, chunks: int = 1) -> str:
    """The full reply text for a turn, padded so it splits into ``chunks`` parts of a few characters each."""
    sentences = [f'You said: "{turn.prompt}".']
    counters = {"image": 0, "audio": 0, "file": 0}
    labels = {"image": "Image", "audio": "Audio", "file": "File"}
    for path in turn.files:
        kind, text = describe_file(path)
        counters[kind] += 1
        sentences.append(f"{labels[kind]} {counters[kind]}: {text}.")
    sentences.append(f"Earlier turns: {turn.earlier_turns}.")
    if turn.seen is not None:
        items = [d for d in map(describe_seen, turn.seen) if d]
        sentences.append(f"Seen: {'; '.join(items) if items else 'nothing'}.")
    if turn.settings:
        sentences.append(
            "Settings: " + ", ".join(f"{name}={format(value, 'g')}" for name, value in turn.settings) + "."
        )
    text = " ".join(sentences)
    while len(text) < max(chunks, 1) * MIN_CHARS_PER_CHUNK:
        text += " " + PAD_SENTENCE
    return text


def split_chunks(text: str, chunks: int) -> list[str]:
    """Split text into ``chunks`` consecutive non-empty parts of near-equal length (first ones longer)."""
    n = max(1, min(chunks, len(text))) if text else 1
    size, rest = divmod(len(text), n)
    parts: list[str] = []
    start = 0
    for i in range(n):
        end = start + size + (1 if i < rest else 0)
        parts.append(text[start:end])
        start = end
    return parts
