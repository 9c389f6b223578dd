"""gradio's ``Chatbot``, which turns each message into the page's form once, not once per streamed update.

Why: while a reply streams, every update the chat step yields is the whole chat, and gradio's ``postprocess``
rebuilds each message of it (pydantic models, then dumped to dicts) each time: in a chat of 200 messages that
was about a third of the app's CPU per update, all of it for messages that did not change. The earlier
messages of a turn are the same dict objects in every update (``ChatService.respond`` yields ``base + [...]``),
so the form made for a message is kept by the message's identity while that message lives (the entry holds the
message, so its id cannot be reused). This app never changes a message in place: ``mirror/chat/chat_values.py``
builds a new dict for every change, and gradio gives each request's chat as new objects.

The forms that hold no file are also vouched for to gradio's file walks (``gradio_internals.pass_over_file_free``),
which otherwise copy the whole chat twice per update looking for files; gradio then sees the same form objects in
each update, so its diff with the previous update passes over them by identity.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import gradio as gr
from gradio_client.utils import is_file_obj

from mirror.door import gradio_internals

KEEP = 20_000  # messages remembered (about 50 visitors' chats at the history limit); beyond, the oldest go
# the message forms that hold no file, by id, while their message is remembered (the entry keeps the id unique)
_FILE_FREE: dict[int, dict[str, Any]] = {}


def is_file_free(value: Any) -> bool:
    """Whether ``value`` is a remembered message form that holds no file (what gradio's file walks may skip)."""
    return type(value) is dict and _FILE_FREE.get(id(value)) is value


def holds_file(value: Any) -> bool:
    """Whether anything in ``value`` passes gradio's widest file test (``is_file_obj``: a dict with a string
    ``"path"``; its other two tests ask that and more), so gradio's file walks may have work in it."""
    if is_file_obj(value):
        return True
    if isinstance(value, dict):
        return any(holds_file(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(holds_file(v) for v in value)
    return False


class MessageForms:
    """The postprocess of one ``gr.Chatbot`` with a memory of the form each message took (see the module's
    docstring). Installed on the instance (``remember_forms``): a subclass of a gradio component would make
    gradio write a ``.pyi`` file beside this module at import."""

    def __init__(self, chatbot: gr.Chatbot, keep: int = KEEP) -> None:
        self.chatbot, self.keep = chatbot, keep
        self.original = chatbot.postprocess
        self._forms: OrderedDict[int, tuple[Any, list[dict[str, Any]]]] = OrderedDict()
        self._lock = threading.Lock()  # gradio runs postprocess in worker threads, several at once

    def postprocess(self, value: Any) -> Any:
        """The chat as the page takes it: a list of message dicts (what gradio's own postprocess dumps to)."""
        if value is None or not isinstance(value, list):
            return self.original(value)
        self.chatbot._check_format(value)
        out: list[dict[str, Any]] = []
        for message in value:
            out.extend(self._form(message))
        return out

    def _form(self, message: Any) -> list[dict[str, Any]]:
        if not isinstance(message, dict):  # a ChatMessage object: not ours, made afresh each time
            return [m.model_dump() for m in self.chatbot._postprocess(message) or []]
        key = id(message)
        with self._lock:
            kept = self._forms.get(key)
            if kept is not None and kept[0] is message:
                self._forms.move_to_end(key)
                return kept[1]
        form = [m.model_dump() for m in self.chatbot._postprocess(message) or []]  # type: ignore[arg-type]
        with self._lock:
            self._forms[key] = (message, form)
            _FILE_FREE.update((id(part), part) for part in form if not holds_file(part))
            while len(self._forms) > self.keep:
                self._forget(self._forms.popitem(last=False)[1][1])
        return form

    @staticmethod
    def _forget(form: list[dict[str, Any]]) -> None:
        for part in form:
            if _FILE_FREE.get(id(part)) is part:
                del _FILE_FREE[id(part)]


def page_form(chatbot: gr.Chatbot, chat: list[Any]) -> list[dict[str, Any]]:
    """``chat`` as the page takes it, made by the chatbot's own postprocess: for a step gradio does not postprocess
    (``postprocess=False``, app.py says why)."""
    postprocess: Callable[[Any], Any] = chatbot.postprocess
    forms: list[dict[str, Any]] = postprocess(chat)  # MessageForms.postprocess: a list for a list
    return forms


def remember_forms(chatbot: gr.Chatbot) -> gr.Chatbot:
    """``chatbot``, its postprocess now making each message's form once (gradio calls ``block.postprocess``)."""
    chatbot.postprocess = MessageForms(chatbot).postprocess  # type: ignore[method-assign]
    gradio_internals.pass_over_file_free(is_file_free)
    return chatbot
