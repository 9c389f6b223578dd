"""Reading a Space's chat from its ``/config`` as the page does: pure, on configs written out by hand."""

import pytest

from phi4_bridge.chain import (
    FALLBACK_BOT_FN,
    FALLBACK_USER_FN,
    apply_outputs,
    check_options,
    fallback_chain,
    find_chain,
    option_name,
    parse_setting,
    step_inputs,
)


def slider(cid, label, value, lo, hi):
    return {"id": cid, "type": "slider", "props": {"label": label, "value": value, "minimum": lo, "maximum": hi}}


# A gradio-5-era Space shaped like the OpenVINO port of the demo: user step (queue off) writing the chatbot, the
# textbox and a State; bot step (queued, ZeroGPU) reading the chatbot, the State and sliders; a step that only
# re-enables the textbox; and a browser-only js step. Ids deliberately unlike the known client's 8/10/11.
CONFIG = {
    "version": "5.18.0",
    "components": [
        slider(3, "Top-p", 0.95, 0, 1), slider(4, "Top-k", 50, 1, 100), slider(5, "Temperature", 0.8, 0, 2),
        slider(6, "Max new tokens", 512, 1, 4096),
        {"id": 12, "type": "chatbot", "props": {"value": [], "label": "Phi-4"}},
        {"id": 13, "type": "multimodaltextbox", "props": {"value": {"text": "", "files": []},
                                                          "file_types": ["image", "audio"]}},
        {"id": 14, "type": "audio", "props": {"value": None}},
        {"id": 15, "type": "state", "props": {"value": None}},
        {"id": 16, "type": "button", "props": {"value": "Clear"}},
    ],
    "dependencies": [
        {"id": 0, "targets": [[16, "click"]], "inputs": [], "outputs": [12], "queue": False, "backend_fn": True},
        {"id": 1, "targets": [[13, "submit"]], "inputs": [12, 13, 14], "outputs": [12, 13, 15], "queue": False,
         "backend_fn": True, "trigger_after": None},
        {"id": 2, "targets": [], "inputs": [12, 15, 3, 4, 5, 6], "outputs": [12], "queue": True, "backend_fn": True,
         "trigger_after": 1, "zerogpu": True, "api_name": "bot"},
        {"id": 3, "targets": [], "inputs": [], "outputs": [13], "queue": False, "backend_fn": True,
         "trigger_after": 2},
        {"id": 4, "targets": [], "inputs": [12], "outputs": [], "queue": False, "backend_fn": False, "js": "() => 1",
         "trigger_after": 2},
    ],
}


def test_the_chain_that_the_textbox_submit_starts():
    chain = find_chain(CONFIG)
    assert chain is not None and chain.source == "config"
    assert [s.fn for s in chain.steps] == [1, 2, 3]  # every server step, as the page runs them; fn 4 is browser-only
    assert (chain.textbox, chain.chatbot, chain.trigger_id) == (13, 12, 13)
    assert [(s.queue, s.zerogpu) for s in chain.steps] == [(False, False), (True, True), (False, False)]
    # a replayed earlier turn stops before the ZeroGPU step, and skips fn 3 (it only re-enables the textbox)
    assert [s.fn for s in chain.replay_before] == [1] and chain.replay_after == ()
    assert chain.page_only == {2}  # a live turn's reply stands when fn 3 fails (tests/test_faults.py)


def test_inputs_are_the_pages_values_with_null_for_state():
    chain = find_chain(CONFIG)
    values = chain.initial_values()
    assert values[3] == 0.95 and values[12] == [] and values[14] is None
    values[13] = {"text": "hi", "files": []}
    assert step_inputs(chain, chain.steps[0], values) == [[], {"text": "hi", "files": []}, None]
    values[15] = "what the server keeps"  # never sent: gradio fills State in on its side
    assert step_inputs(chain, chain.steps[1], values) == [[], None, 0.95, 50, 0.8, 512]


def test_outputs_are_written_back_as_the_page_does():
    chain = find_chain(CONFIG)
    values = chain.initial_values()
    history = [{"role": "user", "content": "hi", "metadata": {}}]
    apply_outputs(chain, chain.steps[0], values,
                  [history, {"__type__": "update", "value": None, "interactive": False}, None])
    assert values[12] == history and values[13] is None and values[15] is None
    apply_outputs(chain, chain.steps[0], values, [{"__type__": "update", "visible": True}, "x", "y"])
    assert values[12] == history and values[13] == "x"  # an update without a value keeps the value


def test_options_are_the_chains_controls_by_label():
    chain = find_chain(CONFIG)
    assert sorted(chain.options) == ["max_new_tokens", "temperature", "top_k", "top_p"]
    assert check_options(chain, {"temperature": 0.2, "max_new_tokens": 64.0}) == {5: 0.2, 6: 64}
    with pytest.raises(ValueError, match=r"no setting 'temp'\. It offers: top_p \(0 to 1; default 0\.95\)"):
        check_options(chain, {"temp": 1})
    with pytest.raises(ValueError, match=r"3 is out of range for temperature \(0 to 2; default 0\.8\)"):
        check_options(chain, {"temperature": 3})
    with pytest.raises(ValueError, match="'hot' is not a number"):
        check_options(chain, {"temperature": "hot"})


def test_option_names_and_command_line_settings():
    assert option_name("Max new tokens") == "max_new_tokens" and option_name("Top-p") == "top_p"
    assert parse_setting("temperature=0.2") == ("temperature", 0.2)
    assert parse_setting("mode=fast") == ("mode", "fast")
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_setting("temperature")


def test_a_chatinterface_chain_keeps_the_step_that_saves_its_history_state():
    """gradio 5.18's gr.ChatInterface(multimodal=True) as its /config shows it (ids of a minimal app): the submit
    saves the message into a State, shows it, streams into the chatbot; then copies the chatbot into the history
    State the next turn's bot step reads, re-enables the textbox and saves the chat in the browser. A live turn runs
    them all; a replayed earlier turn stops before the answering step and keeps, after it, only the steps writing
    what a step reads (fn 3, fn 5), not the one re-enabling the textbox."""
    config = {
        "components": [{"id": 1, "type": "browserstate", "props": {"value": []}},
                       {"id": 2, "type": "state", "props": {}}, {"id": 3, "type": "state", "props": {}},
                       {"id": 4, "type": "state", "props": {}}, {"id": 6, "type": "chatbot", "props": {"value": []}},
                       {"id": 9, "type": "multimodaltextbox", "props": {"value": None}},
                       {"id": 13, "type": "state", "props": {}}, {"id": 14, "type": "state", "props": {}}],
        "dependencies": [
            {"id": 0, "targets": [[9, "submit"]], "inputs": [9], "outputs": [9, 13], "queue": False},
            {"id": 1, "targets": [], "inputs": [13, 6], "outputs": [6], "queue": False, "trigger_after": 0},
            {"id": 2, "targets": [], "inputs": [13, 2], "outputs": [14, 6], "queue": True, "trigger_after": 1},
            {"id": 3, "targets": [], "inputs": [6], "outputs": [2, 3], "queue": False, "trigger_after": 2},
            {"id": 4, "targets": [], "inputs": [], "outputs": [9], "queue": True, "trigger_after": 3},
            {"id": 5, "targets": [], "inputs": [4, 2, 1], "outputs": [4, 1], "queue": False, "trigger_after": 4},
        ],
    }
    chain = find_chain(config)
    assert [s.fn for s in chain.steps] == [0, 1, 2, 3, 4, 5] and chain.chatbot == 6
    assert chain.steps[chain.answering].fn == 2 and [s.fn for s in chain.replay_after] == [3, 5]
    assert [chain.steps[i].fn for i in chain.page_only] == [4]  # fn 3 and fn 5 write what a step reads


def test_a_config_without_a_chat_falls_back_to_the_known_indices():
    assert find_chain({"components": [], "dependencies": []}) is None
    chain = fallback_chain()
    assert [s.fn for s in chain.steps] == [FALLBACK_USER_FN, FALLBACK_BOT_FN] == [10, 11]
    assert chain.trigger_id == 8 and chain.source == "fallback"
