"""``doctor``'s live checks: a text turn, an image turn (a small built-in picture), an audio turn (a built-in
tone), a second turn that must see the first, and Stop. Each spends a little of the caller's ZeroGPU quota.

Why these five: they are what a person does with the chat, and each fails in its own way on a Space the bridge
does not fully understand (files put where the Space does not read them, a history it does not carry, a job it
does not stop). Each check records pass or fail, the time to the first text and in all, and the Space's own
words when it refused. The requests the bridge made are watched (an ``aiohttp`` trace) so that Stop is judged by
the Space's answer to the cancel, not by the bridge's own bookkeeping.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import struct
import tempfile
import time
import wave
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
from PIL import Image

from ..bridge import Conversation, Phi4Bridge
from ..errors import Phi4Error
from ..events import Done, JobStatus, TextDelta
from .doctor_report import CheckResult

MEMORY_WORD = "kiwi"
TEXT_PROMPT = "Reply with one short sentence: what are you?"
IMAGE_PROMPT = "What colour is this picture? Answer in one word."
AUDIO_PROMPT = "Describe this sound in a few words."
FIRST_PROMPT = f"{MEMORY_WORD.capitalize()} is the word to remember. Reply with OK."
SECOND_PROMPT = "Which word did I ask you to remember? Answer with that word only."
STOP_PROMPT = "Count from 1 to 300, one number a line."
CANCEL_ANSWER_S = 10.0  # the bridge gives the Space's /cancel this long (protocol.cancel)
FINISHED_FIRST = "the Space had sent the whole reply by its first text (it answers at once): nothing was left to stop"


def picture() -> bytes:
    """A 48x32 red PNG: small enough to cost nothing, a colour any vision model names."""
    out = io.BytesIO()
    Image.new("RGB", (48, 32), (220, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def tone(seconds: float = 1.0, hz: float = 440.0, rate: int = 16000) -> bytes:
    """A mono 16-bit WAV sine tone (an A), built with the standard library."""
    frames = b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * hz * n / rate)))
                      for n in range(int(seconds * rate)))
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return out.getvalue()


class RequestLog:
    """Every request of the bridge's session: (method, path, status), for judging Stop by the Space's answer."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int]] = []
        self.trace = aiohttp.TraceConfig()
        self.trace.on_request_end.append(self._end)

    async def _end(self, session: aiohttp.ClientSession, ctx: SimpleNamespace,
                   params: aiohttp.TraceRequestEndParams) -> None:
        self.seen.append((params.method, params.url.path, params.response.status))

    def cancels(self) -> list[int]:
        return [status for method, path, status in self.seen if method == "POST" and path.endswith("/cancel")]


async def _turn(bridge: Phi4Bridge, name: str, prompt: str, files: list[Path],
                conversation: Conversation | None = None) -> tuple[CheckResult, str]:
    """One turn, timed; a failure is the check's result with the Space's words."""
    started = time.perf_counter()
    first: float | None = None
    try:
        async with bridge.submit(prompt, files, conversation=conversation) as job:
            async for event in job:
                if isinstance(event, TextDelta) and first is None:
                    first = time.perf_counter() - started
                if isinstance(event, Done):
                    break
            reply = job.reply
    except Phi4Error as exc:
        return CheckResult(name, False, str(exc), first, time.perf_counter() - started, exc.said,
                           type(exc).__name__), ""
    total = time.perf_counter() - started
    if not reply.strip():
        return CheckResult(name, False, "the Space answered with an empty reply", first, total), reply
    return CheckResult(name, True, f"replied {_quote(reply)}", first, total), reply


def _quote(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return json.dumps(flat if len(flat) <= limit else flat[: limit - 1] + "…", ensure_ascii=False)


async def text_turn(bridge: Phi4Bridge, folder: Path) -> CheckResult:
    return (await _turn(bridge, "text turn", TEXT_PROMPT, []))[0]


async def image_turn(bridge: Phi4Bridge, folder: Path) -> CheckResult:
    path = folder / "doctor-red.png"
    path.write_bytes(picture())
    return (await _turn(bridge, "image turn", IMAGE_PROMPT, [path]))[0]


async def audio_turn(bridge: Phi4Bridge, folder: Path) -> CheckResult:
    path = folder / "doctor-tone.wav"
    path.write_bytes(tone())
    return (await _turn(bridge, "audio turn", AUDIO_PROMPT, [path]))[0]


async def memory_turns(bridge: Phi4Bridge, folder: Path) -> CheckResult:
    """Two turns in one conversation: the Space's chat after the second must still hold the first (the history
    is carried), and the reply is said to name the word or not (a model's answer, not a protocol matter)."""
    conversation = bridge.conversation()
    first, _ = await _turn(bridge, "second turn", FIRST_PROMPT, [], conversation)
    if not first.ok:
        first.detail = f"the first of two turns failed: {first.detail}"
        return first
    second, reply = await _turn(bridge, "second turn", SECOND_PROMPT, [], conversation)
    if not second.ok:
        return second
    chat = json.dumps(conversation.history, ensure_ascii=False).lower()
    if MEMORY_WORD not in chat or SECOND_PROMPT.lower() not in chat:
        second.ok = False
        second.detail = "the Space's chat after the second turn does not hold both turns"
        return second
    names = "names" if MEMORY_WORD in reply.lower() else "does not name"
    second.detail = f"the Space's chat holds the first turn; the reply {names} {MEMORY_WORD!r}: {_quote(reply)}"
    return second


async def stop_turn(bridge: Phi4Bridge, folder: Path, requests: RequestLog) -> CheckResult:
    """Start a long reply, press Stop at its first text: the job must end cancelled and the Space must accept
    the cancel (its ``/cancel`` answers 200)."""
    started = time.perf_counter()
    first: float | None = None
    before = len(requests.cancels())
    try:
        async with bridge.submit(STOP_PROMPT) as job:
            async for event in job:
                if isinstance(event, TextDelta):
                    first = time.perf_counter() - started
                    break
                if isinstance(event, Done):
                    return CheckResult("stop", None, FINISHED_FIRST)
            if not job.on_space:  # the Space sent the whole reply with its first text: nothing left to stop
                await job.cancel()
                return CheckResult("stop", None, FINISHED_FIRST, first, time.perf_counter() - started)
            await job.cancel()
            status = job.status
    except Phi4Error as exc:
        return CheckResult("stop", False, str(exc), first, time.perf_counter() - started, exc.said,
                           type(exc).__name__)
    total = time.perf_counter() - started
    answers = requests.cancels()[before:]
    if status is not JobStatus.CANCELLED:
        return CheckResult("stop", False, f"the job ended {status.value}, not cancelled", first, total)
    if answers != [200]:
        said = f"answered HTTP {answers[0]}" if answers else "was not answered"
        return CheckResult("stop", False, f"the Space's cancel {said}", first, total)
    return CheckResult("stop", True, "the job was cancelled and the Space accepted the cancel", first, total)


Check = Callable[[Phi4Bridge, Path], Awaitable[CheckResult]]


async def run_checks(bridge: Phi4Bridge, requests: RequestLog, takes: dict[str, bool],
                     on_result: Callable[[CheckResult], Any] | None = None) -> list[CheckResult]:
    """Every live check in turn (one at a time: a Space's queue should not be crowded by its doctor)."""
    checks: list[tuple[str, Check]] = [("text turn", text_turn), ("image turn", image_turn),
                                       ("audio turn", audio_turn), ("second turn", memory_turns)]
    out: list[CheckResult] = []
    with tempfile.TemporaryDirectory(prefix="phi4-doctor-") as tmp:
        for name, check in checks:
            kind = name.split()[0]
            if takes.get(kind) is False:
                result = CheckResult(name, None, f"the Space's chat takes no {kind}")
            else:
                result = await check(bridge, Path(tmp))
            out.append(result)
            if on_result:
                on_result(result)
        async with asyncio.timeout(bridge.config.timeouts.request * 4 + CANCEL_ANSWER_S):
            result = await stop_turn(bridge, Path(tmp), requests)
        out.append(result)
        if on_result:
            on_result(result)
    return out
