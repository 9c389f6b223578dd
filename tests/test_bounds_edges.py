"""The OpenAI API's bounds (phi4_bridge/openai_api/bounds.py) where test_limits_edges.py does not reach, found by the
mutation check (tests/README.md): audio parts in the raw count, a ``data:`` URL measured to its own closing quote
(or to the body's end when it has none), and which messages make one turn. Pure functions on the default
``Limits``, no body over 17 MB; each test names the break it catches."""

from __future__ import annotations

import json

import pytest

from phi4_bridge.config import Limits
from phi4_bridge.openai_api.bounds import base64_limit, check_parsed, check_raw
from phi4_bridge.openai_api.errors import ApiError
from phi4_bridge.openai_api.schema import ChatRequest

LIMITS = Limits()
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
SOUND = {"type": "input_audio", "input_audio": {"data": "UklGRiQAAABXQVZF", "format": "wav"}}


def chat_body(*messages: dict[str, object]) -> bytes:
    return json.dumps({"model": "phi-4-multimodal", "messages": list(messages)}).encode()


def passes(body: bytes) -> None:
    check_raw(body, LIMITS)
    check_parsed(ChatRequest.model_validate_json(body), LIMITS)


def parsed_refusal(body: bytes) -> ApiError:
    """The parsed check's refusal of a body the raw look lets through (the order the server runs them in)."""
    check_raw(body, LIMITS)
    with pytest.raises(ApiError) as refused:
        check_parsed(ChatRequest.model_validate_json(body), LIMITS)
    return refused.value


def test_audio_parts_count_in_the_raw_file_count_as_images_do() -> None:
    """40 files, half of them sounds, pass (32 in the history, 8 in the turn); 41 are refused before JSON decoding
    with the figures. Caught: ``"input_audio"`` not counted or misspelled, the two counts subtracted."""
    turn = [IMAGE] * 4 + [SOUND] * 4
    earlier = [{"role": "user", "content": turn}, {"role": "assistant", "content": "ok"}] * 4
    passes(chat_body(*earlier, {"role": "user", "content": turn}))
    with pytest.raises(ApiError) as refused:
        check_raw(chat_body(*earlier, {"role": "user", "content": [*turn, SOUND]}), LIMITS)
    assert (refused.value.status, refused.value.code, refused.value.param) == (400, "too_many_files", "messages")
    assert refused.value.message == ("The request carries about 41 files; at most 8 a turn and 32 in the earlier "
                                     "turns are taken.")


def test_a_data_url_with_no_closing_quote_is_measured_to_the_end_of_the_body() -> None:
    """A body cut off inside its ``data:`` URL (never valid JSON) is still refused by its size before any decoding,
    at the same boundary as a whole one. Caught: the missing quote read as a URL of negative length (a cut-off
    body of any size passed on to the JSON decoder)."""
    head = b'{"model": "phi-4-multimodal", "messages": [{"role": "user", "content": [{"type": "image_url", ' \
           b'"image_url": {"url": "'
    prefix = b"data:image/png;base64,"
    limit = base64_limit(LIMITS.max_image_bytes)
    check_raw(head + prefix + b"A" * (limit - len(prefix)), LIMITS)
    with pytest.raises(ApiError) as refused:
        check_raw(head + prefix + b"A" * (limit - len(prefix) + 1), LIMITS)
    assert (refused.value.status, refused.value.code, refused.value.param) == (400, "too_large", "messages")
    assert refused.value.message == ("messages: the image in a data: URL is about 10 MB, over the 10 MB limit "
                                     "(refused before it was decoded).")


def test_two_pictures_each_under_the_limit_pass_though_together_they_are_over_it() -> None:
    """Each ``data:`` URL is measured to its own closing quote, whatever follows it (a second picture, more keys).
    Caught: the URL measured to the body's last quote (``rfind``): a picture followed by another was refused as
    the size of both."""
    limit = base64_limit(LIMITS.max_image_bytes)
    prefix = "data:image/png;base64,"
    picture = {"type": "image_url", "image_url": {"url": prefix + "A" * (limit * 3 // 5 - len(prefix))}}
    passes(chat_body({"role": "user", "content": [picture, picture]}))


def run_of_user_messages(images: int) -> list[dict[str, object]]:
    """The new turn as several user messages in a row: words alone, one with no content at all, then the files
    (with words before them) split over two messages."""
    first = images // 2
    return [{"role": "user", "content": "Compare these:"}, {"role": "user", "content": None},
            {"role": "user", "content": [{"type": "text", "text": "the first ones"}, *[IMAGE] * first]},
            {"role": "user", "content": [{"type": "text", "text": "and the others"}, *[IMAGE] * (images - first)]}]


def test_a_run_of_user_messages_is_one_turn_and_its_files_count_together() -> None:
    """After the assistant's last answer, every user message belongs to the new turn (``messages.to_turn`` reads it
    so): 8 files over them pass, 9 are refused with the turn's sentence, status and field. Caught: each user
    message counted as a turn of its own (``open_turn`` not kept), a message of words alone or with no content
    ending the count (``break``) or failing (``None`` iterated), a text part ending its message's count, the
    refusal's ``param`` changed."""
    earlier = [{"role": "user", "content": [IMAGE] * 8}, {"role": "assistant", "content": "ok"}]
    passes(chat_body(*earlier, *run_of_user_messages(8)))
    refused = parsed_refusal(chat_body(*earlier, *run_of_user_messages(9)))
    assert (refused.status, refused.code, refused.param) == (400, "too_many_files", "messages")
    assert refused.message == "The last message carries 9 files; a turn takes at most 8."


def test_files_sent_after_words_in_one_message_are_counted() -> None:
    """One message, its words first: 9 pictures refused as 9 (caught: a text part ending the count of its
    message's parts)."""
    refused = parsed_refusal(chat_body({"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                                                     *[IMAGE] * 9]}))
    assert refused.message == "The last message carries 9 files; a turn takes at most 8."
