"""A person in a real browser, on the app in front of gradio's own multimodal chatbot demo on each gradio
generation (``tests/gradio_matrix.py``): a picture turn and a text turn that sees it, shown exactly."""

from __future__ import annotations

import re

import pytest
from browser import open_page, send, wait_for
from gradio_matrix import GENERATIONS, RunsSince
from matrix_replies import expected
from media_factory import png

pytestmark = [pytest.mark.matrix, pytest.mark.browser]


@pytest.mark.parametrize("matrix_space", [("demo", gen) for gen in GENERATIONS], indirect=True,
                         ids=[f"demo-g{gen}" for gen in GENERATIONS])
def test_a_picture_then_a_follow_up_in_the_browser(matrix_space, matrix_app, browser, tmp_path):
    runs = RunsSince(matrix_space)
    first, second = (expected("demo", "What is this picture?", image=True),
                     expected("demo", "Thanks", earlier=1))
    with open_page(browser, matrix_app.url) as page:
        send(page, "What is this picture?", png(tmp_path / "red.png"))
        wait_for(page, re.escape(first))
        send(page, "Thanks")
        wait_for(page, re.escape(second))
    assert runs.replies() == [first, second]
