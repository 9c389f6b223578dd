"""Error classification by status and by the Space's own text, as ZeroGPU Spaces word it."""

import pytest

from phi4_bridge import errors as e


@pytest.mark.parametrize("text,kind", [
    ("You have exceeded your GPU quota (60s requested vs. 56s left). Create a free account to get more usage quota.",
     e.QuotaExceeded),
    ("You have exceeded your GPU quota (60s requested vs. 5s left). Sign-up on Hugging Face to get more quotas or "
     "retry in 0:09:48.", e.QuotaExceeded),
    ("No GPU was available after 60s", e.GpuBusy),
    ("ZeroGPU worker error", e.WorkerError),
    ("ZeroGPU token expired", e.TokenExpired),
    ("Invalid ZeroGPU token", e.TokenRejected),
    ("CUDA out of memory", e.RemoteError),
])
def test_space_error_texts(text, kind):
    err = e.classify_error_text(text, "Error")
    assert type(err) is kind
    assert str(err)


def test_quota_wait_is_read_and_said():
    err = e.classify_error_text("... Sign-up on Hugging Face to get more quotas or retry in 0:09:48.")
    assert err.retry_after == 588
    assert "10 minutes" in str(err) and "HF_TOKEN" in str(err)


@pytest.mark.parametrize("status,body,kind,state", [
    (503, "This Space is sleeping", e.SpaceUnavailable, "sleeping"),
    (503, "paused", e.SpaceUnavailable, "paused"),
    (404, "", e.SpaceUnavailable, "not_found"),
    (401, "", e.AuthError, None),
    (429, "You have exceeded your GPU quota", e.QuotaExceeded, None),
    (500, "boom", e.SpaceUnavailable, "error"),
    (503, '{"detail": "Queue is full. Max size is 1 and size is 1."}', e.GpuBusy, None),
    (418, "teapot", e.ProtocolError, None),
])
def test_http_statuses(status, body, kind, state):
    err = e.classify_status(status, body, "The Space")
    assert isinstance(err, kind)
    if state:
        assert err.state == state


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
    from phi4_bridge.stream import ReplyStream

    with pytest.raises(e.RemoteError, match="The Space says: Worker crashed"):
        ReplyStream().handle({"msg": "unexpected_error", "message": "Worker crashed"})
