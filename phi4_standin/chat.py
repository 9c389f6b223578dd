"""Components that behave on the API as their gradio 5 selves: the chatbot (Gradio 5 "messages" shape) and a
slider that passes ``null`` through (``Gradio5Slider``).

Why: the real Space is a gradio-5-era app whose history is ``{"role", "content"}`` with ``content`` a plain
string or ``{"file": FileData}``; gradio 6's ``gr.Chatbot`` insists on lists of typed parts and rejects the
Gradio 5 shape. This subclass keeps the component type ``chatbot`` in ``/config`` (so
clients discover it by type) but validates and emits the Gradio 5 shape, as a gradio 5.20 server does:

* input: text ``{"role": "user", "content": "text"}``, file ``{"role": "user", "content": {"file": FileData}}``;
  a bare FileData as content is rejected, like gradio 5 does;
* output: every message as ``{"role", "metadata", "content", "options"}``, file contents as
  ``{"file": FileData, "alt_text": ...}``. Because text content stays a plain string, gradio's generic diff
  streams a growing reply as ``["append", [i, "content"], "<delta>"]`` like a gradio 5 chatbot.
  A function may return file contents as gradio 5 apps do: a path tuple ``(path,)`` or ``(path, alt_text)``
  (gradio 5 made that ``FileData(path, mime_type)``), or ``{"path": ...}``. A message whose content is a LIST
  (gradio 6's ``ChatInterface`` builds the user message as ``[{"path": p}, ..., "text"]``) becomes one message
  per item, files first as given, as gradio 5's ``ChatInterface`` added them.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import gradio.component_meta as _component_meta
from gradio_client import utils as client_utils

ROLES = ("user", "assistant", "system")
_OPT_STR: dict[str, Any] = {"anyOf": [{"type": "string"}, {"type": "null"}]}

_FILE_DATA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "path": {"type": "string"},
        "url": _OPT_STR,
        "size": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        "orig_name": _OPT_STR,
        "mime_type": _OPT_STR,
        "is_stream": {"type": "boolean"},
        "meta": {"type": "object"},
    },
    "required": ["path"],
}


def _is_file_data(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("path"), str)


def _path_file(path: str, alt_text: Any = None) -> dict[str, Any]:
    """A file content made from a bare path, as gradio 5's chatbot postprocess made it."""
    file = {
        "path": path,
        "url": None,
        "size": None,
        "orig_name": None,
        "mime_type": client_utils.get_mimetype(path),
        "is_stream": False,
        "meta": {"_type": "gradio.FileData"},
    }
    return {"file": file, "alt_text": alt_text}


def _check_content(content: Any) -> Any:
    """One message content in the Gradio 5 shape, or ValueError (gradio reports it as a failed event)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict) and _is_file_data(content.get("file")):
        return {"file": content["file"], "alt_text": content.get("alt_text")}
    if isinstance(content, tuple) and content and isinstance(content[0], str):
        return _path_file(content[0], content[1] if len(content) > 1 else None)
    if isinstance(content, list) and content and isinstance(content[0], str):
        return {"file": {"path": content[0], "meta": {"_type": "gradio.FileData"}}, "alt_text": None}
    raise ValueError(
        "Data incompatible with messages format: content must be a string or {'file': FileData}, "
        f"got {type(content).__name__}"
    )


def _split_content(content: Any) -> list[Any]:
    """A function's message content as gradio 5 contents: a list of parts becomes one content per part."""
    if not isinstance(content, list):
        return [content]
    contents: list[Any] = []
    for item in content:
        if isinstance(item, dict) and isinstance(item.get("path"), str) and "file" not in item:
            contents.append(_path_file(item["path"], item.get("alt_text")))
        elif isinstance(item, dict) and item.get("type") == "text":
            contents.append(str(item.get("text", "")))
        elif isinstance(item, dict) and item.get("type") == "file" and _is_file_data(item.get("file")):
            contents.append({"file": item["file"], "alt_text": item.get("alt_text")})
        else:
            contents.append(item)
    return contents


MSG_EMPTY = "Message is empty"  # the real demos' gr.Error for a turn with neither text nor file

# gradio writes a ``.pyi`` stub beside every new component class's source file; not wanted in the package.
_write_stub = _component_meta.create_or_modify_pyi
_component_meta.create_or_modify_pyi = lambda *args, **kwargs: None


class Gradio5Chatbot(gr.Chatbot):
    """``gr.Chatbot`` with the Gradio 5 messages shape on the wire (see module docstring)."""

    data_model = None  # type: ignore[assignment]  # no gradio-6 pydantic validation: we validate the Gradio 5 shape ourselves

    def get_block_name(self) -> str:
        return "chatbot"

    def preprocess(self, payload: Any) -> list[dict[str, Any]]:  # type: ignore[override]
        """Validated Gradio 5 messages: ``{"role", "content", "metadata"?, "options"?}``."""
        if payload is None:
            return []
        if not isinstance(payload, list):
            raise ValueError("Data incompatible with messages format: history must be a list")
        messages: list[dict[str, Any]] = []
        for message in payload:
            if not isinstance(message, dict) or message.get("role") not in ROLES or "content" not in message:
                raise ValueError(
                    "Data incompatible with messages format. Each message should be a dictionary with "
                    "'role' and 'content' keys."
                )
            messages.append(
                {
                    "role": message["role"],
                    "metadata": message.get("metadata"),
                    "content": _check_content(message["content"]),
                    "options": message.get("options"),
                }
            )
        return messages

    def postprocess(self, value: Any) -> list[dict[str, Any]]:  # type: ignore[override]
        """The Gradio 5 output shape: per message role, metadata, content, options."""
        if not value:
            return []
        out: list[dict[str, Any]] = []
        for message in value:
            if isinstance(message, gr.ChatMessage):
                message = {"role": message.role, "content": message.content, "metadata": message.metadata}
            for content in _split_content(message["content"]):
                out.append(
                    {
                        "role": message["role"],
                        "metadata": message.get("metadata") or None,
                        "content": _check_content(content),
                        "options": message.get("options") or None,
                    }
                )
        return out

    def api_info(self) -> dict[str, Any]:
        content = {"anyOf": [{"type": "string"}, {"type": "object", "properties": {"file": _FILE_DATA_SCHEMA}}]}
        return {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "role": {"type": "string", "enum": list(ROLES)},
                    "content": content,
                    "metadata": {"anyOf": [{"type": "object"}, {"type": "null"}]},
                    "options": {"anyOf": [{"type": "array", "items": {"type": "object"}}, {"type": "null"}]},
                },
                "required": ["role", "content"],
            },
        }

    def example_payload(self) -> Any:
        return [{"role": "user", "content": "Hello!"}]

    def example_value(self) -> Any:
        return [{"role": "user", "content": "Hello!"}, {"role": "assistant", "content": "How can I help you?"}]


class Gradio5Slider(gr.Slider):
    """``gr.Slider`` that hands a ``null`` value to the function, as gradio 5 did.

    gradio 6.31 refuses ``null`` in preprocess with a visible "Could not preprocess input component ..." error;
    on a gradio 5 Space the function got ``None`` and the model code crashed, which a client sees as the generic
    failure (``success: false``, ``error: null``). Values out of range are still refused by gradio 6's check.
    """

    def get_block_name(self) -> str:
        return "slider"

    def preprocess(self, payload: float | None) -> float | None:  # type: ignore[override]
        return None if payload is None else super().preprocess(payload)


_component_meta.create_or_modify_pyi = _write_stub
