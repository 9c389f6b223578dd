"""Error classification by status and by the Space's own text, as ZeroGPU Spaces word it."""

import pytest

from phi4_bridge import errors as e

QUOTA_56S = ("You have exceeded your GPU quota (60s requested vs. 56s left). Create a free account to get more "
             "usage quota.")
QUOTA_RETRY = ("You have exceeded your GPU quota (60s requested vs. 5s left). Sign-up on Hugging Face to get more "
               "quotas or retry in 0:09:48.")


@pytest.mark.parametrize("text,kind,message", [
    (QUOTA_56S, e.QuotaExceeded, "Your ZeroGPU quota is used up. Wait a while or sign in with a Hugging Face token "
     f"(HF_TOKEN) for a larger quota. ({QUOTA_56S})"),
    (QUOTA_RETRY, e.QuotaExceeded, "Your ZeroGPU quota is used up. Try again in about 10 minutes or sign in with a "
     f"Hugging Face token (HF_TOKEN) for a larger quota. ({QUOTA_RETRY})"),
    ("No GPU was available after 60s", e.GpuBusy,
     "All of the Space's GPUs are busy right now; try again in a minute. (No GPU was available after 60s)"),
    ("ZeroGPU worker error", e.WorkerError, "The Space's GPU worker failed; try again. (ZeroGPU worker error)"),
    ("ZeroGPU token expired", e.TokenExpired, "The ZeroGPU token expired. Try again in a minute (a fresh token is "
     "fetched for each try); if it keeps happening, check that this computer's clock is right and that HF_TOKEN is "
     "valid. (ZeroGPU token expired)"),
    ("Invalid ZeroGPU token", e.TokenRejected,
     "The Space refused the ZeroGPU token; check HF_TOKEN. (Invalid ZeroGPU token)"),
    ("CUDA out of memory", e.RemoteError, "The Space says: CUDA out of memory"),
])
def test_space_error_texts(text, kind, message):
    """docs/failures.md's table: the type and the sentence, the Space's own words quoted after it."""
    err = e.classify_error_text(text, "Error")
    assert type(err) is kind
    assert str(err) == message


def test_quota_wait_is_read_and_said():
    err = e.classify_error_text("... Sign-up on Hugging Face to get more quotas or retry in 0:09:48.")
    assert err.retry_after == 588
    assert "10 minutes" in str(err) and "HF_TOKEN" in str(err)


SLEEPING = "The Space is sleeping. Open its page on huggingface.co to wake it, then retry in a minute or two."
NOT_FOUND = "The Space was not found (HTTP 404): check the Space name and URL."
QUEUE_FULL = "The Space is busy: its queue is full. Try again in a minute."


@pytest.mark.parametrize("status,body,what,kind,state,message", [
    (503, "This Space is sleeping", "The Space", e.SpaceUnavailable, "sleeping", SLEEPING),
    # the Space's state, whichever of its routes met it first: still "The Space is ..." (docs/failures.md's table)
    (503, "This Space is sleeping", "The Space's upload", e.SpaceUnavailable, "sleeping", SLEEPING),
    (503, "paused", "The Space's queue", e.SpaceUnavailable, "paused",
     "The Space is paused by its owner; it answers again only when they restart it."),
    (404, "", "The Space", e.SpaceUnavailable, "not_found", NOT_FOUND),
    (404, "", "The Space's upload", e.SpaceUnavailable, "not_found", NOT_FOUND),
    (401, "", "The Space", e.AuthError, None,
     "The Space refused access (HTTP 401): the Space may be private, or the HF token may be wrong."),
    (429, "You have exceeded your GPU quota", "The Space", e.QuotaExceeded, None,
     "Your ZeroGPU quota is used up. Wait a while or sign in with a Hugging Face token (HF_TOKEN) for a larger "
     "quota. (You have exceeded your GPU quota)"),
    (500, "boom", "The Space", e.SpaceUnavailable, "error", "The Space failed (HTTP 500): boom"),
    (503, '{"detail": "Queue is full. Max size is 1 and size is 1."}', "The Space's queue", e.GpuBusy, None,
     QUEUE_FULL),
    (418, "teapot", "The Space", e.ProtocolError, None, "The Space answered HTTP 418 unexpectedly: teapot"),
])
def test_http_statuses(status, body, what, kind, state, message):
    err = e.classify_status(status, body, what)
    assert type(err) is kind
    assert str(err) == message
    assert getattr(err, "state", None) == state


def test_tokens_never_reach_a_message():
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDB9.c2lnbmF0dXJl"
    err = e.classify_error_text(f"bad token {jwt} for hf_abcdefghijklmnop, Bearer secret123")
    text = str(err)
    assert jwt not in text and "hf_abcdefghijklmnop" not in text and "secret123" not in text
    assert "[token]" in text


def test_public_names_all_import():
    import phi4_bridge

    missing = [name for name in phi4_bridge.__all__ if not hasattr(phi4_bridge, name)]
    assert missing == []


@pytest.mark.parametrize("text,title,kind,message", [
    # gradio's answer to a gr.Error in a /run/predict step: the Space's own sentence, quoted once
    ('{"error": "Please upload only one image file.", "title": "Error", "duration": 10, "visible": true}', None,
     e.RemoteError, "The Space says: Please upload only one image file."),
])
def test_a_steps_own_error_is_the_spaces_sentence(text, title, kind, message):
    err = e.classify_status(500, text, "The Space")
    assert type(err) is kind and str(err) == message


@pytest.mark.parametrize("text,title,kind,retry_after", [
    ("You have exceeded your GPU quota (60s requested vs. 56s left). <a href=\"https://huggingface.co/join\">Create "
     "a free account</a> to get more usage quota.", None, e.QuotaExceeded, None),
    ("You have exceeded your ZeroGPU quota (60s requested vs. 5s left). Try again in 23:59:09. Authenticate with a "
     "Hugging Face token for more quota - https://huggingface.co/settings/tokens", "ZeroGPU quota exceeded",
     e.QuotaExceeded, 86349.0),
    ("You have exceeded your ZeroGPU runs limit.", None, e.QuotaExceeded, None),
    ("Space app has reached its GPU limit. Try again later.", None, e.GpuBusy, None),
    ("", "ZeroGPU queue timeout", e.GpuBusy, None),
    ("Expired ZeroGPU proxy token", "ZeroGPU client error", e.TokenExpired, None),
    ("GPU task aborted", "ZeroGPU worker error", e.WorkerError, None),
])
def test_zerogpu_texts_of_every_era(text, title, kind, retry_after):
    err = e.classify_error_text(text, title)
    assert type(err) is kind
    assert getattr(err, "retry_after", None) == retry_after


def test_html_in_the_spaces_text_becomes_words_with_the_links_address():
    err = e.classify_error_text('Sign up: <a href="https://huggingface.co/join">Create a free account</a> &amp; more '
                                "quota", None)
    assert "Sign up: Create a free account (https://huggingface.co/join) & more quota" in str(err)
    assert "<a" not in str(err)


def test_an_unexpected_error_message_carries_its_text():
    from phi4_bridge._wire.stream import ReplyStream

    with pytest.raises(e.RemoteError, match="The Space says: Worker crashed"):
        ReplyStream().handle({"msg": "unexpected_error", "message": "Worker crashed"})
