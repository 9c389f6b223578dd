"""The QA tab touches its SQLite store only off the event loop (issue 24's "nothing blocking in the event loop"):
a run, its live progress, its end, a re-run and Stop, driven with gradio_client against the real page served in
this process, with every statement the store executes watched for the thread it runs on. One slow statement on
the loop (a store another replica is writing, a big gallery) would freeze every visitor's chat at once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import pytest
from gradio_client import Client, handle_file
from PIL import Image

import app
from mirror.qa import tab
from mirror.settings import parse_settings
from mirror.space.space_status import SpaceStatus
from phi4_bridge.qa.store import QAStore
from phi4_standin.process import ServerProcess, free_port

on_loop: list[str] = []


class WatchedDb:
    """The store's connection, noting each statement run on a thread with a running event loop."""

    def __init__(self, db: Any) -> None:
        self._db = db

    def execute(self, sql: str, *args: Any) -> Any:
        try:
            asyncio.get_running_loop()
            on_loop.append(" ".join(sql.split())[:80])
        except RuntimeError:
            pass
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


class WatchedStore(QAStore):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._db = WatchedDb(self._db)  # type: ignore[assignment]


@pytest.fixture(scope="module")
def page_url(standin: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("qa-off-loop")
    settings = parse_settings(["--space-url", standin.url, "--hub-url", standin.hub_url,
                               "--qa-db", str(folder / "qa.sqlite")])
    status = SpaceStatus.start(settings)
    patch = pytest.MonkeyPatch()
    patch.setattr(tab, "QAStore", WatchedStore)
    demo: gr.Blocks | None = None
    try:
        demo = app.build_demo(settings, status).demo
        port = free_port()
        demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        yield f"http://127.0.0.1:{port}"
    finally:
        patch.undo()
        if demo is not None:
            demo.close()
        status.stop()


def test_a_run_a_rerun_and_stop_leave_the_event_loop_to_the_chats(page_url: str, tmp_path: Path) -> None:
    Image.new("RGB", (20, 10), "red").save(tmp_path / "red.png")
    (tmp_path / "empty.png").write_bytes(b"")  # an error: something to re-run
    client = Client(page_url, verbose=False, download_files=str(tmp_path / "downloads"))
    on_loop.clear()
    job = client.submit([handle_file(str(tmp_path / "red.png")), handle_file(str(tmp_path / "empty.png"))],
                        "What is this?", "", None, 2, api_name="/qa_run")
    status, _, run, _ = job.result()
    assert "finished: 1 passed, 0 failed, 1 error" in status, status
    run_id = run.get("value") if isinstance(run, dict) else run
    status, *_ = client.predict(2, run_id, api_name="/qa_rerun")
    assert "re-ran 1 of 2" in status, status
    status, *_ = client.predict(api_name="/qa_stop")
    assert "stopped" in status, status
    assert on_loop == [], f"{len(on_loop)} statements on the event loop, e.g. {on_loop[:3]}"
