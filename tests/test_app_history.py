"""``/chat`` with a caller's ``history`` through the real app: bounded like a turn, checked before anything reaches
the Space, and replayed to the Space in the Space's own shape (its user step, then its bot step)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from app_server import start_app
from gradio_client import Client
from gradio_client.exceptions import AppError

from phi4_standin.launcher import reset, stats
from phi4_standin.process import ServerProcess


@pytest.fixture(scope="module")
def app(standin: ServerProcess) -> Iterator[ServerProcess]:
    reset(standin.url)
    with start_app("--space-url", standin.url, "--hub-url", standin.hub_url, "--no-fallback") as server:
        yield server


@pytest.fixture
def client(app: ServerProcess, standin: ServerProcess) -> Client:
    reset(standin.url)
    return Client(app.url, verbose=False)


def ask(client: Client, text: str, history: list) -> str:
    return client.predict({"text": text, "files": []}, history, api_name="/chat")


@pytest.mark.parametrize("history,words", [
    ([{"role": "user", "content": "hi"}] * 401, "The history has 401 messages; the limit is 400."),
    ([{"role": "user", "content": "x" * 100_000}, {"role": "assistant", "content": "y" * 100_001}],
     "The history is 200,001 characters; the limit is 200,000."),
    ([{"role": "user", "content": "a NUL \x00 inside"}], "The history contains control characters"),
], ids=["messages", "characters", "control"])
def test_a_history_over_the_limits_is_refused_before_anything_is_sent(client, standin, history, words):
    before = stats(standin.url)
    with pytest.raises(AppError) as info:
        ask(client, "and now?", history)
    assert words in str(info.value)
    after = stats(standin.url)
    assert (after["calls"], after["uploads"]) == (before["calls"], before["uploads"])


def test_a_callers_history_reaches_the_space_through_its_own_user_step(client, standin):
    history = [{"role": "user", "content": "an earlier question"}, {"role": "assistant", "content": "its answer"}]
    reply = ask(client, "the new one", history)
    assert reply == ('You said: "the new one". Earlier turns: 1. Seen: turn 1 text "an earlier question"; turn 2 text '
                     '"the new one". Settings: top_p=0.95, top_k=50, temperature=0.8, repetition_penalty=1.05, '
                     'max_new_tokens=512.')
    assert stats(standin.url)["calls"] == 1  # the earlier turn was replayed without a bot step
