"""From stream messages to events: deltas hold only new text, diffs of any kind apply, failures classify."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phi4_bridge._wire.stream import ReplyStream
from phi4_bridge.errors import GpuBusy, Phi4Error, ProtocolError, QuotaExceeded, RemoteError
from phi4_bridge.events import Log, Queued, Started, TextDelta

USER = {"role": "user", "content": "hi"}


def gen(data):
    return {"msg": "process_generating", "output": {"data": data}}


def test_append_diffs_give_deltas():
    s = ReplyStream()
    events = s.handle({"msg": "estimation", "rank": 2, "queue_size": 3, "rank_eta": 4.0})
    assert events == [Queued(2, 3, 4.0)]
    assert s.handle({"msg": "process_starts", "eta": 1.0}) == [Started(1.0)]
    assert s.handle(gen([[USER, {"role": "assistant", "content": "Hel"}]])) == [TextDelta("Hel")]
    assert s.handle(gen([[["append", [1, "content"], "lo"]]])) == [TextDelta("lo")]
    assert s.handle(gen([[["append", [1, "content"], ""]]])) == []
    done = {"msg": "process_completed", "success": True,
            "output": {"data": [[USER, {"role": "assistant", "content": "Hello!"}]]}}
    assert s.handle(done) == [TextDelta("!")]
    assert s.text == "Hello!" and s.completed


def test_replace_of_whole_value_and_add_ops_work():
    s = ReplyStream()
    assert s.handle(gen([[USER]])) == []
    assert s.handle(gen([[["add", [1], {"role": "assistant", "content": "a"}]]])) == [TextDelta("a")]
    assert s.handle(gen([[["replace", [], [USER, {"role": "assistant", "content": "abc"}]]]])) == [TextDelta("bc")]


def test_log_is_passed_on_without_tokens():
    s = ReplyStream()
    [event] = s.handle({"msg": "log", "level": "WARNING", "log": "quota low for hf_abcdefghijk"})
    assert isinstance(event, Log) and event.level == "warning" and "hf_abc" not in event.message


@pytest.mark.parametrize("output,kind,message", [
    ({"error": "No GPU was available after 60s", "title": "Error"}, GpuBusy,
     "All of the Space's GPUs are busy right now; try again in a minute. (No GPU was available after 60s)"),
    ({"error": "You have exceeded your GPU quota (60s requested vs. 0s left).", "title": "ZeroGPU quota exceeded"},
     QuotaExceeded, "Your ZeroGPU quota is used up. Wait a while or sign in with a Hugging Face token (HF_TOKEN) "
     "for a larger quota. (You have exceeded your GPU quota (60s requested vs. 0s left).)"),
    ({"error": None}, RemoteError, "The Space failed on this turn without saying why. Retry; if it keeps failing, "
     "the Space may have changed its interface."),
])
def test_failures_are_classified(output, kind, message):
    with pytest.raises(kind) as info:
        ReplyStream().handle({"msg": "process_completed", "success": False, "output": output})
    assert type(info.value) is kind and str(info.value) == message


def test_bad_diff_is_a_protocol_error():
    s = ReplyStream()
    s.handle(gen([[USER]]))
    with pytest.raises(ProtocolError) as info:
        s.handle(gen([[["append", [7, "content"], "x"]]]))
    assert str(info.value) == "The Space sent a change the bridge cannot apply (IndexError)."


ops = st.lists(st.tuples(st.sampled_from(["replace", "append", "add", "delete", "bogus"]),
                         st.lists(st.one_of(st.integers(-3, 3), st.sampled_from(["content", "role"])), max_size=3),
                         st.one_of(st.text(max_size=5), st.none(), st.integers())), max_size=4)


@given(st.lists(ops, max_size=5))
def test_arbitrary_diffs_raise_only_bridge_errors(diffs):
    s = ReplyStream()
    s.handle(gen([[USER, {"role": "assistant", "content": ""}]]))
    for diff in diffs:
        try:
            s.handle(gen([[list(op) for op in diff]]))
        except Phi4Error:
            return


def test_adjacent_deltas_coalesce_and_other_events_keep_their_place():
    from phi4_bridge._wire.stream import coalesce

    events = [Started(None), TextDelta("a"), TextDelta("b"), Log("warning", "w"), TextDelta("c"), TextDelta("d")]
    assert coalesce(events) == [Started(None), TextDelta("ab"), Log("warning", "w"), TextDelta("cd")]
    assert coalesce([]) == []


json_leaf = st.one_of(st.text(max_size=4), st.integers(-3, 3), st.none())
history_value = st.lists(st.dictionaries(st.sampled_from(["role", "content", "metadata"]),
                                         st.one_of(json_leaf, st.lists(json_leaf, max_size=3)), max_size=3),
                         max_size=4)


@given(history_value, ops)
def test_scoped_diffs_match_gradio_apply_diff(value, diff):
    """Same result, or the same kind of failure, as gradio_client's apply_diff on the whole value."""
    import copy

    from gradio_client.utils import apply_diff

    from phi4_bridge._wire.stream import apply_scoped

    ops_ = [list(op) for op in diff]
    try:
        expected = apply_diff(copy.deepcopy(value), ops_)
    except Exception as exc:  # noqa: BLE001 - comparing failure kinds
        expected = type(exc)
    try:
        got = apply_scoped(copy.deepcopy(value), ops_)
    except Exception as exc:  # noqa: BLE001
        got = type(exc)
    assert got == expected  # the same value, or the same exception type (the bridge words each type its own way)
