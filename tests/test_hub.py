"""The Space's live stage, its origin and other Phi-4 Spaces, from a real (stand-in) Hub over loopback.

``phi4_bridge.hub`` asks through ``huggingface_hub.HfApi(endpoint=...)``, ``phi4_bridge.spaces`` ranks and picks;
the stand-in serves the Hub's routes (``phi4_standin/hub.py``) with stages set at run time by ``POST /standin/hub``.
"""

from __future__ import annotations

import asyncio

import pytest
from hub_world import DUPLICATE, OFFICIAL, World

from phi4_bridge import SpaceUnavailable, hub, spaces
from phi4_bridge.config import BridgeConfig
from phi4_standin.hub import parse_hub_space
from phi4_standin.process import free_port


def config(world: World, **overrides) -> BridgeConfig:
    return BridgeConfig.from_env(hub_url=world.hub.url, **overrides)


def run(coro):
    return asyncio.run(coro)


@pytest.mark.parametrize(("stage", "sentence"), [
    ("RUNTIME_ERROR", f"{OFFICIAL} has a runtime error on the Hub (Exit code: 1. Reason: CUDA out of memory "
                      "(stand-in))."),
    ("SLEEPING", f"{OFFICIAL} is sleeping: opening it wakes it, about a minute."),
    ("PAUSED", f"{OFFICIAL} is paused by its owner."),
    ("BUILDING", f"{OFFICIAL} is building."),
    ("RUNNING", f"{OFFICIAL} is running."),
])
def test_the_stage_in_words(clean, stage, sentence):
    clean.set_space(id=OFFICIAL, stage=stage)
    state = run(hub.space_state(config(clean)))
    assert state.stage == stage and state.problem is None
    assert state.sentence() == sentence
    assert state.running == (stage == "RUNNING")
    assert state.requested_hardware == "zero-a10g"
    assert state.hardware == ("zero-a10g" if stage == "RUNNING" else None)


def test_the_spaces_own_error_message_is_kept(clean):
    clean.set_space(id=OFFICIAL, stage="RUNTIME_ERROR", error_message="ImportError: no module named flash_attn")
    state = run(hub.space_state(config(clean)))
    assert state.error_message == "ImportError: no module named flash_attn"
    assert state.sentence() == f"{OFFICIAL} has a runtime error on the Hub (ImportError: no module named flash_attn)."


def test_cannot_reach_only_for_a_network_failure(clean):
    dead = f"http://127.0.0.1:{free_port()}"
    state = run(hub.space_state(BridgeConfig.from_env(hub_url=dead)))
    assert state.stage is None and state.problem == "unreachable"
    assert state.sentence().startswith(f"{OFFICIAL} cannot be checked: the Hub cannot be reached (")
    assert "check the network or --hub-url." in state.sentence()


def test_a_private_space_401_without_a_token_404_with_a_token_it_does_not_allow(clean):
    clean.set_space(id="me/phi-4-multimodal-private", stage="RUNNING", private=True, allow=["hf_mine0000000"])
    anonymous = run(hub.space_state(config(clean), "me/phi-4-multimodal-private"))
    assert anonymous.problem == "private"
    assert anonymous.sentence() == (
        "me/phi-4-multimodal-private is private or does not exist (the Hub answered HTTP 401 to a request without a "
        "token). If it is your own private Space, set HF_TOKEN (or run `huggingface-cli login`).")
    other = run(hub.space_state(config(clean, hf_token="hf_someoneelse00"), "me/phi-4-multimodal-private"))
    assert other.problem == "not_found"
    assert other.sentence().startswith("me/phi-4-multimodal-private was not found on the Hub (HTTP 404). Check the")
    mine = run(hub.space_state(config(clean, hf_token="hf_mine0000000"), "me/phi-4-multimodal-private"))
    assert mine.stage == "RUNNING" and mine.problem is None
    assert "hf_mine" not in repr(mine) and "hf_mine" not in mine.sentence()


def test_an_unknown_space_is_not_found(clean):
    state = run(hub.space_state(config(clean), "nobody/nothing"))
    assert state.problem == "not_found"


def test_the_origin_comes_from_the_hubs_host_route(clean):
    assert run(hub.space_host(config(clean), DUPLICATE)) == clean.other.url
    assert run(hub.space_host(config(clean), "nobody/nothing")) is None


def test_candidates_official_first_then_the_search_most_liked_first(clean):
    clean.set_space(id="a/phi-4-multimodal-sleepy", stage="SLEEPING", likes=3)
    clean.set_space(id="b/phi-4-multimodal-paused", stage="PAUSED", likes=50)
    clean.set_space(id=DUPLICATE, likes=9)
    clean.set_space(id="c/unrelated-space", stage="RUNNING", likes=99)
    found = run(spaces.list_candidates(config(clean, candidates=(OFFICIAL,))))
    rows = [(c.id, c.state.stage, c.likes, c.drivable) for c in found]
    assert rows == [
        (OFFICIAL, "RUNTIME_ERROR", 0, None),
        ("b/phi-4-multimodal-paused", "PAUSED", 50, None),
        (DUPLICATE, "RUNNING", 9, True),
        ("a/phi-4-multimodal-sleepy", "SLEEPING", 3, None),
    ]
    duplicate = found[2]
    assert duplicate.host == clean.other.url and duplicate.sdk_version == "5.18.0" and duplicate.usable
    assert not duplicate.official and found[0].official and found[0].listed and not duplicate.listed
    assert spaces.pick(found) == duplicate


def test_a_running_space_without_a_chat_is_not_drivable(clean):
    # the Hub's origin for it is the Hub stand-in's control route: /config there is not a gradio config with a chat
    clean.set_space(id="d/phi-4-multimodal-api", stage="RUNNING", host=clean.hub.url + "/standin/stats")
    found = {c.id: c for c in run(spaces.list_candidates(config(clean, candidates=(OFFICIAL,))))}
    assert found["d/phi-4-multimodal-api"].drivable is False
    assert "/config" in found["d/phi-4-multimodal-api"].note


def test_resolve_auto_picks_the_running_duplicate_and_says_so(clean):
    done = run(spaces.resolve(config(clean, space="auto")))
    assert done.config.space == DUPLICATE and done.config.space_url == clean.other.url
    assert done.note == (f"Using {DUPLICATE} (NOT the official {OFFICIAL}: another Phi-4-multimodal Space) at "
                         f"{clean.other.url}, because {OFFICIAL} has a runtime error on the Hub (Exit code: 1. "
                         "Reason: CUDA out of memory (stand-in)).")


def test_resolve_auto_prefers_the_official_space_when_it_runs(clean):
    clean.set_space(id=OFFICIAL, stage="RUNNING", host=clean.hub.url)
    done = run(spaces.resolve(config(clean, space="auto")))
    assert done.config.space == OFFICIAL and done.config.space_url == clean.hub.url
    assert done.note == f"Using {OFFICIAL} (the official Phi-4-multimodal Space) at {clean.hub.url}."


def test_resolve_auto_with_nothing_running_says_why(clean):
    clean.set_space(id=DUPLICATE, stage="PAUSED")
    with pytest.raises(SpaceUnavailable) as info:
        run(spaces.resolve(config(clean, space="auto")))
    text = str(info.value)
    assert text.startswith("No Phi-4-multimodal Space on the Hub is running and usable right now: ")
    assert f"{OFFICIAL} has a runtime error on the Hub" in text and f"{DUPLICATE} is paused by its owner" in text


def test_asking_a_space_in_runtime_error_fails_saying_so(clean):
    with pytest.raises(SpaceUnavailable) as info:
        run(spaces.resolve(config(clean)))
    assert str(info.value).startswith(f"{OFFICIAL} has a runtime error on the Hub")
    assert "`--space auto` uses another Phi-4-multimodal Space that runs." in str(info.value)


def test_a_space_given_by_id_alone_gets_its_origin_from_the_hub(clean):
    cfg = config(clean, space=DUPLICATE)
    assert cfg.space_url == "https://someone-phi-4-multimodal-copy.hf.space" and not cfg.space_url_given
    done = run(spaces.resolve(cfg))
    assert done.config.space_url == clean.other.url and done.note == ""


def test_space_url_still_overrides_the_hub(clean):
    cfg = config(clean, space=DUPLICATE, space_url="http://127.0.0.1:9")
    assert run(spaces.resolve(cfg)).config.space_url == "http://127.0.0.1:9"


def test_huggingface_hub_parses_the_standin_hub(clean):
    from huggingface_hub import HfApi

    api = HfApi(endpoint=clean.hub.url, token=False)
    info = api.space_info(DUPLICATE)
    assert info.card_data.sdk_version == "5.18.0" and info.runtime.stage == "RUNNING" and info.host == clean.other.url
    assert [s.id for s in api.list_spaces(search="phi-4-MULTIMODAL", sort="likes")] == [OFFICIAL, DUPLICATE]
    assert api.get_space_runtime(OFFICIAL).stage == "RUNTIME_ERROR"


def test_hub_space_flag_form():
    entry = parse_hub_space("a/b=runtime_error@http://127.0.0.1:5/")
    assert (entry.id, entry.stage, entry.host) == ("a/b", "RUNTIME_ERROR", "http://127.0.0.1:5")
    with pytest.raises(ValueError, match="ID=STAGE"):
        parse_hub_space("a/b=ASLEEP")
