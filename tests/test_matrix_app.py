"""The app in front of every shape of the matrix on every gradio generation (``tests/gradio_matrix.py``):
``/chat`` over gradio_client, ``/v1`` over the official openai SDK, and ``qa``, with exact replies; every
bot-step run's reply reaches the user. A browser turn per generation is in ``test_matrix_browser.py``.
"""

from __future__ import annotations

import base64
import json
import sys

import pytest
from forkserver import run_command
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from gradio_matrix import RunsSince, no_hub
from matrix_replies import expected
from media_factory import png, wav
from openai import OpenAI

pytestmark = pytest.mark.matrix

# what /v1 sets through OpenAI's own parameters (they map onto the Space's controls), per shape that has them
V1_SETTINGS = {
    "official": ({"temperature": 0.2, "top_p": 0.5, "max_tokens": 64},
                 {"temperature": 0.2, "top_p": 0.5, "max_new_tokens": 64}),
    "chatinterface": ({"temperature": 0.3}, {"temperature": 0.3}),
    "gradio4": ({"max_tokens": 100}, {"max_new_tokens": 100}),
}


def test_chat_api_a_picture_then_an_audio_turn_that_sees_it(matrix_space, matrix_app, tmp_path):
    shape, runs = matrix_space.shape, RunsSince(matrix_space)
    client = Client(matrix_app.url, verbose=False)
    first = client.predict({"text": "What is this picture?", "files": [handle_file(str(png(tmp_path / "red.png")))]},
                           api_name="/chat")
    second = client.predict({"text": "And this?", "files": [handle_file(str(wav(tmp_path / "v.wav")))]},
                            api_name="/chat")
    assert [first, second] == [expected(shape, "What is this picture?", image=True),
                               expected(shape, "And this?", audio=True, earlier=1)]
    assert runs.replies() == [first, second]


def test_v1_streams_a_turn_with_both_files_and_answers_a_history(matrix_space, matrix_app, tmp_path):
    shape, runs = matrix_space.shape, RunsSince(matrix_space)
    client = OpenAI(base_url=matrix_app.url + "/v1", api_key="unused", timeout=60, max_retries=0)
    image = base64.b64encode(png(tmp_path / "red.png").read_bytes()).decode()
    voice = base64.b64encode(wav(tmp_path / "v.wav").read_bytes()).decode()
    sdk_settings, options = V1_SETTINGS.get(shape, ({}, {}))
    stream = client.chat.completions.create(model="phi-4-multimodal", stream=True, **sdk_settings, messages=[
        {"role": "user", "content": [{"type": "text", "text": "What are these?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64," + image}},
                                     {"type": "input_audio", "input_audio": {"data": voice, "format": "wav"}}]}])
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert streamed == expected(shape, "What are these?", image=True, audio=True, options=options)
    answer = client.chat.completions.create(model="phi-4-multimodal", messages=[
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": expected(shape, "First question")},
        {"role": "user", "content": "Second question"}])
    assert answer.choices[0].message.content == expected(shape, "Second question", earlier=1)
    assert runs.replies() == [streamed, answer.choices[0].message.content]


def test_qa_runs_an_image_case_and_an_audio_case(matrix_space, tmp_path):
    shape, runs = matrix_space.shape, RunsSince(matrix_space)
    png(tmp_path / "red.png")
    wav(tmp_path / "v.wav")
    cases = tmp_path / "cases.jsonl"
    cases.write_text(json.dumps({"id": "picture", "image": "red.png", "prompt": "What is this?"}) + "\n"
                     + json.dumps({"id": "voice", "audio": "v.wav", "prompt": "Transcribe this."}) + "\n")
    done = run_command([sys.executable, "-m", "phi4_bridge", "qa", str(cases), "--out", str(tmp_path / "out"),
                        "--space-url", matrix_space.url, "--hub-url", no_hub()],
                       timeout=180)
    results = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert {r["id"]: (r["status"], r["reply"]) for r in results} == {
        "picture": ("pass", expected(shape, "What is this?", image=True)),
        "voice": ("pass", expected(shape, "Transcribe this.", audio=True))}, done.stderr[-2000:]
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(runs.replies()) == sorted(r["reply"] for r in results)


@pytest.mark.parametrize("nochat_space", ["4"], indirect=True, ids=["nochat-g4"])
def test_the_app_says_what_a_space_without_a_chat_lacks(nochat_space):
    """gradio 4 serves at the root: a bridge that guessed ``/gradio_api`` called this "not found" before."""
    from app_server import start_app

    with start_app("--space-url", nochat_space.url, "--hub-url", no_hub(), "--no-fallback") as app:
        with pytest.raises(AppError) as refused:  # the app's gr.Error, one line
            Client(app.url, verbose=False).predict({"text": "hello", "files": []}, api_name="/chat")
    said = str(refused.value).lower()
    assert "not found" not in said and "chatbot" in said, said
