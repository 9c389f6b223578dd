"""Word by word: which of ZeroGPU's texts becomes which sentence, and why each match word in
``phi4_bridge/errors.py`` is there (issue 23's mutation check found them untested one by one).

``test_zerogpu_messages.py`` checks each real text of every era for its error type and a few words; here the whole
sentence a person reads is pinned, so a changed word of the sentence, a dropped link, a "Wait a while" where the Space
named a refill, or a match word that no longer matches fails. Each test says where its texts come from: the
``spaces`` package (``tests/data/zerogpu_messages.json``, and its markdown toasts for gradio before 4.39), gradio and
``gradio_client``, or, said so where it is the case, junk a Space could send that no real software words that way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from phi4_bridge import errors as e

MESSAGES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "zerogpu_messages.json").read_text())["messages"]

# The sentence each real text of tests/data/zerogpu_messages.json becomes, whole: what the app, the CLI and /v1 show.
SENTENCES: dict[str, str] = {
    "no_gpu_regular_2023":
        ("All of the Space's GPUs are busy right now; try again in a minute. (No GPU is currently available)"),
    "no_gpu_in_queue_2024":
        ("All of the Space's GPUs are busy right now; try again in a minute. (No GPU is currently available for "
         "you after 60s)"),
    "quota_429_2023":
        ("Your ZeroGPU quota is used up. Wait a while or sign in with a Hugging Face token (HF_TOKEN) for a "
         "larger quota. (You have exceeded your GPU quota)"),
    "task_aborted_2024":
        ("The Space's GPU task was aborted before it finished; try again, with a shorter message or fewer files "
         "if it happens again. (GPU task aborted)"),
    "internal_infra_2024":
        ("The Space's ZeroGPU failed inside; try again in a minute, and tell the Space's owner if it keeps "
         "happening. (Internal infra error)"),
    "internal_gradio_2024":
        ("The Space's ZeroGPU failed inside; try again in a minute, and tell the Space's owner if it keeps "
         "happening. (Internal Gradio error)"),
    "illegal_duration_2024":
        ("The Space asks ZeroGPU for a longer GPU task (180s) than the maximum allowed; retrying cannot help: it "
         "is the Space's own setting, which its owner must lower. (The requested GPU duration (180s) is larger "
         "than the maximum allowed)"),
    "quota_please_retry_2024":
        ("Your ZeroGPU quota is used up. Try again in about 10 minutes or sign in with a Hugging Face token "
         "(HF_TOKEN) for a larger quota. (You have exceeded your GPU quota (12s left vs. 60s requested). Please "
         "retry in 0:09:48)"),
    "quota_signup_2024":
        ("Your ZeroGPU quota is used up. Try again in about 10 minutes or sign in with a Hugging Face token "
         "(HF_TOKEN) for a larger quota. (You have exceeded your GPU quota (12s left vs. 60s requested). Sign-up "
         "on Hugging Face to get more quotas or retry in 0:09:48)"),
    "quota_signed_in_please_retry_2024":
        ("Your ZeroGPU quota is used up. Try again in about 10 minutes or sign in with a Hugging Face token "
         "(HF_TOKEN) for a larger quota. (You have exceeded your GPU quota (12s left vs. 60s requested). Please "
         "retry in 0:09:48)"),
    "quota_signup_html_2024":
        ("Your ZeroGPU quota is used up. Try again in about 10 minutes or sign in with a Hugging Face token "
         "(HF_TOKEN) for a larger quota. (You have exceeded your GPU quota (12s left vs. 60s requested). Sign-up "
         "on Hugging Face (https://huggingface.co/join) to get more quotas or retry in 0:09:48)"),
    "quota_subscribe_html_2024":
        ("Your free ZeroGPU quota is used up. Try again in about 10 minutes, or upgrade to Hugging Face PRO for "
         "a larger quota (https://huggingface.co/subscribe/pro). (You have exceeded your GPU quota (12s left vs. "
         "60s requested). Subscribe to Pro (https://huggingface.co/subscribe/pro) to get more quotas or retry in "
         "0:09:48)"),
    "quota_pro_please_retry_2024":
        ("Your ZeroGPU quota is used up. Try again in about 10 minutes or sign in with a Hugging Face token "
         "(HF_TOKEN) for a larger quota. (You have exceeded your GPU quota (12s left vs. 60s requested). Please "
         "retry in 0:09:48)"),
    "quota_html_anonymous_2024":
        ("Your ZeroGPU quota is used up. Wait a while or sign in with a Hugging Face token (HF_TOKEN) for a "
         "larger quota. (You have exceeded your GPU quota (60s requested vs. 12s left). Create a free account "
         "(https://huggingface.co/join) to get more usage quota.)"),
    "quota_plain_anonymous_2024":
        ("Your ZeroGPU quota is used up. Wait a while or sign in with a Hugging Face token (HF_TOKEN) for a "
         "larger quota. (You have exceeded your GPU quota (60s requested vs. 12s left). Create a free account to "
         "get more usage quota.)"),
    "quota_html_free_2024":
        ("Your free ZeroGPU quota is used up. Wait until it refills, or upgrade to Hugging Face PRO for a larger "
         "quota (https://huggingface.co/settings/billing/subscription). (You have exceeded your free GPU quota "
         "(60s requested vs. 12s left). Subscribe to Pro (https://huggingface.co/settings/billing/subscription) "
         "to get 5x more usage quota.)"),
    "quota_html_free_daily_2024":
        ("Your free ZeroGPU quota is used up. Wait until it refills, or upgrade to Hugging Face PRO for a larger "
         "quota (https://huggingface.co/settings/billing/subscription). (You have exceeded your free GPU quota "
         "(60s requested vs. 12s left). Subscribe to Pro (https://huggingface.co/settings/billing/subscription) "
         "to get 5x more daily usage quota.)"),
    "quota_pro_try_again_2024":
        ("Your PRO ZeroGPU quota is used up. Try again in about 10 minutes, or add credits to keep going "
         "(https://huggingface.co/settings/billing). (You have exceeded your Pro GPU quota (60s requested vs. "
         "12s left). Try again in 0:09:48)"),
    "queue_timeout_html_anonymous_2024":
        ("All of the Space's GPUs are busy right now; try again in a minute. Signing in with a Hugging Face "
         "token (HF_TOKEN) gives a higher place in ZeroGPU's queue. (No GPU was available after 60s. Create a "
         "free account (https://huggingface.co/join) to get a higher priority in ZeroGPU queues.)"),
    "queue_timeout_html_free_2024":
        ("All of the Space's GPUs are busy right now; try again in a minute. A Hugging Face PRO account gets the "
         "highest place in ZeroGPU's queue (https://huggingface.co/settings/billing/subscription). (No GPU was "
         "available after 60s. Subscribe to Pro (https://huggingface.co/settings/billing/subscription) to get "
         "the highest priority in ZeroGPU queues.)"),
    "queue_timeout_pro_2024":
        ("All of the Space's GPUs are busy right now; try again in a minute. (No GPU was available after 60s. "
         "Retry later)"),
    "no_gpu_regular_2024":
        ("All of the Space's GPUs are busy right now; try again in a minute. (No GPU was available)"),
    "quota_titled_html_anonymous_2025":
        ("Your ZeroGPU quota is used up. Wait a while or sign in with a Hugging Face token (HF_TOKEN) for a "
         "larger quota. (You have exceeded your GPU quota (60s requested vs. 12s left). Create a free account "
         "(https://huggingface.co/join) to get more daily usage quota.)"),
    "quota_titled_html_free_2025":
        ("Your free ZeroGPU quota is used up. Wait until it refills, or upgrade to Hugging Face PRO for a larger "
         "quota (https://huggingface.co/settings/billing/subscription). (You have exceeded your free GPU quota "
         "(60s requested vs. 12s left). Subscribe to Pro (https://huggingface.co/settings/billing/subscription) "
         "to get 5x more daily usage quota.)"),
    "quota_titled_pro_2025":
        ("Your PRO ZeroGPU quota is used up. Try again in about 10 minutes, or add credits to keep going "
         "(https://huggingface.co/settings/billing). (You have exceeded your Pro GPU quota (60s requested vs. "
         "12s left). Try again in 0:09:48)"),
    "queue_timeout_titled_anonymous_2025":
        ("All of the Space's GPUs are busy right now; try again in a minute. Signing in with a Hugging Face "
         "token (HF_TOKEN) gives a higher place in ZeroGPU's queue. (No GPU was available after 60s. Create a "
         "free account (https://huggingface.co/join) to get a higher priority in ZeroGPU queues.)"),
    "queue_timeout_titled_free_2025":
        ("All of the Space's GPUs are busy right now; try again in a minute. A Hugging Face PRO account gets the "
         "highest place in ZeroGPU's queue (https://huggingface.co/settings/billing/subscription). (No GPU was "
         "available after 60s. Subscribe to Pro (https://huggingface.co/settings/billing/subscription) to get "
         "the highest priority in ZeroGPU queues.)"),
    "queue_timeout_titled_free_2026":
        ("All of the Space's GPUs are busy right now; try again in a minute. A Hugging Face PRO account gets the "
         "highest place in ZeroGPU's queue (https://huggingface.co/subscribe/pro?from=ZeroGPU). (No GPU was "
         "available after 60s. Subscribe to Pro (https://huggingface.co/subscribe/pro?from=ZeroGPU) to get the "
         "highest priority in ZeroGPU queues.)"),
    "queue_timeout_titled_pro_2025":
        ("All of the Space's GPUs are busy right now; try again in a minute. (No GPU was available after 60s. "
         "Retry later)"),
    "no_gpu_client_error_2025":
        ("All of the Space's GPUs are busy right now; try again in a minute. (No GPU was available)"),
    "proxy_token_expired_2025":
        ("The ZeroGPU token expired. Try again in a minute (a fresh token is fetched for each try); if it keeps "
         "happening, check that this computer's clock is right and that HF_TOKEN is valid. (Expired ZeroGPU "
         "proxy token)"),
    "internal_gradio_titled_2025":
        ("The Space's ZeroGPU failed inside; try again in a minute, and tell the Space's owner if it keeps "
         "happening. (Internal Gradio error)"),
    "illegal_duration_titled_2025":
        ("The Space asks ZeroGPU for a longer GPU task (180s) than the maximum allowed; retrying cannot help: it "
         "is the Space's own setting, which its owner must lower. (The requested GPU duration (180s) is larger "
         "than the maximum allowed)"),
    "task_aborted_titled_2025":
        ("The Space's GPU task was aborted before it finished; try again, with a shorter message or fewer files "
         "if it happens again. (GPU task aborted)"),
    "worker_exception_titled_2025":
        ("The Space's GPU worker failed; try again. (OutOfMemoryError)"),
    "space_gpu_limit_2025":
        ("The Space has used up its own GPU allowance for now (calls that carry no ZeroGPU token share it); try "
         "again later. (Space app has reached its GPU limit. Try re-running outside of examples if it happened "
         "after clicking one)"),
    "queue_timeout_titled_quota_2025":
        ("All of the Space's GPUs are busy right now; try again in a minute. (No GPU was available after 60s. "
         "Try re-running outside of examples if it happened after clicking one)"),
    "runs_limit_2025":
        ("Your ZeroGPU runs limit is reached. Wait a while or sign in with a Hugging Face token (HF_TOKEN) for a "
         "larger quota. (You have exceeded your runs limit.)"),
    "quota_titled_free_no_link_2025":
        ("Your free ZeroGPU quota is used up. Wait until it refills, or upgrade to Hugging Face PRO for a larger "
         "quota (https://huggingface.co/subscribe/pro). (You have exceeded your free GPU quota (60s requested "
         "vs. 12s left).)"),
    "quota_titled_anonymous_no_link_2025":
        ("Your ZeroGPU quota is used up. Wait a while or sign in with a Hugging Face token (HF_TOKEN) for a "
         "larger quota. (You have exceeded your GPU quota (60s requested vs. 12s left).)"),
    "quota_try_again_anonymous_2025":
        ("Your ZeroGPU quota is used up. Try again in about 10 minutes or sign in with a Hugging Face token "
         "(HF_TOKEN) for a larger quota. (You have exceeded your GPU quota (60s requested vs. 12s left). Try "
         "again in 0:09:48)"),
    "quota_try_again_free_2025":
        ("Your free ZeroGPU quota is used up. Try again in about 10 minutes, or upgrade to Hugging Face PRO for "
         "a larger quota (https://huggingface.co/subscribe/pro). (You have exceeded your free GPU quota (60s "
         "requested vs. 12s left). Try again in 0:09:48)"),
    "quota_try_again_pro_2025":
        ("Your PRO ZeroGPU quota is used up. Try again in about 10 minutes, or add credits to keep going "
         "(https://huggingface.co/settings/billing). (You have exceeded your Pro GPU quota (60s requested vs. "
         "12s left). Try again in 0:09:48)"),
    "quota_try_again_a_day_2025":
        ("Your free ZeroGPU quota is used up. Try again in about 24 hours, or upgrade to Hugging Face PRO for a "
         "larger quota (https://huggingface.co/subscribe/pro). (You have exceeded your free GPU quota (60s "
         "requested vs. 0s left). Try again in 1 day, 0:00:00)"),
    "quota_mcp_anonymous_2025":
        ("Your ZeroGPU quota is used up. Wait a while or sign in with a Hugging Face token (HF_TOKEN) for a "
         "larger quota. (Unlogged user is runnning out of daily ZeroGPU quotas. Signup for free on "
         "https://huggingface.co/join or login on https://huggingface.co/login to get more ZeroGPU quota now.)"),
    "quota_mcp_free_2025":
        ("Your free ZeroGPU quota is used up. Wait until it refills, or upgrade to Hugging Face PRO for a larger "
         "quota (https://huggingface.co/subscribe/pro). (User is runnning out of daily ZeroGPU quotas. Visit "
         "https://huggingface.co/subscribe/pro to get more ZeroGPU quota now.)"),
    "quota_api_anonymous_2026":
        ("Your ZeroGPU quota is used up. Try again in about 10 minutes or sign in with a Hugging Face token "
         "(HF_TOKEN) for a larger quota. (You have exceeded your ZeroGPU quota (60s requested vs. 12s left). Try "
         "again in 0:09:48. Authenticate with a Hugging Face token for more quota - "
         "https://huggingface.co/settings/tokens)"),
    "quota_api_free_2026":
        ("Your free ZeroGPU quota is used up. Try again in about 10 minutes, or upgrade to Hugging Face PRO for "
         "a larger quota (https://huggingface.co/subscribe/pro?from=ZeroGPU). (You have exceeded your free "
         "ZeroGPU quota (60s requested vs. 12s left). Try again in 0:09:48. Subscribe to Hugging Face PRO to get "
         "40 min of ZeroGPU quota a day - https://huggingface.co/subscribe/pro?from=ZeroGPU)"),
    "quota_api_pro_2026":
        ("Your PRO ZeroGPU quota is used up. Try again in about 10 minutes, or add credits to keep going "
         "(https://huggingface.co/settings/billing?add-credits=true). (You have exceeded your Pro ZeroGPU quota "
         "(60s requested vs. 12s left). Try again in 0:09:48. Add credits to keep using ZeroGPU. $1 for 10 "
         "minutes of ZeroGPU inference - https://huggingface.co/settings/billing?add-credits=true)"),
    "quota_app_free_2026":
        ("Your free ZeroGPU quota is used up. Try again in about 10 minutes, or upgrade to Hugging Face PRO for "
         "a larger quota (https://huggingface.co/subscribe/pro). (You have exceeded your free ZeroGPU quota (60s "
         "requested vs. 12s left). Try again in 0:09:48.)"),
    "runs_limit_api_anonymous_2026":
        ("Your ZeroGPU runs limit is reached. Wait a while or sign in with a Hugging Face token (HF_TOKEN) for a "
         "larger quota. (You have exceeded your ZeroGPU runs limit. Authenticate with a Hugging Face token for "
         "more quota - https://huggingface.co/settings/tokens)"),
    "runs_limit_api_free_2026":
        ("Your ZeroGPU runs limit is reached. Wait a while, or upgrade to Hugging Face PRO for a larger quota "
         "(https://huggingface.co/subscribe/pro?from=ZeroGPU). (You have exceeded your ZeroGPU runs limit. "
         "Subscribe to Hugging Face PRO to get 40 min of ZeroGPU quota a day - "
         "https://huggingface.co/subscribe/pro?from=ZeroGPU)"),
    "illegal_duration_api_2026":
        ("The Space asks ZeroGPU for a longer GPU task (180s) than the maximum allowed; retrying cannot help: it "
         "is the Space's own setting, which its owner must lower. A Hugging Face PRO account allows longer GPU "
         "tasks (https://huggingface.co/subscribe/pro?from=ZeroGPU). (The requested GPU duration (180s) is "
         "larger than the maximum allowedSubscribe to Hugging Face PRO to allow GPU tasks up to 40 min - "
         "https://huggingface.co/subscribe/pro?from=ZeroGPU)"),
    "illegal_duration_pro_2026":
        ("The Space asks ZeroGPU for a longer GPU task (180s) than the maximum allowed; retrying cannot help: it "
         "is the Space's own setting, which its owner must lower. (The requested GPU duration (180s) is larger "
         "than the maximum allowed)"),
    "pending_credits_2026":
        ("Too many of your ZeroGPU tasks are running at once; wait for them to finish, then try again. (You have "
         "too many ZeroGPU credits allocated to running tasks. Try again once some of those tasks have "
         "completed.)"),
}


def test_every_real_text_has_its_sentence_here() -> None:
    """A text added to the data file gets its whole sentence written here too."""
    assert sorted(SENTENCES) == sorted(m["id"] for m in MESSAGES)


@pytest.mark.parametrize("entry", MESSAGES, ids=[m["id"] for m in MESSAGES])
def test_each_real_text_becomes_its_whole_sentence(entry: dict[str, Any]) -> None:
    """Caught: any word of a sentence changed (case included), a match word that no longer matches (the text falls
    to another sentence), who the caller is misread (sign in, upgrade or buy credits), the Space's own link replaced
    by ours, "Wait a while" said where the quota refills, the duration's PRO link dropped."""
    error = e.classify_error_text(entry["text"], entry["title"])
    assert str(error) == SENTENCES[entry["id"]]


# ---- the words of the text, one by one ------------------------------------------------------------------------
def test_a_space_s_own_words_that_its_gpu_is_busy_are_a_busy_space() -> None:
    """"gpu is busy" is no wording of ``spaces``: it is for a Space's own gr.Error (this one is an app's real message
    for a GPU taken by other work). Caught: the match word changed, so the text fell to "The Space says: ..."."""
    text = "The GPU is busy with another local workload. Wait for it to finish, then try again."
    error = e.classify_error_text(text, None)
    assert type(error) is e.GpuBusy
    assert str(error) == f"All of the Space's GPUs are busy right now; try again in a minute. ({text})"


@pytest.mark.parametrize(("text", "state", "sentence"), [
    # gradio_client's words when a Space calls another Space that its owner paused (SpaceStage.PAUSED)
    ("The current space is in the invalid state: SpaceStage.PAUSED. Please contact the owner to fix this.",
     e.UnavailableState.PAUSED, "The Space is paused. (The current space is in the invalid state: "
     "SpaceStage.PAUSED. Please contact the owner to fix this.)"),
    # the Hub's words for a sleeping Space (its page; the stand-in writes the same)
    ("This Space is sleeping due to inactivity.", e.UnavailableState.SLEEPING,
     "The Space is sleeping. (This Space is sleeping due to inactivity.)"),
])
def test_a_text_that_says_paused_or_sleeping_names_that_state(text: str, state: e.UnavailableState,
                                                              sentence: str) -> None:
    """Caught: either word no longer matched alone (``or`` made ``and``, a word changed), or the sentence or the
    state naming the other one, or no state at all."""
    error = e.classify_error_text(text, None)
    assert type(error) is e.SpaceUnavailable
    assert error.state is state
    assert str(error) == sentence
    assert e.exit_code(error) == 3


@pytest.mark.parametrize(("title", "kind", "sentence"), [
    ("ZeroGPU illegal duration", e.SpaceUnavailable,
     "The Space asks ZeroGPU for a longer GPU task (its duration) than the maximum allowed; retrying cannot help: "
     "it is the Space's own setting, which its owner must lower. (ZeroGPU illegal duration)"),
    ("ZeroGPU queue timeout", e.GpuBusy,
     "All of the Space's GPUs are busy right now; try again in a minute. (ZeroGPU queue timeout)"),
    ("ZeroGPU quota exceeded", e.QuotaExceeded,
     "Your ZeroGPU quota is used up. Wait a while or sign in with a Hugging Face token (HF_TOKEN) for a larger "
     "quota. (ZeroGPU quota exceeded)"),
    ("ZeroGPU worker error", e.WorkerError, "The Space's GPU worker failed; try again. (ZeroGPU worker error)"),
])
def test_a_zerogpu_title_over_no_known_text_still_decides(title: str, kind: type, sentence: str) -> None:
    """Robustness, not a wording of ``spaces`` (its titles always come with a text we know): when the text says
    nothing (or words a later ``spaces`` may change), the title alone decides and is what the sentence quotes.
    Caught: a title's match word changed, the title's words dropped from the sentence ("no details were given"),
    the duration's "its duration" changed or read from a figure that is not there."""
    error = e.classify_error_text("", title)
    assert type(error) is kind
    assert str(error) == sentence
    assert error.said == title


def test_an_error_without_words_says_so() -> None:
    """gradio sends ``"error": null`` for an exception it does not show (a Space with ``show_error=False``); the
    stream reads it as "". Caught: "no details were given" changed, or junk quoted in its place."""
    error = e.classify_error_text("", None)
    assert type(error) is e.RemoteError
    assert str(error) == "The Space reported an error: no details were given"
    assert error.said is None and error.title is None


@pytest.mark.parametrize(("text", "title", "kind"), [
    ("GPU task aborted", "ZeroGPU worker error", e.WorkerError),
    ("OutOfMemoryError", "ZeroGPU worker error", e.WorkerError),
    ("Internal Gradio error", "ZeroGPU client error", e.RemoteError),
    ("Please upload only one image file.", "Error", e.RemoteError),  # gr.Error's own default title
])
def test_the_space_s_title_is_kept_on_its_error(text: str, title: str, kind: type) -> None:
    """The app shows the title above the Space's own words (``said``). Caught: the title dropped from the error."""
    error = e.classify_error_text(text, title)
    assert type(error) is kind
    assert error.title == title  # type: ignore[attr-defined]
    assert error.said == f"{title}: {text}"


# ---- HTML a Space's own gr.Error may carry (robustness: spaces itself sends only <a href>) -------------------------
def test_html_of_a_space_s_own_error_becomes_plain_words_on_one_line() -> None:
    """Caught: a link with no address shown as "words ()", tags other than ``<a>`` replaced by something rather than
    removed, line breaks and runs of spaces kept."""
    text = ('<b>Upload failed.</b><br>\n  <a href="">Read the rules</a> or\t<a href="https://example.org/help">'
            "ask</a>.")
    error = e.classify_error_text(text, None)
    assert str(error) == "The Space says: Upload failed. Read the rules or ask (https://example.org/help)."


# ---- classify_status: what the other test files leave ---------------------------------------------------------------
@pytest.mark.parametrize(("status", "body", "state", "sentence"), [
    (500, "This Space is sleeping due to inactivity.", e.UnavailableState.SLEEPING,
     "The Space is sleeping. Open its page on huggingface.co to wake it, then retry in a minute or two."),
    (500, "This Space has been paused by its owner.", e.UnavailableState.PAUSED,
     "The Space is paused by its owner; it answers again only when they restart it."),
])
def test_a_sleeping_or_paused_page_names_the_state_whatever_the_status(status: int, body: str,
                                                                       state: e.UnavailableState,
                                                                       sentence: str) -> None:
    """The Hub's page for a Space that sleeps or is paused, met with a status other than 503: the Space's state,
    not "failed (HTTP 500)". Caught: either word no longer matched alone."""
    error = e.classify_status(status, body, "The Space")
    assert type(error) is e.SpaceUnavailable
    assert error.state is state
    assert str(error) == sentence


def test_a_failed_answer_is_the_error_state_and_quotes_its_first_200_characters() -> None:
    """A proxy's 502 page is long: the sentence quotes 200 characters of it, and ``state`` is ``error`` (the OpenAI
    API and doctor read it). Caught: the cut moved by one, the state dropped."""
    body = "<html><head><title>502 Bad Gateway</title></head><body>" + "x" * 300 + "</body></html>"
    error = e.classify_status(502, body, "The Space")
    assert isinstance(error, e.SpaceUnavailable)
    assert error.state is e.UnavailableState.ERROR
    assert str(error) == f"The Space failed (HTTP 502): {body[:200]}"


def test_a_title_that_is_not_text_is_no_title() -> None:
    """Robustness to junk (gradio writes the title as a string or null): a Space's JSON error with a number for a
    title still gives the Space's sentence, with no title. Caught: a non-string title passed on (and crashing the
    HTML clean-up)."""
    error = e.classify_status(500, '{"error": "Boom", "title": 5}', "The Space")
    assert type(error) is e.RemoteError
    assert str(error) == "The Space says: Boom" and error.title is None


def test_a_503_without_words_is_the_error_state() -> None:
    """A Space that is starting answers 503 with no page; doctor and /v1 read ``state``. Caught: the state dropped
    (then the default, ``unreachable``, would say the network failed)."""
    error = e.classify_status(503, "", "The Space")
    assert isinstance(error, e.SpaceUnavailable)
    assert error.state is e.UnavailableState.ERROR


# ---- the errors' own fields -------------------------------------------------------------------------------------
def test_an_error_built_with_a_status_keeps_it() -> None:
    """The bridge builds these with the Hub's status (bridge.py, _wire/protocol.py). Caught: ``status`` dropped by
    ``Phi4Error`` or by ``SpaceUnavailable`` on its way up."""
    assert e.AuthError("refused", status=401).status == 401
    missing = e.SpaceUnavailable("gone", e.UnavailableState.NOT_FOUND, status=404)
    assert missing.status == 404 and missing.state is e.UnavailableState.NOT_FOUND


def test_a_stream_timeout_says_its_words_and_is_the_timeout_state() -> None:
    """Caught: the message or the ``timeout`` state dropped."""
    error = e.StreamTimeout("The Space took more than 30 s to answer; it may be overloaded.")
    assert str(error) == "The Space took more than 30 s to answer; it may be overloaded."
    assert error.state is e.UnavailableState.TIMEOUT and error.status is None
    assert e.exit_code(error) == 3


def test_a_refused_input_keeps_its_reason_and_its_wait() -> None:
    """``reason`` is the /v1 error's ``code`` ("rejected" unless said), ``retry_after`` the wait a visitor over their
    budget is told. Caught: the default reason changed, the wait dropped."""
    assert e.InputRejected("Empty message.").reason == "rejected"
    over = e.InputRejected("Over budget.", reason="budget", retry_after=30.0)
    assert over.reason == "budget" and over.retry_after == 30.0


# ---- a token that is not ZeroGPU's (a bug the word-by-word check found) -----------------------------------------
@pytest.mark.parametrize("text", [
    "Token expired",          # a Space's own login or API key check: ValueError("Token expired"), common in apps
    "Invalid token",          # ... and its ValueError("Invalid token")
    "Invalid token nesting",  # markdown-it's, rendering a reply
])
def test_a_space_s_own_token_error_is_its_own_error_not_zerogpu_s(text: str) -> None:
    """Bare "token expired", "expired token" and "invalid token" once read as the ZeroGPU token: the job fetched a
    new one and ran the step again, then blamed HF_TOKEN and this computer's clock. The Space's words are quoted."""
    error = e.classify_error_text(text, None)
    assert type(error) is e.RemoteError
    assert str(error) == f"The Space says: {text}"
    assert not isinstance(error, e.TokenRejected)


@pytest.mark.parametrize(("text", "kind"), [
    ("Expired ZeroGPU proxy token", e.TokenExpired),                              # spaces 0.32 to today
    ("ZeroGPU token expired. Reload the page to get a new one.", e.TokenExpired),  # the stand-in's words
    ("Invalid ZeroGPU token", e.TokenRejected),                                    # the stand-in's words
])
def test_each_zerogpu_token_wording_alone_is_the_token(text: str, kind: type) -> None:
    """Caught: any of the three ZeroGPU token words no longer matched alone."""
    assert type(e.classify_error_text(text, "ZeroGPU token error")) is kind
