"""The stand-in Space's gradio Blocks, laid out so ids and indices match the real Space's.

Why: the known client hard-codes ``fn_index`` 10 (user-message step, direct ``/run/predict``), 11 (bot step,
queued, streamed) and ``trigger_id`` 8 (the multimodal textbox), and the bridge discovers them from
``/config`` by component type and ``trigger_after``. So: component 8 is a ``multimodaltextbox``, the chatbot
is a ``chatbot`` (Gradio-5-shaped on the wire, see ``chat``), dependencies 0-9 are inert padding, 10 is the
textbox's ``submit``, 11 is its ``.then``. Fn 11 has a second, hidden JSON input so the known client's second
data element (``[file messages...]``) is not dropped. Its concurrency limit is the GPU count, so gradio's own
queue sends ``estimation`` events (with rank) to callers waiting for a GPU.

The page in a browser: gradio 6's chatbot front end cannot draw the Gradio 5 value (its ``normalise_messages``
calls ``content.map`` and throws on a string content, which also leaves the textbox's loading status stuck).
So the API's chatbot (id 7) is hidden (``visible=False``: not mounted in the page, but its value still lives in
the front end and feeds fn 10 / 11), and a plain ``gr.Chatbot`` (id 6, taking the place of a padding block)
shows it: browser-only dependencies after 11 (see ``_add_browser_view``) copy every change of the hidden value
into it in gradio 6's shape. Nothing of dependencies 0-11 changes; API callers never trigger the extra ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.context import Context
from gradio_client import utils as client_utils

from ..messages import to_local
from . import reply
from .chat import Gradio5Chatbot
from .zerogpu import CALL_FAULTS, MSG_NO_GPU, MSG_WORKER, TITLE_NO_GPU, TITLE_QUOTA, TITLE_WORKER, ZeroGPU, ZeroGPUError

TEXTBOX_ID = 8
VIEW_ID = TEXTBOX_ID - 2  # the visible chatbot; the hidden Gradio 5 one sits between it and the textbox
USER_FN = 10
BOT_FN = 11


@dataclass
class Tunables:
    """Settings that ``POST /standin/config`` may change while the server runs (their start values, and the
    defaults, are the CLI's: ``server.Settings``)."""

    pace_ms: float
    chunks: int
    slow_start_s: float
    drop_after: int


def user_step(history: list[dict[str, Any]] | None, message: dict[str, Any] | None, _third: Any) -> tuple:
    """Fn 10: append the textbox's files and text to the history (Gradio 5 shape), clear the textbox."""
    history = list(history or [])
    message = message or {}
    for item in message.get("files") or []:
        data = item if isinstance(item, dict) else {"path": str(item), "meta": {"_type": "gradio.FileData"}}
        history.append({"role": "user", "content": {"file": data}})
    if message.get("text"):
        history.append({"role": "user", "content": message["text"]})
    return history, gr.MultimodalTextbox(value=None, interactive=False)


def make_bot_step(zgpu: ZeroGPU, tunables: Tunables):
    """Fn 11 bound to the process state: admit the caller, charge quota, stream the reply chunk by chunk."""

    async def bot_step(
        history: list[dict[str, Any]] | None, extra: Any, request: gr.Request
    ) -> AsyncIterator[list[dict[str, Any]]]:
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
            left = zgpu.charge(caller)
            if fault == "worker_error":
                raise ZeroGPUError(TITLE_WORKER, MSG_WORKER)
        except ZeroGPUError as err:
            zgpu.bump("errors")
            raise gr.Error(err.message, title=err.title, print_exception=False) from None

        if left < 2 * zgpu.gpu_seconds_per_call:
            gr.Warning(f"ZeroGPU quota running low: {left:g}s left")
        extra_messages = extra if isinstance(extra, list) else []
        turn = reply.parse_turn(history, [m for m in extra_messages if isinstance(m, dict)])
        chunks = max(int(tunables.chunks), 1)
        text = await asyncio.to_thread(reply.build_reply, turn, chunks)
        parts = reply.split_chunks(text, chunks)
        out = list(history or [])
        out.append({"role": "assistant", "content": ""})
        zgpu.bump("calls")
        zgpu.bump("active")
        finished = False
        try:
            if fault == "slow_start":
                await asyncio.sleep(tunables.slow_start_s)
            sent = ""
            for index, part in enumerate(parts):
                if index:
                    await asyncio.sleep(max(tunables.pace_ms, 0) / 1000.0)
                sent += part
                out[-1] = {"role": "assistant", "content": sent}
                zgpu.stamp(session, len(sent))
                yield list(out)
            finished = True
        finally:
            zgpu.bump("active", -1)
            if not finished:
                zgpu.bump("cancelled")

    return bot_step


def _pad_components_to(target_id: int) -> None:
    """Create inert hidden components until the next block id is ``target_id``."""
    while Context.id < target_id:
        gr.Markdown(visible=False)


def history_view(history: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The hidden chatbot's Gradio 5 history as the visible chatbot's value (lists of typed parts).

    Files come back from gradio's file handling with ``mime_type`` and ``orig_name`` emptied; the chatbot
    front end picks how to draw a file by its mime type, so both are filled in again from the path, or an
    attached image would show as a plain file link instead of the picture.
    """
    messages = to_local(history or [])
    for message in messages:
        for part in message["content"]:
            file = part.get("file") if part["type"] == "file" else None
            if file and file.get("path"):
                file["mime_type"] = file.get("mime_type") or client_utils.get_mimetype(file["path"])
                file["orig_name"] = file.get("orig_name") or Path(file["path"]).name
    return messages


def empty_history() -> list[dict[str, Any]]:
    """What the view's clear button puts into the hidden chatbot."""
    return []


def _add_browser_view(view: gr.Chatbot, chatbot: Gradio5Chatbot) -> None:
    """Dependencies only the page triggers (indices after 11): keep ``view`` in sync with ``chatbot``.

    ``.change`` fires on each streamed chunk too (the front end dispatches it for backend updates of a
    component even when it is not mounted), and its default ``trigger_mode="always_last"`` makes sure the
    last value is shown. Not queued: a cheap conversion must not wait behind bot steps for a GPU slot.
    The view's own clear button empties the real history as well, or the next turn would bring it back.
    """
    chatbot.change(history_view, [chatbot], [view], queue=False, api_visibility="private")
    view.clear(empty_history, None, [chatbot], queue=False, api_visibility="private")


def _mark_zerogpu(block_fn: Any) -> None:
    """Add ``"zerogpu": true`` to a dependency's ``/config`` entry, as ZeroGPU Spaces show it."""
    plain = block_fn.get_config

    def get_config(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {**plain(*args, **kwargs), "zerogpu": True}

    block_fn.get_config = get_config


def build_blocks(zgpu: ZeroGPU, tunables: Tunables, *, gpus: int = 2) -> gr.Blocks:
    """The Space's Blocks: chatbot, multimodal textbox (id 8), fn 10 submit, fn 11 ``.then`` (ZeroGPU)."""
    Context.id = 1  # the Blocks itself is 0; keep component ids stable whatever was built before
    with gr.Blocks(title="Phi-4 Multimodal (stand-in)") as demo:
        gr.Markdown("# Phi-4-multimodal-instruct (Phi-4 Mirror stand-in Space)")
        _pad_components_to(VIEW_ID)
        view = gr.Chatbot(label="Phi-4-multimodal", height=480, elem_id="standin-chat")
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
        _add_browser_view(view, chatbot)
    _mark_zerogpu(demo.fns[BOT_FN])
    if view._id != VIEW_ID or chatbot._id != TEXTBOX_ID - 1:
        raise RuntimeError(f"chatbots got ids {view._id} / {chatbot._id}, expected {VIEW_ID} / {TEXTBOX_ID - 1}")
    if demo.fns[USER_FN].fn is not user_step or demo.fns[BOT_FN].name != "bot_step":
        raise RuntimeError("dependency indices do not line up with the real Space's 10 / 11")
    return demo
