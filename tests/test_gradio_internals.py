"""gradio's private parts that the door reads (mirror/door/gradio_internals.py), checked against the installed
gradio on a real server in this process: a gradio upgrade that renames one fails here, by name, rather than as a
door that silently counts no queued turn and drops none."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import gradio as gr
import httpx
import pytest
from gradio_client import Client

from mirror.door import gradio_internals as gi
from phi4_standin.process import free_port

release = threading.Event()


def slow(text: str) -> Iterator[str]:
    yield text
    release.wait(20)
    yield text + "!"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[gr.Blocks, str]]:
    with gr.Blocks() as demo:
        box, out = gr.Textbox(), gr.Textbox()
        box.submit(slow, box, out, api_name="slow", concurrency_limit=1)
    port = free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                        auth=("alice", "secret-1"))
    try:
        yield demo, f"http://127.0.0.1:{port}"
    finally:
        release.set()
        demo.close()


def wait_for(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not seen within {timeout} s")


def test_a_running_and_a_waiting_event_are_seen_with_their_function_and_time(server: tuple[gr.Blocks, str]) -> None:
    demo, url = server
    release.clear()
    client = Client(url, auth=("alice", "secret-1"), verbose=False)
    fn_index = next(i for i, fn in demo.fns.items() if fn.api_name == "slow")
    assert gi.event_fn_indices(demo) is not None and fn_index in gi.event_fn_indices(demo)
    before = time.monotonic()
    first = client.submit("one", api_name="/slow")
    running = wait_for(lambda: gi.running_events(demo))
    second = client.submit("two", api_name="/slow")  # concurrency_limit=1: this one waits
    waiting = wait_for(lambda: gi.waiting_events(demo))
    assert [gi.fn_id(e) for e in running] == [fn_index] and [gi.fn_id(e) for e in waiting] == [fn_index]
    assert before - 1.0 <= gi.enqueue_time(running[0]) <= time.monotonic()
    assert gi.event_id(waiting[0]) != gi.event_id(running[0])
    release.set()
    assert first.result(timeout=20) == "one!" and second.result(timeout=20) == "two!"
    assert gi.running_events(demo) == [] and gi.waiting_events(demo) == []


def test_a_signed_in_cookie_names_its_login_and_nothing_else_does(server: tuple[gr.Blocks, str]) -> None:
    demo, url = server
    with httpx.Client(base_url=url) as http:
        assert http.post("/login", data={"username": "alice", "password": "secret-1"}).status_code == 200
        cookies = [(c.name, c.value) for c in http.cookies.jar]
    assert any(name.startswith("access-token") for name, _ in cookies), cookies
    assert gi.login_of(demo, cookies) == "alice"
    assert gi.login_of(demo, [(name, "forged") for name, _ in cookies]) is None
    assert gi.login_of(demo, []) is None
    assert gi.login_of(None, cookies) is None  # before launch: no login known, no error
    assert gi.waiting_events(None) == [] and gi.running_events(None) == []


def test_the_idle_poll_is_slowed_to_10_ms_and_events_still_run(server: tuple[gr.Blocks, str]) -> None:
    """gradio's queue polls every 1 ms when free (5 % of a core for an idle app); the app and the stand-in set
    10 ms. A renamed ``sleep_when_free`` fails here rather than leaving every idle server at 5 %."""
    demo, url = server
    gi.slow_the_idle_poll(demo)
    assert demo._queue.sleep_when_free == gi.QUEUE_IDLE_POLL_S == 0.01
    release.set()
    client = Client(url, auth=("alice", "secret-1"), verbose=False)
    assert client.submit("three", api_name="/slow").result(timeout=20) == "three!"


def test_signed_block_classes_give_a_new_session_the_same_config_without_working_signatures_out(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import inspect

    from gradio.state_holder import SessionState

    # no subclass of a component here: gradio would write a .pyi file beside this test module
    with gr.Blocks() as demo:
        gr.Markdown("hello")
        gr.Chatbot([{"role": "user", "content": "hi"}], label="chat")
        gr.Slider(0, 10, value=3, label="knob")
    for cls in {type(block) for block in demo.blocks.values()}:  # as if no other test had signed them
        monkeypatch.delattr(cls.__init__, "__signature__", raising=False)
    before = SessionState(demo).config_values

    assert gi.sign_block_classes(demo) >= 1
    works = 0
    real = inspect._signature_from_function  # type: ignore[attr-defined]

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal works
        works += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(inspect, "_signature_from_function", counted)
    after = SessionState(demo).config_values
    assert after == before
    assert next(v for v in after.values() if v["type"] == "slider")["props"]["value"] == 3
    assert works == 0, f"{works} signatures were worked out for a new session"


def test_a_new_session_gets_copies_of_the_configs_made_once_and_a_changed_block_its_own(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from gradio.blocks import Block
    from gradio.state_holder import SessionState

    with gr.Blocks() as demo:
        note = gr.Markdown("hello")
        gr.Chatbot([{"role": "user", "content": "hi"}], label="chat")
        gr.Slider(0, 10, value=3, label="knob")
    before = SessionState(demo).config_values
    assert gi.reuse_block_configs(demo) == len(demo.blocks)

    made = 0
    real = Block.get_config

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal made
        made += 1
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Block, "get_config", counted)
    first, second = SessionState(demo), SessionState(demo)
    assert first.config_values == before and made == 0, made
    # what a session changes in its config (a value shown) is its own, not the page's nor another session's
    first._update_value_in_config(note._id, "changed")
    assert first.config_values[note._id]["props"]["value"] == "changed"
    assert second.config_values[note._id]["props"]["value"] == "hello"
    assert SessionState(demo).config_values == before
    # an update that gives a session a new block of its own is worked out as gradio does (blocks.py: a new
    # block for the session, then its config made again)
    first[note._id] = gr.Markdown("new", render=False)
    first._update_config(note._id)
    assert made > 0 and first.config_values[note._id]["props"]["value"] == "new"


def test_the_queue_no_longer_summarizes_every_event_in_pandas(server: tuple[gr.Blocks, str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """gradio's queue built a DataFrame of its last 10,000 events at the end of each event (for a monitoring
    dashboard the app never turns on): after ``skip_queue_analytics`` it builds none and keeps one event."""
    demo, url = server
    queue = demo._queue
    frames = 0
    real = type(queue)._get_df

    def counted(records: Any) -> Any:
        nonlocal frames
        frames += 1
        return real(records)

    monkeypatch.setattr(type(queue), "_get_df", staticmethod(counted))
    monkeypatch.setattr(queue, "ANALYTICS_MAX_EVENTS", queue.ANALYTICS_MAX_EVENTS)  # restored after the test
    monkeypatch.setattr(queue, "ANAYLTICS_CACHE_FREQUENCY", queue.ANAYLTICS_CACHE_FREQUENCY)
    release.set()
    client = Client(url, auth=("alice", "secret-1"), verbose=False)
    assert client.submit("before", api_name="/slow").result(timeout=20) == "before!"
    assert frames >= 1, "gradio no longer summarizes its events this way: check skip_queue_analytics"

    monkeypatch.setattr(demo, "enable_monitoring", True)
    assert not gi.skip_queue_analytics(demo)  # the dashboard on (gradio's default): its figures are left alone
    monkeypatch.setattr(demo, "enable_monitoring", False)  # as the app launches
    assert gi.skip_queue_analytics(demo)
    frames = 0
    for word in ("a", "b", "c"):
        assert client.submit(word, api_name="/slow").result(timeout=20) == word + "!"
    assert frames == 0 and len(queue.event_analytics) <= 1, (frames, len(queue.event_analytics))
