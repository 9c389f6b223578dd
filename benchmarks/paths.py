"""One function per measured path; each returns ``TurnResult``s stamped with ``time.time()``.

1. ``reference_turns``: gradio_client straight to the Space's bot step (what the Space costs by itself).
2. the known provider's request sequence: ``known_client.KnownClient.turn``, text only at the end.
3. ``bridge_turn``: ``phi4_bridge`` in this process.
4. ``app_turns``: gradio_client -> app.py ``/chat`` -> bridge -> Space (what a browser gets).

Paths 1 and 4 use the same client library the same way (a fresh session hash per conversation, outputs read
as they arrive), so the ratio of 4 to 1 is the app's cost and not the client's.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from phi4_bridge import Conversation, Done, Phi4Bridge, TextDelta

from .stats import TurnResult

TURN_TIMEOUT_S = 120.0


def reply_text(output: Any) -> str:
    """The reply text in a client output: a string (app ``/chat``) or a chatbot value (the Space's bot step)."""
    if isinstance(output, tuple | list) and output and isinstance(output[-1], dict):
        content = output[-1].get("content")
        return content if isinstance(content, str) else ""
    if isinstance(output, tuple) and len(output) == 1:
        return reply_text(output[0])
    return output if isinstance(output, str) else ""


def _drain(job: Any, result: TurnResult) -> None:
    """Read a gradio_client Job's outputs as they arrive, recording when the reply grows."""
    deadline = time.monotonic() + TURN_TIMEOUT_S
    for output in job:
        text = reply_text(output)
        if len(text) > result.chars:
            result.receipts.append((time.time(), len(text)))
            result.text = text
        if time.monotonic() > deadline:
            job.cancel()
            raise TimeoutError(f"turn took more than {TURN_TIMEOUT_S:.0f}s")
    job.result(timeout=TURN_TIMEOUT_S)  # raises the remote error, if any
    result.done_at = time.time()


# ---- 1. gradio_client straight to the Space ----------------------------------------------------------------------
class ReferencePath:
    """Blocking (call ``turn`` in a thread): one gradio_client, a fresh session hash per turn, the bot step only."""

    def __init__(self, space_url: str, api_name: str = "/bot") -> None:
        from gradio_client import Client

        self.client = Client(space_url, verbose=False)
        self.api_name = api_name

    def turn(self, prompt: str) -> TurnResult:
        self.client.session_hash = str(uuid.uuid4())
        result = TurnResult("reference", prompt, time.time(), remote_session=self.client.session_hash)
        try:
            _drain(self.client.submit([{"role": "user", "content": prompt}], None, api_name=self.api_name), result)
        except Exception as exc:  # noqa: BLE001 - a failed turn is a figure, not a crash
            result.error = f"{type(exc).__name__}: {exc}"[:200]
        return result

    def close(self) -> None:
        self.client.close()


# ---- 3. the bridge in-process --------------------------------------------------------------------------------------
async def bridge_turn(bridge: Phi4Bridge, prompt: str, files: Sequence[str] = (),
                      conversation: Conversation | None = None) -> TurnResult:
    """One turn through ``Phi4Bridge.submit``; a new conversation unless one is given."""
    conv = conversation or bridge.conversation()
    result = TurnResult("bridge", prompt, time.time(), remote_session=conv.session_hash)
    chars = 0
    try:
        async with bridge.submit(prompt, files, conversation=conv) as job:
            for _ in range(100_000):  # bounded: a reply is far fewer events
                try:
                    event = await job.__anext__()
                except StopAsyncIteration:
                    break
                if isinstance(event, TextDelta) and event.text:
                    chars += len(event.text)
                    result.receipts.append((time.time(), chars))
                elif isinstance(event, Done):
                    result.done_at = time.time()
                    result.text = event.text
    except Exception as exc:  # noqa: BLE001
        result.error = f"{type(exc).__name__}: {exc}"[:200]
    return result


# ---- 4. the whole app through gradio_client ---------------------------------------------------------------------
class AppPath:
    """Blocking: gradio_client -> app ``/chat``. ``turn(new_session=True)`` starts a new conversation (a new
    session hash, which the app keys its conversations by); ``files`` are local paths attached to the turn."""

    def __init__(self, app_url: str) -> None:
        from gradio_client import Client

        self.client = Client(app_url, verbose=False)

    def turn(self, prompt: str, files: Sequence[str] = (), new_session: bool = True) -> TurnResult:
        from gradio_client import handle_file

        if new_session:
            self.client.session_hash = str(uuid.uuid4())
        result = TurnResult("app", prompt, time.time())
        try:
            message = {"text": prompt, "files": [handle_file(f) for f in files]}
            _drain(self.client.submit(message, api_name="/chat"), result)
        except Exception as exc:  # noqa: BLE001
            result.error = f"{type(exc).__name__}: {exc}"[:200]
        return result

    def close(self) -> None:
        self.client.close()
