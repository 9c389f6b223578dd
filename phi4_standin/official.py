"""The ``official`` layout: the shape the evidence of the real Space's code points to.

Modelled on the OpenVINO port of the demo (``check_messages`` / ``bot``), on gradio 6.31 speaking gradio 5 wire
shapes. The textbox's ``submit`` starts this chain (indices are checked at build time, see ``build_official``):

==== ================== ========================================================== ======================= =====
dep  fn (api_name)      inputs (component ids)                                     outputs                 queue
==== ================== ========================================================== ======================= =====
2    ``check_messages`` chatbot 13, textbox 15, audio 17                           chatbot 13, textbox 15, False
                                                                                   audio 17, State 18
3    ``bot``            chatbot 13, State 18, sliders 4 Top-p, 5 Top-k,            chatbot 13              True
                        6 Temperature, 7 Repetition Penalty, 8 Max New Tokens
4    ``lambda_1``       (none)                                                     textbox 15              False
==== ================== ========================================================== ======================= =====

3 is ``trigger_after`` 2 and 4 is ``trigger_after`` 3 (``trigger_only_on_success`` false, as ``.then``); only
3 is ``"zerogpu": true``. Before them: 0 the Clear button (19; a ``js``-only ``ClearButton`` dependency
emptying textbox, audio and chatbot), 1 the "Sampling Parameters" button (10) opening the accordion (3).
After them (browser only, never reached from the submit): 5 the hidden chatbot's ``change`` -> the visible
view (12, ``elem_id`` "standin-chat"), 6 the view's ``clear`` -> the hidden chatbot.

* ``check_messages(history, message, audio)`` (``/run/predict``): the Space's own checks, raising ``gr.Error``
  (title "Error") with the Space's texts (``MSG_*``); a gradio 5 / 6 server answers HTTP 500
  ``{"error": text, "title": "Error", "duration", "visible"}``. Files are told apart by their name's ending, as
  the port does (``IMAGE_EXTENSIONS``, ``AUDIO_EXTENSIONS``; case-sensitive like ``str.endswith``). An audio
  FILE longer than ``MAX_AUDIO_S`` (60 s) is refused, one shorter than ``MIN_AUDIO_S`` (0.1 s; the port refuses
  0 s) too; only WAV durations can be read here (stdlib ``wave``), other audio formats pass unchecked. The
  recorded audio (the audio component) is not length-checked, as in the port. Then it writes each image, then
  each audio (files first, then the recorded one) into the history itself as ``{"role": "user", "content":
  (path,), "metadata": {"title": "image"}}`` (or ``"audio"``), then the text as ``{"role": "user", "content":
  text, "metadata": {}}`` (on the wire: ``{"file": FileData, "alt_text": null}`` and metadata
  ``{"title": "image"}``; an empty metadata shows as ``null``), clears the textbox (``interactive: false``) and
  the audio, and keeps ``[{"kind": "image"|"audio", "path": p}, ...]`` (this turn's files) in the State.
* ``bot(history, turn_files, top_p, top_k, temperature, repetition_penalty, max_new_tokens)`` (queued,
  streamed, ZeroGPU): the current turn's files come ONLY from the State (null State: no files, so a client that
  skips the user step gets no image); earlier turns' files only from the history's titled entries (untitled
  ``{"file": ...}`` entries are not read, as the port reads files only by title). The current turn is the
  history's last run of user messages (none if the history does not end with a user message); texts are
  user messages without a title. An empty history gets the history back, no reply (as the port). A slider
  sent as ``null`` fails the turn with gradio's generic failure (``success: false``, ``error: null``), as a
  real Space's model code would.

Sliders (label, parameter, range, step, default): see ``SLIDERS``. A client maps a label to the parameter name
by lowercasing it and turning each run of other characters into ``_`` ("Top-p" -> ``top_p``, "Max New Tokens"
-> ``max_new_tokens``). The reply's ``Settings:`` sentence names the parameters.
"""

from __future__ import annotations

import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.context import Context

from . import reply
from .chat import MSG_EMPTY, Gradio5Chatbot, Gradio5Slider
from .space import VIEW_ELEM_ID, Tunables, add_browser_view, admit, mark_zerogpu, seen_summary, stream_history
from .zerogpu import ZeroGPU

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tiff", ".webp")
AUDIO_EXTENSIONS = (".mp3", ".wav", ".flac", ".m4a", ".wma")
MAX_AUDIO_S = 60.0
MIN_AUDIO_S = 0.1

MSG_ONE_IMAGE = "Please upload only one image file."
MSG_ONE_AUDIO = "Please upload only one audio file."
MSG_AUDIO_OR_RECORD = "Please upload only one audio file or record audio."
MSG_AUDIO_LONG = "Audio file too long. For efficiency we recommend to use audio < 60s"
MSG_AUDIO_SHORT = "Audio file too short"
MSG_UNSUPPORTED = "Unsupported file type: {name}. It should be an image or audio file."

# (parameter, label, minimum, maximum, step, default), in the bot step's parameter order
SLIDERS: tuple[tuple[str, str, float, float, float, float], ...] = (
    ("top_p", "Top-p", 0.0, 1.0, 0.01, 0.95),
    ("top_k", "Top-k", 1, 100, 1, 50),
    ("temperature", "Temperature", 0.0, 2.0, 0.05, 0.8),
    ("repetition_penalty", "Repetition Penalty", 1.0, 2.0, 0.01, 1.05),
    ("max_new_tokens", "Max New Tokens", 1, 4096, 1, 512),
)

USER_FN = 2
BOT_FN = 3
TEXTBOX_ID = 15


def _wav_seconds(path: str) -> float | None:
    """A WAV file's duration, or None when it is not a WAV file this module can read."""
    try:
        with wave.open(path, "rb") as wav:
            return wav.getnframes() / (wav.getframerate() or 1)
    except (wave.Error, EOFError, OSError):
        return None


def check_messages(history: list[dict[str, Any]] | None, message: dict[str, Any] | None,
                   audio: str | None) -> tuple[Any, ...]:
    """The user step: the Space's checks, then files and text into the history, files into the State."""
    message = message or {}
    text = message.get("text") or ""
    files = [str(f) for f in message.get("files") or []]
    if not (text.strip() or files or audio is not None):
        raise gr.Error(MSG_EMPTY, print_exception=False)
    images: list[str] = []
    audios: list[str] = []
    for path in files:
        if path.endswith(AUDIO_EXTENSIONS):
            seconds = _wav_seconds(path)
            if seconds is not None and seconds > MAX_AUDIO_S:
                raise gr.Error(MSG_AUDIO_LONG, print_exception=False)
            if seconds is not None and seconds < MIN_AUDIO_S:
                raise gr.Error(MSG_AUDIO_SHORT, print_exception=False)
            audios.append(path)
        elif path.endswith(IMAGE_EXTENSIONS):
            images.append(path)
        else:
            raise gr.Error(MSG_UNSUPPORTED.format(name=Path(path).name), print_exception=False)
    if len(audios) > 1:
        raise gr.Error(MSG_ONE_AUDIO, print_exception=False)
    if len(images) > 1:
        raise gr.Error(MSG_ONE_IMAGE, print_exception=False)
    if audio is not None:
        if audios:
            raise gr.Error(MSG_AUDIO_OR_RECORD, print_exception=False)
        audios.append(str(audio))
    history = list(history or [])
    turn_files = [{"kind": "image", "path": p} for p in images] + [{"kind": "audio", "path": p} for p in audios]
    for file in turn_files:
        history.append({"role": "user", "content": (file["path"],), "metadata": {"title": file["kind"]}})
    if text:
        history.append({"role": "user", "content": text, "metadata": {}})
    return history, gr.MultimodalTextbox(value=None, interactive=False), None, turn_files


def _title(message: dict[str, Any]) -> str | None:
    metadata = message.get("metadata")
    return metadata.get("title") if isinstance(metadata, dict) else None


def read_turn(
    history: list[dict[str, Any]], turn_files: Any, settings: tuple[tuple[str, float], ...]
) -> reply.TurnInput:
    """What the bot step makes of its inputs (see module docstring): files from the State and titled entries."""
    runs = reply.user_runs(history)
    ends_with_user = bool(history) and isinstance(history[-1], dict) and history[-1].get("role") == "user"
    earlier, current = (runs[:-1], runs[-1]) if ends_with_user else (runs, [])
    items: list[reply.SeenItem] = []
    for number, run in enumerate(earlier, start=1):
        for message in run:
            content = message.get("content")
            title = _title(message)
            if title in ("image", "audio"):
                path = reply._content_file(content)
                if path is not None:
                    items.append(reply.SeenItem(number, "file", path))
            elif not title and isinstance(content, str):
                items.append(reply.SeenItem(number, "text", content))
    number = len(earlier) + 1
    paths = [f["path"] for f in turn_files or [] if isinstance(f, dict) and isinstance(f.get("path"), str)]
    texts = [m["content"] for m in current if not _title(m) and isinstance(m.get("content"), str)]
    items += [reply.SeenItem(number, "file", p) for p in paths]
    items += [reply.SeenItem(number, "text", t) for t in texts]
    return reply.TurnInput("\n".join(texts), tuple(paths), len(earlier), seen=tuple(items), settings=settings)


def make_bot(zgpu: ZeroGPU, tunables: Tunables) -> Callable[..., AsyncIterator[list[dict[str, Any]]]]:
    """The bot step bound to the process state (see module docstring)."""

    async def bot(
        history: list[dict[str, Any]] | None,
        turn_files: list[dict[str, str]] | None,
        top_p: float,
        top_k: float,
        temperature: float,
        repetition_penalty: float,
        max_new_tokens: float,
        request: gr.Request,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        admission = admit(zgpu, request)
        values = (top_p, top_k, temperature, repetition_penalty, max_new_tokens)
        # what the model code does with them first; None crashes here (TypeError: the generic failure)
        settings = tuple((name, float(value)) for (name, *_), value in zip(SLIDERS, values, strict=True))
        history = list(history or [])
        turn = read_turn(history, turn_files, settings)
        zgpu.record_seen(
            admission.session,
            seen_summary("official", "bot", turn, history_messages=len(history), state=turn_files),
        )
        if not history:
            yield history
            return
        async for out in stream_history(zgpu, tunables, admission, turn, history):
            yield out

    return bot


def build_official(zgpu: ZeroGPU, tunables: Tunables, *, gpus: int = 2) -> gr.Blocks:
    """The ``official`` Blocks (see module docstring for the ids and indices it checks)."""
    Context.id = 1
    demo: gr.Blocks
    with gr.Blocks(title="Phi-4 Multimodal (stand-in, official layout)") as demo:
        gr.Markdown("# Phi-4-multimodal-instruct (Phi-4 Mirror stand-in Space)")
        with gr.Accordion("Sampling Parameters", open=False) as sampling:
            sliders = [
                Gradio5Slider(minimum=lo, maximum=hi, step=step, value=default, label=label, interactive=True)
                for _, label, lo, hi, step, default in SLIDERS
            ]
        toggle = gr.Button("Sampling Parameters", size="sm")
        with gr.Column():
            view = gr.Chatbot(label="Phi-4-multimodal", height=480, elem_id=VIEW_ELEM_ID)
            chatbot = Gradio5Chatbot(label="Phi-4-multimodal", height=480, visible=False)  # API only
        with gr.Row(equal_height=True):
            textbox = gr.MultimodalTextbox(
                file_count="multiple",
                placeholder="Enter your prompt or upload image/audio here, then press ENTER...",
                show_label=False,
                scale=8,
                interactive=True,
                sources=["upload"],
            )
        audio = gr.Audio(sources=["microphone", "upload"], type="filepath", label="Audio")
        turn_files = gr.State(None)
        clear = gr.ClearButton([textbox, audio, chatbot], value="Clear")

        toggle.click(lambda: gr.Accordion(open=True), None, [sampling], queue=False, api_visibility="private")
        submit = textbox.submit(
            check_messages, [chatbot, textbox, audio], [chatbot, textbox, audio, turn_files], queue=False
        )
        bot = submit.then(
            make_bot(zgpu, tunables),
            [chatbot, turn_files, *sliders],
            [chatbot],
            concurrency_limit=max(int(gpus), 1),
            concurrency_id="zerogpu",
        )
        bot.then(lambda: gr.MultimodalTextbox(interactive=True), None, [textbox], queue=False)
        add_browser_view(view, chatbot)
    mark_zerogpu(demo.fns[BOT_FN])
    if demo.fns[USER_FN].fn is not check_messages or demo.fns[BOT_FN].name != "bot" or textbox._id != TEXTBOX_ID:
        raise RuntimeError(
            f"official layout: dependency indices or the textbox id moved ({textbox._id}); update the docstring"
        )
    del clear
    return demo
