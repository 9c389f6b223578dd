"""Every event handler of the page keeps type hints that gradio can read at run time.

Why: gradio finds the ``gr.Request`` (and ``gr.EventData``) a handler wants by evaluating its annotations with
``typing.get_type_hints``; if one name in them cannot be resolved from the handler's module (an import only for the
type checker, a name local to ``build_demo``), gradio silently reads no hints at all and the handler gets no
request: the budget, the login and the host checks then see nobody. mypy is strict on app.py and mirror/, so the
annotations are many; this builds the real page (against the session's stand-in) and reads them as gradio does."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Iterator
from typing import Any

import gradio as gr
import pytest

import app
from mirror.settings import parse_settings
from mirror.space.space_status import SpaceStatus
from phi4_standin.process import ServerProcess


@pytest.fixture(scope="module")
def page(standin: ServerProcess) -> Iterator[Any]:
    settings = parse_settings(["--space-url", standin.url, "--hub-url", standin.hub_url, "--allow-space-switch",
                               "--visitor-turns", "5/hour"])
    status = SpaceStatus.start(settings)
    try:
        yield app.build_demo(settings, status)
    finally:
        status.stop()


def test_every_handler_s_hints_resolve_and_each_request_parameter_is_found(page: Any) -> None:
    handlers = [fn.fn for fn in page.demo.fns.values() if fn.fn is not None]
    assert len(handlers) > 20, len(handlers)  # the chat, the QA tab, the usage tab, the picker, /chat
    wanting = 0
    for handler in handlers:
        target = handler if inspect.isfunction(handler) or inspect.ismethod(handler) else handler.__call__
        hints = typing.get_type_hints(target)  # what gradio does (gradio.utils.get_type_hints); raises if broken
        for name in inspect.signature(target).parameters:
            if name == "request":
                wanting += 1
                assert gr.utils.is_special_typed_parameter(name, hints), f"{handler.__qualname__}: {hints.get(name)}"
    assert wanting >= 8, wanting  # the chat, its /chat API, the badge, the picker, the switch, the QA and usage tabs


def test_a_new_session_of_the_real_page_gets_the_config_gradio_would_make(page: Any) -> None:
    """The page's configs made once (``gradio_internals.reuse_block_configs``, as ``serve`` does) give a new
    session exactly what gradio's own work gives it, for every block of the real page."""
    from gradio.state_holder import SessionState

    from mirror.door import gradio_internals

    before = SessionState(page.demo).config_values
    assert gradio_internals.reuse_block_configs(page.demo) == len(page.demo.blocks)
    assert SessionState(page.demo).config_values == before
