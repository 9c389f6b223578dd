"""What a turn costs the app as the chat on screen grows: its ``respond`` step driven with N earlier messages.

Why the page's own step and not ``/chat``: a browser sends the whole chat with each turn, and gradio sends the
reply back as a stream of updates to that whole value (postprocessed, diffed with the previous update, sent);
``/chat`` streams a string and would not see any of it. The client is gradio's queue protocol over aiohttp (as
in ``benchmarks.sweep``); turns run one at a time, so the app's CPU seconds (/proc) around a turn are that
turn's. Levels are interleaved round by round, so machine noise hits them alike.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .stats import cpu_seconds, summary

LEVELS = (0, 100, 200, 400)  # earlier messages; 400 is the bridge's history limit (BridgeConfig)
TURN_TIMEOUT_S = 120.0


@dataclass
class LongTurn:
    """One turn of the ``respond`` step as the client saw it, with the app's CPU seconds around it."""

    earlier: int
    updates: int = 0  # process_generating messages
    text_updates: int = 0  # of which the reply text grew
    cpu_s: float = 0.0
    first_text_s: float | None = None
    total_s: float | None = None
    error: str | None = None
    text: str = ""
    join_s: float | None = None  # queue/join answered (the app has read and checked the whole chat)
    last_update_text: str = ""  # the reply in the last update before the end
    chat: list[dict[str, Any]] = field(default_factory=list)  # the chat after the turn, as the page holds it


def earlier_messages(n: int) -> list[dict[str, Any]]:
    """``n`` messages of a plausible chat (user and assistant in turn, a few hundred characters each)."""
    words = "the model looked at the picture and described its shapes colours and the light in the corner "
    out = []
    for i in range(n):
        role = "user" if i % 2 == 0 else "assistant"
        text = f"message {i}: " + words * (1 if role == "user" else 4)
        out.append({"role": role, "content": [{"type": "text", "text": text}]})
    return out


async def find_respond(session: aiohttp.ClientSession, url: str) -> tuple[int, list[Any]]:
    """The ``respond`` step's fn index and its inputs' values (the chatbot's filled in by ``turn``)."""
    async with session.get(f"{url}/config") as resp:
        config = await resp.json()
    comps = {c["id"]: c for c in config["components"]}
    for index, dep in enumerate(config.get("dependencies") or []):
        if dep.get("api_name") == "respond":
            return int(dep.get("id", index)), [comps[i] for i in dep["inputs"]]
    raise RuntimeError(f"{url} has no respond step")


def _reply(value: Any) -> str:
    """The text of the last message of a chatbot value, if it is the reply (not a note)."""
    if not isinstance(value, list) or not value or not isinstance(value[-1], dict):
        return ""
    last = value[-1]
    if last.get("role") != "assistant" or (last.get("metadata") or {}).get("title"):
        return ""
    content = last.get("content")
    parts = content if isinstance(content, list) else [content]
    return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in parts)


async def turn(session: aiohttp.ClientSession, url: str, fn_index: int, inputs: list[dict[str, Any]],
               earlier: list[dict[str, Any]], session_hash: str, pid: int | None, prompt: str | None = None
               ) -> LongTurn:
    """One turn after ``earlier`` (the chat on screen), as the page sends it: the whole chat plus a new message."""
    from gradio_client.utils import apply_diff

    result = LongTurn(len(earlier))
    prompt = prompt or f"long chat {len(earlier)} {uuid.uuid4().hex[:8]}"
    history = earlier + [{"role": "user", "content": [{"type": "text", "text": prompt}]}]
    data = [history if c["type"] == "chatbot" else c["props"].get("value") for c in inputs]
    body = {"data": data, "event_data": None, "fn_index": fn_index, "trigger_id": None,
            "session_hash": session_hash}
    cpu0 = cpu_seconds(pid) if pid else None
    sent = time.monotonic()
    try:
        async with asyncio.timeout(TURN_TIMEOUT_S):
            async with session.post(f"{url}/gradio_api/queue/join", json=body) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"join HTTP {resp.status}: {(await resp.text())[:120]}")
                event_id = (await resp.json())["event_id"]
            result.join_s = time.monotonic() - sent
            value: Any = None
            async with session.get(f"{url}/gradio_api/queue/data?session_hash={session_hash}",
                                   headers={"accept": "text/event-stream"}) as resp:
                while True:
                    line = await resp.content.readline()
                    if not line:
                        raise RuntimeError("stream ended before process_completed")
                    if not line.startswith(b"data:"):
                        continue
                    message = json.loads(line[5:])
                    if message.get("event_id") not in (None, event_id):
                        continue
                    if message.get("msg") == "process_generating":
                        out = message["output"]["data"][0]
                        value = out if value is None else apply_diff(value, out)
                        result.updates += 1
                        text = _reply(value)
                        result.last_update_text = text
                        if len(text) > len(result.text):
                            now = time.monotonic()
                            if result.first_text_s is None:
                                result.first_text_s = now - sent
                            result.text_updates += 1
                            result.text = text
                    elif message.get("msg") == "process_completed":
                        if not message.get("success", True):
                            raise RuntimeError(f"failed: {(message.get('output') or {}).get('error')}")
                        final = (message.get("output") or {}).get("data", [None])[0]
                        result.text = _reply(final) or result.text
                        result.chat = final if isinstance(final, list) else []
                        break
        result.total_s = time.monotonic() - sent
    except Exception as exc:  # noqa: BLE001 - counted as an error of this level
        result.error = f"{type(exc).__name__}: {exc}"[:200]
    if cpu0 is not None:
        result.cpu_s = (cpu_seconds(pid) or cpu0) - cpu0  # type: ignore[arg-type]
    return result


async def measure(apps: dict[str, tuple[str, int | None]], turns: int, levels: tuple[int, ...] = LEVELS,
                  limit: int = LEVELS[-1]) -> dict[str, Any]:
    """``turns`` turns per level and app (``apps``: name -> (url, pid)), interleaved round by round; app CPU per
    turn and per UI update, and each relative to the same app with no history.

    Each level is one visitor who keeps chatting, as in a long chat: its first turn brings ``n`` earlier messages
    the Space never saw (the bridge restores them: that turn is kept apart, as ``restore_turn``); each next turn
    sends the chat as the page then holds it, two messages longer (so a level at the limit starts below it)."""
    connector = aiohttp.TCPConnector(limit=0)
    pairs = [(name, n) for name in apps for n in levels]
    async with aiohttp.ClientSession(connector=connector) as session:
        found = {name: await find_respond(session, url) for name, (url, _) in apps.items()}

        async def one(name: str, chat: list[dict[str, Any]], visitor: str) -> LongTurn:
            url, pid = apps[name]
            return await turn(session, url, found[name][0], found[name][1], chat, visitor, pid)

        visitors = {pair: uuid.uuid4().hex[:11] for pair in pairs}
        restore = {pair: await one(pair[0], earlier_messages(min(pair[1], limit - 2 * (turns + 1))), visitors[pair])
                   for pair in pairs}
        chats = {pair: restore[pair].chat for pair in pairs}
        by_pair: dict[tuple[str, int], list[LongTurn]] = {pair: [] for pair in pairs}
        for i in range(turns):
            for pair in pairs[i % len(pairs):] + pairs[:i % len(pairs)]:
                result = await one(pair[0], chats[pair], visitors[pair])
                by_pair[pair].append(result)
                chats[pair] = result.chat or chats[pair]
    out: dict[str, Any] = {}
    for name in apps:
        rows = {str(n): _row(by_pair[(name, n)], restore[(name, n)]) for n in levels}
        base = rows[str(levels[0])]
        for row in rows.values():
            for key in ("app_cpu_ms_per_turn", "app_cpu_ms_per_update"):
                b, v = base.get(key), row.get(key)
                row[f"{key}_vs_none"] = round(v / b, 2) if b and v is not None else None
        out[name] = rows
    return out


def _row(results: list[LongTurn], restore: LongTurn) -> dict[str, Any]:
    good = [r for r in results if r.error is None]
    updates = sum(r.updates for r in good)
    cpu = sum(r.cpu_s for r in good)
    return {"earlier_messages": [r.earlier for r in results], "turns": len(results), "errors": len(results) - len(good),
            "error_samples": sorted({r.error for r in results if r.error})[:3],
            "updates_per_turn": round(updates / len(good), 1) if good else None,
            "app_cpu_ms_per_turn": round(cpu / len(good) * 1000, 2) if good else None,
            "app_cpu_ms_per_update": round(cpu / updates * 1000, 3) if updates else None,
            "join_ms": summary(r.join_s for r in good),
            "first_text_ms": summary(r.first_text_s for r in good),
            "total_ms": summary(r.total_s for r in good),
            "reply_chars": len(good[0].text) if good else None,
            "restore_turn": {"earlier_messages": restore.earlier, "error": restore.error,
                             "app_cpu_ms": round(restore.cpu_s * 1000, 2),
                             "first_text_ms": None if restore.first_text_s is None
                             else round(restore.first_text_s * 1000, 2)}}


APP_NAMES = {"app": "this code (20 updates/s)", "every_chunk": "this code, an update per chunk",
             "compared": "--compare-app"}


def report_lines(r: dict[str, Any], table: Callable[..., str]) -> list[str]:
    """REPORT.md's long-chat section: per app and level, CPU per turn and per update and their ratio to none."""
    lc = r.get("long_chat") or {}
    apps: dict[str, Any] = lc.get("apps") or {}
    if not apps:
        return []
    rows = []
    for name, levels in apps.items():
        label = APP_NAMES.get(name, name) + (f" ({lc.get('compared_app')})" if name == "compared" else "")
        for n, row in levels.items():
            rows.append([label, f"{n} ({', '.join(str(x) for x in row['earlier_messages'])})", row["errors"],
                         row["updates_per_turn"], row["app_cpu_ms_per_turn"], row["app_cpu_ms_per_turn_vs_none"],
                         row["app_cpu_ms_per_update"], row["app_cpu_ms_per_update_vs_none"],
                         row["first_text_ms"]["p50"], row["restore_turn"]["first_text_ms"]])
    return ["## Long chats: the app's chat step with earlier messages on screen", "",
            f"The page's own chat step over gradio's queue protocol, one turn at a time, "
            f"{lc.get('turns_per_level')} turns per level and app, levels and apps interleaved. Each level is one "
            "visitor who keeps chatting (each turn two messages longer; the messages at each turn in brackets); "
            "its first turn, which brings a history the Space never saw, is timed apart (last column). App CPU "
            "is /proc's, in 10 ms ticks: read the ratios of several turns, not one figure.", "",
            table(["app", "earlier messages", "errors", "updates / turn", "app CPU ms / turn", "× none",
                   "app CPU ms / update", "× none", "first text p50 ms", "restoring turn: first text ms"], rows),
            ""]
