"""The test Spaces themselves, driven by hand as their pages do with the gradio_client of their own venv
(``tests/gradio_spaces/page_sequence.py``): each answers exactly what ``matrix_replies.expected`` says, in
several chunks, and counts one bot-step run per turn. These pass whatever the bridge does; when a bridge test of
the matrix fails and these pass, the failure is the bridge's, not the harness's.
"""

from __future__ import annotations

import json
import urllib.request

import pytest
from gradio_matrix import SPACES, bot_runs, run_in_generation
from gradio_spaces.record_configs import CONFIGS, normalized
from matrix_replies import expected
from media_factory import png, wav

pytestmark = pytest.mark.matrix

SECOND_OPTIONS = {  # what page_sequence.py sets on its second turn
    "official": {"top_p": 0.5, "top_k": 7, "temperature": 0.2, "repetition_penalty": 1.2, "max_new_tokens": 64},
    "chatinterface": {"temperature": 0.3, "system_prompt": "Be brief."},
    "gradio4": {"max_new_tokens": 100},
    "sendbutton": {"style": "detailed"},
}


def page_sequence(space, tmp_path) -> list[list]:
    done = run_in_generation(space, [str(SPACES / "page_sequence.py"), space.shape, space.url,
                                     str(png(tmp_path / "red.png")), str(wav(tmp_path / "v.wav"))], timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_each_space_answers_its_pages_sequence_exactly(matrix_space, tmp_path):
    before = len(bot_runs(matrix_space))
    replies = page_sequence(matrix_space, tmp_path)
    shape = matrix_space.shape
    assert [text for text, _ in replies] == [
        expected(shape, "hello", image=True, audio=True),
        expected(shape, "again", options=SECOND_OPTIONS.get(shape), earlier=1)]
    if shape != "textstream":  # its chatbot gets the reply in one piece, after the streamed Textbox
        assert all(chunks >= 3 for _, chunks in replies), replies
    assert [run["reply"] for run in bot_runs(matrix_space)[before:]] == [text for text, _ in replies]


def test_the_space_with_no_chat_answers_its_own_api(nochat_space, tmp_path):
    assert page_sequence(nochat_space, tmp_path) == [['Got: text "what?"; image 37x23; earlier turns 0.', 1]]


def test_the_recorded_config_is_what_the_space_answers(matrix_space):
    """``configs/`` feeds the chain code's unit tests: it must not drift from the Spaces (refresh:
    ``python tests/gradio_spaces/record_configs.py``)."""
    with urllib.request.urlopen(matrix_space.url + "/config", timeout=30) as answer:  # noqa: S310 - loopback
        live = normalized(answer.read().decode(), matrix_space.url)
    recorded = json.loads((CONFIGS / f"{matrix_space.shape}-g{matrix_space.generation}.json").read_text())
    assert live == recorded
