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
