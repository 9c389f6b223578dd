"""The per-visitor budget (``--visitor-turns``) counts every kind of turn (docs/sharing.md): the OpenAI-compatible API
(a key is a visitor; over the budget is a 429 with the wait) and the QA tab (a case is a turn; a run of more cases
than the turns left is refused before anything is stored, and says when to come back), besides the chat
(tests/test_budget.py). Real app, real stand-in, the official clients.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import openai
import pytest
from app_server import start_app
from gradio_client import Client
from gradio_client.exceptions import AppError

from phi4_standin.launcher import reset, stats

OVER = re.compile(r"You have used your 2 turns per hour on this app; you can chat again at \d\d:\d\d UTC "
                  r"\(in (59|60) minutes\)\.")


@pytest.fixture
def app(standin):
    reset(standin.url)
    with start_app("--space-url", standin.url, "--hub-url", standin.hub_url, "--visitor-turns", "2/hour",
                   "--api-key", "key-one", "--api-key", "key-two") as server:
        yield server


def ask(app, key: str, text: str) -> str:
    client = openai.OpenAI(base_url=f"{app.url}/v1", api_key=key, max_retries=0)
    reply = client.chat.completions.create(model="phi-4-multimodal", messages=[{"role": "user", "content": text}])
    return reply.choices[0].message.content or ""


def test_an_api_key_over_its_budget_gets_a_429_with_the_wait_and_other_keys_go_on(app, standin):
    assert ask(app, "key-one", "one").startswith('You said: "one".')
    assert ask(app, "key-one", "two").startswith('You said: "two".')
    calls = stats(standin.url)["calls"]
    with pytest.raises(openai.RateLimitError) as info:
        ask(app, "key-one", "three")
    error = info.value
    assert OVER.fullmatch(error.body["message"]), error.body
    assert error.body["code"] == "visitor_budget_exceeded"
    assert 3500 <= int(error.response.headers["retry-after"]) <= 3600
    assert error.response.headers["x-should-retry"] == "false"  # an hour is not worth the SDK's own retries
    assert stats(standin.url)["calls"] == calls, "the refused turn reached the Space"
    assert ask(app, "key-two", "mine").startswith('You said: "mine".'), "another key is another visitor"


def test_qa_cases_count_against_the_same_budget_and_the_run_says_when_to_come_back(app, standin):
    client = Client(app.url, verbose=False)
    calls = stats(standin.url)["calls"]
    # a run of more cases than the turns left is refused before anything of it is stored or sent (issue 27)
    status = client.predict([], "first\n\nsecond\n\nthird", "", None, 1, api_name="/qa_run")[0]
    assert "That run has 3 cases and you have 2 turns left" in status, status
    assert stats(standin.url)["calls"] == calls
    job = client.submit([], "first\n\nsecond", "", None, 1, api_name="/qa_run")
    status, _, run, _ = job.result()
    assert "finished: 2 passed" in status, status
    assert stats(standin.url)["calls"] - calls == 2
    exports = {Path(p).name: p for p in client.predict(run["value"], api_name="/qa_export")}
    records = [json.loads(line) for line in Path(exports["results.jsonl"]).read_text().splitlines()]
    assert sorted((r["prompt"], r["status"]) for r in records) == [("first", "pass"), ("second", "pass")]
    assert OVER.search(client.predict([], "third", "", None, 1, api_name="/qa_run")[0])  # and it says when
    with pytest.raises(AppError, match=OVER.pattern):  # the chat of the same visitor (address) is over too
        client.predict({"text": "and chat?", "files": []}, api_name="/chat")
