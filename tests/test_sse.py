"""The stream parser on written-out streams. Its properties (any split gives the same messages; arbitrary bytes
raise only ProtocolError) are in tests/test_properties.py."""

import json

import pytest

from phi4_bridge._wire.sse import SSEDecoder
from phi4_bridge.errors import ProtocolError

MESSAGES = [
    {"msg": "estimation", "rank": 0, "queue_size": 1, "rank_eta": 1.5},
    {"msg": "process_starts", "eta": None},
    {"msg": "process_generating", "output": {"data": [[{"role": "assistant", "content": "Héllo ✓ 猫"}]]}},
    {"msg": "heartbeat"},
    {"msg": "process_completed", "success": True, "output": {"data": [[]]}},
]


def wire(messages, newline="\n"):
    return "".join(f"data: {json.dumps(m, ensure_ascii=False)}{newline}{newline}" for m in messages).encode()


def decode(chunks):
    decoder = SSEDecoder()
    out = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out + decoder.close()


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_one_byte_at_a_time_gives_the_same_messages(newline):
    data = wire(MESSAGES, newline)
    assert decode([data[i:i + 1] for i in range(len(data))]) == MESSAGES


def test_comments_and_other_fields_are_ignored():
    data = b": keep-alive\n\nevent: message\nid: 3\ndata: {\"msg\": \"heartbeat\"}\n\n"
    assert decode([data]) == [{"msg": "heartbeat"}]


def test_last_event_without_blank_line_is_kept():
    assert decode([b'data: {"msg": "close_stream"}']) == [{"msg": "close_stream"}]


@pytest.mark.parametrize("payload", [b"data: {not json\n\n", b'data: [1, 2]\n\n', b'data: {"no": "msg"}\n\n'])
def test_malformed_event_is_a_protocol_error(payload):
    with pytest.raises(ProtocolError):
        decode([payload])


def test_invalid_utf8_is_a_protocol_error():
    with pytest.raises(ProtocolError):
        decode([b'data: {"msg": "\xff\xfe"}\n\n'])
