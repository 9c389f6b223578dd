"""Every ZeroGPU error text and title of every era of the ``spaces`` package (tests/data/zerogpu_messages.json, read
in its source, version by version) becomes the right one-line sentence: the right error type, what to do, no HTML,
a link's address kept, the wait read; and the four cases issue 22 found wrong, each on its own.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from phi4_bridge import errors as e
from phi4_bridge.cli.main import exit_code

DATA = json.loads((Path(__file__).parent / "data" / "zerogpu_messages.json").read_text())
MESSAGES: list[dict[str, Any]] = DATA["messages"]
EXIT = {"QuotaExceeded": 4, "GpuBusy": 4, "SpaceUnavailable": 3, "TokenExpired": 1, "WorkerError": 1,
        "RemoteError": 1}  # docs/cli.md's exit codes


@pytest.mark.parametrize("entry", MESSAGES, ids=[m["id"] for m in MESSAGES])
def test_each_message_of_each_version_becomes_the_right_sentence(entry: dict[str, Any]) -> None:
    expect = entry["expect"]
    err = e.classify_error_text(entry["text"], entry["title"])
    sentence = str(err)
    assert type(err).__name__ == expect["error"], sentence
    low = sentence.lower()
    for words in expect["says"]:
        assert words.lower() in low, f"{entry['id']}: {words!r} missing from {sentence!r}"
    for words in expect["never"]:
        assert words.lower() not in low, f"{entry['id']}: {words!r} in {sentence!r}"
    assert getattr(err, "retry_after", None) == expect["retry_after"]
    assert "\n" not in sentence and not re.search(r"<[a-z/]", sentence), "one line, no HTML"
    for address in re.findall(r'href="([^"]+)"', entry["text"]):
        assert address in sentence, "a link's address is kept"
    assert exit_code(err) == EXIT[expect["error"]]


def test_the_data_covers_2024_to_today() -> None:
    versions = {v for m in MESSAGES for v in m["versions"]}
    assert {"0.22.0", "0.28.3", "0.29.6", "0.30.4", "0.32.0", "0.34.2", "0.37.1", "0.45.0", "0.51.3"} <= versions
    assert any("<a " in m["text"] for m in MESSAGES) and any(m["title"] for m in MESSAGES)


# ---- the four cases found wrong in issue 22 -------------------------------------------------------------------
def test_a_queue_timeout_titled_quota_exceeded_is_a_busy_space() -> None:
    err = e.classify_error_text("No GPU was available after 60s. Try re-running outside of examples if it happened "
                                "after clicking one", "ZeroGPU quota exceeded")
    assert type(err) is e.GpuBusy
    assert str(err).startswith("All of the Space's GPUs are busy right now; try again in a minute. (No GPU was")


def test_an_expired_proxy_token_says_what_to_do() -> None:
    err = e.classify_error_text("Expired ZeroGPU proxy token", "ZeroGPU client error")
    assert type(err) is e.TokenExpired
    assert str(err) == ("The ZeroGPU token expired. Try again in a minute (a fresh token is fetched for each try); if "
                        "it keeps happening, check that this computer's clock is right and that HF_TOKEN is valid. "
                        "(Expired ZeroGPU proxy token)")


def test_an_illegal_duration_is_the_spaces_own_setting_and_no_retry_helps() -> None:
    err = e.classify_error_text("The requested GPU duration (180s) is larger than the maximum allowed",
                                "ZeroGPU illegal duration")
    assert type(err) is e.SpaceUnavailable and err.state == "gpu_duration"
    assert str(err) == ("The Space asks ZeroGPU for a longer GPU task (180s) than the maximum allowed; retrying "
                        "cannot help: it is the Space's own setting, which its owner must lower. (The requested GPU "
                        "duration (180s) is larger than the maximum allowed)")


@pytest.mark.parametrize("text,kind,link", [
    ("You have exceeded your free ZeroGPU quota (60s requested vs. 12s left). Try again in 0:09:48. Subscribe to "
     "Hugging Face PRO to get 40 min of ZeroGPU quota a day - https://huggingface.co/subscribe/pro?from=ZeroGPU",
     "free", "https://huggingface.co/subscribe/pro?from=ZeroGPU"),
    ("You have exceeded your Pro GPU quota (60s requested vs. 12s left). Try again in 0:09:48", "PRO",
     "https://huggingface.co/settings/billing"),
])
def test_a_signed_in_caller_is_not_told_to_sign_in(text: str, kind: str, link: str) -> None:
    err = e.classify_error_text(text, "ZeroGPU quota exceeded")
    assert type(err) is e.QuotaExceeded and err.retry_after == 588
    sentence = str(err)
    assert sentence.startswith(f"Your {kind} ZeroGPU quota is used up. Try again in about 10 minutes, or ")
    assert link in sentence.split(" (You have")[0], "the action's address, in the sentence itself"
    assert "sign in" not in sentence.lower() and "HF_TOKEN" not in sentence
