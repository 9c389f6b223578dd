"""How an OpenAI request becomes the bridge's turn (pure: no server)."""

from __future__ import annotations

import base64

import pytest

from phi4_bridge.messages import turns
from phi4_bridge.openai_api.errors import ApiError, quota
from phi4_bridge.openai_api.messages import check_request, to_turn, with_paths
from phi4_bridge.openai_api.schema import ChatRequest

PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG-bytes").decode()


def req(*messages: dict, **fields: object) -> ChatRequest:
    return ChatRequest.model_validate({"model": "phi-4-multimodal", "messages": list(messages), **fields})


def test_earlier_turns_become_a_history_the_bridge_reads_as_turns() -> None:
    turn = to_turn(req({"role": "developer", "content": "Be kind."},
                       {"role": "user", "content": [{"type": "text", "text": "What is it?"},
                                                    {"type": "image_url", "image_url": {"url": PNG}}]},
                       {"role": "assistant", "content": [{"type": "text", "text": "A dot."}]},
                       {"role": "user", "content": "Colour?"}, {"role": "user", "content": "And size?"}))
    history = with_paths(turn.history, ["/tmp/x/messages[1].content[1].png"])
    assert [(t.text, t.files, t.reply) for t in turns(history)] == [
        ("Be kind.\nWhat is it?", ("/tmp/x/messages[1].content[1].png",), "A dot.")]
    assert turn.prompt == "Colour?\nAnd size?"
    assert turn.files == []
    assert turn.attachments[0].data == b"\x89PNG-bytes"
    assert turn.attachments[0].param == "messages[1].content[1].image_url.url"


def test_a_system_message_goes_before_the_first_user_text_even_when_that_is_the_new_turn() -> None:
    turn = to_turn(req({"role": "system", "content": "Reply in French."}, {"role": "user", "content": "Hello"}))
    assert turn.prompt == "Reply in French.\nHello"
    assert turn.history == []


@pytest.mark.parametrize(("messages", "param"), [
    ([{"role": "assistant", "content": "Hi!"}, {"role": "user", "content": "x"}], "messages[0].role"),
    ([{"role": "user", "content": "x"}, {"role": "tool", "content": "y", "tool_call_id": "1"}], "messages[1].role"),
    ([{"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}], "messages[0].content[0].type"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://h/x.png"}}]}],
     "messages[0].content[0].image_url.url"),
])
def test_what_cannot_be_sent_names_its_field(messages: list[dict], param: str) -> None:
    with pytest.raises(ApiError) as caught:
        to_turn(req(*messages))
    assert caught.value.status == 400 and caught.value.param == param


def test_off_values_of_unsupported_fields_are_accepted_and_real_ones_refused() -> None:
    check_request(req({"role": "user", "content": "x"}, tools=[], tool_choice="none", logprobs=False, n=1,
                      response_format={"type": "text"}, presence_penalty=0, stop=None))
    with pytest.raises(ApiError) as caught:
        check_request(req({"role": "user", "content": "x"}, presence_penalty=0.5))
    assert caught.value.param == "presence_penalty"


def test_quota_headers() -> None:
    assert quota("q", 60.0).headers == {"retry-after": "60"}
    assert quota("q", 120.5).headers == {"retry-after": "121", "x-should-retry": "false"}
    assert quota("q", None).headers == {"x-should-retry": "false"}
