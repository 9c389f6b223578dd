"""Turns the Space's stream messages into the bridge's events: pure, so it is tested without a network.

``process_generating`` carries the full output value first, then a list of diff operations per output, which
``gradio_client.utils.apply_diff`` applies (any op: replace, append, add, delete). ``apply_diff`` deep-copies
the value it is given, and here the value is the whole chat history, once per chunk: so each operation is handed
only the message it edits (``apply_scoped``), and the copy stays one message long however long the conversation.
The reply is what the turn added to the chatbot output (its position among the step's outputs is given, and
how many messages the chatbot held when the turn began, see ``messages.reply_text``); each event yields only the
text that is new since the last one, which may have come from an earlier step of the same turn. Under gradio's
``sse_v1`` protocol every ``process_generating`` carries whole values, not diffs (``diffs=False``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gradio_client.utils import ServerMessage, apply_diff

from ..errors import Phi4Error, ProtocolError, RemoteError, classify_error_text, redact
from ..events import Event, Log, Queued, Started, TextDelta
from ..messages import reply_text
from .values import is_update


def apply_scoped(value: Any, ops: list[Any]) -> Any:
    """``apply_diff(value, ops)``, with each operation applied by ``apply_diff`` to the element it edits (the
    parent of its target), so that only that element is copied, not the whole history."""
    for op in ops:
        action, path, new = op
        if len(path) < 2:
            value = apply_diff(value, [op])
            continue
        parent = value
        for key in path[:-2]:
            parent = parent[key]
        parent[path[-2]] = apply_diff(parent[path[-2]], [[action, path[-1:], new]])
    return value


def _number(value: Any) -> float | None:
    """A finite number from the stream, else None (JSON from Python servers may carry NaN or Infinity)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


class ReplyStream:
    """State of one queued step's stream: the outputs so far and the reply text already handed on.
    ``chatbot`` is the position of the chatbot among the step's outputs (None: a step that writes no chatbot),
    ``start`` how many messages the chatbot held when the turn began, ``text`` the reply already handed on by
    earlier steps of the turn."""

    def __init__(self, chatbot: int | None = 0, *, start: int = 0, text: str = "", diffs: bool = True) -> None:
        self.chatbot = chatbot
        self.start, self.diffs = start, diffs
        self.outputs: list[Any] | None = None
        self.text = text
        self.completed = False

    def handle(self, message: Mapping[str, Any]) -> list[Event]:
        kind = message.get("msg")
        if kind == ServerMessage.estimation:
            rank = _number(message.get("rank"))
            size = _number(message.get("queue_size"))
            return [Queued(None if rank is None else int(rank), None if size is None else int(size),
                           _number(message.get("rank_eta")))]
        if kind == ServerMessage.process_starts:
            return [Started(_number(message.get("eta")))]
        if kind == ServerMessage.log:
            return [Log(str(message.get("level") or "info").lower(), redact(str(message.get("log") or
                                                                             message.get("message") or "")))]
        if kind == ServerMessage.process_generating:
            return self._generating(message)
        if kind == ServerMessage.process_completed:
            return self._completed(message)
        if kind == ServerMessage.unexpected_error:
            self.completed = True
            raise classify_error_text(str(message.get("message") or "an unexpected error"), None)
        return []  # heartbeat, progress, close_stream and anything newer: nothing to show

    def _output_data(self, message: Mapping[str, Any]) -> list[Any]:
        output = message.get("output")
        data = output.get("data") if isinstance(output, Mapping) else None
        if not isinstance(data, list):
            raise ProtocolError(f"The Space sent a '{message.get('msg')}' event without output data.")
        return data

    def _generating(self, message: Mapping[str, Any]) -> list[Event]:
        data = self._output_data(message)
        if self.outputs is None or not self.diffs:
            self.outputs = list(data)
        else:
            if len(data) != len(self.outputs):
                raise ProtocolError("The Space's stream changed its number of outputs mid-reply.")
            try:
                self.outputs = [apply_scoped(value, ops) for value, ops in zip(self.outputs, data)]
            except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
                raise ProtocolError(f"The Space sent a change the bridge cannot apply ({type(exc).__name__}).") \
                    from exc
        return self.new_text()

    def _completed(self, message: Mapping[str, Any]) -> list[Event]:
        self.completed = True
        output = message.get("output")
        if not message.get("success", True) or (isinstance(output, Mapping) and output.get("error")):
            raise self.failure(message)
        self.outputs = list(self._output_data(message))
        return self.new_text()

    def new_text(self) -> list[Event]:
        if self.chatbot is None:
            return []
        if not self.outputs or len(self.outputs) <= self.chatbot:
            raise ProtocolError("The Space's reply has no chat in its outputs.")
        value = self.outputs[self.chatbot]
        if is_update(value):
            value = value.get("value")
        text = reply_text(value, self.start)
        if not text and self.text:
            return []  # a step that shows the chat without the reply (yet): what was shown stays the reply
        if not text.startswith(self.text):
            self.text = text  # the Space rewrote earlier text; Done carries the whole reply
            return []
        delta, self.text = text[len(self.text):], text
        return [TextDelta(delta)] if delta else []

    @staticmethod
    def failure(message: Mapping[str, Any]) -> Phi4Error:
        output = message.get("output")
        output = output if isinstance(output, Mapping) else {}
        error, title = output.get("error"), output.get("title")
        if not error and not title:
            return RemoteError("The Space failed on this turn without saying why. Retry; if it keeps failing, "
                               "the Space may have changed its interface.")
        return classify_error_text(str(error or ""), str(title) if title else None)


def coalesce(events: list[Event]) -> list[Event]:
    """Adjacent text deltas as one: when the reader fell behind, the consumer catches up in one update."""
    out: list[Event] = []
    for event in events:
        if isinstance(event, TextDelta) and out and isinstance(out[-1], TextDelta):
            out[-1] = TextDelta(out[-1].text + event.text)
        else:
            out.append(event)
    return out
