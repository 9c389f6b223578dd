"""A gradio app for ``test_gradio_cancel_race.py``: a streaming step whose first value takes gradio a while to
postprocess, and an unqueued step that says which runs of it have ended (their ``finally`` ran).

``python tests/cancel_race_space.py PORT``
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr

BIG = [list(range(50)) for _ in range(40_000)]  # a JSON value gradio takes a few hundred ms to postprocess
runs: dict[str, list[str]] = {"started": [], "ended": []}


async def stream(run: str) -> AsyncIterator[Any]:
    """``run``: "big <id>" or "small <id>", the size of the first value and the run's name."""
    runs["started"].append(run)
    try:
        yield BIG if run.startswith("big") else {"chunk": 0}
        for i in range(1, 200):
            await asyncio.sleep(0.05)
            yield {"chunk": i}
    finally:
        runs["ended"].append(run)


def ended() -> dict[str, list[str]]:
    return runs


with gr.Blocks() as demo:
    box, out, seen = gr.Textbox(), gr.JSON(), gr.JSON()
    box.submit(stream, box, out, api_name="stream")
    gr.Button().click(ended, None, seen, api_name="ended", queue=False)

if __name__ == "__main__":
    demo.queue().launch(server_name="127.0.0.1", server_port=int(sys.argv[1]))
