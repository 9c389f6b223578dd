"""What each test Space of the matrix (``tests/gradio_spaces/``) must answer, written out independently of the
Spaces' own code, so a test compares the reply character for character.

A reply names the text, each image's size, each audio's duration, every option's value as the step received it,
and the number of earlier turns its history held (for ``official`` also the turns its ``gr.State`` counted in the
session): ``Got: text "hi"; image 37x23; audio 2.5 s; Temperature=0.8; earlier turns 1.``
Test media: ``media_factory.png`` (37x23) and ``media_factory.wav`` (2.5 s).
"""

from __future__ import annotations

from typing import Any

IMAGE = "image 37x23"
AUDIO = "audio 2.5 s"

# shape: {option name (as the bridge names a label): (label in the reply, default as shown)}, in reply order
OPTIONS: dict[str, dict[str, tuple[str, str]]] = {
    "demo": {},
    "textstream": {},
    "official": {"top_p": ("Top-p", "0.95"), "top_k": ("Top-k", "50"), "temperature": ("Temperature", "0.8"),
                 "repetition_penalty": ("Repetition penalty", "1.05"), "max_new_tokens": ("Max new tokens", "512")},
    "chatinterface": {"temperature": ("Temperature", "0.8"),
                      "system_prompt": ("System prompt", '"You are a helpful assistant."')},
    "gradio4": {"max_new_tokens": ("Max new tokens", "256")},
    "sendbutton": {"system_prompt": ("System prompt", '"You are Phi-4, a helpful assistant."'),
                   "style": ("Style", "short")},
}
# options a user sets (the hidden system prompt of ``sendbutton`` is not one): name -> value other than default
SETTABLE: dict[str, dict[str, Any]] = {
    "demo": {},
    "textstream": {},
    "official": {"top_p": 0.5, "top_k": 7, "temperature": 0.2, "repetition_penalty": 1.2, "max_new_tokens": 64},
    "chatinterface": {"temperature": 0.3, "system_prompt": "Be brief."},
    "gradio4": {"max_new_tokens": 100},
    "sendbutton": {"style": "detailed"},
}


def shown(label: str, value: Any) -> str:
    """An option's value as the Space writes it: numbers as ``:g``, a system prompt in quotes."""
    if label == "System prompt":
        return f'"{value}"'
    return value if isinstance(value, str) else f"{value:g}"


def expected(shape: str, text: str, *, image: bool = False, audio: bool = False,
             options: dict[str, Any] | None = None, earlier: int = 0) -> str:
    """The exact reply of ``shape`` to one turn: ``text`` with the test image and/or audio, ``options`` set (the
    rest at their defaults), after ``earlier`` answered turns of the same conversation."""
    parts = [f'text "{text}"'] if text else []
    parts += [IMAGE] * image + [AUDIO] * audio
    given = options or {}
    parts += [f"{label}={shown(label, given[name]) if name in given else default}"
              for name, (label, default) in OPTIONS[shape].items()]
    if shape == "official":  # its gr.State counts the user steps the session ran
        parts.append(f"session turns {earlier + 1}")
    parts.append(f"earlier turns {earlier}")
    return "Got: " + "; ".join(parts) + "."


def cli_sets(options: dict[str, Any]) -> list[str]:
    """``--set name=value`` arguments for the CLI."""
    return [arg for name, value in options.items() for arg in ("--set", f"{name}={value}")]
