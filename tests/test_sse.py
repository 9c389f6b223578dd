"""The stream parser gives the same messages however the network splits the bytes."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phi4_bridge.errors import ProtocolError
from phi4_bridge.sse import SSEDecoder

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


@given(st.lists(st.integers(min_value=0, max_value=2000), max_size=30), st.sampled_from(["\n", "\r\n"]))
def test_any_split_gives_the_same_messages(cuts, newline):
    data = wire(MESSAGES, newline)
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0] + points, points + [len(data)])]
    assert decode(chunks) == MESSAGES


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


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_protocol_errors(blob):
    try:
        decode([blob])
    except ProtocolError:
        pass
