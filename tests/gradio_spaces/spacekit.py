"""What every test Space of the matrix shares: how it describes what its steps received, how it streams the
reply, how it counts its bot-step runs and how it starts.

Why one helper: each Space (``shape_*.py`` next to this file) must stay a few readable lines of gradio, written as
Space authors write them, and runnable unchanged on gradio 4.44, 5.20 and 6.x. What they report must be exact and
alike across shapes, so tests can compare replies character for character. Only the standard library, Pillow
(every gradio has it) and gradio are used.

A reply reads e.g. ``Got: text "What is this?"; image 37x23; audio 2.5 s; temperature=0.8; earlier turns 1.``
"""

from __future__ import annotations

import json
import os
import sys
import time
import wave
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import gradio as gr
from PIL import Image

GRADIO_MAJOR = int(gr.__version__.split(".")[0])
RUNS_FILE_ENV = "PHI4_MATRIX_RUNS_FILE"  # each bot-step run appends one JSON line here (the tests count them)
CHUNKS = 4
MESSAGES: dict[str, Any] = {} if GRADIO_MAJOR >= 6 else {"type": "messages"}  # gradio 6 knows only messages


def file_part(path: str) -> str:
    """``image 37x23`` for a picture, ``audio 2.5 s`` for a WAV, else ``file NAME``."""
    try:
        with Image.open(path) as image:
            return f"image {image.width}x{image.height}"
    except Exception:  # noqa: BLE001 - not a picture: try audio next
        pass
    try:
        with wave.open(path) as sound:
            return f"audio {sound.getnframes() / sound.getframerate():.1f} s"
    except Exception:  # noqa: BLE001
        return f"file {os.path.basename(path)}"


def titled_part(title: str, path: str) -> str:
    """``file_part`` of a history entry titled ``image`` or ``audio``, as a model that trusts the title reads it:
    a file of another kind under that title is ``image unreadable (audio 2.5 s)``."""
    part = file_part(path)
    return part if part.startswith(title) else f"{title} unreadable ({part})"


def pieces(content: Any) -> Iterator[tuple[str, str]]:
    """(``"text"``, words) and (``"file"``, path) found in a message content of any gradio generation: a string,
    a ``(path,)`` tuple, ``{"path": ...}``, ``{"file": {"path": ...}}``, gradio 6's list of typed parts, or a
    component value (``gr.Image(...)`` in a history)."""
    if content is None:
        return
    if isinstance(content, str):
        yield "text", content
    elif isinstance(content, (tuple, list)):
        if content and all(isinstance(item, str) for item in content) and isinstance(content, tuple):
            yield "file", content[0]
        else:
            for item in content:
                yield from pieces(item)
    elif isinstance(content, dict):
        if content.get("type") == "text":
            yield "text", content.get("text") or ""
        elif "path" in content and content["path"]:
            yield "file", content["path"]
        elif "file" in content:
            yield from pieces(content["file"])
        elif "value" in content:
            yield from pieces(content["value"])
        elif "text" in content:
            yield "text", content["text"]
    elif hasattr(content, "value"):  # a component in the history
        yield from pieces(content.value)


def file_content(path: str) -> Any:
    """A file as a history entry's content: ``(path,)`` as the OpenVINO port writes it; gradio 6 takes only
    ``{"path": ...}``."""
    return {"path": path} if GRADIO_MAJOR >= 6 else (path,)


def paths(items: Iterable[Any]) -> list[str]:
    """The file paths of a multimodal textbox's ``files``: plain paths, or FileData dicts in some generations."""
    found: list[str] = []
    for item in items:
        found += [item] if isinstance(item, str) else [v for kind, v in pieces(item) if kind == "file"]
    return found


def turn_of(history: list[Any]) -> tuple[list[Any], int]:
    """The messages of the latest user turn (after the last assistant message) and how many earlier turns were
    answered, for a messages history."""
    last = max((i for i, m in enumerate(history) if m.get("role") == "assistant"), default=-1)
    earlier = sum(1 for m in history if m.get("role") == "assistant")
    return history[last + 1:], earlier


def describe(texts: Iterable[str] = (), files: Iterable[str | None] = (), options: dict[str, Any] | None = None,
             earlier: int = 0, extra: Iterable[str] = (), described: Iterable[str] = ()) -> str:
    """The reply: what the steps received, in a fixed order (text, files, options, extras, earlier turns);
    ``described``: files already described (``titled_part``), after ``files``."""
    parts = [f'text "{text}"' for text in texts if text]
    parts += [file_part(path) for path in files if path] + list(described)
    parts += [f"{name}={value}" for name, value in (options or {}).items()]
    parts += list(extra)
    parts.append(f"earlier turns {earlier}")
    return "Got: " + "; ".join(parts) + "."


def describe_messages(turn: list[Any], earlier: int, options: dict[str, Any] | None = None,
                      extra: Iterable[str] = ()) -> str:
    """``describe`` of a messages turn: every text and file its user messages carry, in order."""
    texts: list[str] = []
    files: list[str] = []
    for message in turn:
        for kind, value in pieces(message.get("content")):
            (texts if kind == "text" else files).append(value)
    return describe(texts, files, options, earlier, extra)


def count_run(step: str, **seen: Any) -> None:
    """One line per bot-step run in ``$PHI4_MATRIX_RUNS_FILE``, written before the reply streams: a run whose reply
    never reaches the user shows as a line without a reply."""
    path = os.environ.get(RUNS_FILE_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"step": step, **seen}, default=str) + "\n")


def failing_after_reply(step: Callable[[], Any]) -> Callable[[], Any]:
    """``step`` (the chain's last, which only makes the textbox usable again), failing while the test's flag file
    ``<runs file>.fail-page-step`` exists: as the page's step of a Space that went to sleep or restarted just
    after the reply. Named as gradio names a lambda, so the Space's ``/config`` stays the one recorded."""
    def page_step() -> Any:
        path = os.environ.get(RUNS_FILE_ENV)
        if path and os.path.exists(path + ".fail-page-step"):
            raise RuntimeError("this page step fails on purpose (the matrix test's flag file)")
        return step()

    page_step.__name__ = page_step.__qualname__ = "<lambda>"
    return page_step


def chunks(reply: str, n: int = CHUNKS) -> Iterator[str]:
    """The reply so far, in ``n`` growing pieces (as a model streams), 60 ms apart: gradio 5's event stream looks
    for new messages every 50 ms (``check_rate`` in its routes), so pieces closer than that reach any client in
    one read, and a test could not tell a streamed reply from one sent whole."""
    words = reply.split(" ")
    size = max(1, -(-len(words) // n))
    for end in range(size, len(words) + size, size):
        time.sleep(0.06)
        yield " ".join(words[:end])


def launch(demo: gr.Blocks) -> None:
    """Serve on 127.0.0.1 at ``--port N`` (argv), queue on as on Spaces."""
    port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else 7860
    demo.queue().launch(server_name="127.0.0.1", server_port=port, show_error=True)
