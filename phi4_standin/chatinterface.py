"""The ``chatinterface`` layout: a ``gr.ChatInterface(multimodal=True)`` Space, as other Phi-4 Spaces are built.

gradio 6.31 builds the chain itself; the chatbot is ``chat.Gradio5Chatbot`` (passed as ``chatbot=``), so the
history on the wire has gradio 5 shapes. gradio 6's ChatInterface builds the user message as ONE message
``{"role": "user", "content": [{"path": p}, ..., "text"]}``; ``Gradio5Chatbot.postprocess`` splits it into one
message per file (``{"file": FileData, "alt_text": null}``, metadata ``null``) and then the text, as gradio 5's
ChatInterface did. Ids and indices (checked at build time in ``build_chatinterface``): view chatbot 2
(``elem_id`` "standin-chat"), API chatbot 3 (``Gradio5Chatbot``, hidden), textbox 4, sliders 5 ``temperature``
and 6 ``max_new_tokens`` (in an accordion "Settings"), States: saved_conversations 8 (a ``browserstate``),
conversation_id 9, saved_input 10, null_component 11, chatbot_state 19, chatbot_value 20. The textbox's
``submit`` starts dependency 0; ``trigger_after`` then makes a TREE, not a line:

==== ================================ ====================================== =================================== =====
dep  fn (after)                       inputs                                 outputs                             queue
==== ================================ ====================================== =================================== =====
0    ``_clear_and_save_textbox``      textbox 4                              textbox 4 (``""``, interactive      False
     (submit of 4)                                                           false), saved_input State 10
1    ``_append_message_to_history``   saved_input State 10, chatbot 3        chatbot 3                           False
     (then, after 0)
14   ``lambda_5`` (success, after 0)  (none)                                 textbox 4 (shows the stop button)   False
2    ``_submit_fn`` (then, after 1)   saved_input State 10, chatbot_state    null_component State 11, chatbot 3  True
                                      State 19, slider 5, slider 6
3    ``lambda`` (then, after 2)       chatbot 3                              chatbot_state State 19,             False
                                                                             chatbot_value State 20
16   ``lambda_7`` (then, after 2)     (none)                                 textbox 4 (hides the stop button)   False
4    ``lambda_1`` (then, after 3)     (none)                                 textbox 4 (value null, interactive) True
5    ``_save_conversation``           conversation_id State 9, chatbot_state conversation_id State 9,            False
     (then, after 4)                  State 19, saved_conversations 8        saved_conversations 8
==== ================================ ====================================== =================================== =====

Every other dependency is gradio's own (6 the hidden ``/chat`` API button, whose fn is also ZeroGPU-marked;
7-13 retry; 15, 17 stop-button updates after the retry chain; 18-19 stop; 20-22 undo; 23-26 option select;
27-28 clear; 29-30 ``chatbot_value.change``) or the browser view (31 the API chatbot's ``change`` -> view, 32 the
view's ``clear``); none is reached from the submit. ``"zerogpu": true`` is on 2, 6, 10 and 24 (every
dependency that runs the chat function).

What a client must know (gradio's design, not ours): step 0 copies the textbox value into a State; step 2 takes
the message from that State and the history from ``chatbot_state``, another State that only step 3 (AFTER the
bot step) refreshes from the chatbot. So the bot step sees neither this turn's message (if step 0 was skipped)
nor the earlier turns (if step 3 was skipped in an earlier turn): every queue=False step of the chain matters.
Step 2's outputs are the null State and the chatbot (the full history with the growing assistant message).

The chat function ``chat(message, history, temperature, max_new_tokens)`` gets the message as
``{"text", "files": [paths]}`` and the earlier history (gradio 5 shape, files untitled ``{"file": ...}``): every
file of the history is an earlier turn's file; the message's files and text are the current turn.
Sliders: ``SLIDERS`` (labels ARE the parameter names). An empty message (no text, no file) raises
``gr.Error("Message is empty")`` from the chat function (so in the queued bot step, not in step 0).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import gradio as gr
from gradio.context import Context

from . import reply
from .chat import MSG_EMPTY, Gradio5Chatbot, Gradio5Slider
from .space import VIEW_ELEM_ID, Tunables, add_browser_view, admit, mark_zerogpu, seen_summary, stream_text
from .zerogpu import ZeroGPU

# (parameter = label, minimum, maximum, step, default), in the chat function's parameter order
SLIDERS: tuple[tuple[str, float, float, float, float], ...] = (
    ("temperature", 0.0, 2.0, 0.05, 0.8),
    ("max_new_tokens", 1, 4096, 1, 512),
)

SUBMIT_FN = 0
BOT_FN = 2
TEXTBOX_ID = 4


def read_turn(
    message: dict[str, Any], history: list[dict[str, Any]], settings: tuple[tuple[str, float], ...]
) -> reply.TurnInput:
    """The current turn from the message; everything before it from the history (files wherever they are)."""
    earlier = reply.seen_in_history(history)
    number = len(reply.user_runs(history)) + 1
    files = tuple(str(f) for f in message.get("files") or [])
    text = message.get("text") or ""
    items = list(earlier) + [reply.SeenItem(number, "file", p) for p in files]
    if text:
        items.append(reply.SeenItem(number, "text", text))
    return reply.TurnInput(text, files, number - 1, seen=tuple(items), settings=settings)


def make_chat(zgpu: ZeroGPU, tunables: Tunables) -> Callable[..., AsyncIterator[str]]:
    """The ChatInterface's function, bound to the process state."""

    async def chat(
        message: dict[str, Any] | None,
        history: list[dict[str, Any]] | None,
        temperature: float,
        max_new_tokens: float,
        request: gr.Request,
    ) -> AsyncIterator[str]:
        admission = admit(zgpu, request)
        message = message or {}
        if not ((message.get("text") or "").strip() or message.get("files")):
            raise gr.Error(MSG_EMPTY, print_exception=False)
        settings = (("temperature", float(temperature)), ("max_new_tokens", float(max_new_tokens)))
        history = list(history or [])
        turn = read_turn(message, history, settings)
        zgpu.record_seen(
            admission.session,
            seen_summary("chatinterface", "chat", turn, history_messages=len(history), message=message),
        )
        async for sent in stream_text(zgpu, tunables, admission, turn):
            yield sent

    return chat


def build_chatinterface(zgpu: ZeroGPU, tunables: Tunables, *, gpus: int = 2) -> gr.Blocks:
    """A Blocks holding the visible view and the ``gr.ChatInterface`` (see module docstring)."""
    Context.id = 1
    demo: gr.Blocks
    with gr.Blocks(title="Phi-4 Multimodal (stand-in, ChatInterface layout)") as demo:
        view = gr.Chatbot(label="Phi-4-multimodal", height=480, elem_id=VIEW_ELEM_ID)
        chatbot = Gradio5Chatbot(label="Phi-4-multimodal", height=480, visible=False)  # API only
        textbox = gr.MultimodalTextbox(
            file_count="multiple",
            placeholder="Type a message or upload an image or audio file...",
            sources=["upload", "microphone"],
        )
        sliders: list[str | gr.components.Component] = [
            Gradio5Slider(minimum=lo, maximum=hi, step=step, value=default, label=name, render=False)
            for name, lo, hi, step, default in SLIDERS
        ]
        interface = gr.ChatInterface(
            make_chat(zgpu, tunables),
            multimodal=True,
            chatbot=chatbot,
            textbox=textbox,
            additional_inputs=sliders,
            additional_inputs_accordion="Settings",
            concurrency_limit=max(int(gpus), 1),
            title="Phi-4-multimodal-instruct (Phi-4 Mirror stand-in Space)",
            fill_height=False,
        )
        add_browser_view(view, chatbot, (interface.chatbot_state, interface.chatbot_value))
    fns = demo.fns
    bot = fns[BOT_FN]
    for block_fn in fns.values():
        if (block_fn.name or "").startswith("_submit_fn") or block_fn.name == "chat":
            mark_zerogpu(block_fn)
    if textbox._id != TEXTBOX_ID or fns[SUBMIT_FN].targets != [(textbox._id, "submit")] or bot.name != "_submit_fn":
        raise RuntimeError(f"chatinterface layout moved (textbox {textbox._id}); update the docstring")
    return demo
