"""The stand-in Space's gradio Blocks, in one of several layouts, and what every layout shares.

Layouts (``LAYOUTS``; ``DEFAULT_LAYOUT`` is the one place that says which one a bare ``python -m
phi4_standin`` serves):

* ``classic`` (this module): the layout the known client hard-codes. ``fn_index`` 10 (user-message step,
  direct ``/run/predict``), 11 (bot step, queued, streamed) and ``trigger_id`` 8 (the multimodal textbox).
  Component 8 is a ``multimodaltextbox``, the chatbot (id 7) is a ``chatbot`` (Gradio-5-shaped on the wire, see
  ``chat``), dependencies 0-9 are inert padding, 10 is the textbox's ``submit``, 11 its ``.then``, 12 re-enables
  the textbox. Fn 11 has a second, hidden JSON input (id 9) so the known client's second data element
  (``[file messages...]``) is not dropped; its files join the current turn.
* ``official`` (``official.py``): the shape the evidence of the real Space's code points to (the OpenVINO port of the
  demo): user step ``check_messages`` writing titled file entries and a State, bot step reading files only from
  that State and the titled entries, sampling sliders.
* ``chatinterface`` (``chatinterface.py``): a ``gr.ChatInterface(multimodal=True)`` Space.

Shared by all: the bot steps' concurrency limit is the GPU count (gradio's own queue then sends
``estimation`` events with a rank to callers waiting for a GPU), they are marked ``"zerogpu": true`` in
``/config``, and they admit callers, charge quota and act out faults through ``zerogpu`` (``admit``), stream
the reply chunk by chunk (``stream_text``) and record what they received (``GET /standin/seen``).

The page in a browser: gradio 6's chatbot front end cannot draw the Gradio 5 value (its ``normalise_messages``
calls ``content.map`` and throws on a string content, which also leaves the textbox's loading status stuck).
So the API's chatbot is hidden (``visible=False``: not mounted in the page, but its value still lives in the
front end and feeds the steps), and a plain ``gr.Chatbot`` (``elem_id="standin-chat"``) shows it:
browser-only dependencies, added after every dependency of the chat (see ``add_browser_view``), copy every
change of the hidden value into it in gradio 6's shape. API callers never trigger them, and no textbox
``submit`` chain reaches them.

Nothing here imports the bridge (``phi4_bridge``): stand-in and bridge share no code.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.context import Context
from gradio_client import utils as client_utils

from . import reply
from .chat import Gradio5Chatbot
from .zerogpu import CALL_FAULTS, MSG_NO_GPU, MSG_WORKER, TITLE_NO_GPU, TITLE_QUOTA, TITLE_WORKER, ZeroGPU, ZeroGPUError

LAYOUTS = ("classic", "official", "chatinterface")
DEFAULT_LAYOUT = "official"  # the shape the evidence of the real Space's code points to

TEXTBOX_ID = 8
VIEW_ID = TEXTBOX_ID - 2  # the visible chatbot; the hidden Gradio 5 one sits between it and the textbox
USER_FN = 10
BOT_FN = 11
VIEW_ELEM_ID = "standin-chat"


@dataclass
class Tunables:
    """The settings that ``POST /standin/config`` may change while the server runs (their start values, and the
    defaults, are the CLI's: ``server.StandinSettings``)."""

    pace_ms: float
    chunks: int
    slow_start_s: float
    drop_after: int


# ---- shared by every layout's bot step ------------------------------------------------------------------------
@dataclass
class Admission:
    """A caller let in by ``admit``: their session hash and the call fault to act out (slow_start only)."""

    session: str
    fault: str | None


def admit(zgpu: ZeroGPU, request: gr.Request | None) -> Admission:
    """Identify the caller, charge one call's GPU seconds, act out call faults; ``gr.Error`` when refused.

    A ``gr.Warning`` says when the quota runs low, as ZeroGPU's own warnings do.
    """
    headers = request.headers if request is not None else {}
    token = headers.get("x-zerogpu-token") or headers.get("x-ip-token")
    host = request.client.host if request is not None and request.client else "unknown"
    session = (request.session_hash if request is not None else None) or "anonymous"
    fault = zgpu.take_fault(CALL_FAULTS)
    try:
        caller = zgpu.identify(token, host, force_expired=fault == "token_expired")
        if fault == "quota":
            message = zgpu.quota_message(caller.kind, zgpu.gpu_seconds_per_call, 0.0, zgpu.quota_window)
            raise ZeroGPUError(TITLE_QUOTA, message)
        if fault == "no_gpu":
            raise ZeroGPUError(TITLE_NO_GPU, MSG_NO_GPU)
        if fault == "says":
            raise ZeroGPUError(*zgpu.said)
        left = zgpu.charge(caller)
        if fault == "worker_error":
            raise ZeroGPUError(TITLE_WORKER, MSG_WORKER)
    except ZeroGPUError as err:
        zgpu.bump("errors")
        raise gr.Error(err.message, title=err.title, print_exception=False) from None
    if left < 2 * zgpu.gpu_seconds_per_call:
        gr.Warning(f"ZeroGPU quota running low: {left:g}s left")
    return Admission(session, fault)


async def stream_text(
    zgpu: ZeroGPU, tunables: Tunables, admission: Admission, turn: reply.TurnInput
) -> AsyncIterator[str]:
    """The reply for ``turn``, yielded as its text so far, one chunk at a time (counters and stamps kept)."""
    chunks = max(int(tunables.chunks), 1)
    text = await asyncio.to_thread(reply.build_reply, turn, chunks)
    parts = reply.split_chunks(text, chunks)
    zgpu.bump("calls")
    zgpu.bump("active")
    finished, ended = False, False

    def end(_: object = None) -> None:
        nonlocal ended
        if not ended:
            ended = True
            zgpu.bump("active", -1)
            if not finished:
                zgpu.bump("cancelled")

    # The job also ends with gradio's task for the event. A cancel that lands after a yield but before gradio keeps
    # the generator leaves it suspended, and its ``finally`` runs only when something later drops it (in gradio
    # 6.31, when the next event runs: tests/test_gradio_cancel_race.py).
    task = asyncio.current_task()
    if task is not None:
        task.add_done_callback(end)
    try:
        if admission.fault == "slow_start":
            await asyncio.sleep(tunables.slow_start_s)
        sent = ""
        for index, part in enumerate(parts):
            if index:
                await asyncio.sleep(max(tunables.pace_ms, 0) / 1000.0)
            sent += part
            zgpu.stamp(admission.session, len(sent))
            yield sent
        finished = True
    finally:
        if task is not None:
            task.remove_done_callback(end)
        end()


async def stream_history(
    zgpu: ZeroGPU, tunables: Tunables, admission: Admission, turn: reply.TurnInput, history: list[dict[str, Any]]
) -> AsyncIterator[list[dict[str, Any]]]:
    """``history`` plus an assistant message growing chunk by chunk."""
    out = list(history)
    out.append({"role": "assistant", "content": ""})
    async for sent in stream_text(zgpu, tunables, admission, turn):
        out[-1] = {"role": "assistant", "content": sent}
        yield list(out)


def seen_summary(layout: str, fn: str, turn: reply.TurnInput, **inputs: Any) -> dict[str, Any]:
    """What ``GET /standin/seen`` shows for a session's last bot step."""
    return {
        "layout": layout,
        "fn": fn,
        "prompt": turn.prompt,
        "files": list(turn.files),
        "earlier_turns": turn.earlier_turns,
        "seen": [
            {"turn": item.turn, "kind": item.kind, "value": item.value, "described": reply.describe_seen(item)}
            for item in turn.seen or ()
        ],
        "settings": dict(turn.settings),
        "inputs": inputs,
    }


def mark_zerogpu(block_fn: Any) -> None:
    """Add ``"zerogpu": true`` to a dependency's ``/config`` entry, as ZeroGPU Spaces show it."""
    plain = block_fn.get_config

    def get_config(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {**plain(*args, **kwargs), "zerogpu": True}

    block_fn.get_config = get_config


# ---- the browser view -----------------------------------------------------------------------------------------
def _view_item(content: Any) -> dict[str, Any] | None:
    """One Gradio 5 message content as a gradio 6 chatbot part (``None`` for nothing drawable)."""
    if isinstance(content, str):
        return {"type": "text", "text": content}
    path: str | None = None
    file: dict[str, Any] = {}
    if isinstance(content, dict):
        inner = content.get("file", content)
        if isinstance(inner, dict) and isinstance(inner.get("path"), str):
            file, path = dict(inner), inner["path"]
    elif isinstance(content, (list, tuple)) and content and isinstance(content[0], str):
        path = content[0]
    if path is None:
        return None
    file["path"] = path
    file.setdefault("meta", {"_type": "gradio.FileData"})
    # gradio's file handling empties mime_type and orig_name; the front end picks how to draw a file by its mime
    # type, so without them an image would show as a plain file link instead of the picture
    file["mime_type"] = file.get("mime_type") or client_utils.get_mimetype(path)
    file["orig_name"] = file.get("orig_name") or Path(path).name
    return {"type": "file", "file": file}


def history_view(history: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The hidden chatbot's Gradio 5 history as the visible chatbot's value (lists of typed parts).

    A text that follows files of the same role joins their message, so an attached image and its question
    show as one bubble; titles (``metadata``) are dropped, or gradio 6 would fold titled file entries away.
    """
    out: list[dict[str, Any]] = []
    for message in history or []:
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            continue
        item = _view_item(message.get("content"))
        if item is None:
            continue
        last = out[-1] if out else None
        if (
            last
            and last["role"] == message["role"]
            and item["type"] == "text"
            and last["content"][-1]["type"] == "file"
        ):
            last["content"].append(item)
        else:
            out.append({"role": message["role"], "content": [item]})
    return out


def empty_history() -> list[dict[str, Any]]:
    """What the view's clear button puts into the hidden chatbot."""
    return []


def add_browser_view(view: gr.Chatbot, chatbot: Gradio5Chatbot, also_clear: tuple[Any, ...] = ()) -> None:
    """Dependencies only the page triggers (after every chat dependency): keep ``view`` in sync with ``chatbot``.

    ``.change`` fires on each streamed chunk too (the front end dispatches it for backend updates of a
    component even when it is not mounted), and its default ``trigger_mode="always_last"`` makes sure the
    last value is shown. Not queued: a cheap conversion must not wait behind bot steps for a GPU slot.
    The view's own clear button empties the real history (and ``also_clear``) as well, or the next turn would
    bring it back.
    """
    chatbot.change(history_view, [chatbot], [view], queue=False, api_visibility="private")
    outputs = [chatbot, *also_clear]

    def clear() -> Any:
        return empty_history() if len(outputs) == 1 else tuple(empty_history() for _ in outputs)

    view.clear(clear, None, outputs, queue=False, api_visibility="private")


# ---- the classic layout ---------------------------------------------------------------------------------------
def user_step(history: list[dict[str, Any]] | None, message: dict[str, Any] | None, _third: Any) -> tuple[Any, ...]:
    """Fn 10: append the textbox's files and text to the history (Gradio 5 shape), clear the textbox."""
    history = list(history or [])
    message = message or {}
    for item in message.get("files") or []:
        data = item if isinstance(item, dict) else {"path": str(item), "meta": {"_type": "gradio.FileData"}}
        history.append({"role": "user", "content": {"file": data}})
    if message.get("text"):
        history.append({"role": "user", "content": message["text"]})
    return history, gr.MultimodalTextbox(value=None, interactive=False)


def make_bot_step(zgpu: ZeroGPU, tunables: Tunables) -> Callable[..., AsyncIterator[list[dict[str, Any]]]]:
    """Fn 11 bound to the process state: admit the caller, charge quota, stream the reply chunk by chunk.

    It reads every file of the history wherever it is, plus the files of its second input (the known client's
    ``[file messages...]``), which join the current turn.
    """

    async def bot_step(
        history: list[dict[str, Any]] | None, extra: Any, request: gr.Request
    ) -> AsyncIterator[list[dict[str, Any]]]:
        admission = admit(zgpu, request)
        extra_messages = [m for m in extra if isinstance(m, dict)] if isinstance(extra, list) else []
        current = reply.parse_turn(history, extra_messages)
        turn = reply.TurnInput(
            current.prompt, current.files, current.earlier_turns, seen=reply.seen_in_history(history, extra_messages)
        )
        zgpu.record_seen(
            admission.session,
            seen_summary(
                "classic", "bot_step", turn, history_messages=len(history or []), extra_messages=len(extra_messages)
            ),
        )
        async for out in stream_history(zgpu, tunables, admission, turn, list(history or [])):
            yield out

    return bot_step


def _pad_components_to(target_id: int) -> None:
    """Create inert hidden components until the next block id is ``target_id``."""
    while Context.id < target_id:
        gr.Markdown(visible=False)


def build_classic(zgpu: ZeroGPU, tunables: Tunables, *, gpus: int = 2) -> gr.Blocks:
    """The known client's Space: chatbot, multimodal textbox (id 8), fn 10 submit, fn 11 ``.then`` (ZeroGPU)."""
    Context.id = 1  # the Blocks itself is 0; keep component ids stable whatever was built before
    demo: gr.Blocks
    with gr.Blocks(title="Phi-4 Multimodal (stand-in)") as demo:
        gr.Markdown("# Phi-4-multimodal-instruct (Phi-4 Mirror stand-in Space)")
        _pad_components_to(VIEW_ID)
        view = gr.Chatbot(label="Phi-4-multimodal", height=480, elem_id=VIEW_ELEM_ID)
        chatbot = Gradio5Chatbot(label="Phi-4-multimodal", height=480, visible=False)  # API only, see above
        textbox = gr.MultimodalTextbox(
            interactive=True,
            file_count="multiple",
            placeholder="Enter message or upload file...",
            show_label=False,
            sources=["upload", "microphone"],
        )
        if textbox._id != TEXTBOX_ID:
            raise RuntimeError(f"multimodal textbox got id {textbox._id}, expected {TEXTBOX_ID}")
        extra_files = gr.JSON(visible=False, label="extra files (known client's second data element)")
        third = gr.State(None)
        padding = gr.Button("padding", visible=False)
        for _ in range(USER_FN):
            padding.click(None, None, None, queue=False, api_visibility="private")
        submit = textbox.submit(
            user_step,
            [chatbot, textbox, third],
            [chatbot, textbox],
            queue=False,
            api_name="add_message",
        )
        bot = submit.then(
            make_bot_step(zgpu, tunables),
            [chatbot, extra_files],
            [chatbot],
            api_name="bot",
            concurrency_limit=max(int(gpus), 1),
            concurrency_id="zerogpu",
        )
        bot.then(lambda: gr.MultimodalTextbox(interactive=True), None, [textbox], queue=False)
        add_browser_view(view, chatbot)
    mark_zerogpu(demo.fns[BOT_FN])
    if view._id != VIEW_ID or chatbot._id != TEXTBOX_ID - 1:
        raise RuntimeError(f"chatbots got ids {view._id} / {chatbot._id}, expected {VIEW_ID} / {TEXTBOX_ID - 1}")
    if demo.fns[USER_FN].fn is not user_step or demo.fns[BOT_FN].name != "bot_step":
        raise RuntimeError("dependency indices do not line up with the real Space's 10 / 11")
    return demo


def build_blocks(zgpu: ZeroGPU, tunables: Tunables, *, gpus: int = 2, layout: str = DEFAULT_LAYOUT) -> gr.Blocks:
    """The Space's Blocks in the named layout (see module docstring)."""
    if layout == "classic":
        return build_classic(zgpu, tunables, gpus=gpus)
    if layout == "official":
        from .official import build_official

        return build_official(zgpu, tunables, gpus=gpus)
    if layout == "chatinterface":
        from .chatinterface import build_chatinterface

        return build_chatinterface(zgpu, tunables, gpus=gpus)
    raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
