"""The "Generation settings" accordion: the Space's own controls (sliders, dropdowns, a system prompt and the
like among its chain's inputs), read from its ``/config`` when the app starts (``phi4_bridge.space_config``; the
start-up probe's reading when it read the same Space), so the page offers exactly what the Space takes and nothing
it would ignore.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import gradio as gr

from phi4_bridge import Option, Phi4Error
from phi4_bridge.space_config import chat_chain, fetch_config_sync

log = logging.getLogger(__name__)


def read_options(space_url: str, timeout: float = 5.0, headers: dict[str, str] | None = None, *,
                 config: Mapping[str, Any] | None = None) -> dict[str, Option]:
    """The Space's options by name; none when its ``/config`` cannot be read now (the chat still works).
    ``headers``: the host's HF token for a private Space (``space_status.auth_headers``), else none. ``config``:
    the Space's ``/config`` when the app has just read it (``SpaceStatus.config_of``), so it is not asked twice."""
    if config is None:
        try:
            config = fetch_config_sync(space_url, timeout, headers)
        except Phi4Error as exc:
            log.info("No generation settings: the Space's /config could not be read (%s)", exc)
            return {}
    chain = chat_chain(config)
    return chain.options if chain is not None else {}


def _control(option: Option) -> gr.components.Component:
    label, info = option.label, f"{option.name} (default {option.default})"
    if option.choices is not None:
        return gr.Dropdown(list(option.choices), value=option.default, label=label, info=info,
                           multiselect=option.multiselect)
    if option.kind == "textbox":  # a system prompt and the like: the Space's own text, shown as is
        return gr.Textbox(value=str(option.default or ""), label=label, info=info, lines=2)
    if option.kind == "checkbox":
        return gr.Checkbox(value=bool(option.default), label=label, info=info)
    if option.minimum is not None and option.maximum is not None:
        return gr.Slider(option.minimum, option.maximum, value=option.default, step=option.step, label=label,
                         info=info)
    return gr.Number(value=option.default, label=label, info=info)


def render_settings(options: Mapping[str, Option]) -> dict[gr.components.Component, str]:
    """The accordion (inside the current layout) and its controls, each mapped to its option's name."""
    controls: dict[gr.components.Component, str] = {}
    with gr.Accordion("Generation settings", open=False, elem_id="generation-settings"):
        if not options:
            gr.Markdown("This Space has no generation settings of its own.")
        for option in options.values():
            controls[_control(option)] = option.name
    return controls


def chosen(values: Mapping[Any, Any], controls: Mapping[Any, str]) -> dict[str, Any]:
    """The options the visitor set, from the values gradio hands a handler whose inputs are a set."""
    return {name: values[control] for control, name in controls.items() if control in values}
