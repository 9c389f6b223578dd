"""Message conversion between the Space's gradio 5 shape and the local gradio 6 chatbot's."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phi4_bridge.errors import ProtocolError
from phi4_bridge.messages import file_data, parts, reply_text, to_local, to_space, user_turn

FD = file_data("http://space", "/tmp/up/cat.png", "cat.png", 123, "image/png")


def test_local_gradio6_history_becomes_one_space_message_per_part():
    local = [
        {"role": "user", "content": [{"type": "file", "file": {"path": "/local/cat.png"}},
                                     {"type": "text", "text": "What is this?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
    ]
    space = to_space(parts(local), {"/local/cat.png": FD})
    assert space == [
        {"role": "user", "content": {"file": FD}},
        {"role": "user", "content": "What is this?"},
        {"role": "assistant", "content": "A cat."},
    ]


def test_gradio5_history_is_read_too():
    g5 = [{"role": "user", "content": {"file": FD}}, {"role": "user", "content": "hi"},
          {"role": "assistant", "content": "hello", "metadata": None, "options": None}]
    assert [(p.role, p.text, p.path) for p in parts(g5)] == [
        ("user", None, "/tmp/up/cat.png"), ("user", "hi", None), ("assistant", "hello", None)]


def test_status_notes_and_system_messages_are_not_sent():
    local = [{"role": "system", "content": "be nice"},
             {"role": "assistant", "content": "queued", "metadata": {"title": "Waiting for a GPU"}},
             {"role": "user", "content": "hi"}]
    assert [p.text for p in parts(local)] == ["hi"]


def test_file_not_uploaded_is_an_error():
    with pytest.raises(ProtocolError):
        to_space(parts([{"role": "user", "content": {"path": "/x.png"}}]), {})


def test_user_turn_puts_files_before_text():
    assert user_turn("look", [FD]) == [{"role": "user", "content": {"file": FD}}, {"role": "user", "content": "look"}]
    assert user_turn("", [FD]) == [{"role": "user", "content": {"file": FD}}]


def test_reply_text_reads_both_shapes():
    assert reply_text([{"role": "user", "content": "q"}, {"role": "assistant", "content": "abc"}]) == "abc"
    assert reply_text([{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text",
                                                                                        "text": "b"}]}]) == "ab"
    assert reply_text([{"role": "user", "content": "q"}]) == ""
    with pytest.raises(ProtocolError):
        reply_text([])


def test_round_trip_space_to_local_and_back():
    space = [{"role": "user", "content": {"file": FD}}, {"role": "user", "content": "q"},
             {"role": "assistant", "content": "a"}]
    local = to_local(space)
    assert local[0]["content"][0]["type"] == "file" and local[0]["content"][1] == {"type": "text", "text": "q"}
    assert to_space(parts(local), {FD["path"]: FD}) == space


texts = st.text(min_size=1, max_size=20)
content = st.one_of(
    texts,
    st.builds(lambda t: {"type": "text", "text": t}, texts),
    st.builds(lambda p: {"file": {"path": p}}, texts),
    st.builds(lambda p: {"type": "file", "file": {"path": p}}, texts),
    st.builds(lambda p: {"path": p}, texts),
)
message = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]),
                                 "content": st.one_of(content, st.lists(content, max_size=4))})


@given(st.lists(message, max_size=8))
def test_conversion_keeps_every_text_and_file_in_order(history):
    ps = parts(history)
    remote = {p.path: {"path": "srv" + p.path} for p in ps if p.file is not None}
    space = to_space(ps, remote)
    expected = [p for p in ps if p.file is not None or p.text]
    assert len(space) == len(expected)
    for sent, part in zip(space, expected):
        assert sent["role"] == part.role
        if part.file is not None:
            assert sent["content"] == {"file": {"path": "srv" + part.path}}
        else:
            assert sent["content"] == part.text


@given(st.lists(st.one_of(st.none(), st.integers(), st.text(), st.dictionaries(st.text(max_size=5), st.text(
    max_size=5), max_size=3)), max_size=5))
def test_arbitrary_content_raises_only_protocol_errors(items):
    try:
        parts([{"role": "user", "content": items}])
    except ProtocolError:
        pass


@pytest.mark.parametrize("prompt", [
    "non\u00a0breaking space pasted from a web page",
    "family emoji \U0001F468\u200D\U0001F469\u200D\U0001F467 and a flag \U0001F1FA\U0001F1E6",
    "\u0915\u094d\u200d\u0937 (Devanagari with a zero-width joiner)",
    "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645 (Persian with a zero-width non-joiner)",
    "tabs\tand\nnew lines\r\n",
])
def test_ordinary_text_passes_the_prompt_check(prompt):
    from phi4_bridge.config import Limits
    from phi4_bridge.messages import check_prompt

    check_prompt(prompt, False, Limits())
