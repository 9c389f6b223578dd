"""The input limits at their edges (phi4_bridge/messages.py, the limits of a turn and of a caller's history), as
the mutation check (tests/README.md) asks: each limit lets its own figure through and refuses one more, with the
sentence the user reads; then the OpenAI API's bounds (phi4_bridge/openai_api/bounds.py) alike. Pure functions on the
default ``Limits``; each test names the break it catches."""

from __future__ import annotations

import json

import pytest

from phi4_bridge.config import Limits
from phi4_bridge.errors import InputRejected
from phi4_bridge.messages import check_history, check_prompt
from phi4_bridge.openai_api.bounds import base64_limit, check_parsed, check_raw
from phi4_bridge.openai_api.errors import ApiError
from phi4_bridge.openai_api.schema import ChatRequest

LIMITS = Limits()


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def history_of(count: int) -> list[dict[str, str]]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i}"} for i in range(count)]


def test_the_default_limits_are_the_documented_figures() -> None:
    """docs/security.md's figures: 400 messages, 200,000 characters, 32 files of history; 20,000 characters a
    message (caught: any default changed)."""
    assert (LIMITS.max_history_messages, LIMITS.max_history_chars, LIMITS.max_history_files,
            LIMITS.max_prompt_chars) == (400, 200_000, 32, 20_000)


def test_a_history_of_400_messages_passes_and_401_is_refused_with_the_figures() -> None:
    """Caught: ``len(history) > limit`` made ``>=`` (400 refused), the limit in the sentence, the reason."""
    assert len(check_history(history_of(400), LIMITS)) == 200
    with pytest.raises(InputRejected) as refused:
        check_history(history_of(401), LIMITS)
    assert str(refused.value) == "The history has 401 messages; the limit is 400. Start a new conversation."
    assert refused.value.reason == "history_too_long"


def test_a_history_of_200_000_characters_passes_and_one_more_is_refused() -> None:
    """Caught: ``chars > limit`` made ``>=``, the sum counted wrong, the figures in the sentence."""
    full = [user("x" * 100_000), {"role": "assistant", "content": "y" * 100_000}]
    assert check_history(full, LIMITS)[0].reply == "y" * 100_000
    with pytest.raises(InputRejected) as refused:
        check_history([*full, user("z")], LIMITS)
    assert str(refused.value) == ("The history is 200,001 characters; the limit is 200,000. "
                                  "Start a new conversation.")
    assert refused.value.reason == "history_too_long"


def files_message(first: int, count: int) -> dict[str, object]:
    return {"role": "user", "content": [{"type": "file", "file": {"path": f"/tmp/f{i}.png"}}
                                        for i in range(first, first + count)]}


def test_a_history_with_32_files_passes_and_33_is_refused_counting_each_file_once() -> None:
    """Caught: ``len(files) > limit`` made ``>=``; the same file sent twice counted twice (it is one set)."""
    again = files_message(0, 32)
    turns = check_history([files_message(0, 32), user("look"), again], LIMITS)
    assert len(turns[0].files) == 32
    with pytest.raises(InputRejected) as refused:
        check_history([files_message(0, 33)], LIMITS)
    assert str(refused.value) == "The history carries 33 files; the limit is 32. Start a new conversation."
    assert refused.value.reason == "too_many_files"


def test_a_message_of_20_000_characters_passes_and_one_more_is_refused() -> None:
    """Caught: ``len(prompt) > limit`` made ``>=``, the figures in the sentence."""
    check_prompt("x" * 20_000, False, LIMITS)
    with pytest.raises(InputRejected) as refused:
        check_prompt("x" * 20_001, False, LIMITS)
    assert str(refused.value) == "The message is 20,001 characters; the limit is 20,000."
    assert refused.value.reason == "too_long"


def refusal(check: object) -> InputRejected:
    with pytest.raises(InputRejected) as refused:
        check()  # type: ignore[operator]
    return refused.value


def test_an_empty_message_is_refused_unless_it_carries_a_file() -> None:
    """Caught: the sentence or its reason changed (``reason`` is the /v1 error's ``code``), ``not has_files``
    made ``has_files`` (a picture sent with no words refused)."""
    refused = refusal(lambda: check_prompt(" \n ", False, LIMITS))
    assert (str(refused), refused.reason) == ("Write a message or attach a file first.", "empty")
    check_prompt("", True, LIMITS)


@pytest.mark.parametrize("history", ["hello", b"hello", {"role": "user", "content": "hi"}, 5])
def test_a_history_that_is_not_a_list_of_messages_is_refused_as_such(history: object) -> None:
    refused = refusal(lambda: check_history(history, LIMITS))  # type: ignore[arg-type]
    assert (str(refused), refused.reason) == ("The history must be a list of chat messages.", "bad_history")


@pytest.mark.parametrize("bad", ["a\x07b", "a\x00b", "\x1b[31mred", "right\u202eto left", "zero\u200bwidth",
                                 "\ufeffbom"])
def test_control_and_hidden_characters_are_refused_in_a_message_and_in_a_history(bad: str) -> None:
    """Caught: either sentence or reason changed."""
    refused = refusal(lambda: check_prompt(bad, False, LIMITS))
    assert (str(refused), refused.reason) == ("The message contains control characters; remove them and send again.",
                                              "control_characters")
    refused = refusal(lambda: check_history([user("fine"), {"role": "assistant", "content": bad}], LIMITS))
    assert (str(refused), refused.reason) == ("The history contains control characters; remove them and send again.",
                                              "control_characters")


def test_new_lines_tabs_returns_and_joiners_are_text_not_control_characters() -> None:
    """Caught: the ``"\\n\\t\\r"`` exception dropped (every multi-line message refused)."""
    text = "line one\nline\ttwo\r\nfamily: \U0001f468\u200d\U0001f469\u200d\U0001f467"
    check_prompt(text, False, LIMITS)
    assert check_history([user(text)], LIMITS)[0].text == text


@pytest.mark.parametrize("half", ["\ud800", "\udbff", "\udc00", "\udfff"])
def test_either_half_of_a_surrogate_pair_is_named_a_lone_surrogate(half: str) -> None:
    """Both ends of the range (caught: ``<= "\\udfff"`` made ``<``), in a message and in a history, with the
    reason that says what is wrong."""
    refused = refusal(lambda: check_prompt(f"a{half}b", False, LIMITS))
    assert str(refused).startswith("The message contains a lone surrogate (half of a UTF-16 pair")
    assert refused.reason == "control_characters"
    refused = refusal(lambda: check_history([user(f"a{half}b")], LIMITS))
    assert str(refused).startswith("The history contains a lone surrogate (half of a UTF-16 pair")
    assert refused.reason == "control_characters"


# ---- the OpenAI API's bounds (phi4_bridge/openai_api/bounds.py): on the raw body, then on the parsed request ---------

def chat_body(*messages: dict[str, object]) -> bytes:
    return json.dumps({"model": "phi-4-multimodal", "messages": list(messages)}).encode()


def api_refusal(body: bytes) -> ApiError:
    """The refusal of the raw check, else of the parsed one (the order the server runs them in)."""
    with pytest.raises(ApiError) as refused:
        check_raw(body, LIMITS)
        check_parsed(ChatRequest.model_validate_json(body), LIMITS)
    return refused.value


def api_passes(body: bytes) -> None:
    check_raw(body, LIMITS)
    check_parsed(ChatRequest.model_validate_json(body), LIMITS)


def image(length: int, mime: str = "image/png") -> dict[str, object]:
    """An image part whose ``data:`` URL is ``length`` characters long."""
    prefix = f"data:{mime};base64,"
    return {"type": "image_url", "image_url": {"url": prefix + "A" * (length - len(prefix))}}


def test_a_data_url_at_the_base64_limit_passes_both_checks_and_one_character_more_fails_both() -> None:
    """The raw look and the parsed one agree on the same boundary (a gap found by this check: the raw one counted
    the URL's opening quote, so a URL of exactly the limit passed one check and not the other). Caught:
    ``length > limit`` made ``>=`` in either, the base64 arithmetic (4 characters per 3 bytes) changed."""
    limit = base64_limit(LIMITS.max_image_bytes)
    assert limit == 4 * 3_495_254 + 256  # 10 MB as base64, padded, and room for the prefix
    at = chat_body({"role": "user", "content": [image(limit)]})
    check_raw(at, LIMITS)
    check_parsed(ChatRequest.model_validate_json(at), LIMITS)
    over = chat_body({"role": "user", "content": [image(limit + 1)]})
    with pytest.raises(ApiError) as raw:
        check_raw(over, LIMITS)
    assert (raw.value.param, raw.value.code) == ("messages", "too_large")
    assert raw.value.message == ("messages: the image in a data: URL is about 10 MB, over the 10 MB limit (refused "
                                 "before it was decoded).")
    with pytest.raises(ApiError) as parsed:
        check_parsed(ChatRequest.model_validate_json(over), LIMITS)
    assert (parsed.value.param, parsed.value.code) == ("messages[0].content[0].image_url.url", "too_large")
    assert parsed.value.message == ("messages[0].content[0].image_url.url: the image is about 10 MB, over the 10 MB "
                                    "limit (refused before it was decoded).")


def test_audio_is_measured_against_the_audio_limit_in_either_spelling() -> None:
    """25 MB for audio, whether as ``input_audio`` or a ``data:audio/...`` URL (caught: the mime test or the
    limit it picks changed)."""
    audio_limit = base64_limit(LIMITS.max_audio_bytes)
    api_passes(chat_body({"role": "user", "content": [image(audio_limit, "audio/wav")]}))
    refused = api_refusal(chat_body({"role": "user", "content": [image(audio_limit + 1, "AUDIO/wav")]}))
    assert "the audio in a data: URL is about 25 MB, over the 25 MB limit" in refused.message
    sound = {"type": "input_audio", "input_audio": {"data": "A" * audio_limit, "format": "wav"}}
    api_passes(chat_body({"role": "user", "content": [sound]}))
    sound["input_audio"] = {"data": "A" * (audio_limit + 1), "format": "wav"}
    refused = api_refusal(chat_body({"role": "user", "content": [sound]}))
    assert (refused.param, refused.code) == ("messages[0].content[0].input_audio.data", "too_large")
    assert refused.message.endswith("the audio is about 25 MB, over the 25 MB limit (refused before it was decoded).")


SMALL = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


def test_a_request_of_40_files_passes_the_raw_count_and_41_is_refused_with_the_figures() -> None:
    """32 in the history and 8 in the turn (caught: ``parts > 40`` made ``>=``, the count not halved, the
    sentence's figures)."""
    earlier = [{"role": "user", "content": [SMALL] * 8}, {"role": "assistant", "content": "ok"}] * 4
    api_passes(chat_body(*earlier, {"role": "user", "content": [SMALL] * 8}))
    with pytest.raises(ApiError) as refused:
        check_raw(chat_body(*earlier, {"role": "user", "content": [SMALL] * 9}), LIMITS)
    assert (refused.value.code, refused.value.param) == ("too_many_files", "messages")
    assert refused.value.message == ("The request carries about 41 files; at most 8 a turn and 32 in the earlier "
                                     "turns are taken.")


def test_the_turn_s_and_the_history_s_file_counts_are_worded_for_what_is_over() -> None:
    """Caught: ``> max_files`` made ``>=`` (8 files refused), the history's sum or its sentence changed."""
    refused = api_refusal(chat_body({"role": "user", "content": [SMALL] * 9}))
    assert refused.message == "The last message carries 9 files; a turn takes at most 8."
    earlier = [{"role": "user", "content": [SMALL] * 8}, {"role": "assistant", "content": "ok"}] * 4
    refused = api_refusal(chat_body({"role": "system", "content": "be brief"}, *earlier,
                                    {"role": "user", "content": [SMALL]}, {"role": "assistant", "content": "ok"},
                                    {"role": "user", "content": "and?"}))
    assert refused.message == "The earlier messages carry 33 files; the limit is 32. Start a new conversation."
    assert (refused.code, refused.param) == ("too_many_files", "messages")
