"""Reading chat messages in every shape: the Space's gradio 5 chatbot value and a local gradio 6 history."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phi4_bridge.config import Limits
from phi4_bridge.errors import InputRejected, ProtocolError
from phi4_bridge.messages import Turn, assistant_message, check_history, file_data, parts, reply_text, turns, with_reply

# A FileData as the Space's gradio sends it, written out (not built by the code under test)
FD = {"path": "/tmp/up/cat.png", "url": "http://space/gradio_api/file=/tmp/up/cat.png", "orig_name": "cat.png",
      "size": 123, "mime_type": "image/png", "meta": {"_type": "gradio.FileData"}}


def test_file_data_is_what_gradio_sends():
    assert file_data("http://space/gradio_api", "/tmp/up/cat.png", "cat.png", 123, "image/png") == FD  # the routes


def test_local_gradio6_history_is_read_as_turns():
    local = [
        {"role": "user", "content": [{"type": "file", "file": {"path": "/local/cat.png"}},
                                     {"type": "text", "text": "What is this?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Queued"}], "metadata": {"title": "⏳ note"}},
        {"role": "user", "content": [{"type": "text", "text": "And now?"}]},
    ]
    assert turns(local) == [Turn("What is this?", ("/local/cat.png",), "A cat."), Turn("And now?", (), "")]


def test_the_spaces_own_history_is_read_as_turns_with_its_titled_file_entries():
    """The Space's user step may write files as titled entries ("image"); those are files, not notes."""
    space = [{"role": "user", "content": {"file": FD, "alt_text": None}, "metadata": {"title": "image"}},
             {"role": "user", "content": "What is it?", "metadata": {}},
             {"role": "assistant", "content": "A cat.", "metadata": None, "options": None},
             {"role": "user", "content": "hi"}, {"role": "user", "content": "again"}]
    assert turns(space) == [Turn("What is it?", ("/tmp/up/cat.png",), "A cat."), Turn("hi", (), ""),
                            Turn("again", (), "")]


def test_history_limits_are_checked_before_anything_is_sent():
    limits = Limits(max_history_messages=3, max_history_chars=10, max_history_files=1)
    with pytest.raises(InputRejected, match="4 messages; the limit is 3") as info:
        check_history([{"role": "user", "content": "a"}] * 4, limits)
    assert info.value.reason == "history_too_long"
    with pytest.raises(InputRejected, match="11 characters; the limit is 10"):
        check_history([{"role": "user", "content": "x" * 11}], limits)
    two_files = [{"role": "user", "content": [{"type": "file", "file": {"path": "/a.png"}},
                                              {"type": "file", "file": {"path": "/b.png"}}]}]
    with pytest.raises(InputRejected, match="2 files; the limit is 1"):
        check_history(two_files, limits)
    with pytest.raises(InputRejected, match="control characters"):
        check_history([{"role": "assistant", "content": "nul\x00"}], Limits())
    with pytest.raises(InputRejected, match="lone surrogate"):  # named for what it is (issue 27), not "control"
        check_history([{"role": "user", "content": "lone \ud800 surrogate"}], Limits())
    with pytest.raises(InputRejected, match="must be a list"):
        check_history("not a list", Limits())
    assert check_history([{"role": "user", "content": "0123456789"}], limits) == [Turn("0123456789")]


def test_an_earlier_reply_takes_the_shape_of_the_spaces_own():
    like = {"role": "assistant", "metadata": None, "content": "old", "options": None}
    assert assistant_message("new", like, parts_shape=False) == {"role": "assistant", "metadata": None,
                                                                  "content": "new", "options": None}
    assert assistant_message("new", None, parts_shape=False) == {"role": "assistant", "metadata": None,
                                                                  "content": "new", "options": None}
    assert assistant_message("new", None, parts_shape=True) == {"role": "assistant",
                                                                 "content": [{"type": "text", "text": "new"}]}
    # gradio 4 gives every message a metadata dict and refuses None: a user message is the model when no reply
    # came yet, and a title is dropped, keeping the dict
    chat = [{"role": "user", "metadata": {"title": "image"}, "content": {"file": FD, "alt_text": None}},
            {"role": "user", "metadata": {"title": None}, "content": "hi"}]
    assert with_reply(chat, "new", tuples=False)[-1] == {"role": "assistant", "metadata": {"title": None},
                                                         "content": "new"}
    assert assistant_message("new", chat[0], parts_shape=False) == {"role": "assistant", "metadata": {},
                                                                    "content": "new"}


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


def test_reply_text_reads_both_shapes():
    assert reply_text([{"role": "user", "content": "q"}, {"role": "assistant", "content": "abc"}]) == "abc"
    assert reply_text([{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text",
                                                                                        "text": "b"}]}]) == "ab"
    assert reply_text([{"role": "user", "content": "q"}]) == ""
    assert reply_text([]) == ""
    with pytest.raises(ProtocolError):
        reply_text({"not": "a list"})


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
def test_turns_keep_every_text_and_file_in_order(history):
    ps = parts(history)
    got = turns(history)
    assert [f for t in got for f in t.files] == [p.path for p in ps if p.role == "user" and p.file is not None]
    user_texts = [p.text for p in ps if p.role == "user" and p.file is None and p.text]
    assert [t.text for t in got if t.text] == user_texts  # one text ends a turn, so each turn holds at most one


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


def test_the_refused_characters_are_exactly_controls_surrogates_and_the_hiding_ones() -> None:
    """Every code point, against Unicode's own categories: control characters (Cc) but tab, line feed and carriage
    return, surrogates (Cs), and the characters that hide or reorder text; nothing else (zero-width joiners and
    non-breaking spaces pass, emoji and several scripts need them)."""
    import unicodedata

    from phi4_bridge.messages import has_hidden_characters, has_lone_surrogate

    hiding = {0x200B, 0xFEFF, 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}
    for code in range(0x110000):
        ch = chr(code)
        refused = (code in hiding or (unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\n\t\r"))
        assert has_hidden_characters(f"a{ch}b") is refused, hex(code)
        assert has_lone_surrogate(f"a{ch}b") is (0xD800 <= code <= 0xDFFF), hex(code)
