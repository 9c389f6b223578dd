"""The chat found in ``/config`` files recorded from real gradio 4.44.1, 5.20.0 and 6.31.0 servers
(``tests/chain_configs/``, made by ``record.py`` there): pure, no server. Each shape is one the bridge met in the
wild: gradio's multimodal chatbot demo (user step queued), a tuples chatbot with a plain Textbox, a Submit button
wired with ``gr.on``, separate Image/Audio inputs and a hidden system prompt, and ``ChatInterface(multimodal=True)``
with ``additional_inputs``."""

import json
from pathlib import Path

import pytest

from phi4_bridge._wire.stream import ReplyStream
from phi4_bridge.chain import chain_problem, check_options, find_chain
from phi4_bridge.messages import reply_text, with_reply

CONFIGS = Path(__file__).parent / "chain_configs"


def config(name: str) -> dict:
    return json.loads((CONFIGS / f"{name}.json").read_text())


@pytest.mark.parametrize("version", ["4.44.1", "5.20.0", "6.31.0"])
def test_the_multimodal_demo_runs_every_step_and_its_queued_user_step_is_not_the_answer(version):
    chain = find_chain(config(f"multimodal-{version}"))
    assert chain is not None and chain.version == version
    assert [(s.fn, s.queue, s.generator) for s in chain.steps] == [(0, True, False), (1, True, True), (2, True, False)]
    assert (chain.trigger_id, chain.trigger_event, chain.textbox, chain.chatbot) == (2, "submit", 2, 1)
    assert chain.multimodal and not chain.tuples
    assert chain.steps[chain.answering].fn == 1  # a replay stops before the streaming bot step, not the user step
    assert sorted(chain.options) == ["temperature"]  # the bot step's slider: found though the user step is queued
    assert check_options(chain, {"temperature": 0.2}) == {3: 0.2}
    assert chain.file_places(["image", "audio", "image"]) == [2, 2, 2]  # all into the multimodal textbox
    assert chain.api_prefix == ("" if version.startswith("4.") else "/gradio_api") and chain.protocol == "sse_v3"


@pytest.mark.parametrize("version", ["4.44.1", "5.20.0"])
def test_a_textbox_and_button_with_a_tuples_chatbot(version):
    chain = find_chain(config(f"tuples-{version}"))
    assert chain is not None
    assert (chain.trigger_id, chain.trigger_event, chain.textbox, chain.chatbot) == (3, "submit", 3, 1)
    assert chain.tuples and not chain.multimodal
    assert [(s.fn, s.queue) for s in chain.steps] == [(0, False), (1, True), (2, False)]
    assert chain.file_places(["audio", "image"]) == [7, 6]  # each file into the chain's input of its kind
    with pytest.raises(ValueError, match=r"^This Space takes one image a turn\.$"):
        chain.file_places(["image", "image"])
    # the hidden system prompt is an option; the Model dropdown is on the page but no step takes it: not one
    assert sorted(chain.options) == ["system_prompt"]
    assert check_options(chain, {"system prompt": "Be terse"}) == {8: "Be terse"}
    assert chain.describe()["files"]["audio"] == [{"id": 7, "kind": "audio", "label": None}]


@pytest.mark.parametrize("version", ["4.44.1", "5.20.0", "6.31.0"])
def test_a_chatinterface_with_additional_inputs(version):
    chain = find_chain(config(f"chatinterface-{version}"))
    assert chain is not None and chain.multimodal and chain.trigger_event == "submit"
    streaming = [s for s in chain.steps if s.generator]
    assert len(streaming) == 1 and chain.chatbot in streaming[0].outputs  # _stream_fn (4, 5), _submit_fn (6)
    assert chain.steps[chain.answering] is streaming[0]
    assert sorted(chain.options) == ["system", "temperature"]
    assert check_options(chain, {"system": "be brief", "temperature": 1}) == {1: "be brief", 0: 1}


def test_a_space_with_no_place_for_a_kind_says_so():
    cfg = config("multimodal-5.20.0")
    box = next(c for c in cfg["components"] if c["type"] == "multimodaltextbox")
    box["props"]["file_types"] = ["image"]
    chain = find_chain(cfg)
    assert chain.file_places(["image"]) == [2]
    with pytest.raises(ValueError, match=r"^This Space takes no audio\.$"):
        chain.file_places(["audio"])


def test_the_choice_among_several_chats_follows_the_rules_and_says_so():
    """The text box's submit and the button's click wired separately to the same steps (the button's reading a
    second text box): the submit is chosen; with its text box hidden, it loses to the visible button; the Clear
    button (no text reaches its chain) is never a chat."""
    cfg = config("tuples-5.20.0")
    (dep,) = [d for d in cfg["dependencies"] if d["id"] == 0]
    cfg["components"].append({"id": 98, "type": "textbox", "props": {"value": ""}})
    # the button's chain comes first in /config (id -5), so only the submit-before-button rule picks the submit
    clicked = {**dep, "id": -5, "targets": [[4, "click"]], "inputs": [1, 98, 6, 7]}
    dep["targets"] = [[3, "submit"]]
    then = [{**d, "id": d["id"] + 90, "trigger_after": -5} for d in cfg["dependencies"] if d.get("trigger_after") == 0]
    cfg["dependencies"] = [clicked, *then, *cfg["dependencies"]]
    chain = find_chain(cfg)
    assert (chain.trigger_id, chain.trigger_event) == (3, "submit") and "chosen over fn -5" in chain.choice
    textbox = next(c for c in cfg["components"] if c["id"] == 3)
    textbox["props"]["visible"] = False
    chain = find_chain(cfg)
    assert (chain.trigger_id, chain.trigger_event, chain.textbox) == (4, "click", 98)


def test_what_cannot_be_driven_is_named_with_what_was_found():
    cfg = config("tuples-4.44.1")
    assert chain_problem(cfg) == ""
    no_chatbot = {**cfg, "components": [c for c in cfg["components"] if c["type"] != "chatbot"]}
    assert chain_problem(no_chatbot) == "its /config (gradio 4.44.1) has 2 textbox, 2 button, but no chatbot"
    unwired = {**cfg, "dependencies": [d for d in cfg["dependencies"] if d["id"] == 3]}  # only Clear is wired
    assert chain_problem(unwired) == ("its /config (gradio 4.44.1) has 1 chatbot, 2 textbox, 2 button, but no text "
                                      "input's submit or button's click whose chain takes the text and writes the "
                                      "chatbot")
    assert "'ws' queue protocol" in chain_problem({**cfg, "protocol": "ws"})


def test_the_reply_is_what_the_turn_adds_to_the_chatbot():
    before = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "old"}]
    assert reply_text(before, 2) == ""  # nothing added yet: the previous reply is not this turn's
    after = [*before, {"role": "user", "content": "again"}, {"role": "assistant", "content": "new"},
             {"role": "assistant", "content": "thinking", "metadata": {"title": "Thought"}}]
    assert reply_text(after, 2) == "new"
    assert reply_text([["hi", "old"], ["again", "new"]], 2) == "new"  # tuples: pairs count as their messages
    assert reply_text([["hi", "old"], ["again", None]], 2) == ""
    assert reply_text([*before, {"role": "assistant", "content": [{"type": "text", "text": "parts"}]}], 2) == "parts"
    assert with_reply([["hi", None]], "R", tuples=True) == [["hi", "R"]]


def test_sse_v1_streams_whole_values_not_diffs():
    stream = ReplyStream(0, start=1, diffs=False)
    events = stream.handle({"msg": "process_generating", "output": {"data": [[["q", "ab"]]]}})
    events += stream.handle({"msg": "process_generating", "output": {"data": [[["q", "abcd"]]]}})
    assert [e.text for e in events] == ["ab", "cd"] and stream.text == "abcd"


MATRIX = Path(__file__).parent / "gradio_spaces" / "configs"


@pytest.mark.parametrize("generation", ["g4", "g5", "g6"])
def test_a_textbox_a_step_streams_into_is_not_an_option(generation):
    """The matrix's ``textstream``: the bot step streams into a non-interactive "Reply" Textbox that the last step
    reads to write the chatbot. Offered as an option, its default (None) was written over the streamed text."""
    cfg = json.loads((MATRIX / f"textstream-{generation}.json").read_text())
    chain = find_chain(cfg)
    assert chain.options == {}
    assert [s.fn for s in chain.steps if chain.chatbot in s.outputs] == [0, 2]  # the reply comes from the last
    # a replayed earlier turn runs neither the streaming step (the model) nor the one that copies its output
    # into the chatbot (it would write what did not run over the reply the replay put there)
    assert [s.fn for s in chain.replay_before] == [0] and chain.replay_after == ()
    assert chain.page_only == frozenset()  # the last step writes the chatbot: a reply hangs on it
    reply_box = next(c for c in cfg["components"] if c["type"] == "textbox")
    del reply_box["props"]["interactive"]  # written by a step: still the Space's, whatever the page shows
    assert find_chain(cfg).options == {}
    reply_box["props"]["interactive"] = False  # and a control the page shows as not interactive is no option either
    cfg["components"].append({"id": 99, "type": "slider", "props": {"label": "Speed", "value": 1,
                                                                    "interactive": False}})
    cfg["dependencies"][1]["inputs"].append(99)
    assert find_chain(cfg).options == {}
    cfg["components"][-1]["props"]["interactive"] = True
    assert sorted(find_chain(cfg).options) == ["speed"]


@pytest.mark.parametrize("path", sorted(MATRIX.glob("*.json")), ids=lambda p: p.stem)
def test_every_recorded_matrix_space_is_found_or_named_for_what_it_lacks(path):
    cfg = json.loads(path.read_text())
    if path.stem.startswith("nochat"):
        assert find_chain(cfg) is None and chain_problem(cfg).startswith(f"its /config (gradio {cfg['version']}) has")
    else:
        chain = find_chain(cfg)
        assert chain is not None and chain_problem(cfg) == ""
        described = chain.describe()
        assert described["gradio_version"] == cfg["version"] and described["steps"]
        assert described["api_prefix"] == ("" if cfg["version"].startswith("4.") else "/gradio_api")


def test_a_chat_that_streams_into_its_chatbot_is_chosen_over_one_that_does_not():
    """Two visible chats: the text box's submit, first in /config, whose bot step returns once; and a button's
    click whose bot step streams. The streaming one is the page's chat by the rules' second (before submit and
    order)."""
    cfg = config("tuples-5.20.0")
    (dep,) = [d for d in cfg["dependencies"] if d["id"] == 0]
    cfg["components"].append({"id": 98, "type": "textbox", "props": {"value": ""}})
    clicked = {**dep, "id": 90, "targets": [[4, "click"]], "inputs": [1, 98, 6, 7]}
    dep["targets"] = [[3, "submit"]]
    then = [{**d, "id": d["id"] + 90, "trigger_after": 90} for d in cfg["dependencies"] if d.get("trigger_after") == 0]
    for d in cfg["dependencies"]:
        if d.get("trigger_after") == 0:
            d["types"] = {**d["types"], "generator": False}
    cfg["dependencies"] += [clicked, *then]
    chain = find_chain(cfg)
    assert (chain.trigger_id, chain.trigger_event, chain.textbox) == (4, "click", 98)
    assert [s.fn for s in chain.steps if s.generator] == [91]
