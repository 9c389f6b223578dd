"""A plain client doing what the Space's own page does, written apart from ``phi4_bridge`` (it shares no code
with it), as the reference for what a faithful turn costs.

Per conversation: one session hash; ``/config`` read once; the component values kept as the page keeps them. Per
turn: the files uploaded, the textbox value set, then each step of the chain the textbox's submit starts
(``trigger_after``) in order: ``/run/predict`` for a step with ``queue: false``, ``queue/join`` + the event stream
for a queued one, ``null`` for State inputs, outputs written back. No ZeroGPU token (anonymous), no retry, no
checks: the least a client can do and still be right.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from .stats import TurnResult


def _chain(config: dict[str, Any]) -> tuple[list[dict[str, Any]], int, int]:
    kinds = {c["id"]: c["type"] for c in config["components"]}
    deps = {d.get("id", i): d for i, d in enumerate(config["dependencies"])}
    start = next(i for i, d in deps.items()
                 if any(kinds.get(t[0]) == "multimodaltextbox" and t[1] == "submit" for t in d.get("targets") or []))
    order = [start]
    for dep_id in order:
        order += [i for i, d in deps.items() if d.get("trigger_after") == dep_id and i not in order]
    steps = [deps[i] | {"fn": i} for i in order if deps[i].get("backend_fn", True)]
    box = next(t[0] for t in deps[start]["targets"] if t[1] == "submit")
    chatbot = next(o for s in steps if s.get("queue") is not False for o in s["outputs"] if kinds.get(o) == "chatbot")
    return steps, box, chatbot


class PageClient:
    """One conversation at a time per instance; ``turn`` returns a ``TurnResult``."""

    def __init__(self, session: aiohttp.ClientSession, space_url: str) -> None:
        self.session, self.url = session, space_url.rstrip("/")
        self.config: dict[str, Any] | None = None
        self.values: dict[int, Any] = {}
        self.session_hash = uuid.uuid4().hex[:11]

    async def start(self) -> None:
        async with self.session.get(f"{self.url}/config") as resp:
            self.config = await resp.json()
        self.steps, self.box, self.chatbot = _chain(self.config)
        self.values = {c["id"]: c.get("props", {}).get("value") for c in self.config["components"]}
        self.state = {c["id"] for c in self.config["components"] if c["type"] == "state"}

    def new_conversation(self) -> None:
        self.values = {c["id"]: c.get("props", {}).get("value") for c in self.config["components"]}
        self.session_hash = uuid.uuid4().hex[:11]

    async def turn(self, prompt: str, files: list[str] = ()) -> TurnResult:
        result = TurnResult("page_client", prompt, time.time(), remote_session=self.session_hash)
        uploaded = []
        if files:
            form = aiohttp.FormData()
            for path in files:
                data = await asyncio.to_thread(Path(path).read_bytes)
                form.add_field("files", data, filename=path.rsplit("/", 1)[-1])
            async with self.session.post(f"{self.url}/gradio_api/upload?upload_id={self.session_hash}",
                                         data=form) as resp:
                paths = await resp.json()
            uploaded = [{"path": p, "orig_name": f.rsplit("/", 1)[-1], "meta": {"_type": "gradio.FileData"}}
                        for p, f in zip(paths, files)]
        self.values[self.box] = {"text": prompt, "files": uploaded}
        try:
            for step in self.steps:
                data = [None if i in self.state else self.values.get(i) for i in step["inputs"]]
                body = {"data": data, "event_data": None, "fn_index": step["fn"], "trigger_id": self.box,
                        "session_hash": self.session_hash}
                if step.get("queue") is False:
                    async with self.session.post(f"{self.url}/gradio_api/run/predict", json=body) as resp:
                        answer = await resp.json()
                    if resp.status != 200:
                        raise RuntimeError(str(answer))
                    self._store(step, answer["data"])
                else:
                    await self._queued(step, body, result)
        except Exception as exc:  # noqa: BLE001 - recorded, the benchmark counts errors
            result.error = f"{type(exc).__name__}: {exc}"
            return result
        result.done_at = time.time()
        return result

    def _store(self, step: dict[str, Any], data: list[Any]) -> None:
        for cid, value in zip(step["outputs"], data):
            if cid in self.state:
                continue
            if isinstance(value, dict) and value.get("__type__") == "update":
                if "value" in value:
                    self.values[cid] = value["value"]
            else:
                self.values[cid] = value

    async def _queued(self, step: dict[str, Any], body: dict[str, Any], result: TurnResult) -> None:
        from gradio_client.utils import apply_diff

        async with self.session.post(f"{self.url}/gradio_api/queue/join", json=body) as resp:
            event_id = (await resp.json())["event_id"]
        outputs: list[Any] | None = None
        at = step["outputs"].index(self.chatbot) if self.chatbot in step["outputs"] else None
        async with self.session.get(f"{self.url}/gradio_api/queue/data?session_hash={self.session_hash}") as resp:
            async for line in resp.content:
                if not line.startswith(b"data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("event_id") not in (None, event_id):
                    continue
                kind = message.get("msg")
                if kind == "process_generating":
                    data = message["output"]["data"]
                    outputs = list(data) if outputs is None else [apply_diff(v, d) for v, d in zip(outputs, data)]
                elif kind == "process_completed":
                    if not message.get("success"):
                        raise RuntimeError(str(message.get("output")))
                    outputs = message["output"]["data"]
                else:
                    continue
                if at is not None:
                    last = outputs[at][-1] if outputs[at] else {}
                    text = last.get("content") if last.get("role") == "assistant" else ""
                    if isinstance(text, str) and len(text) > result.chars:
                        result.receipts.append((time.time(), len(text)))
                        result.text = text
                if kind == "process_completed":
                    self._store(step, outputs)
                    return
