"""The pure parts of issue 27's bounds, without a server: the /v1 count and size checks, the door's body caps,
the CSV cell rule, the lone-surrogate sentence, and the QA store's size and age bounds."""

from __future__ import annotations

import json
import time

import pytest

from mirror.door.guard import event_body_limit, upload_request_limit
from phi4_bridge.config import Limits
from phi4_bridge.errors import InputRejected
from phi4_bridge.messages import check_history, check_prompt
from phi4_bridge.openai_api.bounds import base64_limit, check_parsed, check_raw
from phi4_bridge.openai_api.errors import ApiError
from phi4_bridge.openai_api.schema import ChatRequest
from phi4_bridge.qa.cases import Case
from phi4_bridge.qa.exports import _cell
from phi4_bridge.qa.store import QAStore

LIMITS = Limits()
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


def request(*messages: dict) -> dict:
    return {"model": "phi-4-multimodal", "messages": list(messages)}


def refused(body: dict) -> ApiError:
    raw = json.dumps(body).encode()
    with pytest.raises(ApiError) as caught:
        check_raw(raw, LIMITS)
        check_parsed(ChatRequest.model_validate_json(raw), LIMITS)
    return caught.value


def passes(body: dict) -> None:
    raw = json.dumps(body).encode()
    check_raw(raw, LIMITS)
    check_parsed(ChatRequest.model_validate_json(raw), LIMITS)


def test_files_are_counted_per_turn_and_in_the_history():
    passes(request({"role": "user", "content": [IMAGE] * 8}))
    assert refused(request({"role": "user", "content": [IMAGE] * 9})).code == "too_many_files"
    earlier = [{"role": "user", "content": [IMAGE] * 8}, {"role": "assistant", "content": "ok"}] * 4
    passes(request(*earlier, {"role": "user", "content": [IMAGE] * 8}))  # 32 earlier + 8 new
    error = refused(request(*earlier, {"role": "user", "content": [IMAGE]}, {"role": "assistant", "content": "ok"},
                            {"role": "user", "content": "and?"}))
    assert "33" in error.message and error.code == "too_many_files"
    assert refused(request({"role": "user", "content": [IMAGE] * 16_000})).code == "too_many_files"


def test_escaped_keys_pass_the_raw_count_but_not_the_parsed_one():
    raw = json.dumps(request({"role": "user", "content": [IMAGE] * 9})).replace('"image_url"', '"\\u0069mage_url"')
    check_raw(raw.encode(), LIMITS)  # the cheap look cannot see them...
    with pytest.raises(ApiError):
        check_parsed(ChatRequest.model_validate_json(raw), LIMITS)  # ... the parsed request does


def test_a_file_is_measured_by_its_base64_before_decoding():
    big = "data:image/png;base64," + "A" * (base64_limit(LIMITS.max_image_bytes) + 1)
    error = refused(request({"role": "user", "content": [{"type": "image_url", "image_url": {"url": big}}]}))
    assert error.code == "too_large" and "10 MB" in error.message
    audio = "data:audio/wav;base64," + "A" * base64_limit(LIMITS.max_image_bytes) * 2  # ~20 MB: under audio's 25
    passes(request({"role": "user", "content": [{"type": "image_url", "image_url": {"url": audio}}]}))
    sound = {"type": "input_audio", "input_audio": {"data": "A" * base64_limit(LIMITS.max_audio_bytes) * 2,
                                                     "format": "wav"}}
    assert refused(request({"role": "user", "content": [sound]})).code == "too_large"


def test_the_door_caps_fit_the_history_limits():
    limit = event_body_limit(LIMITS)
    worst = [{"role": "user", "content": [{"type": "text", "text": "\U0001f600" * 500}]}] * 400  # 200,000 chars
    assert len(json.dumps({"data": [{"text": "\U0001f600" * 20_000, "files": []}, worst]})) < limit < 5 * 2**20
    assert upload_request_limit(LIMITS) == 8 * LIMITS.max_image_bytes + 2**20 < 8 * int(24.9 * 2**20)


def test_csv_cells_that_would_be_formulas_start_with_a_quote():
    assert _cell('=HYPERLINK("x")') == '\'=HYPERLINK("x")'
    assert [_cell(v) for v in ("+1", "-2", "@A", "\tx", "\rx")] == ["'+1", "'-2", "'@A", "'\tx", "'\rx"]
    assert _cell(-1.5) == -1.5 and _cell("plain") == "plain" and _cell(None) == ""
    assert _cell(["=a", "b"]) == "'=a; b"


def test_a_lone_surrogate_is_named_for_what_it_is():
    for check in (lambda: check_prompt("a\ud800b", False, LIMITS),
                  lambda: check_history([{"role": "user", "content": "x\udfff"}], LIMITS)):
        with pytest.raises(InputRejected, match="lone surrogate") as caught:
            check()
        assert "control characters" not in str(caught.value)
    with pytest.raises(InputRejected, match="control characters"):
        check_prompt("a\x07b", False, LIMITS)


def test_the_qa_store_measures_new_bytes_and_prunes_old_runs(tmp_path):
    store = QAStore(tmp_path / "qa.sqlite3")
    files = {"a": b"a" * 1000, "b": b"b" * 500}
    read = files.get
    assert store.new_bytes(["a", "b", "a"], read) == 1500
    old = store.start_run(origin="tab")
    store.put_cases(old, [Case(id="1", line=1, prompt="p", images=["a"], located={"a": "a"}, confined=True)], read)
    store.finish_run(old)
    assert store.stored_bytes() == 1000 and store.new_bytes(["a", "b"], read) == 500
    kept = store.start_run(origin="tab")
    store.put_cases(kept, [Case(id="1", line=1, prompt="p", images=["b"], located={"b": "b"}, confined=True)], read)
    store.finish_run(kept)
    store.query("SELECT 1")
    with store.transaction() as db:
        db.execute("UPDATE runs SET created_at=? WHERE id=?", (time.time() - 100 * 86400, old))
    assert store.prune(time.time() - 90 * 86400) == 1
    assert store.run(old) is None and store.run(kept) is not None
    assert store.stored_bytes() == 500, "the old run's file, named by no other run, is gone"
