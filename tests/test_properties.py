"""Property-based tests: the pure parts of the bridge, fed arbitrary input, raise nothing but ``Phi4Error``.

What comes off the network (bytes of the event stream, the messages in it, the diffs and chat values inside
those) and what a caller hands in (a history in any shape) is arbitrary; an ``AttributeError`` or
``TypeError`` escaping from there would reach a person as a traceback instead of a sentence.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from phi4_bridge._wire.sse import SSEDecoder
from phi4_bridge._wire.stream import ReplyStream
from phi4_bridge.config import Limits
from phi4_bridge.errors import Phi4Error, ProtocolError
from phi4_bridge.events import Log, Queued, Started, TextDelta
from phi4_bridge.messages import check_history, parts, reply_text, turns

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KINDS = ["estimation", "process_starts", "log", "process_generating", "process_completed", "heartbeat",
         "progress", "close_stream", "send_hash", "unexpected_error", "bogus"]
KEYS = ["msg", "output", "data", "success", "error", "title", "role", "content", "text", "type", "file", "path",
        "metadata", "rank", "queue_size", "rank_eta", "eta", "level", "log", "message", "event_id", "orig_name"]

# What json.loads can give: None, bools, ints, floats (NaN and Infinity too), strings, lists, dicts.
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
                         st.text(max_size=12), st.sampled_from(KINDS + ["assistant", "user", "replace", "append"]))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=5)), inner, max_size=5)),
    max_leaves=25)

ops = st.lists(st.one_of(
    st.tuples(st.sampled_from(["replace", "append", "add", "delete", "bogus"]),
              st.lists(st.one_of(st.integers(-3, 5), st.sampled_from(["content", "role", "text", 0])), max_size=3),
              json_values).map(list),
    json_values), max_size=4)


def chat_message(content: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"role": st.sampled_from(["assistant", "user", "system", 3, None]),
                                  "content": content},
                                 optional={"metadata": json_values, "options": json_values})


contents = st.one_of(
    json_values,
    st.text(max_size=10),
    st.fixed_dictionaries({"file": st.fixed_dictionaries({"path": json_values}, optional={"orig_name": json_values})}),
    st.lists(st.one_of(st.fixed_dictionaries({"type": st.just("text"), "text": json_values}),
                       st.fixed_dictionaries({"type": st.just("file"), "file": json_values}),
                       st.fixed_dictionaries({"type": st.just("component"), "value": json_values}),
                       json_values), max_size=3))
histories = st.lists(st.one_of(chat_message(contents), json_values), max_size=5)
chat_values = st.one_of(st.lists(chat_message(contents), max_size=4), json_values)

messages = st.one_of(
    st.fixed_dictionaries({"msg": st.sampled_from(KINDS)},
                          optional={k: json_values for k in ("rank", "queue_size", "rank_eta", "eta", "level", "log",
                                                             "message", "success", "event_id")}
                          | {"output": st.one_of(json_values, st.fixed_dictionaries(
                              {"data": st.one_of(st.lists(st.one_of(chat_values, ops), max_size=3), json_values)},
                              optional={"error": json_values, "title": json_values}))}),
    st.dictionaries(st.sampled_from(KEYS), json_values, max_size=4),
)


# ---- the event stream parser ------------------------------------------------------------------------------

def feed_all(chunks: list[bytes]) -> list[dict[str, Any]]:
    decoder = SSEDecoder()
    out: list[dict[str, Any]] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out + decoder.close()


sse_fragments = st.lists(st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"data: ", b"data:", b"\n", b"\r\n", b"\r", b"\n\n", b": comment\n", b"event: x\n", b"id: 1\n",
                     b'data: {"msg": "heartbeat"}\n\n', b'{"msg":', b"\xe7\x8c", b"\xab", b"\xff", b"\x00"]),
    st.text(max_size=20).map(str.encode)), max_size=25)


@FAST
@given(sse_fragments)
@example([b"data: {\"msg\": \"x\"}\r\r\n"])
def test_sse_decoder_on_arbitrary_bytes_raises_only_protocol_errors(chunks):
    try:
        out = feed_all(chunks)
    except ProtocolError:
        return
    assert all(isinstance(m, dict) and isinstance(m.get("msg"), str) for m in out)


@FAST
@given(st.lists(st.dictionaries(st.text(max_size=6), json_values, max_size=4).map(lambda d: {**d, "msg": "m"}),
                max_size=6),
       st.lists(st.integers(0, 10_000), max_size=20), st.sampled_from(["\n", "\r\n"]))
def test_sse_decoder_gives_back_any_json_messages_however_split(sent, cuts, newline):
    wire = "".join(f"data: {json.dumps(m, ensure_ascii=False)}{newline}{newline}" for m in sent).encode()
    points = sorted({c % (len(wire) + 1) for c in cuts})
    chunks = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)])]
    got = feed_all(chunks)
    assert json.dumps(got, sort_keys=True) == json.dumps(sent, sort_keys=True)  # NaN-safe comparison


# ---- the reply stream: diff application and reply extraction ---------------------------------------------

@FAST
@given(st.lists(messages, min_size=1, max_size=8))
@example([{"msg": "process_generating", "output": {"data": [[{"role": "assistant", "content": "hi"}]]}},
          {"msg": "process_generating", "output": {"data": [[["append", [0, "content"], 5]]]}}])
@example([{"msg": "process_generating", "output": {"data": [[{"role": "assistant", "content": "hi"}]]}},
          {"msg": "process_generating", "output": {"data": [[["replace", [0, "content", 0], "x"]]]}}])
@example([{"msg": "estimation", "rank": float("nan"), "queue_size": float("inf")}])
def test_reply_stream_on_arbitrary_messages_raises_only_bridge_errors(sequence):
    stream = ReplyStream()
    for message in sequence:
        try:
            events = stream.handle(message)
        except Phi4Error:
            return
        for event in events:
            assert isinstance(event, Queued | Started | Log | TextDelta)
            if isinstance(event, TextDelta):
                assert isinstance(event.text, str) and event.text
        assert isinstance(stream.text, str)


@FAST
@given(st.lists(st.text(max_size=6), min_size=1, max_size=8))
def test_appends_add_up_to_the_reply(pieces):
    stream = ReplyStream()
    first = stream.handle({"msg": "process_generating",
                           "output": {"data": [[{"role": "user", "content": "q"},
                                                {"role": "assistant", "content": ""}]]}})
    deltas = [e.text for e in first if isinstance(e, TextDelta)]
    for piece in pieces:
        events = stream.handle({"msg": "process_generating",
                                "output": {"data": [[["append", [1, "content"], piece]]]}})
        deltas += [e.text for e in events if isinstance(e, TextDelta)]
    assert "".join(deltas) == "".join(pieces) == stream.text


@FAST
@given(chat_values)
def test_reply_text_raises_only_bridge_errors(value):
    try:
        assert isinstance(reply_text(value), str)
    except Phi4Error:
        pass


# ---- message conversion ------------------------------------------------------------------------------------

@FAST
@given(histories)
@example([{"role": "user", "metadata": {"title": float("nan")}, "content": "x"}])
@example([None, {"role": "user", "content": {"path": ["not", "a", "string"]}}])
def test_turns_and_history_checks_raise_only_bridge_errors(history):
    try:
        got = check_history(history, Limits())
    except Phi4Error:
        return
    assert got == turns(history)
    for turn in got:
        assert isinstance(turn.text, str) and isinstance(turn.reply, str)
        assert all(isinstance(f, str) for f in turn.files)


# ---- crashes the properties found once (fixed in the bridge), kept as plain regression tests -------------

@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nonfinite_queue_numbers(value):
    """JSON from a Python server may carry NaN or Infinity: shown as unknown, never a crash."""
    [event] = ReplyStream().handle({"msg": "estimation", "rank": value, "queue_size": value, "rank_eta": value})
    assert (event.rank, event.queue_size, event.eta) == (None, None, None)


HELLO_LIST = "\"['user', 'hi']\""  # repr() of the text "['user', 'hi']": double quotes around it


@pytest.mark.parametrize("item,shown", [(None, "'None'"), ("hello", "'hello'"), (["user", "hi"], HELLO_LIST)])
def test_history_item_that_is_not_a_message(item, shown):
    """Once an AttributeError; now the bridge's own error, naming the item."""
    for convert in (parts, turns):
        with pytest.raises(ProtocolError) as info:
            convert([{"role": "user", "content": "hi"}, item])
        assert type(info.value) is ProtocolError
        assert str(info.value) == f"A chat message is not a message: {shown}"


@pytest.mark.parametrize("content,shown", [
    ({"path": ["a", "b"]}, "\"{'path': ['a', 'b']}\""),
    ({"file": {"path": {"a": 1}}}, "\"{'file': {'path': {'a': 1}}}\""),
    ([{"type": "file", "file": {"path": ["x"]}}], "\"{'type': 'file', 'file': {'path': ['x']}}\""),
])
def test_file_path_that_is_not_a_string(content, shown):
    """Once a TypeError; now the bridge's own error, quoting the file entry."""
    with pytest.raises(ProtocolError) as info:
        turns([{"role": "user", "content": content}])
    assert type(info.value) is ProtocolError
    assert str(info.value) == f"A file in the chat has no usable path: {shown}"
