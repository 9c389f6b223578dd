"""The edges of reading a chat from ``/config`` (phi4_bridge/chain.py) that the mutation check found untested
(tests/README.md): which files the multimodal textbox takes, which events start a chat, which chatbot and textbox
a chain uses, the fields read from ``/config`` as they are, and the sentences of what cannot be driven. Pure: configs
written out by hand."""

from __future__ import annotations

from typing import Any

import pytest

from phi4_bridge.chain import chain_problem, fallback_chain, find_chain


def comp(cid: int, kind: str, **props: Any) -> dict[str, Any]:
    return {"id": cid, "type": kind, "props": props}


def dep(did: int | None, targets: list[list[Any]], inputs: list[int], outputs: list[int], *, generator: bool = False,
        after: int | None = None) -> dict[str, Any]:
    return {"id": did, "targets": targets, "inputs": inputs, "outputs": outputs, "backend_fn": True,
            "trigger_after": after, "types": {"generator": generator}}


def chat(textbox_kind: str = "multimodaltextbox", **extra: Any) -> dict[str, Any]:
    """One chatbot, one text input whose submit streams into it."""
    return {"components": [comp(1, "chatbot", value=[]), comp(2, textbox_kind, **extra.pop("props", {}))],
            "dependencies": [dep(0, [[2, "submit"]], [2, 1], [1], generator=True)], **extra}


@pytest.mark.parametrize(("file_types", "image", "audio"), [
    (None, True, True),  # none given: any
    ([], True, True),
    (["image"], True, False),
    (["audio"], False, True),
    (["file"], True, True),
    (["*"], True, True),
    ([".png"], True, False),
    ([".WAV"], False, True),  # a suffix in capitals is still the suffix
    ([".mp3", ".flac"], False, True),
    (["image/png"], True, False),  # a MIME type names its kind
    (["audio/*"], False, True),
    ([".pdf"], False, False),
])
def test_which_files_the_multimodal_textbox_takes(file_types: list[str] | None, image: bool, audio: bool) -> None:
    chain = find_chain(chat(props={"file_types": file_types} if file_types is not None else {}))
    assert chain is not None
    assert (chain.textbox_accepts("image"), chain.textbox_accepts("audio")) == (image, audio)


def test_a_plain_textbox_takes_no_file_whatever_it_lists() -> None:
    chain = find_chain(chat("textbox", props={"file_types": ["image", "audio"]}))
    assert chain is not None and not chain.multimodal
    assert (chain.textbox_accepts("image"), chain.textbox_accepts("audio")) == (False, False)


@pytest.mark.parametrize(("kind", "event"), [("number", "submit"), ("image", "click"), ("chatbot", "change"),
                                             ("button", "submit")])
def test_only_a_text_input_s_submit_or_a_button_s_click_starts_a_chat(kind: str, event: str) -> None:
    config = {"components": [comp(1, "chatbot", value=[]), comp(2, "textbox"), comp(3, kind)],
              "dependencies": [dep(0, [[3, event]], [2, 1], [1], generator=True)]}
    assert find_chain(config) is None
    assert chain_problem(config).endswith("but no text input's submit or button's click whose chain takes the text "
                                          "and writes the chatbot")


def test_a_button_s_click_starts_a_chat_with_the_text_it_takes() -> None:
    # the button's own value among the inputs (as a gr.Button can be), yet the text goes into the textbox
    config = {"components": [comp(1, "chatbot", value=[]), comp(2, "textbox"), comp(3, "button")],
              "dependencies": [dep(0, [[3, "click"]], [2, 3, 1], [1], generator=True)]}
    chain = find_chain(config)
    assert chain is not None and (chain.trigger_id, chain.trigger_event, chain.textbox) == (3, "click", 2)


def test_the_chatbot_streamed_into_is_the_one_read_and_the_submitted_textbox_the_one_written() -> None:
    # the user step (not a generator) writes chatbot 1; the bot step streams into chatbot 4; a multimodal textbox
    # (5) is among the inputs too, ahead of the plain textbox (2) in TEXT_KINDS, but the submit is the plain one's
    config = {"components": [comp(1, "chatbot", value=[]), comp(2, "textbox"), comp(4, "chatbot", value=[]),
                             comp(5, "multimodaltextbox")],
              "dependencies": [dep(0, [[2, "submit"]], [5, 2, 1], [1]),
                               dep(1, [], [1], [4], generator=True, after=0)]}
    chain = find_chain(config)
    assert chain is not None
    assert (chain.chatbot, chain.textbox, chain.trigger_id) == (4, 2, 2)


def test_one_chat_is_not_said_to_be_chosen_over_others() -> None:
    chain = find_chain(chat())
    assert chain is not None and chain.choice == "fn 0, started by multimodaltextbox 2's submit"


def test_the_fields_of_config_are_read_as_they_are_and_defaulted_when_absent() -> None:
    given = find_chain(chat(version="4.44.1", api_prefix="/gradio_api/", protocol="sse_v2"))
    assert given is not None
    assert (given.version, given.api_prefix, given.protocol) == ("4.44.1", "/gradio_api", "sse_v2")
    absent = find_chain(chat())
    assert absent is not None and (absent.version, absent.api_prefix, absent.protocol) == ("", "", "sse_v3")


def test_what_cannot_be_driven_is_said_in_these_words() -> None:
    assert chain_problem(["not", "a", "config"]) == "its /config is not a gradio app's configuration"
    assert chain_problem(chat(protocol="ws")) == (
        "it runs gradio ? with the 'ws' queue protocol; the bridge speaks sse_v1, sse_v2, sse_v2.1, sse_v3 "
        "(gradio 4 to 6)")
    assert chain_problem({"version": "6.0.0", "components": [], "dependencies": []}) == (
        "its /config (gradio 6.0.0) has no chat components, but no chatbot")
    assert chain_problem({"components": [comp(1, "chatbot"), comp(3, "button")], "dependencies": []}) == (
        "its /config (gradio ?) has 1 chatbot, 1 button, but no text input")
    only_multimodal = {"components": [comp(1, "chatbot"), comp(2, "multimodaltextbox")], "dependencies": []}
    assert chain_problem(only_multimodal) == ("its /config (gradio ?) has 1 chatbot, 1 multimodaltextbox, but no "
                                              "text input's submit or button's click whose chain takes the text and "
                                              "writes the chatbot")
    assert chain_problem(chat()) == ""


def files_chain() -> Any:
    """A plain textbox, then an Image, a single File and a multiple File among the chain's inputs, and a Files."""
    config = {"components": [comp(1, "chatbot", value=[]), comp(2, "textbox"), comp(3, "image"),
                             comp(4, "file", file_count="single"), comp(5, "file", file_count="multiple"),
                             comp(6, "files")],
              "dependencies": [dep(0, [[2, "submit"]], [2, 3, 4, 5, 6, 1], [1], generator=True)]}
    chain = find_chain(config)
    assert chain is not None
    return chain


def test_files_go_to_a_free_input_of_their_kind_then_a_file_input_then_the_multiple_one() -> None:
    chain = files_chain()
    assert chain.file_inputs() == [3, 4, 5, 6]  # every input that takes a file, Files too, in the page's order
    # image: its own Image (3), then the single File (4); audio: the multiple File (5), which takes any number
    assert chain.file_places(["image", "image", "audio", "audio"]) == [3, 4, 5, 5]
    assert chain.file_places(["audio"]) == [4]  # a File takes either kind
    folder = find_chain({"components": [comp(1, "chatbot", value=[]), comp(2, "textbox"),
                                        comp(3, "file", file_count="directory")],
                         "dependencies": [dep(0, [[2, "submit"]], [2, 3, 1], [1], generator=True)]})
    assert folder is not None and folder.file_places(["image", "audio", "image"]) == [3, 3, 3]


def test_what_a_space_cannot_take_is_said_by_kind() -> None:
    one_image = find_chain({"components": [comp(1, "chatbot", value=[]), comp(2, "textbox"), comp(3, "image")],
                            "dependencies": [dep(0, [[2, "submit"]], [2, 3, 1], [1], generator=True)]})
    assert one_image is not None and one_image.file_places(["image"]) == [3]
    with pytest.raises(ValueError, match=r"^This Space takes one image a turn\.$"):
        one_image.file_places(["image", "image"])
    with pytest.raises(ValueError, match=r"^This Space takes no audio\.$"):
        one_image.file_places(["audio"])


def test_the_choice_among_several_chats_names_the_others_and_the_rules() -> None:
    config = {"components": [comp(1, "chatbot", value=[]), comp(2, "textbox"), comp(3, "button"), comp(4, "button")],
              "dependencies": [dep(0, [[3, "click"]], [2, 1], [1], generator=True),
                               dep(1, [[2, "submit"]], [2, 1], [1], generator=True),
                               dep(2, [[4, "click"]], [2, 1], [1], generator=True)]}
    chain = find_chain(config)
    assert chain is not None
    assert chain.choice == ("fn 1, started by textbox 2's submit, chosen over fn 0, fn 2 by the rules: visible "
                            "before hidden; streams into its chatbot; the text box's submit before a button; first in "
                            "/config")


def test_the_fallback_is_the_known_client_s_sequence_as_doctor_shows_it() -> None:
    """docs/standin.md and ../shared/space-protocol.md section 1: fn 10 (the user step, called directly, its inputs
    the chatbot, the multimodal textbox 8 and a State; it writes the chatbot and clears the textbox), then fn 11
    (queued, ZeroGPU, streaming the chatbot), under ``/gradio_api``; ids other than the textbox are made up."""
    chatbot = {"id": -1, "kind": "chatbot", "label": None}
    textbox = {"id": 8, "kind": "multimodaltextbox", "label": None}
    state = {"id": -2, "kind": "state", "label": None}
    assert fallback_chain().initial_values() == {8: None, -1: [], -2: None}  # the chat starts empty, as the page's
    assert fallback_chain().describe() == {
        "source": "fallback", "gradio_version": "", "api_prefix": "/gradio_api", "protocol": "sse_v3",
        "choice": "the known client's fn 10 and 11",
        "trigger": {**textbox, "event": "submit"}, "text_input": textbox, "chatbot": {**chatbot, "format": "messages"},
        "steps": [
            {"fn": 10, "name": None, "queue": False, "streams": False, "zerogpu": False, "writes_chatbot": True,
             "inputs": [chatbot, textbox, state], "outputs": [chatbot, textbox]},
            {"fn": 11, "name": None, "queue": True, "streams": True, "zerogpu": True, "writes_chatbot": True,
             "inputs": [chatbot], "outputs": [chatbot]},
        ],
        "files": {"image": [textbox], "audio": [textbox]},  # the textbox lists no file types: it takes any
        "options": [],
    }


def test_doctor_s_view_of_a_read_chain_names_its_files_options_and_chatbot_format() -> None:
    config = {"version": "4.44.1", "api_prefix": "", "protocol": "sse_v1",
              "components": [comp(1, "chatbot", value=[], type="tuples", label="Chat"), comp(2, "textbox"),
                             comp(3, "image", label="Picture"), comp(4, "file"),
                             comp(5, "slider", label="Temperature", value=0.7, minimum=0, maximum=2)],
              "dependencies": [dep(0, [[2, "submit"]], [2, 3, 4, 5, 1], [1], generator=True) | {"api_name": "chat"}]}
    chain = find_chain(config)
    assert chain is not None and chain.tuples and not chain.diffs
    seen = chain.describe()
    assert (seen["source"], seen["gradio_version"], seen["api_prefix"], seen["protocol"]) == (
        "config", "4.44.1", "", "sse_v1")
    assert seen["chatbot"] == {"id": 1, "kind": "chatbot", "label": "Chat", "format": "tuples"}
    assert seen["steps"][0] | {"inputs": None, "outputs": None} == {
        "fn": 0, "name": "chat", "queue": True, "streams": True, "zerogpu": False, "writes_chatbot": True,
        "inputs": None, "outputs": None}
    assert [i["id"] for i in seen["steps"][0]["inputs"]] == [2, 3, 4, 5, 1]
    picture, anyfile = ({"id": 3, "kind": "image", "label": "Picture"}, {"id": 4, "kind": "file", "label": None})
    assert seen["files"] == {"image": [picture, anyfile], "audio": [anyfile]}
    assert [o["label"] for o in seen["options"]] == ["Temperature"]


def test_junk_in_config_is_skipped_not_a_reason_to_fail() -> None:
    """A /config from a Space we did not write: components without an id or with odd props, targets that are not
    pairs, a dependency whose lists are not lists or whose id is not a number (then its index is its fn)."""
    config = {"components": ["junk", {"id": "7", "type": "textbox"}, {"id": 9, "type": "image", "props": "odd"},
                             comp(1, "chatbot", value=[]),
                             comp(2, "multimodaltextbox", value={"text": "", "files": []})],
              "dependencies": [  # fn 0 would be the chat (first in /config) if its targets were pairs
                  {"id": 0, "targets": [[2, "submit", "extra"], "ab"], "inputs": [2, 1], "outputs": [1],
                   "types": {"generator": True}},
                  dep(None, [[2, "submit"]], [2, 1], [1], generator=True),
                  {"id": 2, "targets": [], "inputs": 5, "outputs": None, "trigger_after": 1}]}
    chain = find_chain(config)
    assert chain is not None and chain.choice == "fn 1, started by multimodaltextbox 2's submit"
    assert [(s.fn, s.inputs, s.outputs) for s in chain.steps] == [(1, (2, 1), (1,)), (2, (), ())]
    assert sorted(chain.components) == [1, 2, 9] and chain.kind(9) == "image" and chain.components[9].props == {}
    assert chain.kind(404) == ""  # an id the config does not have
    values = chain.initial_values()
    values[2]["files"].append("/tmp/x.png")  # a turn's values are its own: the config's stay as they were
    assert chain.initial_values()[2] == {"text": "", "files": []}


def test_doctor_names_an_input_the_config_does_not_have_and_what_the_textbox_takes() -> None:
    config = {"components": [comp(1, "chatbot", value=[]), comp(2, "multimodaltextbox", file_types=["image"]),
                             comp(3, "audio")],
              "dependencies": [dep(0, [[2, "submit"]], [2, 3, 77, 1], [1], generator=True)]}
    chain = find_chain(config)
    assert chain is not None and chain.kinds_in_textbox() == ["image"]
    seen = chain.describe()
    assert seen["steps"][0]["inputs"][2] == {"id": 77, "kind": "", "label": None}
    assert seen["files"] == {"image": [{"id": 2, "kind": "multimodaltextbox", "label": None}],
                             "audio": [{"id": 3, "kind": "audio", "label": None}]}
