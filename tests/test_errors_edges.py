"""The sentences of phi4_bridge/errors.py at their edges, as the mutation check (tests/README.md) asks: how a
wait is said (seconds, minutes, hours, and where one turns into the next), the statuses the other tests do not
reach, the exit codes docs/cli.md gives, and what ``redact`` scrubs. Pure functions; each test names the break it
catches."""

from __future__ import annotations

import pytest

from phi4_bridge import errors as e

FREE = "You have exceeded your free GPU quota. Subscribe to PRO and retry in {}."


@pytest.mark.parametrize(("wait", "said", "seconds"), [
    ("0:00:20", "Try again in 20 seconds,", 20.0),       # under half a minute: seconds
    ("0:01:00", "Try again in about 1 minute,", 60.0),   # one minute, singular
    ("0:02:00", "Try again in about 2 minutes,", 120.0),
    ("1:29:00", "Try again in about 89 minutes,", 5340.0),  # under 90 minutes: minutes
    ("1:30:00", "Try again in about 2 hours,", 5400.0),     # from 90 minutes on: hours
    ("1 day, 0:00:00", "Try again in about 24 hours,", 86400.0),
    ("2 days, 1:00:05", "Try again in about 49 hours,", 176405.0),
])
def test_a_quota_s_wait_is_said_in_the_unit_a_person_reads(wait: str, said: str, seconds: float) -> None:
    """ZeroGPU writes ``str(timedelta)``. Caught: ``minutes >= 90`` made ``> 90`` or ``>= 91``, ``minutes >= 1``
    made ``> 1``, the plural, the days, hours or minutes read with a wrong factor."""
    error = e.classify_error_text(FREE.format(wait))
    assert isinstance(error, e.QuotaExceeded)
    assert error.retry_after == seconds
    assert str(error).startswith(f"Your free ZeroGPU quota is used up. {said} or upgrade to Hugging Face PRO")


@pytest.mark.parametrize(("status", "body", "kind", "sentence"), [
    (403, "", e.AuthError,
     "The Space refused access (HTTP 403): the Space may be private, or the HF token may be wrong."),
    (413, "", e.UploadRejected, "The Space refused the file as too large (HTTP 413)."),
    (429, "slow down", e.QuotaExceeded,
     "The Space says too many requests (HTTP 429); wait a minute and try again."),
    (503, "", e.SpaceUnavailable, "The Space is unavailable (HTTP 503); it may be starting. Retry in a minute."),
    (502, "", e.SpaceUnavailable, "The Space failed (HTTP 502): no details"),
    (200, "", e.ProtocolError, "The Space answered HTTP 200 unexpectedly: no details"),
    (500, '{"error": "Boom", "title": "Oops"}', e.RemoteError, "The Space reported an error: Boom"),
    (500, '{"error": "", "title": "Oops"}', e.SpaceUnavailable,
     'The Space failed (HTTP 500): {"error": "", "title": "Oops"}'),
])
def test_each_status_is_one_sentence_that_says_what_to_do(status: int, body: str, kind: type,
                                                          sentence: str) -> None:
    """Caught: a status's branch, its test (``status >= 500`` made ``> 500``), or its sentence changed."""
    error = e.classify_status(status, body, "The Space")
    assert type(error) is kind
    assert str(error) == sentence


def test_a_too_large_upload_says_so_in_its_reason_and_a_space_s_title_is_kept() -> None:
    """The reason is the /v1 error's code; the title is what the app shows above the Space's own words."""
    assert e.classify_status(413, "", "The Space").reason == "too_large"  # type: ignore[attr-defined]
    error = e.classify_status(500, '{"error": "Boom", "title": "Oops"}', "The Space")
    assert error.title == "Oops" and error.said == "Oops: Boom"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("error", "code"), [
    (e.InputRejected("x"), 2), (e.UploadRejected("x"), 2),
    (e.SpaceUnavailable("x"), 3), (e.StreamTimeout("x"), 3),
    (e.QuotaExceeded("x"), 4), (e.GpuBusy("x"), 4),
    (e.AuthError("x"), 1), (e.RemoteError("x"), 1), (e.ProtocolError("x"), 1),
])
def test_the_exit_codes_are_docs_cli_s(error: e.Phi4Error, code: int) -> None:
    """2 bad input, 3 the Space unavailable, 4 quota or busy GPUs, 1 anything else (caught: any of them)."""
    assert e.exit_code(error) == code


def test_redact_scrubs_every_token_shape_and_keeps_the_words_around_it() -> None:
    """Caught: a pattern's prefix, its least length or its replacement changed; ``bearer`` matched only in one
    case."""
    text = "sent Bearer abc.def and bearer xyz, hf_abcdef and hf_abcde, jwt eyJabcd.efgh.ij done"
    assert e.redact(text) == "sent Bearer [token] and bearer [token] [token] and hf_abcde, jwt [token] done"
    assert str(e.Phi4Error("token hf_secret123 leaked")) == "token [token] leaked"


@pytest.mark.parametrize(("status", "body", "kind", "state"), [
    (401, "", e.AuthError, None),
    (403, "", e.AuthError, None),
    (404, "", e.SpaceUnavailable, e.UnavailableState.NOT_FOUND),
    (429, "", e.Phi4Error, None),
    (503, "This Space is sleeping", e.SpaceUnavailable, e.UnavailableState.SLEEPING),
    (502, "bad gateway", e.SpaceUnavailable, None),
])
def test_an_http_refusal_carries_its_status_and_a_typed_state(status: int, body: str, kind: type, state: object
                                                              ) -> None:
    """Callers read ``error.status`` and ``error.state`` instead of parsing "HTTP 403" out of the message (issue
    26). Caught: ``classify_status`` not setting ``status``; a state that is a bare string again."""
    error = e.classify_status(status, body, "the Space")
    assert isinstance(error, kind)
    assert error.status == status
    if state is not None:
        assert isinstance(error, e.SpaceUnavailable)
        assert error.state is state
        assert error.state == state.value  # still reads as the old words in messages, logs and JSON
